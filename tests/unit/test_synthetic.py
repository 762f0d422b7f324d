"""The synthetic market: determinism, anomaly injection and labels."""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.events import Event, Quote, Trade, decode, encode
from producers.synthetic import (
    ANOMALY_TYPES,
    DEFAULT_START,
    Label,
    SyntheticMarket,
    read_labels,
    write_labels,
)

Stream = list[tuple[Event, Label | None]]


def generate(count: int, **params: Any) -> Stream:
    return list(SyntheticMarket(**params).events(count))


@pytest.fixture(scope="module")
def anomalous() -> Stream:
    """A stream with many anomalies, shared by the checks that only read it."""
    return generate(60_000, symbols=4, seed=11, anomaly_rate=0.02, warmup_events=100)


def by_symbol(stream: Stream) -> dict[str, Stream]:
    groups: dict[str, Stream] = defaultdict(list)
    for event, label in stream:
        groups[event.entity].append((event, label))
    return groups


def ticks(quote: Quote) -> int:
    return round((quote.ask - quote.bid) * 100)


def test_same_seed_and_parameters_give_the_same_stream() -> None:
    params: dict[str, Any] = {"symbols": 3, "seed": 42, "anomaly_rate": 0.05, "warmup_events": 10}
    first = generate(5_000, **params)
    assert first == generate(5_000, **params)
    market = SyntheticMarket(**params)
    assert list(market.events(5_000)) == list(market.events(5_000))  # each call restarts
    assert any(label is not None for _, label in first)


def test_a_shorter_stream_is_a_prefix_of_a_longer_one() -> None:
    market = SyntheticMarket(seed=3)
    assert list(market.events(5_000)) == list(market.events(10_000))[:5_000]
    assert list(itertools.islice(market.events(None), 5_000)) == list(market.events(5_000))


def test_a_different_seed_gives_a_different_stream() -> None:
    one = [encode(e) for e, _ in generate(200, seed=1)]
    two = [encode(e) for e, _ in generate(200, seed=2)]
    assert sum(a != b for a, b in zip(one, two, strict=True)) > 150


