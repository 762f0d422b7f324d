"""Features: the incremental extraction against a brute-force recompute from full history.

The metric oracle recomputes every feature of a value from the whole history of its name
(since the entity last forgot it): ``trend`` and ``vol`` as explicit weighted sums of the
clipped changes (``vol``: their recent weighted mean size, repeats included, against the
long-run mean size of the real ones),
``season`` by rebuilding the cycle model from scratch out of running means and the
weights they give each value.
"""

from __future__ import annotations

import itertools
import math
import pickle
import random
import statistics
from array import array
from collections.abc import Callable
from datetime import UTC, datetime
from math import isclose, log

import pytest

from alerting.events import Event, Metric, Quote, Trade
from alerting.features import (
    CHANGE_CLIP,
    MAX_TRACKED,
    SEASON_GAIN,
    SEASON_JUDGED,
    SEASON_MEMORY,
    SEASON_MIN,
    SLOW_WEIGHT,
    TREND_WEIGHT,
    FeatureState,
    ValueMemory,
    extract,
)

ENTITIES = ["AAPL", "MSFT", "host-1", "EURUSD"]
METRIC_NAMES = ["cpu", "mem", "queue", "errors"]
#: the documented floor of ``.vol``'s argument
VOL_FLOOR = 1e-300
#: 2023-11-15T00:00:00Z, a Wednesday
MIDNIGHT = 1_700_006_400.0
QUARTER_HOUR = 900.0
PER_DAY = 96


def random_stream(rng: random.Random, length: int) -> list[Event]:
    """Interleaved trades, quotes and metrics of several entities (an entity may have all);
    a metric value repeats its previous one, moves a little from it, or jumps anywhere."""
    events: list[Event] = []
    last: dict[tuple[str, str], float] = {}
    t = 1_700_000_000.0
    for _ in range(length):
        # sometimes simultaneous, sometimes backwards (late data), mostly forward
        t += rng.choice([0.0, rng.uniform(-2.0, 0.0), rng.expovariate(1.0), rng.uniform(0, 1e-7)])
        entity = rng.choice(ENTITIES)
        kind = rng.choice(["trade", "quote", "metric"])
        if kind == "trade":
            events.append(
                Trade(
                    symbol=entity,
                    price=rng.uniform(1.0, 500.0),
                    size=rng.choice([rng.uniform(0.01, 1.0), float(rng.randint(1, 10_000))]),
                    side=rng.choice(["buy", "sell", "unknown"]),
                    time=t,
                )
            )
        elif kind == "quote":
            bid = rng.uniform(1.0, 500.0)
            events.append(
                Quote(
                    symbol=entity,
                    bid=bid,
                    ask=bid + rng.choice([0.0, rng.uniform(0.0, 2.0)]),
                    bid_size=rng.choice([0.0, rng.uniform(0.0, 1000.0)]),
                    ask_size=rng.choice([0.0, rng.uniform(0.0, 1000.0)]),
                    time=t,
                )
            )
        else:
            values = {}
            for name in rng.sample(METRIC_NAMES, rng.randint(1, len(METRIC_NAMES))):
                previous = last.get((entity, name), 0.0)
                values[name] = last[entity, name] = rng.choice(
                    [previous, previous + rng.gauss(0, 1), rng.uniform(-100, 100)]
                )
            events.append(Metric(entity=entity, values=values, time=t))
    return events


def brute_force(history: list[Event], event: Event) -> dict[str, float]:
    """Features of ``event`` recomputed from everything its entity sent before it."""
    mine = [e for e in history if e.entity == event.entity]
    if isinstance(event, Trade):
        sign = {"buy": 1, "sell": -1, "unknown": 0}[event.side]
        x = {
            "log_size": log(event.size),
            "signed_notional": sign * log(1 + event.price * event.size),
        }
        trades = [e for e in mine if isinstance(e, Trade)]
        if trades:
            previous = trades[-1]
            x["log_return"] = log(event.price / previous.price)
            gap = event.time.timestamp() - previous.time.timestamp()
            x["sqrt_interarrival"] = max(gap, 0.0) ** 0.5
        return x
    if isinstance(event, Quote):
        mid = (event.bid + event.ask) / 2
        x = {"spread_bps": (event.ask - event.bid) / mid * 10_000}
        if event.bid_size + event.ask_size > 0:
            x["size_imbalance"] = (event.bid_size - event.ask_size) / (
                event.bid_size + event.ask_size
            )
        quotes = [e for e in mine if isinstance(e, Quote)]
        if quotes:
            x["mid_log_return"] = log(mid / ((quotes[-1].bid + quotes[-1].ask) / 2))
            gap = event.time.timestamp() - quotes[-1].time.timestamp()
            x["sqrt_quote_interarrival"] = max(gap, 0.0) ** 0.5
        return x
    assert isinstance(event, Metric)
    metrics = [e for e in mine if isinstance(e, Metric)] + [event]
    began = _memory_began(metrics)
    x = dict(event.values)
    for name, value in event.values.items():
        own = [e for e in metrics[began[name] :] if name in e.values]
        values = [e.values[name] for e in own]
        assert values[-1] == value
        if len(values) < 2:
            continue
        changes = [b - a for a, b in itertools.pairwise(values)]
        learned = _learned(changes)
        x[f"{name}.diff"] = changes[-1]
        x[f"{name}.trend"] = _trend(learned)
        x[f"{name}.vol"] = _vol(learned)
        season = _season(values, [e.time.astimezone(UTC) for e in own])
        if season is not None:
            x[f"{name}.season"] = season
    return x


def _memory_began(metrics: list[Metric]) -> dict[str, int]:
    """For each name: the metric event its current memory began at, the entity remembering
    at most MAX_TRACKED names and forgetting the least recently seen first (names taken in
    each event's order, so a new name may forget one that comes later in the same event)."""
    remembered: list[str] = []  # least recently seen first
    began: dict[str, int] = {}
    for i, metric in enumerate(metrics):
        for name in metric.values:
            if name in remembered:
                remembered.remove(name)
            else:
                if len(remembered) == MAX_TRACKED:
                    del remembered[0]
                began[name] = i
            remembered.append(name)
    return began


def _larger(recent: float, long_run: float) -> float:
    return max(recent, long_run)


def _learned(changes: list[float], usual: Callable[[float, float], float] = _larger) -> list[float]:
    """Each change as trend and vol learn it: clipped at CHANGE_CLIP usual changes, the usual
    change being the larger of the recent and the long-run size (see _size, _long_run) of
    the learned ones before it; as it is while there is none (the first, and while the value
    never changed). ``usual`` picks it (the guards below try other choices)."""
    learned: list[float] = []
    recent = long_run = 0.0
    real = 0
    for d in changes:
        reach = CHANGE_CLIP * usual(recent, long_run)
        learned.append(min(max(d, -reach), reach) if reach > 0 else d)
        size = abs(learned[-1])
        recent = size if len(learned) == 1 else recent + TREND_WEIGHT * (size - recent)
        if size > 0:
            real += 1
            long_run += max(1 / real, SLOW_WEIGHT) * (size - long_run)
    return learned


