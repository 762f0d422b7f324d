"""A seeded synthetic market: trades and quotes for N symbols, with labelled anomalies.

Each symbol has its own base price, volatility, usual trade size and usual spread. Its
price follows a geometric random walk (about 2 bp per trade, with a very weak pull back
to the base price so that an endless stream stays in range). Trades print at the walk
rounded to the cent, with lognormal round-lot sizes; quotes sit around the walk with a
spread of a few ticks. Event times grow monotonically with exponential gaps; the
symbol of each event is drawn at random. The same parameters give the same stream,
event for event, so a back-test or a demo can be repeated exactly.

Anomaly catalogue (:data:`ANOMALY_TYPES`). After ``warmup_events`` events of a symbol,
each of its events is turned into an anomaly with probability ``anomaly_rate``; the
type is drawn among those that apply to the event's kind:

==================  =====  ==========================================================
name                kind   what is injected
==================  =====  ==========================================================
``price_spike``     trade  one trade printed 2-5 % above or below the walk; the walk
                           itself is not moved, so the next trades are normal again
``size_burst``      trade  one trade 30-100x the symbol's usual size
``spread_blowout``  quote  one quote whose spread is 20-50x the symbol's usual spread
==================  =====  ==========================================================

To add a type: add an :class:`AnomalyType` to :data:`ANOMALY_TYPES` and a
``_inject_<name>`` method to :class:`SyntheticMarket` taking the same arguments as the
existing ones. Every injected event comes with a :class:`Label`; labels can be saved
to and read from JSON Lines with :func:`write_labels` and :func:`read_labels`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import numpy as np

from alerting.events import Event, Quote, Trade

__all__ = [
    "ANOMALY_TYPES",
    "AnomalyType",
    "Label",
    "SyntheticMarket",
    "read_labels",
    "write_labels",
]

#: Event time of the first event when ``start`` is not given (keeps output deterministic).
DEFAULT_START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)

_TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN", "GOOGL")
_VENUES = ("XNAS", "XNYS", "ARCX", "BATS", "IEXG")
_SIDES: tuple[Literal["buy"], Literal["sell"]] = ("buy", "sell")
_BLOCK = 4096  # random draws are made in blocks of this many events
_PULL = 1e-6  # per-trade mean reversion of the log price toward the base price
_TICK = 0.01


@dataclass(frozen=True)
class AnomalyType:
    """One entry of the anomaly catalogue."""

    name: str
    kind: Literal["trade", "quote"]
    summary: str


#: The anomalies the generator knows how to inject.
ANOMALY_TYPES: tuple[AnomalyType, ...] = (
    AnomalyType("price_spike", "trade", "a single trade 2-5% off the price walk"),
    AnomalyType("size_burst", "trade", "a trade 30-100x the usual size"),
    AnomalyType("spread_blowout", "quote", "a quote whose spread is 20-50x normal"),
)


@dataclass(frozen=True)
class Label:
    """Ground truth for one injected anomaly."""

    index: int  #: 0-based position of the event in the generated stream
    entity: str
    time: datetime
    kind: str  #: event kind: trade, quote, metric
    anomaly: str  #: anomaly type name, see ANOMALY_TYPES
    detail: str  #: short human explanation, e.g. "price +3.1% off the walk"

    def to_json(self) -> str:
        """One JSON object; ``time`` is RFC 3339 in UTC with a ``Z``."""
        return json.dumps(
            {
                "index": self.index,
                "entity": self.entity,
                "time": _rfc3339(self.time),
                "kind": self.kind,
                "anomaly": self.anomaly,
                "detail": self.detail,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Label:
        """Parse the output of :meth:`to_json`."""
        data = json.loads(text)
        moment = datetime.fromisoformat(data["time"])
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return cls(
            index=int(data["index"]),
            entity=str(data["entity"]),
            time=moment,
            kind=str(data["kind"]),
            anomaly=str(data["anomaly"]),
            detail=str(data["detail"]),
        )


def write_labels(path: str | Path, labels: Iterable[Label]) -> int:
    """Write labels as JSON Lines; return how many were written."""
    written = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for label in labels:
            out.write(label.to_json())
            out.write("\n")
            written += 1
    return written


def read_labels(path: str | Path) -> list[Label]:
    """Read labels written by :func:`write_labels` (blank lines are ignored)."""
    with Path(path).open(encoding="utf-8") as source:
        return [Label.from_json(line) for line in source if line.strip()]


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _symbol_name(index: int) -> str:
    return _TICKERS[index] if index < len(_TICKERS) else f"SYM{index:04d}"


@dataclass
class _Symbol:
    """Per-symbol state of the walk; kept mutable and small on purpose."""

    name: str
    base_log_price: float
    log_price: float
    volatility: float  # per-trade standard deviation of the log price
    usual_lots: int  # median trade size in round lots of 100
    usual_spread_ticks: int
    seen: int = 0  # events generated so far for this symbol


# An injector gets (symbol state, walk price, magnitude draw in [0, 1), direction draw in
# [0, 1), time, stream index) and returns the anomalous event and the label's detail.
_Injector = Callable[["_Symbol", float, float, float, datetime], tuple[Event, str]]


class SyntheticMarket:
    """Deterministic stream of trades and quotes with injected, labelled anomalies.

    Each call of :meth:`events` starts the stream afresh from ``seed``.

    >>> market = SyntheticMarket(symbols=3, seed=1, anomaly_rate=0.02, warmup_events=50)
    >>> stream = list(market.events(2000))
    >>> event, label = stream[0]
    >>> event.kind, event.entity, event.price, event.size, label
    ('trade', 'MSFT', 426.29, 400.0, None)
    >>> labels = [label for _, label in stream if label is not None]
    >>> len(labels), labels[0].index, labels[0].anomaly, labels[0].detail
    (35, 163, 'price_spike', 'price +2.5% off the walk (32.60 vs 31.82)')
    >>> stream == list(market.events(2000))  # same seed and parameters, same stream
    True
    """

    def __init__(
        self,
        symbols: int = 5,
        seed: int = 7,
        anomaly_rate: float = 0.001,
        events_per_second: float = 200.0,
        quote_ratio: float = 0.3,
        start: datetime | None = None,
        warmup_events: int = 200,
    ) -> None:
        if isinstance(symbols, bool) or not isinstance(symbols, int) or symbols < 1:
            raise ValueError(f"symbols must be an integer >= 1, got {symbols!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
        if not 0.0 <= anomaly_rate <= 0.5:
            raise ValueError(f"anomaly_rate must be between 0 and 0.5, got {anomaly_rate!r}")
        if not (math.isfinite(events_per_second) and events_per_second > 0):
            raise ValueError(f"events_per_second must be > 0, got {events_per_second!r}")
        if not 0.0 <= quote_ratio <= 1.0:
            raise ValueError(f"quote_ratio must be between 0 and 1, got {quote_ratio!r}")
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware, e.g. datetime(..., tzinfo=UTC)")
        if isinstance(warmup_events, bool) or not isinstance(warmup_events, int):
            raise ValueError(f"warmup_events must be an integer >= 0, got {warmup_events!r}")
        if warmup_events < 0:
            raise ValueError(f"warmup_events must be an integer >= 0, got {warmup_events!r}")
        self.symbols = symbols
        self.seed = seed
        self.anomaly_rate = anomaly_rate
        self.events_per_second = events_per_second
        self.quote_ratio = quote_ratio
        self.start = start
        self.warmup_events = warmup_events

    def __repr__(self) -> str:
        return (
            f"SyntheticMarket(symbols={self.symbols}, seed={self.seed}, "
            f"anomaly_rate={self.anomaly_rate}, events_per_second={self.events_per_second}, "
            f"quote_ratio={self.quote_ratio}, start={self.start!r}, "
            f"warmup_events={self.warmup_events})"
        )

    @property
    def symbol_names(self) -> list[str]:
        """The entity keys of the generated events, in symbol order."""
        return [_symbol_name(i) for i in range(self.symbols)]

    def events(self, count: int | None = None) -> Iterator[tuple[Event, Label | None]]:
        """Yield ``(event, label)`` pairs; ``label`` is None for normal events.

        ``count=None`` yields forever. A shorter stream is a prefix of a longer one.
        """
        if count is not None and (isinstance(count, bool) or count < 0):
            raise ValueError(f"count must be None or an integer >= 0, got {count!r}")
        return self._generate(count)

    def _generate(self, count: int | None) -> Iterator[tuple[Event, Label | None]]:
        rng = np.random.default_rng(self.seed)
        book = self._symbols(rng)
        names = [s.name for s in book]
        start = self.start or DEFAULT_START
        trade_anomalies = [a.name for a in ANOMALY_TYPES if a.kind == "trade"]
        quote_anomalies = [a.name for a in ANOMALY_TYPES if a.kind == "quote"]
        injectors: dict[str, _Injector] = {
            a.name: getattr(self, f"_inject_{a.name}") for a in ANOMALY_TYPES
        }
        volatility = np.array([s.volatility for s in book])
        mean_gap_us = 1e6 / self.events_per_second
        anomaly_rate, quote_ratio, warmup = self.anomaly_rate, self.quote_ratio, self.warmup_events
        offset_us = 0
        index = 0
        exp = math.exp
        while count is None or index < count:
            # Draw a whole block at once: numpy per call is slow, per array it is cheap.
            gaps = np.maximum(np.rint(rng.exponential(mean_gap_us, _BLOCK)), 1).astype(np.int64)
            times = (np.cumsum(gaps) + offset_us).tolist()
            offset_us = times[-1]
            which = rng.integers(0, len(book), _BLOCK)
            steps = (volatility[which] * rng.standard_normal(_BLOCK)).tolist()
            is_quote = (rng.random(_BLOCK) < quote_ratio).tolist()
            size_noise = rng.lognormal(0.0, 0.8, _BLOCK).tolist()
            sides = rng.integers(0, 2, _BLOCK).tolist()
            venues = rng.integers(0, len(_VENUES), _BLOCK).tolist()
            wider = (rng.random(_BLOCK) < 0.2).tolist()  # quote one tick wider than usual
            bid_lots = rng.integers(1, 21, _BLOCK).tolist()
            ask_lots = rng.integers(1, 21, _BLOCK).tolist()
            anomalous = (rng.random(_BLOCK) < anomaly_rate).tolist()
            type_draw = rng.random(_BLOCK).tolist()
            magnitude = rng.random(_BLOCK).tolist()
            direction = rng.random(_BLOCK).tolist()
            for j, s in enumerate(which.tolist()):
                if count is not None and index >= count:
                    return
                sym = book[s]
                moment = start + timedelta(microseconds=times[j])
                quote = is_quote[j]
                if not quote:
                    sym.log_price += steps[j] - _PULL * (sym.log_price - sym.base_log_price)
                walk = exp(sym.log_price)
                label: Label | None = None
                event: Event
                if anomalous[j] and sym.seen >= warmup:
                    menu = quote_anomalies if quote else trade_anomalies
                    name = menu[int(type_draw[j] * len(menu))]
                    event, detail = injectors[name](sym, walk, magnitude[j], direction[j], moment)
                    label = Label(index, names[s], moment, event.kind, name, detail)
                elif quote:
                    ticks = sym.usual_spread_ticks + wider[j]
                    bid_ticks = round(walk / _TICK) - ticks // 2
                    event = Quote(
                        symbol=names[s],
                        bid=bid_ticks / 100,
                        ask=(bid_ticks + ticks) / 100,
                        bid_size=100.0 * bid_lots[j],
                        ask_size=100.0 * ask_lots[j],
                        time=moment,
                    )
                else:
                    event = Trade(
                        symbol=names[s],
                        price=round(walk, 2),
                        size=100.0 * max(1, round(sym.usual_lots * size_noise[j])),
                        side=_SIDES[sides[j]],
                        venue=_VENUES[venues[j]],
                        time=moment,
                    )
                sym.seen += 1
                index += 1
                yield event, label

    def _symbols(self, rng: np.random.Generator) -> list[_Symbol]:
        n = self.symbols
        base_prices = np.exp(rng.uniform(math.log(20.0), math.log(500.0), n)).round(2)
        volatility = rng.uniform(1.5e-4, 2.5e-4, n)  # about 2 bp per trade
        usual_lots = rng.integers(1, 11, n)
        spread_bp = rng.uniform(1.0, 4.0, n)
        book = []
        for i in range(n):
            price = float(base_prices[i])
            spread_ticks = max(1, round(price * spread_bp[i] * 1e-4 / _TICK))
            book.append(
                _Symbol(
                    name=_symbol_name(i),
                    base_log_price=math.log(price),
                    log_price=math.log(price),
                    volatility=float(volatility[i]),
                    usual_lots=int(usual_lots[i]),
                    usual_spread_ticks=spread_ticks,
                )
            )
        return book

    # -- the anomaly catalogue: one _inject_<name> per ANOMALY_TYPES entry -------------

    def _inject_price_spike(
        self, sym: _Symbol, walk: float, magnitude: float, direction: float, moment: datetime
    ) -> tuple[Event, str]:
        jump = 0.02 + 0.03 * magnitude
        ref_ticks = round(walk / _TICK)
        # Round the jump away from the walk so the printed move is never below 2%.
        jump_ticks = math.ceil(ref_ticks * jump)
        sign = 1 if direction >= 0.5 else -1
        price = (ref_ticks + sign * jump_ticks) / 100
        ref = ref_ticks / 100
        event = Trade(
            symbol=sym.name,
            price=price,
            size=100.0 * sym.usual_lots,
            side="buy" if sign > 0 else "sell",
            venue=_VENUES[0],
            time=moment,
        )
        return event, f"price {price / ref - 1:+.1%} off the walk ({price:.2f} vs {ref:.2f})"

    def _inject_size_burst(
        self, sym: _Symbol, walk: float, magnitude: float, direction: float, moment: datetime
    ) -> tuple[Event, str]:
        usual = 100 * sym.usual_lots
        factor = 30.0 + 70.0 * magnitude
        size = 100.0 * round(usual * factor / 100)
        event = Trade(
            symbol=sym.name,
            price=round(walk, 2),
            size=size,
            side="buy" if direction >= 0.5 else "sell",
            venue=_VENUES[0],
            time=moment,
        )
        return event, f"size {size / usual:.0f}x usual ({size:.0f} vs {usual})"

    def _inject_spread_blowout(
        self, sym: _Symbol, walk: float, magnitude: float, direction: float, moment: datetime
    ) -> tuple[Event, str]:
        usual = sym.usual_spread_ticks
        ticks = math.ceil(usual * (20.0 + 30.0 * magnitude))
        bid_ticks = round(walk / _TICK) - ticks // 2
        event = Quote(
            symbol=sym.name,
            bid=bid_ticks / 100,
            ask=(bid_ticks + ticks) / 100,
            bid_size=100.0,
            ask_size=100.0,
            time=moment,
        )
        return event, (
            f"spread {ticks / usual:.0f}x normal ({ticks * _TICK:.2f} vs {usual * _TICK:.2f})"
        )