def test_the_default_stream_is_fixed_in_time() -> None:
    stream = generate(1_000)
    assert datetime(2026, 1, 5, 14, 30, tzinfo=UTC) == DEFAULT_START
    assert DEFAULT_START < stream[0][0].time < DEFAULT_START + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"symbols": 0}, "symbols"),
        ({"seed": -1}, "seed"),
        ({"anomaly_rate": -0.1}, "anomaly_rate"),
        ({"anomaly_rate": 0.6}, "anomaly_rate"),
        ({"events_per_second": 0}, "events_per_second"),
        ({"events_per_second": math.inf}, "events_per_second"),
        ({"quote_ratio": 1.5}, "quote_ratio"),
        ({"start": datetime(2026, 1, 1)}, "start"),  # naive
        ({"warmup_events": -1}, "warmup_events"),
    ],
)
def test_invalid_parameters_are_named(params: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SyntheticMarket(**params)


def test_parameters_are_stored_under_their_names() -> None:
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    market = SyntheticMarket(8, 9, 0.01, 50.0, 0.5, start, 20)
    assert (market.symbols, market.seed, market.anomaly_rate, market.events_per_second) == (
        8,
        9,
        0.01,
        50.0,
    )
    assert (market.quote_ratio, market.start, market.warmup_events) == (0.5, start, 20)


def test_count_is_validated() -> None:
    with pytest.raises(ValueError, match="count"):
        SyntheticMarket().events(-1)
    assert list(SyntheticMarket().events(0)) == []


def test_symbols_look_like_tickers_and_all_trade() -> None:
    market = SyntheticMarket(symbols=7)
    assert market.symbol_names == [
        "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "SYM0005", "SYM0006",
    ]  # fmt: skip
    seen = Counter(event.entity for event, _ in market.events(7_000))
    assert set(seen) == set(market.symbol_names)
    assert min(seen.values()) > 700  # symbols are drawn uniformly


def test_times_increase_at_the_configured_rate() -> None:
    start = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    stream = generate(20_000, events_per_second=50.0, start=start)
    times = [event.timestamp for event, _ in stream]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[0] >= start.timestamp()
    mean_gap = (times[-1] - times[0]) / (len(times) - 1)
    assert mean_gap == pytest.approx(1 / 50.0, rel=0.03)


def test_quote_ratio_is_respected() -> None:
    for ratio in (0.0, 0.3, 1.0):
        kinds = Counter(event.kind for event, _ in generate(10_000, quote_ratio=ratio))
        assert kinds["quote"] / 10_000 == pytest.approx(ratio, abs=0.02)


def test_normal_events_look_like_a_market() -> None:
    stream = generate(30_000, anomaly_rate=0.0)
    for symbol, events in by_symbol(stream).items():
        trades = [e for e, _ in events if isinstance(e, Trade)]
        prices = [t.price for t in trades]
        assert min(prices) > 10 and max(prices) < 600, symbol
        moves = [abs(b / a - 1) for a, b in itertools.pairwise(prices)]
        assert max(moves) < 0.005, symbol  # a walk of a few bp per trade, no jumps
        assert all(t.size % 100 == 0 and t.size >= 100 for t in trades)  # round lots
        assert {t.side for t in trades} == {"buy", "sell"}
        quotes = [e for e, _ in events if isinstance(e, Quote)]
        assert all(q.ask > q.bid for q in quotes)


def test_every_event_revalidates_through_the_wire_schema(anomalous: Stream) -> None:
    for event, _ in anomalous:
        assert decode(encode(event)) == event


def test_no_anomaly_without_a_rate() -> None:
    assert all(label is None for _, label in generate(10_000, anomaly_rate=0.0))


def test_anomalies_come_at_the_configured_rate_and_never_in_warm_up() -> None:
    warmup, rate = 300, 0.02
    stream = generate(40_000, symbols=5, seed=5, anomaly_rate=rate, warmup_events=warmup)
    seen: Counter[str] = Counter()
    eligible = labelled = 0
    for event, label in stream:
        if seen[event.entity] >= warmup:
            eligible += 1
        if label is not None:
            labelled += 1
            assert seen[event.entity] >= warmup, "anomaly injected during warm-up"
        seen[event.entity] += 1
    expected = eligible * rate
    assert abs(labelled - expected) < 5 * math.sqrt(expected)


def test_labels_describe_their_events(anomalous: Stream) -> None:
    kinds = {anomaly.name: anomaly.kind for anomaly in ANOMALY_TYPES}
    found: Counter[str] = Counter()
    for index, (event, label) in enumerate(anomalous):
        if label is None:
            continue
        found[label.anomaly] += 1
        assert label.index == index
        assert (label.entity, label.time, label.kind) == (event.entity, event.time, event.kind)
        assert kinds[label.anomaly] == event.kind
        assert label.detail
    assert set(found) == set(kinds)  # every type of the catalogue shows up
    assert min(found.values()) > 100


def test_a_price_spike_jumps_off_its_neighbours_and_leaves_the_walk_alone(
    anomalous: Stream,
) -> None:
    checked = 0
    for events in by_symbol(anomalous).values():
        trades = [(e, lab) for e, lab in events if isinstance(e, Trade)]
        for k, (trade, label) in enumerate(trades):
            if label is None or label.anomaly != "price_spike":
                continue
            before = next((t for t, lab in reversed(trades[:k]) if lab is None), None)
            after = next((t for t, lab in trades[k + 1 :] if lab is None), None)
            if before is None or after is None:
                continue
            for neighbour in (before, after):
                # 2% off the walk; the walk moves a few bp between neighbours
                assert abs(trade.price / neighbour.price - 1) >= 0.019, label
            assert abs(after.price / before.price - 1) < 0.005, "the spike moved the walk"
            claimed = re.match(r"price ([+-]\d+\.\d)% off the walk", label.detail)
            assert claimed is not None, label.detail
            move = float(claimed.group(1)) / 100
            assert 0.02 <= abs(move) <= 0.051
            assert math.copysign(1, move) == math.copysign(1, trade.price - before.price)
            checked += 1
    assert checked > 50


def test_a_size_burst_is_30_to_100_times_the_usual_size(anomalous: Stream) -> None:
    checked = 0
    for events in by_symbol(anomalous).values():
        usual = statistics.median(
            e.size for e, lab in events if isinstance(e, Trade) and lab is None
        )
        for event, label in events:
            if label is not None and label.anomaly == "size_burst":
                assert isinstance(event, Trade)
                assert 25 * usual <= event.size <= 120 * usual, (label, usual)
                claimed = re.match(r"size (\d+)x usual", label.detail)
                assert claimed is not None and 30 <= int(claimed.group(1)) <= 100
                checked += 1
    assert checked > 50


def test_a_spread_blowout_is_20_to_50_times_the_usual_spread(anomalous: Stream) -> None:
    checked = 0
    for events in by_symbol(anomalous).values():
        quotes = [(e, lab) for e, lab in events if isinstance(e, Quote)]
        usual = statistics.median(ticks(q) for q, lab in quotes if lab is None)
        assert max(ticks(q) for q, lab in quotes if lab is None) <= usual + 1
        for quote, label in quotes:
            if label is not None:
                assert label.anomaly == "spread_blowout"
                assert 20 * usual <= ticks(quote) <= 51 * usual, (label, usual)
                mid = (quote.bid + quote.ask) / 2
                assert quote.bid < mid < quote.ask
                checked += 1
    assert checked > 50


def test_labels_round_trip_through_json_lines(anomalous: Stream, tmp_path: Path) -> None:
    labels = [label for _, label in anomalous if label is not None]
    path = tmp_path / "labels.jsonl"
    assert write_labels(path, labels) == len(labels)
    assert read_labels(path) == labels
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"index", "entity", "time", "kind", "anomaly", "detail"}
    assert first["time"].endswith("Z")
    assert datetime.fromisoformat(first["time"]) == labels[0].time


def test_label_json_is_rfc3339_utc() -> None:
    label = Label(
        index=3,
        entity="AAPL",
        time=datetime(2026, 1, 5, 15, 30, 0, 250_000, tzinfo=UTC),
        kind="trade",
        anomaly="price_spike",
        detail="price +3.1% off the walk",
    )
    assert json.loads(label.to_json()) == {
        "index": 3,
        "entity": "AAPL",
        "time": "2026-01-05T15:30:00.250000Z",
        "kind": "trade",
        "anomaly": "price_spike",
        "detail": "price +3.1% off the walk",
    }
    assert Label.from_json(label.to_json()) == label


def test_an_endless_stream_keeps_going_across_blocks() -> None:
    stream = SyntheticMarket(symbols=2, anomaly_rate=0.01).events()
    events = [event for event, _ in itertools.islice(stream, 20_000)]
    assert len(events) == 20_000
    assert events[-1].timestamp > events[0].timestamp