def _trend(learned: list[float]) -> float:
    """sum_k w (1 - w)^k c_(n-k): the learned changes' weighted mean, from 0."""
    w, n = TREND_WEIGHT, len(learned)
    return sum(w * (1 - w) ** (n - 1 - k) * c for k, c in enumerate(learned))


def _size(learned: list[float], w: float = TREND_WEIGHT) -> float:
    """The recent size: the learned changes' weighted mean size (weight w for the newest,
    repeats included), starting from the first one's."""
    n = len(learned)
    first = (1 - w) ** (n - 1) * abs(learned[0])
    return first + sum(w * (1 - w) ** (n - 1 - k) * abs(learned[k]) for k in range(1, n))


#: the real changes the long-run size is a plain mean of (from then on, exponentially
#: weighted with SLOW_WEIGHT)
SLOW_MEMORY = round(1 / SLOW_WEIGHT)


def _long_run(learned: list[float], real: Callable[[float], bool] = bool) -> float:
    """The long-run size: the mean size of the real changes (not repeats) among the learned
    ones, each weighted as a running mean of weight max(1/k, SLOW_WEIGHT) weighs it (see
    _weights); 0 before the first. ``real`` picks the changes it averages (the guards below
    try other choices)."""
    sizes = [abs(c) for c in learned if real(c)]
    weights = _weights(len(sizes), SLOW_MEMORY)
    return sum(w * s for w, s in zip(weights, sizes, strict=True))


def _vol(learned: list[float], long_run: Callable[[list[float]], float] = _long_run) -> float:
    """log of the recent size over the long-run one, each floored at VOL_FLOOR."""
    recent = max(_size(learned), VOL_FLOOR)
    return log(recent) - log(max(long_run(learned), VOL_FLOOR))


def _running_means(xs: list[float], memory: int) -> list[float]:
    """out[k]: the mean of xs[:k] (out[0] = 0) while k <= memory; beyond, an exponentially
    weighted mean with weight 1 / memory (the weight max(1/k, 1/memory))."""
    out, total = [0.0], 0.0
    for k, x in enumerate(xs, 1):
        if k <= memory:
            total += x
            out.append(total / k)
        else:
            out.append(out[-1] + (x - out[-1]) / memory)
    return out


def _weights(n: int, memory: int) -> list[float]:
    """The weight each of n values has in their running mean (see _running_means): value k
    (from 1) enters with max(1/k, 1/memory), each later one scales it by 1 minus its own."""
    weights = [0.0] * n
    later = 1.0  # the product of (1 - weight) over the values after k
    for k in range(n, 0, -1):
        entering = max(1 / k, 1 / memory)
        weights[k - 1] = entering * later
        later *= 1 - entering
    return weights


def _weighted_variance(xs: list[float], memory: int) -> float:
    """The variance of xs about their running mean, each weighted as the running mean
    weighs it: while len(xs) <= memory, the population variance (0 for one value)."""
    weights = _weights(len(xs), memory)
    mean = sum(w * x for w, x in zip(weights, xs, strict=True))
    return sum(w * (x - mean) ** 2 for w, x in zip(weights, xs, strict=True))


def _binned(
    xs: list[float], bins: list[int], memory: int
) -> tuple[list[float], list[float], list[int]]:
    """Per position: its bin's running mean before and after xs[k], and the bin's count
    before it."""
    where: dict[int, list[int]] = {}
    for k, b in enumerate(bins):
        where.setdefault(b, []).append(k)
    before, after, count = [0.0] * len(xs), [0.0] * len(xs), [0] * len(xs)
    for positions in where.values():
        means = _running_means([xs[k] for k in positions], memory)
        for j, k in enumerate(positions):
            before[k], after[k], count[k] = means[j], means[j + 1], j
    return before, after, count


def _season(values: list[float], moments: list[datetime]) -> float | None:
    """The last value's deviation from the cycle model learned from the values before it,
    the whole model rebuilt from scratch; None while the model is not trusted."""
    overall = 24 * SEASON_MEMORY
    hour_before, hour_after, hour_count = _binned(values, [m.hour for m in moments], SEASON_MEMORY)
    # a weekday's correction: the running mean of what the hour's mean (this value learned)
    # leaves of the values on that weekday
    leaves = [v - h for v, h in zip(values, hour_after, strict=True)]
    day_before, _, day_count = _binned(leaves, [m.weekday() for m in moments], SEASON_MEMORY)
    deviations = [v - h - d for v, h, d in zip(values, hour_before, day_before, strict=True)]
    ready = [
        h >= SEASON_MIN and d >= SEASON_MIN for h, d in zip(hour_count, day_count, strict=True)
    ]
    judged = [dev * dev for dev, r in zip(deviations, ready, strict=True) if r]
    residual = _running_means(judged, overall)[-1]
    variance = _weighted_variance(values, overall)
    if not ready[-1] or len(judged) < SEASON_JUDGED or residual > (1 - SEASON_GAIN) * variance:
        return None
    return deviations[-1]


def _assert_same(got: dict[str, float], want: dict[str, float], where: object) -> None:
    assert set(got) == set(want), where
    for name, value in want.items():
        assert isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-12), (where, name)


@pytest.mark.parametrize("seed", range(5))
def test_incremental_features_equal_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng, 400)
    states: dict[str, FeatureState] = {}
    for i, event in enumerate(stream):
        state = states.setdefault(event.entity, FeatureState())
        _assert_same(extract(event, state), brute_force(stream[:i], event), (i, event))


