"""Per-event features, computed incrementally per entity with a few floats of state.

=======  ===============================================================================
kind     features
=======  ===============================================================================
trade    ``log_return`` (log price change since the entity's previous trade),
         ``log_size``, ``sqrt_interarrival`` (√ of the seconds since the previous trade),
         ``signed_notional``: sign(side) × log(1 + price × size), + for buys, − for
         sells, 0 when the side is unknown (log-scaled: raw notionals are heavy-tailed)
quote    ``spread_bps`` (ask − bid over mid, basis points), ``mid_log_return`` (log mid
         change since the previous quote), ``size_imbalance`` ((bid − ask size) / total),
         ``sqrt_quote_interarrival`` (√ of the seconds since the previous quote)
metric   every value under its own name, and, from its second value on:
         ``<name>.diff`` (its change since its previous value), ``<name>.trend`` (the
         recent changes' exponentially weighted mean: a level that shifts, or drifts, keeps
         it away from 0 for several events), ``<name>.vol`` (log of the recent typical
         size of a change over its long-run size: up in a burst of variance, and down,
         further with every event, while the value repeats: a stuck reading), and, once
         the value shows a
         daily or weekly cycle, ``<name>.season`` (its deviation from its usual level at
         this hour of the day and day of the week, UTC)
=======  ===============================================================================

A feature with no previous value (the first trade of an entity has no return) is left
out rather than guessed; detectors handle missing features.

The metric features are what lets one detector see the anomaly classes real metric series
have (``benchmarks/realdata``): a spike moves the value and its change; a level shift
moves the value at once and holds ``trend`` away from 0 while it settles; a variance burst
lifts ``vol``; a stuck sensor drives ``vol`` down by log(1 − :data:`TREND_WEIGHT`) (0.22)
every reading it repeats (the long-run size learns only real changes, so it stays put), so
a run of repeats far longer than the entity's usual stands out whatever the value's scale,
and ``vol`` is back as soon as the value moves again; ``trend`` and ``vol`` learn each
change clipped at :data:`CHANGE_CLIP` typical changes, so one spike moves them little and
briefly; a broken daily cycle (the night that does not come) shows in ``season`` while the
value itself is within its usual range. The cycle baseline is an
additive profile, a mean per hour of the day plus a correction per day of the week; it is
emitted only when it explains at least :data:`SEASON_GAIN` of the value's variance, so a
value without a cycle gets no ``season`` feature. At most :data:`MAX_TRACKED` value names
are remembered per entity (the least recently seen is forgotten first).

Why the square root of inter-arrival times: a stale feed shows as one long gap, and the
log of a gap hides it. Gaps between independent arrivals are roughly exponential; the log
of an exponential has a long *left* tail and a short right one, so a gap 50x the usual
is only about 3 standard deviations up, under any sensible threshold. The square root of
an exponential has a Gaussian-like right tail (P(√g > s) = e^(−s²) for a unit mean): 6
standard deviations up is a gap 13x the usual (reached by 1.5 in a million normal gaps),
and 50x lands at 13σ. On the synthetic market's stale feeds (``alerting evaluate``) this
took the z-score's detection of stale-feed windows from 40 % to NN %.

>>> state = FeatureState()
>>> from alerting.events import Trade
>>> extract(Trade(symbol="A", price=100.0, size=10, side="sell", time=0), state)
{'log_size': 2.302585092994046, 'signed_notional': -6.90875477931522}
>>> sorted(extract(Trade(symbol="A", price=101.0, size=10, time=2), state))
['log_return', 'log_size', 'signed_notional', 'sqrt_interarrival']
"""

from __future__ import annotations

from array import array
from math import log, log1p, sqrt
from typing import Any

from alerting.events import Event, Metric, Quote, Trade
from alerting.plain import mapping, optional_number, pack_floats, sequence, text, unpack_floats

#: weight of the newest change in ``.trend`` and ``.vol`` (a span of about 9 events)
TREND_WEIGHT = 0.2
#: floor of the sizes ``.vol`` compares (log(0) is not a number); a value that repeats for
#: good reaches it and stays there
_VOL_FLOOR = 1e-300
#: ``.trend`` and ``.vol`` learn a change as at most this many typical changes
CHANGE_CLIP = 4.0
#: weight of the newest real change (not a repeat) in the long-run size ``.vol`` compares
#: with (a plain mean of the first 1/SLOW_WEIGHT)
SLOW_WEIGHT = 0.002
#: metric value names remembered per entity (the events topic caps values per event at 64)
MAX_TRACKED = 64
#: share of a value's variance its daily and weekly profile must explain to be emitted
SEASON_GAIN = 0.25
#: values a cycle bin (an hour of the day, a day of the week) averages over, at most
SEASON_MEMORY = 1000
#: observations a cycle bin needs before ``.season`` can use it
SEASON_MIN = 3
#: deviations from the profile measured before the profile's gain is trusted
SEASON_JUDGED = 200
_DAY = 86_400.0
_HOUR = 3_600.0


