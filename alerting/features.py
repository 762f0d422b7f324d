"""Per-event features, computed incrementally per entity with a few floats of state.

=======  ===============================================================================
kind     features
=======  ===============================================================================
trade    ``log_return`` (log price change since the entity's previous trade),
         ``log_size``, ``log_interarrival`` (log seconds since the previous trade),
         ``signed_notional``: sign(side) × log(1 + price × size), + for buys, − for
         sells, 0 when the side is unknown (log-scaled: raw notionals are heavy-tailed)
quote    ``spread_bps`` (ask − bid over mid, basis points), ``mid_log_return`` (log mid
         change since the previous quote), ``size_imbalance`` ((bid − ask size) / total)
metric   every value under its own name, and ``<name>.diff``: its change since the
         entity's previous metric event
=======  ===============================================================================

A feature with no previous value (the first trade of an entity has no return) is left
out rather than guessed; detectors handle missing features.

>>> state = FeatureState()
>>> from alerting.events import Trade
>>> extract(Trade(symbol="A", price=100.0, size=10, side="sell", time=0), state)
{'log_size': 2.302585092994046, 'signed_notional': -6.90875477931522}
>>> sorted(extract(Trade(symbol="A", price=101.0, size=10, time=2), state))
['log_interarrival', 'log_return', 'log_size', 'signed_notional']
"""

from __future__ import annotations

from math import log, log1p

from alerting.events import Event, Metric, Quote, Trade

#: floor for inter-arrival times: simultaneous trades (a sweep) give a bounded, finite log
MIN_INTERARRIVAL_S = 1e-3


class FeatureState:
    """What one entity's features remember between events (bounded: a few floats)."""

    __slots__ = ("last_mid", "last_price", "last_trade_time", "last_values")

    def __init__(self) -> None:
        self.last_price: float | None = None
        self.last_trade_time: float | None = None
        self.last_mid: float | None = None
        self.last_values: dict[str, float] = {}


def extract(event: Event, state: FeatureState, timestamp: float | None = None) -> dict[str, float]:
    """Features of ``event``; updates ``state`` to remember it.

    ``timestamp`` is ``event.timestamp`` when the caller already has it (it costs a
    datetime conversion per call).
    """
    if isinstance(event, Trade):
        return _trade(event, state, event.timestamp if timestamp is None else timestamp)
    if isinstance(event, Quote):
        return _quote(event, state)
    return _metric(event, state)


_SIDE = {"buy": 1.0, "sell": -1.0, "unknown": 0.0}


def _trade(event: Trade, state: FeatureState, now: float) -> dict[str, float]:
    x = {
        "log_size": log(event.size),
        "signed_notional": _SIDE[event.side] * log1p(event.price * event.size),
    }
    if state.last_price is not None and state.last_trade_time is not None:
        x["log_return"] = log(event.price / state.last_price)
        x["log_interarrival"] = log(max(now - state.last_trade_time, MIN_INTERARRIVAL_S))
    state.last_price = event.price
    state.last_trade_time = now
    return x


def _quote(event: Quote, state: FeatureState) -> dict[str, float]:
    mid = (event.bid + event.ask) / 2.0
    x = {"spread_bps": (event.ask - event.bid) / mid * 1e4}
    total = event.bid_size + event.ask_size
    if total > 0:
        x["size_imbalance"] = (event.bid_size - event.ask_size) / total
    if state.last_mid is not None:
        x["mid_log_return"] = log(mid / state.last_mid)
    state.last_mid = mid
    return x


def _metric(event: Metric, state: FeatureState) -> dict[str, float]:
    x = dict(event.values)
    last = state.last_values
    for name, value in event.values.items():
        previous = last.get(name)
        if previous is not None:
            x[name + ".diff"] = value - previous
    # replace, not update: the schema caps values per event, so this stays bounded
    state.last_values = event.values
    return x