def test_the_stream_exercises_every_feature() -> None:
    # guards the oracle test: a generator that never produced a feature would prove nothing
    # (``.season`` needs days of a cycle: out of this stream's reach, tested on its own below)
    stream = random_stream(random.Random(0), 400)
    states: dict[str, FeatureState] = {}
    seen: set[str] = set()
    for event in stream:
        seen |= set(extract(event, states.setdefault(event.entity, FeatureState())))
    expected = {
        "log_size",
        "signed_notional",
        "log_return",
        "sqrt_interarrival",
        "sqrt_quote_interarrival",
        "spread_bps",
        "size_imbalance",
        "mid_log_return",
    }
    expected |= set(METRIC_NAMES)
    expected |= {f"{n}.{f}" for n in METRIC_NAMES for f in ("diff", "trend", "vol")}
    assert expected <= seen
    # and some changes are big enough for trend and vol to clip them; clipping at the recent
    # usual change alone, or at the long-run one alone, would learn others; and some values
    # repeat from their first change on, then change (learned as they are: nothing to clip at)
    mutants: dict[str, Callable[[float, float], float]] = {
        "recent": lambda recent, long_run: recent,
        "long run": lambda recent, long_run: long_run,
    }
    differ = dict.fromkeys(mutants, 0)
    clipped = flat_starts = 0
    for entity, name in itertools.product(ENTITIES, METRIC_NAMES):
        values = [
            e.values[name]
            for e in stream
            if isinstance(e, Metric) and e.entity == entity and name in e.values
        ]
        changes = [b - a for a, b in itertools.pairwise(values)]
        learned = _learned(changes)
        clipped += sum(c != d for c, d in zip(learned, changes, strict=True))
        for mutant, usual in mutants.items():
            mutated = _learned(changes, usual)
            differ[mutant] += sum(a != b for a, b in zip(learned, mutated, strict=True))
        moved = [k for k, d in enumerate(changes) if d != 0]
        flat_starts += bool(moved) and moved[0] > 0
    assert clipped > 20 and differ["recent"] > 5 and differ["long run"] > 20
    assert flat_starts >= 3
    # and the long-run size's rule shows in vol: learning the repeats too, or weighing the
    # newest SLOW_WEIGHT from the first change (from 0, or from the first's size), would
    # give other values
    long_runs: dict[str, Callable[[list[float]], float]] = {
        "repeats too": lambda learned: _long_run(learned, real=lambda c: True),
        "from 0": lambda learned: _size([0.0, *[c for c in learned if c]], SLOW_WEIGHT),
        "from the first": lambda learned: _size([c for c in learned if c] or [0.0], SLOW_WEIGHT),
    }
    vol_differ = dict.fromkeys(long_runs, 0)
    for entity, name in itertools.product(ENTITIES, METRIC_NAMES):
        values = [
            e.values[name]
            for e in stream
            if isinstance(e, Metric) and e.entity == entity and name in e.values
        ]
        learned = _learned([b - a for a, b in itertools.pairwise(values)])
        for k in range(1, len(learned) + 1):
            want = _vol(learned[:k])
            for mutant, long_run in long_runs.items():
                vol_differ[mutant] += not isclose(_vol(learned[:k], long_run), want)
    assert min(vol_differ.values()) > 20, vol_differ


def test_first_event_of_an_entity_has_no_history_features() -> None:
    state = FeatureState()
    first = extract(Trade(symbol="A", price=100, size=10, side="buy", time=0), state)
    assert set(first) == {"log_size", "signed_notional"}
    assert first["signed_notional"] == pytest.approx(log(1001))
    quote = extract(Quote(symbol="A", bid=99, ask=101, bid_size=1, ask_size=3, time=1), state)
    assert set(quote) == {"spread_bps", "size_imbalance"}
    assert quote["spread_bps"] == pytest.approx(200.0)
    assert quote["size_imbalance"] == pytest.approx(-0.5)
    metric = extract(Metric(entity="A", values={"cpu": 0.5}, time=2), state)
    assert metric == {"cpu": 0.5}


def test_history_features_after_the_first_event() -> None:
    state = FeatureState()
    extract(Trade(symbol="A", price=100, size=10, time=10), state)
    x = extract(Trade(symbol="A", price=110, size=10, time=12), state)
    assert x["log_return"] == pytest.approx(log(1.1))
    assert x["sqrt_interarrival"] == pytest.approx(2.0**0.5)


def test_simultaneous_or_late_events_give_a_zero_interarrival() -> None:
    state = FeatureState()
    extract(Trade(symbol="A", price=100, size=1, time=10), state)
    same = extract(Trade(symbol="A", price=100, size=1, time=10), state)
    assert same["sqrt_interarrival"] == 0.0
    late = extract(Trade(symbol="A", price=100, size=1, time=5), state)
    assert late["sqrt_interarrival"] == 0.0
    extract(Quote(symbol="A", bid=99, ask=101, bid_size=1, ask_size=1, time=10), state)
    quote = extract(Quote(symbol="A", bid=99, ask=101, bid_size=1, ask_size=1, time=4), state)
    assert quote["sqrt_quote_interarrival"] == 0.0


def test_a_long_gap_stands_out_in_sqrt_units() -> None:
    """Exponential gaps: a 50x gap is far up the √ scale, where the log scale hides it."""
    import random as random_module
    import statistics

    rng = random_module.Random(1)
    gaps = [rng.expovariate(1.0) for _ in range(20_000)]
    roots = [g**0.5 for g in gaps]
    logs = [log(g) for g in gaps]
    z_sqrt = (50**0.5 - statistics.fmean(roots)) / statistics.pstdev(roots)
    z_log = (log(50) - statistics.fmean(logs)) / statistics.pstdev(logs)
    assert z_sqrt > 12 and z_log < 3.6
    # and normal gaps rarely reach 6 σ on the √ scale (about 1.5 in a million)
    limit = statistics.fmean(roots) + 6 * statistics.pstdev(roots)
    assert sum(r >= limit for r in roots) == 0


def test_metric_diff_features() -> None:
    state = FeatureState()
    extract(Metric(entity="h", values={"cpu": 0.5, "mem": 10.0}, time=0), state)
    x = extract(Metric(entity="h", values={"cpu": 0.75, "disk": 3.0}, time=1), state)
    # a name's second value: its change, the change's weighted mean from 0, and the log of
    # its size against the long-run size (its own, so far)
    assert x == pytest.approx(
        {"cpu": 0.75, "cpu.diff": 0.25, "cpu.trend": 0.05, "cpu.vol": 0.0, "disk": 3.0}
    )
    # diff is against the name's own previous value (mem: 2 events ago), not the previous
    # metric event's (which had no mem)
    y = extract(Metric(entity="h", values={"mem": 12.0, "disk": 1.0}, time=2), state)
    assert y == pytest.approx(
        {
            "mem": 12.0,
            "mem.diff": 2.0,
            "mem.trend": 0.4,
            "mem.vol": 0.0,
            "disk": 1.0,
            "disk.diff": -2.0,
            "disk.trend": -0.4,
            "disk.vol": 0.0,
        }
    )
    # the third value: trend 0.8 × 0.05 + 0.2 × 0.25; both sizes stay 0.25
    z = extract(Metric(entity="h", values={"cpu": 1.0}, time=3), state)
    assert z == pytest.approx({"cpu": 1.0, "cpu.diff": 0.25, "cpu.trend": 0.09, "cpu.vol": 0.0})
    # a change beyond CHANGE_CLIP usual ones (0.25) is learned as that many: 1.0; the recent
    # size 0.8 × 0.25 + 0.2 × 1.0, the long-run one the plain mean of the three real changes
    big = extract(Metric(entity="h", values={"cpu": 11.0}, time=4), state)
    assert big == pytest.approx(
        {"cpu": 11.0, "cpu.diff": 10.0, "cpu.trend": 0.272, "cpu.vol": log(0.4) - log(0.5)}
    )


