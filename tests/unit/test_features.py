"""Features: the incremental extraction against a brute-force recompute from full history."""

from __future__ import annotations

import random
from math import isclose, log

import pytest

from alerting.events import Event, Metric, Quote, Trade
from alerting.features import FeatureState, extract

ENTITIES = ["AAPL", "MSFT", "host-1", "EURUSD"]
METRIC_NAMES = ["cpu", "mem", "queue", "errors"]


def random_stream(rng: random.Random, length: int) -> list[Event]:
    """Interleaved trades, quotes and metrics of several entities (an entity may have all)."""
    events: list[Event] = []
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
            names = rng.sample(METRIC_NAMES, rng.randint(1, len(METRIC_NAMES)))
            events.append(
                Metric(entity=entity, values={n: rng.uniform(-100, 100) for n in names}, time=t)
            )
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
    x = dict(event.values)
    metrics = [e for e in mine if isinstance(e, Metric)]
    if metrics:
        for name, value in event.values.items():
            if name in metrics[-1].values:
                x[f"{name}.diff"] = value - metrics[-1].values[name]
    return x


@pytest.mark.parametrize("seed", range(5))
def test_incremental_features_equal_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng, 400)
    states: dict[str, FeatureState] = {}
    for i, event in enumerate(stream):
        state = states.setdefault(event.entity, FeatureState())
        got = extract(event, state)
        want = brute_force(stream[:i], event)
        assert set(got) == set(want), (i, event)
        for name, value in want.items():
            assert isclose(got[name], value, rel_tol=1e-12, abs_tol=1e-12), (i, name)


def test_the_stream_exercises_every_feature() -> None:
    # guards the oracle test: a generator that never produced a feature would prove nothing
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
    expected |= set(METRIC_NAMES) | {f"{n}.diff" for n in METRIC_NAMES}
    assert expected <= seen


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
    assert x == {"cpu": 0.75, "cpu.diff": 0.25, "disk": 3.0}
    # diff is against the previous metric event, not the last time the name was seen
    y = extract(Metric(entity="h", values={"mem": 12.0, "disk": 1.0}, time=2), state)
    assert y == {"mem": 12.0, "disk": 1.0, "disk.diff": -2.0}


def test_kinds_do_not_share_history() -> None:
    state = FeatureState()
    extract(Trade(symbol="A", price=100, size=1, time=0), state)
    quote = extract(Quote(symbol="A", bid=200, ask=200, time=1), state)
    assert "mid_log_return" not in quote
    trade = extract(Trade(symbol="A", price=50, size=1, time=2), state)
    assert trade["log_return"] == pytest.approx(log(0.5))


def test_extract_does_not_alias_the_event() -> None:
    state = FeatureState()
    event = Metric(entity="h", values={"cpu": 1.0}, time=0)
    x = extract(event, state)
    x["cpu"] = 99.0
    assert event.values == {"cpu": 1.0}
    assert extract(Metric(entity="h", values={"cpu": 2.0}, time=1), state)["cpu.diff"] == 1.0


def _state_size(state: FeatureState) -> int:
    """Floats the state holds: its scalar slots plus the remembered metric values."""
    scalars = sum(
        getattr(state, name) is not None for name in FeatureState.__slots__ if name != "last_values"
    )
    return scalars + len(state.last_values)


def _run(length: int) -> FeatureState:
    # every metric event brings new names; the state must not accumulate them
    rng = random.Random(length)
    state = FeatureState()
    for i in range(length):
        names = [f"m{(3 * i + k) % 997}" for k in range(3)]
        extract(Metric(entity="h", values={n: rng.random() for n in names}, time=i), state)
        extract(Trade(symbol="h", price=rng.uniform(1, 2), size=1, time=i), state)
        extract(Quote(symbol="h", bid=1, ask=1.5, time=i), state)
    return state


def test_state_stays_bounded() -> None:
    short, long = _run(10), _run(5000)
    assert not hasattr(long, "__dict__")
    assert len(long.last_values) == 3
    assert _state_size(long) == _state_size(short) == 4 + 3
