"""A seeded synthetic market: trades and quotes for N symbols, with labelled anomalies.

Two styles. ``style="realistic"`` (the default) has the stylized facts of real markets:
Student-t shocks (4 degrees of freedom) with GARCH(1, 1) volatility clusters per trade, an
intraday activity cycle (U-shaped over a 6.5 h session from the stream's start: arrivals
at twice the average rate at the open and the close, half at midday, a quarter between
sessions; trade steps scaled by its square root), quote bursts (a fifth of the quotes
start a run of about four more of the same symbol at a tenth of the usual gap, so with
``quote_ratio = 0.3`` about 43 % of the events are quotes and the stream runs about 1.2x
``events_per_second``), trade sizes with a power-law tail (Pareto, exponent 1.6), and
anomaly strengths a few times the market's own 1-in-10,000 move (:attr:`AnomalyType.
realistic`). ``style="classic"`` is the stream earlier versions generated, event for
event, described below with its ranges.

Each symbol has its own base price, volatility, usual trade size and usual spread. Its
price follows a geometric random walk (about 2 bp per trade, with a very weak pull back
to the base price so that an endless stream stays in range). Trades print at the walk
rounded to the cent, with lognormal round-lot sizes; quotes sit around the walk with a
spread of a few ticks. Event times grow monotonically with exponential gaps; the
symbol of each event is drawn at random. The same parameters give the same stream,
event for event, so a back-test or a demo can be repeated exactly.

Anomaly catalogue (:data:`ANOMALY_TYPES`). After ``warmup_events`` events of a symbol,
each of its events starts an anomaly with probability ``anomaly_rate``, unless one is
already under way on that symbol. The type is drawn among the types of the mix
(``anomalies``) that can start on the event's kind, in proportion to their weights; an
event whose kind no type of the mix can start on stays normal. The default mix is the
first three types, which gives the same stream as before the catalogue grew;
``anomalies="all"`` turns on all eight. Each anomaly draws its strength uniformly from
its type's intensity range (the defaults below, or an :class:`AnomalySpec`'s own), times
the market's ``intensity`` factor.

====================  ===========  ======================  =====================================
name                  starts on    intensity (default)     what is injected; the label's window
====================  ===========  ======================  =====================================
``price_spike``       trade        2-5 % off the walk      one trade off the walk, which is not
                                                           moved: the next trade reverts. 1 event
``size_burst``        trade        30-100x usual size      volume burst: one trade of that size.
                                                           1 event
``spread_blowout``    quote        20-50x usual spread     one quote with that spread. 1 event
``level_shift``       trade        1-3 % jump              the walk, and the level it reverts to,
                                                           jump up or down and stay. Window: the
                                                           first 20 trades at the new level
``volatility_burst``  trade        5-10x volatility        the walk's per-trade volatility is
                                                           multiplied for 20-50 trades. Window:
                                                           those trades
``flash_crash``       trade        5-10 % deep             trades fall below the walk over 3-6
                                                           trades (sells, 5x usual size, quotes
                                                           3x wider), then climb back over 5-15.
                                                           Window: the displaced trades
``stale_feed``        trade/quote  50-200 missed events    the symbol stops printing (trades and
                                                           quotes) while its walk goes on. Window:
                                                           the gap and the first event after it
``fat_finger``        trade        10-50 % off the walk    one trade far off the walk or, half of
                                                           the time, of 1000x the usual size (x the
                                                           intensity factor); walk unmoved. 1 event
====================  ===========  ======================  =====================================

Labels. Every anomaly has one :class:`Label`: on ``entity``, the event-time window
``[time, end]`` (inclusive), which is events ``index`` to ``end_index`` of the stream
(those of other entities included). A one-event anomaly has ``end == time`` and
``end_index == index``. For a stale feed, ``time`` is when the first missed event was
due, ``index`` the first event of the stream after that moment, and ``end`` /
``end_index`` the symbol's first event after the gap, so the window holds that one
event of the symbol. :meth:`SyntheticMarket.events` yields each label with the event
that starts the anomaly (for a stale feed, the symbol's last event before the gap),
once the window is complete: the generator works ahead as far as the window needs, so
labels never change with ``count`` and a window may end past the end of a finite
stream. Labels are saved to and read from JSON Lines with :func:`write_labels` and
:func:`read_labels`.

To add a type: add an :class:`AnomalyType` to :data:`ANOMALY_TYPES` and a
``_inject_<name>`` method to :class:`SyntheticMarket` with the same signature as the
existing ones; a multi-event type returns an ``_Episode`` that the generator carries on.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import sqrt
from typing import Any, Literal, NamedTuple

import numpy as np

from alerting.events import Event, Quote, Trade
from alerting.labels import Label, read_labels, write_labels
from alerting.times import rfc3339_micro as _rfc3339

__all__ = [
    "ANOMALY_TYPES",
    "DEFAULT_ANOMALIES",
    "AnomalySpec",
    "AnomalyType",
    "Label",
    "SyntheticMarket",
    "parse_anomalies",
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
_SHIFT_WINDOW_TRADES = 20  # a level shift's label covers its first trades at the new level
_BURST_TRADES = (20, 50)  # volatility burst length, inclusive
_CRASH_DOWN_TRADES = (3, 6)  # flash crash: trades to the bottom, inclusive
_CRASH_UP_TRADES = (5, 15)  # flash crash: trades back to the walk, inclusive
_CRASH_SIZE = 5  # flash crash trades are this many times the usual size
_CRASH_SPREAD = 3  # and quotes this many times the usual spread
_FAT_FINGER_SIZE = 1000.0  # a fat-fingered size, in usual sizes (times the intensity factor)

# The realistic style (the default). Its stylized facts are checked against EUR/USD hourly
# bars in tests/unit/producers/test_synthetic.py: bars of 50 trades (each symbol standardized, five
# symbols and two seeds pooled) have an excess kurtosis of 5.4 and |return|
# autocorrelations of 0.20, 0.14, 0.06 at lags 1, 2, 5 (EUR/USD hourly: 10.9, and 0.16,
# 0.12, 0.06); the Gaussian classic style: 0.1, and 0.01, 0.03, 0.01.
_TAIL_DF = 4.0  # Student-t shocks: fat tails with a finite variance
_TAIL_SCALE = 1.0 / math.sqrt(_TAIL_DF / (_TAIL_DF - 2.0))  # unit variance
_GARCH_ALPHA, _GARCH_BETA = 0.04, 0.955  # volatility clustering: a half-life of ~140 trades
_GARCH_OMEGA = 1.0 - _GARCH_ALPHA - _GARCH_BETA  # times the symbol's variance: its mean
_SIZE_TAIL = 1.6  # trade sizes have a power-law tail of this exponent (Pareto)
_SIZE_MEDIAN = 0.5 ** (1.0 / _SIZE_TAIL)  # keeps the median size at the usual size
_QUOTE_BURST = 0.2  # a quote starts a burst of quotes of its symbol with this probability
_QUOTE_BURST_LENGTH = 4.0  # mean extra quotes of a burst (geometric)
_BURST_GAP = 0.1  # a burst's quotes come at a tenth of the usual gap
_SESSION_S = 6.5 * 3600.0  # the US cash session, from the stream's start


def _activity(elapsed_s: float) -> float:
    """The intraday activity cycle, ``elapsed_s`` after the stream's start (the session's
    open: 14:30 UTC with the default start): how busy the market is, 1 on average over
    the 6.5 h session. U-shaped, 2 at the open and the close and 0.5 at midday; 0.25 in
    the 17.5 h between sessions."""
    second = elapsed_s % 86_400.0
    if second > _SESSION_S:
        return 0.25
    x = 2.0 * second / _SESSION_S - 1.0
    return 0.5 + 1.5 * x * x


Kind = Literal["trade", "quote"]


@dataclass(frozen=True)
class AnomalyType:
    """One entry of the anomaly catalogue.

    The strength of one anomaly is drawn uniformly in ``[low, low + span]`` (in ``unit``)
    and multiplied by the market's intensity factor; it must stay within ``limits``.
    A span, not a high end, so the default strengths come out exactly as they always
    did (in floating point, 0.05 - 0.02 is not 0.03).
    """

    name: str
    kinds: tuple[Kind, ...]  #: event kinds an anomaly of this type can start on
    summary: str
    low: float
    span: float
    unit: str
    limits: tuple[float, float]
    windowed: bool  #: spans several events (its label has a window)
    #: (low, span) of the realistic style: a few times the realistic market's own
    #: 1-in-10,000 move of what it changes (a trade's return: about 0.4 %, a size: about
    #: 170x the median, a spread: 2x, the volatility of 30 trades: 5-8x its mean), so
    #: that the default false-alarm budget can tell them from the market's own tails;
    #: not the classic style's hundreds of σ
    realistic: tuple[float, float] = (0.0, 0.0)

    @property
    def intensity(self) -> tuple[float, float]:
        """The default intensity range, in :attr:`unit`."""
        return (self.low, self.low + self.span)


#: The anomalies the generator knows how to inject, in the order menus are built.
ANOMALY_TYPES: tuple[AnomalyType, ...] = (
    AnomalyType(
        "price_spike", ("trade",), "a single trade 2-5% off the price walk, then back",
        0.02, 0.03, "fraction off the walk", (1e-4, 0.9), False, (0.01, 0.01),
    ),
    AnomalyType(
        "size_burst", ("trade",), "volume burst: a trade 30-100x the usual size",
        30.0, 70.0, "multiple of the usual size", (1.0, 1e6), False, (400.0, 400.0),
    ),
    AnomalyType(
        "spread_blowout", ("quote",), "a quote whose spread is 20-50x normal",
        20.0, 30.0, "multiple of the usual spread", (1.0, 1e4), False, (4.0, 4.0),
    ),
    AnomalyType(
        "level_shift", ("trade",), "the price walk jumps 1-3% and stays",
        0.01, 0.02, "fraction the walk jumps", (1e-4, 0.5), True, (0.01, 0.01),
    ),
    AnomalyType(
        "volatility_burst", ("trade",), "the walk's volatility 5-10x for 20-50 trades",
        5.0, 5.0, "multiple of the volatility", (1.0, 1000.0), True, (10.0, 10.0),
    ),
    AnomalyType(
        "flash_crash", ("trade",), "the price drops 5-10% over a few trades and recovers",
        0.05, 0.05, "fraction below the walk at the bottom", (1e-4, 0.9), True, (0.02, 0.02),
    ),
    AnomalyType(
        "stale_feed", ("trade", "quote"), "the symbol stops printing for 50-200 events",
        50.0, 150.0, "missed events of the symbol", (1.0, 1e6), True, (50.0, 150.0),
    ),
    AnomalyType(
        "fat_finger", ("trade",), "one trade 10-50% off the walk, or 1000x the usual size",
        0.1, 0.4, "fraction off the walk", (1e-4, 0.9), False, (0.05, 0.05),
    ),
)  # fmt: skip

_CATALOGUE = {anomaly.name: anomaly for anomaly in ANOMALY_TYPES}


@dataclass(frozen=True)
class AnomalySpec:
    """One type of an anomaly mix: its weight and, optionally, its own intensity range.

    ``intensity`` is ``(low, high)`` in the type's unit (see :data:`ANOMALY_TYPES`);
    None keeps the catalogue's range.

    >>> AnomalySpec("flash_crash", weight=2, intensity=(0.1, 0.2)).weight
    2
    """

    name: str
    weight: float = 1.0
    intensity: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.name not in _CATALOGUE:
            raise ValueError(
                f"anomalies: unknown type {self.name!r}; known: {', '.join(_CATALOGUE)}"
            )
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ValueError(f"anomalies: {self.name} weight must be > 0, got {self.weight!r}")
        if self.intensity is not None:
            low, high = self.intensity
            if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high):
                raise ValueError(
                    f"anomalies: {self.name} intensity must be 0 < low <= high, "
                    f"got {self.intensity!r}"
                )


#: The mix of :class:`SyntheticMarket` when ``anomalies`` is not given.
DEFAULT_ANOMALIES: tuple[AnomalySpec, ...] = (
    AnomalySpec("price_spike"),
    AnomalySpec("size_burst"),
    AnomalySpec("spread_blowout"),
)


def parse_anomalies(text: str) -> tuple[AnomalySpec, ...]:
    """An anomaly mix from its command-line form (``replay --anomalies``).

    ``all``, ``default``, or comma-separated ``NAME[:WEIGHT[:LOW-HIGH]]`` items:

    >>> [spec.name for spec in parse_anomalies("all")][:4]
    ['price_spike', 'size_burst', 'spread_blowout', 'level_shift']
    >>> parse_anomalies("level_shift:2, fat_finger:1:0.2-0.3")
    (AnomalySpec(name='level_shift', weight=2.0, intensity=None), \
AnomalySpec(name='fat_finger', weight=1.0, intensity=(0.2, 0.3)))
    """
    text = text.strip()
    if text == "all":
        return tuple(AnomalySpec(anomaly.name) for anomaly in ANOMALY_TYPES)
    if text == "default":
        return DEFAULT_ANOMALIES
    specs = []
    for item in text.split(","):
        parts = [part.strip() for part in item.split(":")]
        if not parts[0] or len(parts) > 3:
            raise ValueError(
                f"anomalies: {item.strip()!r} is not NAME[:WEIGHT[:LOW-HIGH]] "
                f"(or use 'all' or 'default')"
            )
        try:
            weight = float(parts[1]) if len(parts) > 1 else 1.0
            intensity = None
            if len(parts) > 2:
                low, high = parts[2].split("-")
                intensity = (float(low), float(high))
        except ValueError:
            raise ValueError(
                f"anomalies: {item.strip()!r} is not NAME[:WEIGHT[:LOW-HIGH]], "
                f"e.g. flash_crash:2:0.05-0.08"
            ) from None
        specs.append(AnomalySpec(parts[0], weight, intensity))
    return tuple(specs)


def _symbol_name(index: int) -> str:
    return _TICKERS[index] if index < len(_TICKERS) else f"SYM{index:04d}"


@dataclass(eq=False)
class _Episode:
    """A multi-event anomaly under way on one symbol, until its window closes."""

    name: str
    detail: str
    window_trades: int = 0  # trades in the window (trade-started types), the first included
    trades: int = 1  # window trades printed so far
    volatility: float = 1.0  # multiplies the walk's steps
    below: tuple[float, ...] = ()  # flash crash: fraction below the walk, per window trade
    falling: int = 0  # flash crash: trades on the way down
    missing: int = 0  # stale feed: events of the symbol still to drop
    missed: int = 0
    last_print: datetime | None = None
    waited_for: bool = False  # started inside the stream: its label is yielded
    # filled in as the window unfolds
    index: int = -1
    time: datetime | None = None
    kind: str = "trade"
    slot: list[Any] = field(default_factory=list)  # the output entry the label goes into


class _Draw(NamedTuple):
    """What an injector gets for the event that starts an anomaly."""

    walk: float  # the walk's price, after this event's step
    strength: float  # drawn in the type's intensity range, times the intensity factor
    direction: float  # uniform in [0, 1): up or down, buy or sell
    moment: datetime
    step: float  # this event's step of the log price (0 for a quote)
    size_noise: float  # lognormal factor of a normal trade size
    factor: float  # the market's intensity factor
    extra: np.random.Generator  # for anything else an anomaly needs


# An injector returns the event to print (None: the normal event, at the walk as it is
# after the injector), the label's detail, and the episode of a multi-event anomaly.
_Injected = tuple[Event | None, str, _Episode | None]
_Injector = Callable[["_Symbol", _Draw], _Injected]


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
    episode: _Episode | None = None  # a multi-event anomaly under way
    variance: float = 0.0  # realistic style: the GARCH variance of the next trade's step


class _Menu(NamedTuple):
    names: list[str]
    cumulative: list[float]  # running sums of the weights


class SyntheticMarket:
    """Deterministic stream of trades and quotes with injected, labelled anomalies.

    Each call of :meth:`events` starts the stream afresh from ``seed``. ``anomalies``
    is the mix: None (the default three types), ``"all"``, a comma-separated string
    (see :func:`parse_anomalies`), or names and :class:`AnomalySpec` items.

    >>> market = SyntheticMarket(symbols=3, seed=1, anomaly_rate=0.02, warmup_events=50)
    >>> stream = list(market.events(2000))
    >>> event, label = stream[0]
    >>> event.kind, event.entity, event.price, event.size, label
    ('trade', 'MSFT', 426.51, 800.0, None)
    >>> labels = [label for _, label in stream if label is not None]
    >>> len(labels), labels[0].index, labels[0].anomaly, labels[0].detail
    (35, 357, 'size_burst', 'size 472x usual (141500 vs 300)')
    >>> stream == list(market.events(2000))  # same seed and parameters, same stream
    True
    >>> shifts = SyntheticMarket(seed=1, anomaly_rate=0.01, anomalies="level_shift")
    >>> label = next(label for _, label in shifts.events(5000) if label is not None)
    >>> label.anomaly, label.end_index - label.index > 20, label.end > label.time
    ('level_shift', True, True)
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
        anomalies: str | Iterable[str | AnomalySpec] | None = None,
        intensity: float = 1.0,
        style: Literal["realistic", "classic"] = "realistic",
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
        if not (math.isfinite(intensity) and intensity > 0):
            raise ValueError(f"intensity must be a factor > 0, got {intensity!r}")
        if style not in ("realistic", "classic"):
            raise ValueError(f"style must be 'realistic' or 'classic', got {style!r}")
        self.style = style
        self.symbols = symbols
        self.seed = seed
        self.anomaly_rate = anomaly_rate
        self.events_per_second = events_per_second
        self.quote_ratio = quote_ratio
        self.start = start
        self.warmup_events = warmup_events
        self.anomalies = _mix(anomalies)
        self.intensity = intensity
        for spec in self.anomalies:
            self._strength_range(spec)  # validates now, not when the first anomaly comes

    def __repr__(self) -> str:
        return (
            f"SyntheticMarket(symbols={self.symbols}, seed={self.seed}, "
            f"anomaly_rate={self.anomaly_rate}, events_per_second={self.events_per_second}, "
            f"quote_ratio={self.quote_ratio}, start={self.start!r}, "
            f"warmup_events={self.warmup_events}, anomalies={self.anomalies!r}, "
            f"intensity={self.intensity}, style={self.style!r})"
        )

    @property
    def symbol_names(self) -> list[str]:
        """The entity keys of the generated events, in symbol order."""
        return [_symbol_name(i) for i in range(self.symbols)]

    def events(self, count: int | None = None) -> Iterator[tuple[Event, Label | None]]:
        """Yield ``(event, label)`` pairs; ``label`` is None except on an anomaly's first event.

        ``count=None`` yields forever. A shorter stream is a prefix of a longer one,
        labels included (a label's window may run past the end of a finite stream).
        """
        if count is not None and (isinstance(count, bool) or count < 0):
            raise ValueError(f"count must be None or an integer >= 0, got {count!r}")
        return self._generate(count)

    def _strength_range(self, spec: AnomalySpec) -> tuple[float, float]:
        """(low, span) of the strength drawn before the intensity factor; validated."""
        anomaly = _CATALOGUE[spec.name]
        if spec.intensity is None and self.style == "realistic":
            low, span = anomaly.realistic
        elif spec.intensity is None:
            low, span = anomaly.low, anomaly.span
        else:
            low, span = spec.intensity[0], spec.intensity[1] - spec.intensity[0]
        lowest, highest = low * self.intensity, (low + span) * self.intensity
        floor, ceiling = anomaly.limits
        if lowest < floor or highest > ceiling:
            raise ValueError(
                f"anomalies: {spec.name} intensity {low:g}-{low + span:g} times the intensity "
                f"factor {self.intensity:g} gives {lowest:g}-{highest:g} ({anomaly.unit}), "
                f"outside {floor:g}-{ceiling:g}"
            )
        return low, span

    def _menu(self, kind: Kind) -> _Menu:
        weights = {spec.name: spec.weight for spec in self.anomalies}
        names = [a.name for a in ANOMALY_TYPES if a.name in weights and kind in a.kinds]
        running, cumulative = 0.0, []
        for name in names:
            running += weights[name]
            cumulative.append(running)
        return _Menu(names, cumulative)

    def _generate(self, count: int | None) -> Iterator[tuple[Event, Label | None]]:
        rng = np.random.default_rng(self.seed)
        # Anomalies draw their extra parameters from a stream of their own, so that the
        # main draws, and the default stream, do not depend on the mix.
        extra = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(1,)))
        book = self._symbols(rng)
        names = [s.name for s in book]
        start = self.start or DEFAULT_START
        menus = {False: self._menu("trade"), True: self._menu("quote")}
        strength = {spec.name: self._strength_range(spec) for spec in self.anomalies}
        factor = self.intensity
        injectors: dict[str, _Injector] = {
            spec.name: getattr(self, f"_inject_{spec.name}") for spec in self.anomalies
        }
        volatility = np.array([s.volatility for s in book])
        mean_gap_us = 1e6 / self.events_per_second
        anomaly_rate, quote_ratio, warmup = self.anomaly_rate, self.quote_ratio, self.warmup_events
        # Events wait here while an anomaly that starts at or before them is under way,
        # so that its label is complete when it is yielded. Past the end of a finite
        # stream, generation goes on (nothing yielded) until those windows close, with
        # everything a longer stream would do, so that their indexes are the same.
        held: deque[list[Any]] = deque()
        waiting_for_index: list[_Episode] = []  # stale feeds whose window start is not out yet
        under_way = 0
        offset_us = 0
        index = 0
        exp = math.exp
        realistic = self.style == "realistic"
        burst_left, burst_symbol = 0, 0  # realistic: quotes still due in a quote burst
        while True:
            # Draw a whole block at once: numpy per call is slow, per array it is cheap.
            if realistic:
                gaps_raw = rng.exponential(1.0, _BLOCK).tolist()  # in mean gaps
                shocks = (rng.standard_t(_TAIL_DF, _BLOCK) * _TAIL_SCALE).tolist()
            else:
                gaps = np.maximum(np.rint(rng.exponential(mean_gap_us, _BLOCK)), 1)
                times = (np.cumsum(gaps.astype(np.int64)) + offset_us).tolist()
                offset_us = times[-1]
            which = rng.integers(0, len(book), _BLOCK)
            if not realistic:
                steps = (volatility[which] * rng.standard_normal(_BLOCK)).tolist()
            is_quote = (rng.random(_BLOCK) < quote_ratio).tolist()
            if realistic:  # a power-law tail of sizes, median about the usual size
                size_noise = ((rng.pareto(_SIZE_TAIL, _BLOCK) + 1.0) * _SIZE_MEDIAN).tolist()
                bursts = (rng.random(_BLOCK) < _QUOTE_BURST).tolist()
                burst_lengths = rng.geometric(1.0 / _QUOTE_BURST_LENGTH, _BLOCK).tolist()
            else:
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
                if realistic:
                    # arrivals follow the intraday cycle; a quote burst sends the same
                    # symbol's quotes at a tenth of the usual gap
                    busy = _activity(offset_us * 1e-6)
                    if burst_left:
                        s, is_quote[j] = burst_symbol, True
                        burst_left -= 1
                        gap = gaps_raw[j] * mean_gap_us * _BURST_GAP / busy
                    else:
                        gap = gaps_raw[j] * mean_gap_us / busy
                        if is_quote[j] and bursts[j]:
                            burst_left, burst_symbol = burst_lengths[j], s
                    offset_us += max(1, round(gap))
                    moment = start + timedelta(microseconds=offset_us)
                    if not is_quote[j]:  # GARCH(1, 1) on Student-t shocks, per trade
                        sym_ = book[s]
                        base = sqrt(sym_.variance) * shocks[j]
                        sym_.variance = (
                            _GARCH_OMEGA * sym_.volatility * sym_.volatility
                            + _GARCH_ALPHA * base * base
                            + _GARCH_BETA * sym_.variance
                        )
                        step_j = base * sqrt(busy)
                    else:
                        step_j = 0.0
                else:
                    moment = start + timedelta(microseconds=times[j])
                    step_j = steps[j]
                in_stream = count is None or index < count
                if not (in_stream or under_way):
                    while held:
                        done = held.popleft()
                        yield done[0], done[1]
                    return
                sym = book[s]
                quote = is_quote[j]
                episode = sym.episode
                if episode is not None and episode.missing:  # stale feed: nothing printed
                    if not quote:  # the market moves on, unseen
                        sym.log_price += step_j - _PULL * (sym.log_price - sym.base_log_price)
                    if not episode.missed:
                        episode.time = moment
                        waiting_for_index.append(episode)
                    episode.missed += 1
                    episode.missing -= 1
                    continue
                if not quote:
                    step = step_j if episode is None else step_j * episode.volatility
                    sym.log_price += step - _PULL * (sym.log_price - sym.base_log_price)
                walk = exp(sym.log_price)
                label: Label | None = None
                event: Event | None = None
                started: _Episode | None = None
                if episode is not None:
                    if episode.below:
                        event = self._crash_print(
                            episode, sym, walk, quote, moment, size_noise[j], venues[j],
                            bid_lots[j], ask_lots[j],
                        )  # fmt: skip
                elif anomalous[j] and sym.seen >= warmup and menus[quote].names:
                    menu = menus[quote]
                    pick = bisect_right(menu.cumulative, type_draw[j] * menu.cumulative[-1])
                    name = menu.names[min(pick, len(menu.names) - 1)]
                    low, span = strength[name]
                    draw = _Draw(
                        walk, (low + span * magnitude[j]) * factor, direction[j], moment,
                        0.0 if quote else step_j, size_noise[j], factor, extra,
                    )  # fmt: skip
                    event, detail, started = injectors[name](sym, draw)
                    if started is None:
                        if event is None:  # pragma: no cover - one-event types print their own
                            raise AssertionError(f"{name} returned no event")
                        label = Label(index, names[s], moment, event.kind, name, detail)
                    else:
                        walk = exp(sym.log_price)  # the injector may have moved the walk
                if event is None:
                    if quote:
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
                if waiting_for_index:
                    for waiting in waiting_for_index:
                        waiting.index = index
                    waiting_for_index.clear()
                sym.seen += 1
                if started is None and episode is None and not held:  # the common case
                    if in_stream:
                        yield event, label
                    index += 1
                    continue
                slot: list[Any] = [event, label]
                if started is not None:
                    sym.episode = started
                    if in_stream:  # past the end, anomalies go on only to keep indexes right
                        started.waited_for = True
                        under_way += 1
                    started.slot = slot
                    slot[1] = started
                    if started.missing:  # a stale feed starts after this, its last print
                        started.last_print = moment
                    else:
                        started.index, started.time, started.kind = index, moment, event.kind
                elif episode is not None:
                    if not quote:
                        episode.trades += 1
                    if episode.last_print is not None or episode.trades >= episode.window_trades:
                        self._close(episode, names[s], event, index)
                        sym.episode = None
                        under_way -= episode.waited_for
                if in_stream:
                    held.append(slot)
                    while held and not isinstance(held[0][1], _Episode):
                        done = held.popleft()
                        yield done[0], done[1]
                index += 1

    @staticmethod
    def _close(episode: _Episode, entity: str, event: Event, index: int) -> None:
        """Turn a finished episode into its label, in the output slot it started in."""
        if episode.last_print is not None:  # stale feed: the gap ends with this event
            episode.kind = event.kind
            gap = (event.time - episode.last_print).total_seconds()
            episode.detail = (
                f"no events for {gap:.2f} s ({episode.missed} missed), "
                f"first after the gap at {_rfc3339(event.time)}"
            )
        assert episode.time is not None
        label = Label(
            episode.index, entity, episode.time, episode.kind, episode.name, episode.detail,
            end=event.time, end_index=index,
        )  # fmt: skip
        episode.slot[1] = label

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
                    variance=float(volatility[i]) ** 2,
                    usual_lots=int(usual_lots[i]),
                    usual_spread_ticks=spread_ticks,
                )
            )
        return book

    @staticmethod
    def _crash_print(
        episode: _Episode,
        sym: _Symbol,
        walk: float,
        quote: bool,
        moment: datetime,
        size_noise: float,
        venue: int,
        bid_lots: int,
        ask_lots: int,
    ) -> Event:
        """A trade or quote of a symbol in a flash crash, below its walk."""
        if quote:
            low = walk * (1 - episode.below[episode.trades - 1])
            ticks = sym.usual_spread_ticks * _CRASH_SPREAD
            bid_ticks = round(low / _TICK) - ticks // 2
            return Quote(
                symbol=sym.name,
                bid=bid_ticks / 100,
                ask=(bid_ticks + ticks) / 100,
                bid_size=100.0 * bid_lots,
                ask_size=100.0 * ask_lots,
                time=moment,
            )
        k = episode.trades  # position of this trade in the window, 0-based
        return Trade(
            symbol=sym.name,
            price=round(walk * (1 - episode.below[k]), 2),
            size=100.0 * max(1, round(sym.usual_lots * size_noise * _CRASH_SIZE)),
            side="sell" if k < episode.falling else "buy",
            venue=_VENUES[venue],
            time=moment,
        )

    # -- the anomaly catalogue: one _inject_<name> per ANOMALY_TYPES entry -------------

    def _inject_price_spike(self, sym: _Symbol, draw: _Draw) -> _Injected:
        ref_ticks = round(draw.walk / _TICK)
        # Round the jump away from the walk so the printed move is never below the range.
        jump_ticks = math.ceil(ref_ticks * draw.strength)
        sign = 1 if draw.direction >= 0.5 else -1
        price = (ref_ticks + sign * jump_ticks) / 100
        ref = ref_ticks / 100
        event = Trade(
            symbol=sym.name,
            price=price,
            size=100.0 * sym.usual_lots,
            side="buy" if sign > 0 else "sell",
            venue=_VENUES[0],
            time=draw.moment,
        )
        return event, f"price {price / ref - 1:+.1%} off the walk ({price:.2f} vs {ref:.2f})", None

    def _inject_size_burst(self, sym: _Symbol, draw: _Draw) -> _Injected:
        usual = 100 * sym.usual_lots
        size = 100.0 * round(usual * draw.strength / 100)
        event = Trade(
            symbol=sym.name,
            price=round(draw.walk, 2),
            size=size,
            side="buy" if draw.direction >= 0.5 else "sell",
            venue=_VENUES[0],
            time=draw.moment,
        )
        return event, f"size {size / usual:.0f}x usual ({size:.0f} vs {usual})", None

    def _inject_spread_blowout(self, sym: _Symbol, draw: _Draw) -> _Injected:
        usual = sym.usual_spread_ticks
        ticks = math.ceil(usual * draw.strength)
        bid_ticks = round(draw.walk / _TICK) - ticks // 2
        event = Quote(
            symbol=sym.name,
            bid=bid_ticks / 100,
            ask=(bid_ticks + ticks) / 100,
            bid_size=100.0,
            ask_size=100.0,
            time=draw.moment,
        )
        detail = f"spread {ticks / usual:.0f}x normal ({ticks * _TICK:.2f} vs {usual * _TICK:.2f})"
        return event, detail, None

    def _inject_level_shift(self, sym: _Symbol, draw: _Draw) -> _Injected:
        sign = 1 if draw.direction >= 0.5 else -1
        shift = math.log1p(sign * draw.strength)
        sym.log_price += shift
        sym.base_log_price += shift  # the new level is where the walk reverts to from now on
        after = math.exp(sym.log_price)
        detail = (
            f"walk {sign * draw.strength:+.1%} ({draw.walk:.2f} to {after:.2f}) and stays; "
            f"window {_SHIFT_WINDOW_TRADES} trades"
        )
        return None, detail, _Episode("level_shift", detail, window_trades=_SHIFT_WINDOW_TRADES)

    def _inject_volatility_burst(self, sym: _Symbol, draw: _Draw) -> _Injected:
        trades = int(draw.extra.integers(_BURST_TRADES[0], _BURST_TRADES[1] + 1))
        sym.log_price += draw.step * (draw.strength - 1)  # this trade is the burst's first
        detail = f"volatility {draw.strength:.1f}x for {trades} trades"
        episode = _Episode(
            "volatility_burst", detail, window_trades=trades, volatility=draw.strength
        )
        return None, detail, episode

    def _inject_flash_crash(self, sym: _Symbol, draw: _Draw) -> _Injected:
        down = int(draw.extra.integers(_CRASH_DOWN_TRADES[0], _CRASH_DOWN_TRADES[1] + 1))
        up = int(draw.extra.integers(_CRASH_UP_TRADES[0], _CRASH_UP_TRADES[1] + 1))
        depth = draw.strength
        below = tuple(depth * k / down for k in range(1, down + 1)) + tuple(
            depth * (1 - k / (up + 1)) for k in range(1, up + 1)
        )
        detail = f"price down {depth:.1%} over {down} trades, back over {up} more"
        episode = _Episode(
            "flash_crash", detail, window_trades=len(below), below=below, falling=down, trades=0
        )
        event = self._crash_print(
            episode, sym, draw.walk, False, draw.moment, draw.size_noise, 0, 1, 1
        )
        episode.trades = 1  # this trade is the window's first
        return event, detail, episode

    def _inject_stale_feed(self, sym: _Symbol, draw: _Draw) -> _Injected:
        missing = max(1, round(draw.strength))
        return None, "", _Episode("stale_feed", "", missing=missing)

    def _inject_fat_finger(self, sym: _Symbol, draw: _Draw) -> _Injected:
        usual = 100 * sym.usual_lots
        ref_ticks = round(draw.walk / _TICK)
        ref = ref_ticks / 100
        if draw.extra.random() < 0.5:
            sign = 1 if draw.direction >= 0.5 else -1
            price = (ref_ticks + sign * math.ceil(ref_ticks * draw.strength)) / 100
            size = float(usual)
            detail = f"price {price / ref - 1:+.1%} off the walk ({price:.2f} vs {ref:.2f})"
        else:
            price = ref
            size = 100.0 * max(1, round(usual * _FAT_FINGER_SIZE * draw.factor / 100))
            detail = f"size {size / usual:.0f}x usual ({size:.0f} vs {usual})"
        event = Trade(
            symbol=sym.name,
            price=price,
            size=size,
            side="buy" if draw.direction >= 0.5 else "sell",
            venue=_VENUES[0],
            time=draw.moment,
        )
        return event, detail, None


def _mix(anomalies: str | Iterable[str | AnomalySpec] | None) -> tuple[AnomalySpec, ...]:
    if anomalies is None:
        return DEFAULT_ANOMALIES
    if isinstance(anomalies, str):
        specs = parse_anomalies(anomalies)
    else:
        specs = tuple(a if isinstance(a, AnomalySpec) else AnomalySpec(a) for a in anomalies)
    seen = [spec.name for spec in specs]
    duplicates = sorted({name for name in seen if seen.count(name) > 1})
    if duplicates:
        raise ValueError(f"anomalies: {', '.join(duplicates)} given more than once")
    return specs