def test_a_change_is_clipped_at_the_larger_of_the_recent_and_long_run_usual_change() -> None:
    state = FeatureState()
    for t, value in enumerate([*range(11), 20.0]):
        x = extract(_metric({"v": value}, t), state)
    # both usual changes 1: 10 is learned as 4 (the memory holds both sizes, and the count
    # of real changes the long-run one is the plain mean of)
    memory = state.values["v"].data
    trend = 0.8 * (1 - 0.8**10) + 0.2 * 4.0
    recent, long_run = 0.8 + 0.2 * 4.0, (10 + 4.0) / 11
    assert x["v.trend"] == pytest.approx(trend)
    assert memory[ValueMemory.VOL] == pytest.approx(recent)
    assert memory[ValueMemory.SLOW] == pytest.approx(long_run)
    assert memory[ValueMemory.CHANGES] == 11
    # the recent size (1.6) is the larger: 100 is learned as 6.4, not as 4 × 14/11
    x = extract(_metric({"v": 120.0}, 11), state)
    trend = 0.8 * trend + 0.2 * 6.4
    recent, long_run = 0.8 * recent + 0.2 * 6.4, (14 + 6.4) / 12
    assert x["v.trend"] == pytest.approx(trend)
    assert x["v.vol"] == pytest.approx(log(recent) - log(long_run))
    # five repeats: the recent size falls below the long-run one, which stays put ...
    for t in range(12, 17):
        x = extract(_metric({"v": 120.0}, t), state)
        trend, recent = 0.8 * trend, 0.8 * recent
        assert memory[ValueMemory.SLOW] == pytest.approx(long_run)
        assert memory[ValueMemory.CHANGES] == 12
    assert x["v.vol"] == pytest.approx(log(recent) - log(long_run)) and recent < long_run
    # ... which is then the larger: -100 is learned as -4 × the long-run size
    x = extract(_metric({"v": 20.0}, 17), state)
    reach = 4.0 * long_run
    assert x == pytest.approx(
        {
            "v": 20.0,
            "v.diff": -100.0,
            "v.trend": 0.8 * trend - 0.2 * reach,
            "v.vol": log(0.8 * recent + 0.2 * reach) - log((20.4 + reach) / 13),
        }
    )
    assert memory[ValueMemory.CHANGES] == 13


def _metric(values: dict[str, float], time: float) -> Metric:
    return Metric(entity="h", values=values, time=time)


def test_at_most_max_tracked_names_the_least_recently_seen_forgotten_first() -> None:
    state = FeatureState()
    names = [f"n{k}" for k in range(MAX_TRACKED)]
    for t, name in enumerate(names):
        extract(_metric({name: 0.0}, t), state)
    assert list(state.values) == names
    # seeing n0 again makes it the most recently seen
    assert extract(_metric({"n0": 1.0}, 100), state)["n0.diff"] == 1.0
    assert list(state.values) == [*names[1:], "n0"]
    # a new name forgets the least recently seen: n1, not n0
    extract(_metric({"new": 0.0}, 101), state)
    assert list(state.values) == [*names[2:], "n0", "new"]
    # a forgotten name starts over (no diff), and forgets the least recently seen in turn
    x = extract(_metric({"n1": 5.0, "n0": 2.0}, 102), state)
    assert x == pytest.approx({"n1": 5.0, "n0": 2.0, "n0.diff": 1.0, "n0.trend": 0.36, "n0.vol": 0})
    assert list(state.values) == [*names[3:], "new", "n1", "n0"]
    # names are taken in the event's order: a new one may forget one that comes after it
    x = extract(_metric({"fresh": 0.0, "n3": 9.0}, 103), state)
    assert x == {"fresh": 0.0, "n3": 9.0}
    assert list(state.values) == [*names[5:], "new", "n1", "n0", "fresh", "n3"]
    # an event of MAX_TRACKED new names leaves only them
    others = [f"o{k}" for k in range(MAX_TRACKED)]
    extract(_metric(dict.fromkeys(others, 1.0), 104), state)
    assert list(state.values) == others
    assert "n0.diff" not in extract(_metric({"n0": 3.0}, 105), state)


def test_forgetting_equals_brute_force() -> None:
    """Many names, a few frequent and most rare: rare ones are forgotten between sightings."""
    rng = random.Random(7)
    pool = [f"v{k}" for k in range(3 * MAX_TRACKED)]
    popularity = [1 / (k + 1) for k in range(len(pool))]
    stream: list[Event] = []
    t = 1_700_000_000.0
    for _ in range(300):
        t += rng.expovariate(1 / 60)
        size = rng.choice([1, 2, 5, 10, 30, MAX_TRACKED])
        names = rng.choices(pool, popularity, k=size)
        stream.append(_metric({n: rng.gauss(0, 10) for n in names}, t))
    state = FeatureState()
    forgotten = remembered = 0
    for i, event in enumerate(stream):
        x = extract(event, state)
        _assert_same(x, brute_force(stream[:i], event), i)
        for name in event.values:
            if name + ".diff" in x:
                remembered += 1
            elif any(name in e.values for e in stream[:i]):
                forgotten += 1
        assert len(state.values) <= MAX_TRACKED
    # guards the comparison: both cases happen often
    assert forgotten > 100 and remembered > 100


def _quarter_hours(days: int) -> list[float]:
    return [MIDNIGHT + QUARTER_HOUR * k for k in range(days * PER_DAY)]


def _cycle(t: float) -> float:
    """A daily cycle: 30 at midnight UTC, 70 at noon."""
    return 50.0 - 20.0 * math.cos(2 * math.pi * (t - MIDNIGHT) / 86_400)


def _features_of(values: list[float], times: list[float]) -> list[dict[str, float]]:
    """The features of one value, ``v``, of one entity."""
    state = FeatureState()
    return [extract(_metric({"v": v}, t), state) for v, t in zip(values, times, strict=True)]


#: what ``.vol`` moves by per repeat of a stuck value: the recent size decays, the
#: long-run one (real changes only) stays put
STUCK_STEP = log(1 - TREND_WEIGHT)