class ValueMemory:
    """What one metric value's features remember: plain floats in one array.

    Layout: last value, trend, the recent typical size of a change (weighted mean of the
    clipped absolute changes; -1 before the first), the long-run size of a real change and
    how many there were; then the cycle model: overall mean, overall variance, residual
    variance, observations, observations the residual variance has; 24 hour-of-day means
    and their counts; 7 day-of-week corrections and their counts.
    """

    __slots__ = ("data",)

    LAST, TREND, VOL, SLOW, CHANGES, MEAN, VAR, RESIDUAL, SEEN, JUDGED = range(10)
    HOURS = 10
    HOUR_COUNTS = HOURS + 24
    DAYS = HOUR_COUNTS + 24
    DAY_COUNTS = DAYS + 7
    SIZE = DAY_COUNTS + 7

    def __init__(self, value: float) -> None:
        self.data = array("d", bytes(8 * self.SIZE))
        self.data[self.LAST] = value
        self.data[self.VOL] = -1.0  # no change seen yet

    def __getstate__(self) -> bytes:
        return self.data.tobytes()

    def __setstate__(self, blob: bytes) -> None:
        self.data = array("d")
        self.data.frombytes(blob)


class FeatureState:
    """What one entity's features remember between events (bounded: a few floats, and a
    small array per metric value name)."""

    __slots__ = ("last_mid", "last_price", "last_quote_time", "last_trade_time", "values")

    def __init__(self) -> None:
        self.last_price: float | None = None
        self.last_trade_time: float | None = None
        self.last_mid: float | None = None
        self.last_quote_time: float | None = None
        self.values: dict[str, ValueMemory] = {}  # least recently seen first

    def dump(self) -> dict[str, Any]:
        """Plain data (:mod:`alerting.plain`)."""
        return {
            "trade": [self.last_price, self.last_trade_time],
            "quote": [self.last_mid, self.last_quote_time],
            "values": {name: pack_floats(m.data) for name, m in self.values.items()},
        }

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data (checked: :class:`~alerting.errors.PlainError`)."""
        d = mapping(data, "features")
        price, trade_time = sequence(d.get("trade"), "features.trade", 2)
        mid, quote_time = sequence(d.get("quote"), "features.quote", 2)
        self.last_price = optional_number(price, "features.trade")
        self.last_trade_time = optional_number(trade_time, "features.trade")
        self.last_mid = optional_number(mid, "features.quote")
        self.last_quote_time = optional_number(quote_time, "features.quote")
        values = mapping(d.get("values"), "features.values", MAX_TRACKED)
        self.values = {}
        for name, packed in values.items():
            memory = ValueMemory(0.0)
            memory.data = unpack_floats(packed, ValueMemory.SIZE, f"features.values.{name}")
            self.values[text(name, "features.values", 200)] = memory


def extract(event: Event, state: FeatureState, timestamp: float | None = None) -> dict[str, float]:
    """Features of ``event``; updates ``state`` to remember it.

    ``timestamp`` is ``event.timestamp`` when the caller already has it (it costs a
    datetime conversion per call).
    """
    if isinstance(event, Trade):
        return _trade(event, state, event.timestamp if timestamp is None else timestamp)
    if isinstance(event, Quote):
        return _quote(event, state, event.timestamp if timestamp is None else timestamp)
    return _metric(event, state, event.timestamp if timestamp is None else timestamp)


_SIDE = {"buy": 1.0, "sell": -1.0, "unknown": 0.0}


def _trade(event: Trade, state: FeatureState, now: float) -> dict[str, float]:
    x = {
        "log_size": log(event.size),
        "signed_notional": _SIDE[event.side] * log1p(event.price * event.size),
    }
    if state.last_price is not None and state.last_trade_time is not None:
        x["log_return"] = log(event.price / state.last_price)
        # a trade stamped before the previous one (late data) counts as simultaneous
        x["sqrt_interarrival"] = sqrt(max(now - state.last_trade_time, 0.0))
    state.last_price = event.price
    state.last_trade_time = now
    return x


def _quote(event: Quote, state: FeatureState, now: float) -> dict[str, float]:
    mid = (event.bid + event.ask) / 2.0
    x = {"spread_bps": (event.ask - event.bid) / mid * 1e4}
    total = event.bid_size + event.ask_size
    if total > 0:
        x["size_imbalance"] = (event.bid_size - event.ask_size) / total
    if state.last_mid is not None:
        x["mid_log_return"] = log(mid / state.last_mid)
    if state.last_quote_time is not None:
        x["sqrt_quote_interarrival"] = sqrt(max(now - state.last_quote_time, 0.0))
    state.last_mid = mid
    state.last_quote_time = now
    return x


def _metric(event: Metric, state: FeatureState, now: float) -> dict[str, float]:
    x = dict(event.values)
    memories = state.values
    hour = int(now // _HOUR) % 24
    day = int(now // _DAY + 3) % 7  # 1970-01-01 was a Thursday: Monday is 0
    for name, value in event.values.items():
        memory = memories.pop(name, None)
        if memory is None:
            if len(memories) >= MAX_TRACKED:
                del memories[next(iter(memories))]  # forget the least recently seen
            memory = ValueMemory(value)
            memories[name] = memory
            _season(memory.data, value, hour, day)
            continue
        memories[name] = memory  # now the most recently seen
        m = memory.data
        change = value - m[ValueMemory.LAST]
        m[ValueMemory.LAST] = value
        x[name + ".diff"] = change
        # trend and vol learn the change clipped at CHANGE_CLIP typical changes: one spike
        # moves them a little and is gone in a few events, a lasting change moves them far
        clipped, vol = _variability(m, ValueMemory.VOL, change)
        trend = m[ValueMemory.TREND] = m[ValueMemory.TREND] + TREND_WEIGHT * (
            clipped - m[ValueMemory.TREND]
        )
        x[name + ".trend"] = trend
        x[name + ".vol"] = vol
        deviation = _season(m, value, hour, day)
        if deviation is not None:
            x[name + ".season"] = deviation
    return x


def _variability(m: array[float], at: int, change: float) -> tuple[float, float]:
    """Learn ``change`` into the sizes at ``m[at:at + 3]`` (the recent typical size of a
    change, -1 before the first; the long-run size of a real change; how many there
    were); the change clipped at :data:`CHANGE_CLIP` typical sizes, and the log of the
    recent size over the long-run one."""
    scale, slow = m[at], m[at + 1]
    usual = scale if scale > slow else slow  # after a stuck run, the long-run size
    if usual > 0.0:
        reach = CHANGE_CLIP * usual
        clipped = reach if change > reach else -reach if change < -reach else change
    else:  # the first change, or a value that never changed so far: as it is
        clipped = change
    size = abs(clipped)
    scale = size if scale < 0.0 else scale + TREND_WEIGHT * (size - scale)
    if size > 0.0:  # the long-run size of a change, when the value changes
        changes = m[at + 2] = m[at + 2] + 1.0
        weight = 1.0 / changes
        slow += (weight if weight > SLOW_WEIGHT else SLOW_WEIGHT) * (size - slow)
    m[at], m[at + 1] = scale, slow
    # both floored: log(0) is not a number
    vol = log(scale if scale > _VOL_FLOOR else _VOL_FLOOR) - log(
        slow if slow > _VOL_FLOOR else _VOL_FLOOR
    )
    return clipped, vol


def _season(m: array[float], value: float, hour: int, day: int) -> float | None:
    """Learn ``value`` at this hour and day into the cycle model; its deviation from the
    model's baseline (learned before it), if the model explains enough of the variance."""
    seen = m[ValueMemory.SEEN] + 1.0
    m[ValueMemory.SEEN] = seen
    weight = max(1.0 / seen, 1.0 / (24 * SEASON_MEMORY))
    h, hc = ValueMemory.HOURS + hour, ValueMemory.HOUR_COUNTS + hour
    d, dc = ValueMemory.DAYS + day, ValueMemory.DAY_COUNTS + day
    ready = m[hc] >= SEASON_MIN and m[dc] >= SEASON_MIN
    deviation = value - m[h] - m[d]
    spread = value - m[ValueMemory.MEAN]
    # overall mean and variance, and the variance left once the profile is taken out
    m[ValueMemory.MEAN] += weight * spread
    # the weighted variance about the moving mean (0 after the first value, not value²)
    m[ValueMemory.VAR] = (1.0 - weight) * (m[ValueMemory.VAR] + weight * spread * spread)
    if ready:
        judged = m[ValueMemory.JUDGED] = m[ValueMemory.JUDGED] + 1.0
        m[ValueMemory.RESIDUAL] += max(1.0 / judged, 1.0 / (24 * SEASON_MEMORY)) * (
            deviation * deviation - m[ValueMemory.RESIDUAL]
        )
    # the profile: hour means, then day-of-week corrections of what the hour leaves
    m[hc] += 1.0
    m[h] += max(1.0 / m[hc], 1.0 / SEASON_MEMORY) * (value - m[h])
    m[dc] += 1.0
    m[d] += max(1.0 / m[dc], 1.0 / SEASON_MEMORY) * (value - m[h] - m[d])
    if (
        not ready
        or m[ValueMemory.JUDGED] < SEASON_JUDGED
        or m[ValueMemory.RESIDUAL] > (1.0 - SEASON_GAIN) * m[ValueMemory.VAR]
    ):
        return None
    return deviation