def _sizes_of(values: list[float]) -> list[tuple[float, float, float]]:
    """The recent size, long-run size and count of real changes ``v``'s memory holds after
    each of its values."""
    state = FeatureState()
    out = []
    for t, v in enumerate(values):
        extract(_metric({"v": v}, MIDNIGHT + 60.0 * t), state)
        m = state.values["v"].data
        out.append((m[ValueMemory.VOL], m[ValueMemory.SLOW], m[ValueMemory.CHANGES]))
    return out


def test_the_sizes_vol_compares_equal_brute_force_beyond_the_plain_mean() -> None:
    """A value that repeats, moves a little or jumps, for more real changes than the
    long-run size is a plain mean of (SLOW_MEMORY): the memory's recent size, long-run
    size and count of real changes against the oracle's explicit sums, after every value."""
    rng = random.Random(17)
    values = [0.0]
    while len(values) < 1800:
        run = rng.choices([1, 2, 5, 30], [20, 1, 1, 1])[0]  # a run of repeats now and then
        step = rng.choice([rng.gauss(0, 1), rng.uniform(-50, 50)])
        values += [values[-1] + step] + [values[-1] + step] * (run - 1)
    changes = [b - a for a, b in itertools.pairwise(values)]
    sizes = _sizes_of(values)
    for k in range(1, len(values)):
        learned = _learned(changes[:k])
        recent, long_run, real = sizes[k]
        assert isclose(recent, _size(learned), rel_tol=1e-9), k
        assert isclose(long_run, _long_run(learned), rel_tol=1e-9), k
        assert real == sum(c != 0 for c in learned), k
    # guards: past the plain mean, with repeats between the real changes
    assert SLOW_MEMORY == 500 < sizes[-1][2] < len(changes) - 300


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_a_stuck_value_drives_vol_down_a_fixed_step_per_repeat(scale: float) -> None:
    rng = random.Random(8)
    unit = [rng.gauss(0, 1) for _ in range(50)]
    unit += [unit[-1]] * 30
    times = [MIDNIGHT + 60.0 * k for k in range(len(unit))]
    values = [scale * v for v in unit]
    xs = _features_of(values, times)
    sizes = _sizes_of(values)
    # each repeat: the recent size × (1 − TREND_WEIGHT); the long-run one, and the count of
    # real changes it is the mean of, unchanged
    assert isclose(STUCK_STEP, -0.2231, abs_tol=1e-4)
    assert sizes[49][2] == 49
    for k, (previous, x) in enumerate(itertools.pairwise(xs[49:]), 50):
        assert x["v.diff"] == 0.0
        assert isclose(x["v.vol"] - previous["v.vol"], STUCK_STEP, abs_tol=1e-12)
        assert isclose(x["v.trend"], (1 - TREND_WEIGHT) * previous["v.trend"], rel_tol=1e-9)
        assert sizes[k][1:] == sizes[49][1:]
        assert isclose(sizes[k][0], (1 - TREND_WEIGHT) * sizes[k - 1][0], rel_tol=1e-12)
    # 30 repeats: 30 × 0.22 below where the run started, far below the value's usual vol
    usual = [x["v.vol"] for x in xs[10:50]]
    assert isclose(xs[-1]["v.vol"] - xs[49]["v.vol"], 30 * STUCK_STEP, abs_tol=1e-12)
    assert xs[-1]["v.vol"] < min(usual) - 5
    # whatever the value's scale: vol is a ratio of sizes, the same at every scale
    same = [x["v.vol"] for x in _features_of(unit, times)[1:]]
    assert [x["v.vol"] for x in xs[1:]] == pytest.approx(same, rel=0, abs=1e-9)


def test_vol_of_a_value_that_never_changed_or_stops_changing() -> None:
    # never changed: both sizes 0, floored alike; no real change counted
    xs = _features_of([7.0] * 5 + [8.0, 9.0], [float(t) for t in range(7)])
    assert [x.get("v.vol") for x in xs[:5]] == [None, 0.0, 0.0, 0.0, 0.0]
    assert [x.get("v.trend") for x in xs[:5]] == [None, 0.0, 0.0, 0.0, 0.0]
    assert _sizes_of([7.0] * 5)[1:] == [(0.0, 0.0, 0.0)] * 4
    # and its first change is learned as it is (nothing usual to clip it at): the recent
    # size 0.2 (it started at the first change, a repeat), the long-run one 1 (the mean of
    # the one real change); the next is clipped at CHANGE_CLIP × 1, so learned as it is
    assert xs[5] == pytest.approx({"v": 8.0, "v.diff": 1.0, "v.trend": 0.2, "v.vol": log(0.2)})
    assert xs[6] == pytest.approx(
        {"v": 9.0, "v.diff": 1.0, "v.trend": 0.36, "v.vol": log(0.8 * 0.2 + 0.2)}
    )
    # however long it has not changed
    assert all(x["v.vol"] == 0.0 for x in _features_of([3.0] * 2000, [0.0] * 2000)[1:])
    # stuck for good after changing: down a step a reading until the recent size reaches
    # the floor (after 3096 repeats), then the floor against the long-run size, 1
    values = [0.0, 1.0] + [1.0] * 3100
    vol = [x["v.vol"] for x in _features_of(values, [float(t) for t in range(len(values))])[1:]]
    floored = math.ceil(log(VOL_FLOOR) / log(1 - TREND_WEIGHT))
    assert floored == 3096 and vol[0] == 0.0
    for k, got in enumerate(vol):
        recent = (1 - TREND_WEIGHT) ** k
        assert isclose(got, log(max(recent, VOL_FLOOR)), abs_tol=1e-9), k
    assert vol[floored - 1] - vol[0] == pytest.approx((floored - 1) * STUCK_STEP, abs=1e-9)
    assert vol[floored:] == [log(VOL_FLOOR)] * (len(vol) - floored)


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_vol_keeps_going_down_while_a_value_repeats_for_good(scale: float) -> None:
    """Once the recent size is floored, vol stays at the floor against the long-run size
    (which repeats do not move): it never climbs back while the value repeats."""
    rng = random.Random(16)
    values = [scale * rng.gauss(0, 1) for _ in range(700)]
    values += [values[-1]] * 4000
    xs = _features_of(values, [MIDNIGHT + 60.0 * k for k in range(len(values))])
    vol = [x["v.vol"] for x in xs[1:]]
    assert all(b <= a for a, b in itertools.pairwise(vol[698:]))
    # guard: it went down every repeat for about 3000 of them, then reached the floor
    assert all(b < a for a, b in itertools.pairwise(vol[698:3650]))
    changes = [b - a for a, b in itertools.pairwise(values)]
    long_run = _long_run(_learned(changes))
    assert _sizes_of(values)[-1][1:] == pytest.approx((long_run, 699), rel=1e-9)
    bottom = log(VOL_FLOOR) - log(long_run)
    assert vol[-600:] == pytest.approx([bottom] * 600, rel=0, abs=1e-9)
    assert len(set(vol[-600:])) == 1


@pytest.mark.parametrize("repeats", [100, 1000, 5000])
def test_vol_comes_back_within_a_few_changes_after_a_long_stuck_run(repeats: int) -> None:
    """The clip is relative to the larger of the recent and the long-run usual change: after
    a stuck run the recent one is tiny, the long-run one did not move, so the first ordinary
    changes are learned as they are and lift vol back at once, however long the run (the
    recent size floored, even 0, after 5000 repeats)."""
    rng = random.Random(13)
    values = [rng.gauss(0, 1) for _ in range(300)]
    values += [values[-1]] * repeats
    values += [rng.gauss(0, 1) for _ in range(100)]
    xs = _features_of(values, [MIDNIGHT + 60.0 * k for k in range(len(values))])
    usual = [x["v.vol"] for x in xs[50:300]]
    end = 299 + repeats
    stuck, after = xs[end]["v.vol"], [x["v.vol"] for x in xs[end + 1 :]]
    assert stuck < min(usual) - min(20, repeats * -STUCK_STEP - 2)
    # the first ordinary change is learned unclipped (its size against 4 × the long-run
    # size, unchanged by the run), and is most of the way back already
    changes = [b - a for a, b in itertools.pairwise(values)]
    assert _learned(changes)[end] == changes[end]
    assert _learned(changes, lambda recent, long_run: recent)[end] != changes[end]
    assert after[0] > min(usual) - 1
    # within a few changes, vol is back in its usual range, and stays there
    assert all(min(usual) - 0.5 < v < max(usual) + 0.5 for v in after[3:])
    assert statistics.median(after[3:]) == pytest.approx(statistics.median(usual), abs=0.5)


def test_a_variance_burst_raises_vol() -> None:
    rng = random.Random(9)
    values = [rng.gauss(0, 1) for _ in range(200)]
    values += [rng.gauss(0, 10) for _ in range(20)]
    values += [rng.gauss(0, 1) for _ in range(100)]
    xs = _features_of(values, [MIDNIGHT + 60.0 * k for k in range(len(values))])
    vol = [x["v.vol"] for x in xs[1:]]
    calm, burst, after = vol[20:199], vol[204:219], vol[270:]
    # (the long-run size, a plain mean of the 200 or so changes so far, learns the burst's
    # too: less of a lift than against a long-settled size)
    assert min(burst) > max(calm) + 0.5 and statistics.median(burst) > max(calm) + 1
    # and settles once the burst is over
    assert max(after) < min(burst)


def test_a_level_shift_holds_trend_away_from_zero() -> None:
    rng = random.Random(10)
    values = [rng.gauss(0, 0.1) for _ in range(200)]
    # a shift of 100 σ that settles over four events
    values += [level + rng.gauss(0, 0.1) for level in [2.0, 4.0, 6.0, 8.0] + [10.0] * 56]
    xs = _features_of(values, [MIDNIGHT + 60.0 * k for k in range(len(values))])
    calm = max(abs(x["v.trend"]) for x in xs[20:200])
    # trend stays well away from 0 for several events after the shift began
    assert all(x["v.trend"] > 3 * calm for x in xs[201:211])
    # and settles once the new level is the usual one
    assert abs(xs[-1]["v.trend"]) < 2 * calm


def test_a_spike_moves_trend_and_vol_little_and_briefly() -> None:
    rng = random.Random(12)
    values = [rng.gauss(0, 1) for _ in range(200)] + [100.0]
    values += [rng.gauss(0, 1) for _ in range(30)]
    xs = _features_of(values, [MIDNIGHT + 60.0 * k for k in range(len(values))])
    calm_trend = max(abs(x["v.trend"]) for x in xs[20:200])
    calm_vol = max(x["v.vol"] for x in xs[20:200])
    before, spike = xs[199], xs[200]
    # the change is learned as CHANGE_CLIP usual changes (the larger of the recent and the
    # long-run sizes of the changes before it)
    learned = _learned([b - a for a, b in itertools.pairwise(values[:200])])
    recent, long_run = _size(learned), _long_run(learned)
    reach = CHANGE_CLIP * max(recent, long_run)
    assert spike["v.diff"] > 90 > 10 * reach
    # the long-run size: the plain mean of the 199 real changes before it, and now of 200
    assert all(learned) and len(learned) == 199
    w = TREND_WEIGHT
    want = log((1 - w) * recent + w * reach) - log(long_run + (reach - long_run) / 200)
    assert isclose(spike["v.vol"], want)
    assert isclose(spike["v.trend"], (1 - w) * before["v.trend"] + w * reach)
    # trend stays within the calm range's order (unclipped, it would reach 20) ...
    assert all(abs(x["v.trend"]) < 2 * calm_trend for x in xs[200:])
    # ... and vol is back within it a few events on (the way back down is clipped too)
    assert max(x["v.vol"] for x in xs[200:204]) > calm_vol
    assert all(x["v.vol"] <= calm_vol for x in xs[206:])


def test_a_daily_cycle_gets_season_after_enough_days() -> None:
    rng = random.Random(3)
    times = _quarter_hours(14)
    values = [_cycle(t) + rng.gauss(0, 1) for t in times]
    xs = _features_of(values, times)
    has = ["v.season" in x for x in xs]
    # the first day fills the hour bins, but the profile is not judged enough yet
    assert not any(has[:PER_DAY])
    # it is from the SEASON_JUDGED-th value measured against bins of SEASON_MIN values
    moments = [datetime.fromtimestamp(t, UTC) for t in times]
    ready = [
        sum(m.hour == now.hour for m in moments[:k]) >= SEASON_MIN
        and sum(m.weekday() == now.weekday() for m in moments[:k]) >= SEASON_MIN
        for k, now in enumerate(moments[: 3 * PER_DAY])
    ]
    judged = list(itertools.accumulate(ready))
    assert has.index(True) == judged.index(SEASON_JUDGED)
    # every weekday seen for the first time starts with SEASON_MIN values without it
    for day in range(3, 7):
        today = has[day * PER_DAY : (day + 1) * PER_DAY]
        assert today == [False] * SEASON_MIN + [True] * (PER_DAY - SEASON_MIN), day
    # once every weekday has been seen, every value gets it
    assert all(has[7 * PER_DAY :])
    # the deviation is the noise and the swing within an hour, not the daily swing
    deviations = [x["v.season"] for x in xs[7 * PER_DAY :]]
    assert statistics.pstdev(deviations) < 0.2 * statistics.pstdev(values)
    assert abs(statistics.fmean(deviations)) < 0.5


@pytest.mark.parametrize("level", [0.0, 50.0])
def test_a_value_without_a_cycle_never_gets_season(level: float) -> None:
    rng = random.Random(5)
    times = _quarter_hours(14)
    xs = _features_of([level + rng.gauss(0, 1) for _ in times], times)
    assert all("v.vol" in x for x in xs[1:])  # guard: the value's features are computed
    assert not any("v.season" in x for x in xs)


def test_the_cycle_model_measures_the_variance_about_the_moving_mean() -> None:
    """The overall mean and variance the SEASON_GAIN test compares with: the values' mean
    and population variance (0 after the first value, whatever its level), not a spread
    measured from 0."""
    rng = random.Random(14)
    values = [50.0 + rng.gauss(0, 1) for _ in range(300)]
    state = FeatureState()
    for k, v in enumerate(values, 1):
        extract(_metric({"v": v}, MIDNIGHT + 60.0 * k), state)
        memory = state.values["v"].data
        assert memory[ValueMemory.SEEN] == k
        assert isclose(memory[ValueMemory.MEAN], statistics.fmean(values[:k]), rel_tol=1e-12)
        want = statistics.pvariance(values[:k])
        assert isclose(memory[ValueMemory.VAR], want, rel_tol=1e-9, abs_tol=1e-12), k
        assert isclose(want, _weighted_variance(values[:k], 24 * SEASON_MEMORY), rel_tol=1e-9)


def test_the_cycle_model_equals_brute_force_beyond_its_memory() -> None:
    """A drifting cycle every 10 seconds for three days: more values than the overall mean
    and variance average over (24 × SEASON_MEMORY), and than an hour or a day bin does
    (SEASON_MEMORY); the whole model in memory against the oracle's parts."""
    rng = random.Random(15)
    times = [MIDNIGHT + 10.0 * k for k in range(26_000)]
    values = [_cycle(t) + (t - MIDNIGHT) / 3600 + rng.gauss(0, 1) for t in times]
    state = FeatureState()
    for v, t in zip(values, times, strict=True):
        extract(_metric({"v": v}, t), state)
    m = state.values["v"].data
    overall, n = 24 * SEASON_MEMORY, len(values)
    weights = _weights(n, overall)
    assert m[ValueMemory.SEEN] == n > overall
    assert isclose(m[ValueMemory.MEAN], sum(w * v for w, v in zip(weights, values, strict=True)))
    variance = _weighted_variance(values, overall)
    assert isclose(m[ValueMemory.VAR], variance, rel_tol=1e-9)
    assert abs(variance / statistics.pvariance(values) - 1) > 1e-4  # guard: the weights count
    moments = [datetime.fromtimestamp(t, UTC) for t in times]
    hours = [moment.hour for moment in moments]
    weekdays = [moment.weekday() for moment in moments]
    hour_before, hour_after, hour_count = _binned(values, hours, SEASON_MEMORY)
    leaves = [v - h for v, h in zip(values, hour_after, strict=True)]
    day_before, day_after, day_count = _binned(leaves, weekdays, SEASON_MEMORY)
    for bins, after, count, means, counts, size in [
        (hours, hour_after, hour_count, ValueMemory.HOURS, ValueMemory.HOUR_COUNTS, 24),
        (weekdays, day_after, day_count, ValueMemory.DAYS, ValueMemory.DAY_COUNTS, 7),
    ]:
        for b in range(size):
            last = max((k for k, x in enumerate(bins) if x == b), default=None)
            want = (0.0, 0.0) if last is None else (after[last], count[last] + 1.0)
            assert isclose(m[means + b], want[0], rel_tol=1e-9, abs_tol=1e-12), (means, b)
            assert m[counts + b] == want[1], (counts, b)
    assert max(hour_count) >= SEASON_MEMORY and max(day_count) >= SEASON_MEMORY  # guard
    deviations = [v - h - d for v, h, d in zip(values, hour_before, day_before, strict=True)]
    ready = [
        h >= SEASON_MIN and d >= SEASON_MIN for h, d in zip(hour_count, day_count, strict=True)
    ]
    judged = [dev * dev for dev, r in zip(deviations, ready, strict=True) if r]
    assert m[ValueMemory.JUDGED] == len(judged)
    assert isclose(m[ValueMemory.RESIDUAL], _running_means(judged, overall)[-1], rel_tol=1e-9)
    assert m[ValueMemory.LAST] == values[-1]


@pytest.mark.parametrize(
    ("now", "hour", "day"),
    [
        # a hair before the epoch: 23:59:59.999... on Wednesday 1969-12-31 (where the
        # seconds into the day, now % 86400, round up to 86400.0: an hour 24)
        (-1e-300, 23, 2),
        (-1e-12, 23, 2),
        (-0.5, 23, 2),
        (-3600.0, 23, 2),
        (-3600.5, 22, 2),
        (-86_400.0, 0, 2),
        (-86_400.5, 23, 1),
        (0.0, 0, 3),
        (MIDNIGHT - 1e-6, 23, 1),
        (MIDNIGHT, 0, 2),
        (MIDNIGHT + 4 * 86_400 - 0.5, 23, 5),
    ],
)
def test_a_value_is_learned_in_its_hour_and_weekday_bins(now: float, hour: int, day: int) -> None:
    if abs(now) >= 1e-6:  # where a datetime can tell
        moment = datetime.fromtimestamp(now, UTC)
        assert (moment.hour, moment.weekday()) == (hour, day)
    state = FeatureState()
    extract(_metric({"v": 5.0}, 0), state, timestamp=now)
    m = state.values["v"].data
    hour_counts = m[ValueMemory.HOUR_COUNTS : ValueMemory.HOUR_COUNTS + 24]
    day_counts = m[ValueMemory.DAY_COUNTS : ValueMemory.DAY_COUNTS + 7]
    assert list(hour_counts) == [float(h == hour) for h in range(24)]
    assert list(day_counts) == [float(d == day) for d in range(7)]
    hour_means = m[ValueMemory.HOURS : ValueMemory.HOURS + 24]
    assert list(hour_means) == [5.0 * (h == hour) for h in range(24)]
    assert list(m[ValueMemory.DAYS : ValueMemory.DAYS + 7]) == [0.0] * 7
    assert len(m) == ValueMemory.SIZE


def test_a_broken_cycle_shows_in_season_while_the_value_is_usual() -> None:
    rng = random.Random(4)
    times = _quarter_hours(14)
    values = [_cycle(t) + rng.gauss(0, 1) for t in times]
    # the night from 20:00 on day 9 to 04:00 on day 10 does not come: daytime level
    night = [k for k, t in enumerate(times) if -4 * 3600 <= t - MIDNIGHT - 10 * 86_400 < 4 * 3600]
    for k in night:
        values[k] = 60.0 + rng.gauss(0, 1)
    xs = _features_of(values, times)
    before = values[: night[0]]
    assert all(min(before) < values[k] < max(before) for k in night)
    usual = [abs(x["v.season"]) for x in xs[7 * PER_DAY : night[0]]]
    broken = [abs(xs[k]["v.season"]) for k in night]
    assert min(broken) > 2 * max(usual)
    assert statistics.median(broken) > 10 * statistics.median(usual)
    # one broken night does not spoil the profile: the next days' deviations are usual again
    later = [abs(x["v.season"]) for x in xs[12 * PER_DAY :]]
    assert statistics.median(later) < 2 * statistics.median(usual)


def test_season_equals_brute_force() -> None:
    """The cycle model rebuilt from scratch, at sampled events: a daily and weekly cycle
    (v), noise (w), and a weak cycle whose profile starts to explain SEASON_GAIN of its
    variance only after a week (u)."""
    rng = random.Random(6)
    stream: list[Event] = []
    for t in _quarter_hours(15):
        weekend = datetime.fromtimestamp(t, UTC).weekday() >= 5
        values = {
            "v": _cycle(t) - 10.0 * weekend + rng.gauss(0, 1),
            "w": rng.gauss(0, 1),
            "u": (_cycle(t) - 50.0) / 19.5 + rng.gauss(0, 1),
        }
        # now and then late by up to an hour, or without one of its values
        late = rng.random() < 0.05
        if rng.random() < 0.05:
            del values[rng.choice(list(values))]
        stream.append(_metric(values, t - 3600 * rng.random() * late))
    state = FeatureState()
    compared: dict[str, list[bool]] = {"v": [], "u": []}
    for i, event in enumerate(stream):
        x = extract(event, state)
        if i % 5 == 0 or i > len(stream) - 20:
            want = brute_force(stream[:i], event)
            _assert_same(x, want, i)
            for name, seasons in compared.items():
                if name in event.values and i >= 7 * PER_DAY:
                    seasons.append(f"{name}.season" in want)
    # guards: v's model is trusted at every compared event of the second week; u's model
    # at some and not at others (so the comparison covers the SEASON_GAIN decision)
    assert len(compared["v"]) > 100 and all(compared["v"])
    assert 10 < sum(compared["u"]) < len(compared["u"]) - 10


def test_extract_does_not_alias_the_event() -> None:
    state = FeatureState()
    event = Metric(entity="h", values={"cpu": 1.0}, time=0)
    x = extract(event, state)
    x["cpu"] = 99.0
    assert event.values == {"cpu": 1.0}
    assert extract(Metric(entity="h", values={"cpu": 2.0}, time=1), state)["cpu.diff"] == 1.0


def _state_size(state: FeatureState) -> int:
    """Floats the state holds: its scalar slots plus the remembered metric values' arrays."""
    scalars = sum(
        getattr(state, name) is not None for name in FeatureState.__slots__ if name != "values"
    )
    return scalars + sum(len(memory.data) for memory in state.values.values())


def _run(length: int) -> tuple[FeatureState, list[str]]:
    # every metric event brings new names besides one seen every time; the state must not
    # accumulate them, nor grow with a name's history
    rng = random.Random(length)
    state = FeatureState()
    seen: list[str] = []
    for i in range(length):
        names = ["load"] + [f"m{(3 * i + k) % 997}" for k in range(3)]
        seen += names
        extract(Metric(entity="h", values={n: rng.random() for n in names}, time=i), state)
        extract(Trade(symbol="h", price=rng.uniform(1, 2), size=1, time=i), state)
        extract(Quote(symbol="h", bid=1, ask=1.5, time=i), state)
    return state, seen


def test_state_stays_bounded() -> None:
    (short, _), (long, seen) = _run(10), _run(5000)
    assert not hasattr(long, "__dict__")
    # the MAX_TRACKED most recently seen names, least recently seen first
    recent = list(dict.fromkeys(reversed(seen)))[:MAX_TRACKED][::-1]
    assert list(long.values) == recent and "load" in recent
    # each a fixed-size array of floats (the documented layout), however long its history:
    # last value, trend, recent and long-run size of changes, count of real changes, mean,
    # variance, residual variance, observations, judged ones; 24 hour means, their counts;
    # 7 day corrections, their counts
    slots = (
        ValueMemory.LAST,
        ValueMemory.TREND,
        ValueMemory.VOL,
        ValueMemory.SLOW,
        ValueMemory.CHANGES,
        ValueMemory.MEAN,
        ValueMemory.VAR,
        ValueMemory.RESIDUAL,
        ValueMemory.SEEN,
        ValueMemory.JUDGED,
    )
    assert slots == tuple(range(10))
    assert (ValueMemory.HOURS, ValueMemory.HOUR_COUNTS) == (10, 10 + 24)
    assert (ValueMemory.DAYS, ValueMemory.DAY_COUNTS) == (10 + 2 * 24, 10 + 2 * 24 + 7)
    assert ValueMemory.SIZE == 10 + 2 * 24 + 2 * 7 == 72
    fresh = ValueMemory(5.0).data
    assert list(fresh) == [5.0, 0.0, -1.0] + [0.0] * (ValueMemory.SIZE - 3)
    for memory in [*short.values.values(), *long.values.values()]:
        assert not hasattr(memory, "__dict__")
        assert isinstance(memory.data, array) and memory.data.typecode == "d"
        assert len(memory.data) == ValueMemory.SIZE
    assert _state_size(short) == 4 + (1 + 30) * ValueMemory.SIZE
    assert _state_size(long) == _state_size(_run(400)[0]) == 4 + MAX_TRACKED * ValueMemory.SIZE


def test_feature_state_survives_a_pickle_round_trip() -> None:
    # what a snapshot of the entity's state keeps: every feature continues exactly
    rng = random.Random(11)
    times = _quarter_hours(5)
    stream: list[Event] = []
    for t in times:
        stream.append(_metric({"v": _cycle(t) + rng.gauss(0, 1), "w": rng.random()}, t))
        stream.append(Trade(symbol="h", price=rng.uniform(1, 2), size=1, time=t))
    state = FeatureState()
    for event in stream[: len(stream) // 2]:
        extract(event, state)
    copy = pickle.loads(pickle.dumps(state))
    assert list(copy.values) == list(state.values)
    rest = stream[len(stream) // 2 :]
    got, want = [extract(e, copy) for e in rest], [extract(e, state) for e in rest]
    assert got == want
    assert sum("v.season" in x for x in want) > 100  # guard: the cycle model came along
