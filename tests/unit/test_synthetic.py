"""The synthetic market: determinism, anomaly injection and labels."""

from __future__ import annotations

import bisect
import hashlib
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
from producers import synthetic
from producers.synthetic import (
    ANOMALY_TYPES,
    DEFAULT_ANOMALIES,
    DEFAULT_START,
    AnomalySpec,
    Label,
    SyntheticMarket,
    parse_anomalies,
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
    kinds = {anomaly.name: anomaly.kinds for anomaly in ANOMALY_TYPES}
    found: Counter[str] = Counter()
    for index, (event, label) in enumerate(anomalous):
        if label is None:
            continue
        found[label.anomaly] += 1
        assert label.index == label.end_index == index
        assert (label.entity, label.time, label.kind) == (event.entity, event.time, event.kind)
        assert label.end == label.time
        assert event.kind in kinds[label.anomaly]
        assert label.detail
    # every type of the default mix shows up
    assert set(found) == {"price_spike", "size_burst", "spread_blowout"}
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
    assert set(first) == {
        "index", "entity", "time", "kind", "anomaly", "detail", "end", "end_index",
    }  # fmt: skip
    assert first["time"].endswith("Z") and first["end"] == first["time"]
    assert first["end_index"] == first["index"]
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
        "end": "2026-01-05T15:30:00.250000Z",
        "end_index": 3,
    }
    assert Label.from_json(label.to_json()) == label


def test_an_endless_stream_keeps_going_across_blocks() -> None:
    stream = SyntheticMarket(symbols=2, anomaly_rate=0.01).events()
    events = [event for event, _ in itertools.islice(stream, 20_000)]
    assert len(events) == 20_000
    assert events[-1].timestamp > events[0].timestamp


# -- the default stream is pinned ------------------------------------------------------


def _digest(stream: Stream) -> str:
    """Events on the wire and the label fields that existed before windows."""
    h = hashlib.sha256()
    for event, label in stream:
        h.update(encode(event) + b"\n")
        if label is not None:
            fields = (label.index, label.entity, label.time.isoformat(), label.kind)
            h.update("|".join(map(str, (*fields, label.anomaly, label.detail))).encode() + b"\n")
    return h.hexdigest()


# Computed with the generator as it was before the catalogue grew (three types, no
# windows): the demo, the integration tests and the benchmarks replay these streams.
PINNED = [
    ({}, 20_000, 25, "6bf3c7184da88981e0ed213465704a1e1f7b53dbe6390b948abbd5e6b00b3eef"),
    (
        {"symbols": 4, "seed": 11, "anomaly_rate": 0.02, "warmup_events": 100},
        60_000,
        1159,
        "63f26163e91b630bc4b880745e47c179eb6044a420b065c9b920da7ad6027009",
    ),
    (
        {"seed": 11, "anomaly_rate": 0.002},  # tests/integration/test_pipeline.py
        12_000,
        25,
        "2ada7df051aa8474a878df48904559a73a609f2052bb10ca2a3015ee9e170a71",
    ),
]


@pytest.mark.parametrize(("params", "count", "labels", "digest"), PINNED)
def test_the_default_mix_gives_the_stream_it_always_gave(
    params: dict[str, Any], count: int, labels: int, digest: str
) -> None:
    stream = generate(count, **params)
    assert sum(label is not None for _, label in stream) == labels
    assert _digest(stream) == digest


def test_the_default_mix_named_explicitly_gives_the_same_stream() -> None:
    params, count, _, digest = PINNED[2]
    explicit = generate(count, **params, anomalies="default", intensity=1.0)
    assert _digest(explicit) == digest
    spelled_out = generate(count, **params, anomalies="price_spike,size_burst,spread_blowout")
    assert _digest(spelled_out) == digest


def test_the_default_mix_is_the_first_three_types() -> None:
    market = SyntheticMarket()
    assert market.anomalies == DEFAULT_ANOMALIES == parse_anomalies("default")
    assert [spec.name for spec in DEFAULT_ANOMALIES] == [a.name for a in ANOMALY_TYPES[:3]]
    assert market.intensity == 1.0
    assert [a.name for a in ANOMALY_TYPES] == [
        "price_spike", "size_burst", "spread_blowout", "level_shift", "volatility_burst",
        "flash_crash", "stale_feed", "fat_finger",
    ]  # fmt: skip


def test_the_catalogue_is_documented() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for anomaly in ANOMALY_TYPES:
        assert f"``{anomaly.name}``" in (synthetic.__doc__ or ""), anomaly.name
        assert f"| `{anomaly.name}` |" in readme, anomaly.name
        low, high = anomaly.intensity
        assert low < high <= anomaly.limits[1] and anomaly.limits[0] <= low


# -- the whole catalogue ---------------------------------------------------------------

WINDOWED = {"level_shift", "volatility_burst", "flash_crash", "stale_feed"}


def test_the_multi_event_types_are_marked() -> None:
    assert {anomaly.name for anomaly in ANOMALY_TYPES if anomaly.windowed} == WINDOWED


ALL_PARAMS: dict[str, Any] = {
    "symbols": 4,
    "seed": 11,
    "anomaly_rate": 0.01,
    "warmup_events": 100,
    "anomalies": "all",
}


@pytest.fixture(scope="module")
def catalogue() -> Stream:
    """Every type of the catalogue, many times; shared by the checks that only read it."""
    return generate(60_000, **ALL_PARAMS)


def labels_of(stream: Stream, anomaly: str | None = None) -> list[Label]:
    found = [label for _, label in stream if label is not None]
    return [label for label in found if anomaly is None or label.anomaly == anomaly]


def positions(stream: Stream) -> dict[str, list[int]]:
    """Stream positions of each entity's events."""
    where: dict[str, list[int]] = defaultdict(list)
    for i, (event, _) in enumerate(stream):
        where[event.entity].append(i)
    return where


def trades_between(stream: Stream, where: list[int], first: int, last: int) -> list[Trade]:
    """The trades among an entity's events (positions ``where``) from ``first`` to ``last``."""
    return [event for i in where if first <= i <= last and isinstance(event := stream[i][0], Trade)]


def clean_window(label: Label, stream: Stream) -> bool:
    """The window ends inside the stream."""
    return label.end_index < len(stream)


def test_every_type_is_injected_with_its_window(catalogue: Stream) -> None:
    found = Counter(label.anomaly for label in labels_of(catalogue))
    assert set(found) == {a.name for a in ANOMALY_TYPES}
    assert min(found.values()) >= 30, found
    for position, (event, label) in enumerate(catalogue):
        if label is None:
            continue
        assert label.index <= label.end_index and label.time <= label.end
        if label.anomaly not in WINDOWED:
            assert (label.end, label.end_index) == (label.time, label.index)
        if label.anomaly == "stale_feed":
            # yielded with the symbol's last event before the gap
            assert event.entity == label.entity and event.time < label.time
            assert position < label.index
            first = catalogue[label.index][0]
            assert catalogue[label.index - 1][0].time < label.time < first.time
        else:
            assert position == label.index
            assert (event.entity, event.time, event.kind) == (
                label.entity,
                label.time,
                label.kind,
            )
        if clean_window(label, catalogue):
            last = catalogue[label.end_index][0]
            assert (last.entity, last.time) == (label.entity, label.end)
        if label.anomaly in WINDOWED:
            assert label.end_index > label.index


def test_windows_of_one_symbol_never_overlap(catalogue: Stream) -> None:
    by_entity: dict[str, list[Label]] = defaultdict(list)
    for label in labels_of(catalogue):
        by_entity[label.entity].append(label)
    for labels in by_entity.values():
        labels.sort(key=lambda label: label.index)
        for one, two in itertools.pairwise(labels):
            assert one.end < two.time, (one, two)


def test_the_catalogue_is_deterministic_per_seed() -> None:
    first = generate(8_000, **ALL_PARAMS)
    assert first == generate(8_000, **ALL_PARAMS)
    other = generate(8_000, **{**ALL_PARAMS, "seed": 12})
    assert labels_of(first) != labels_of(other)


def test_labels_do_not_depend_on_where_the_stream_stops() -> None:
    market = SyntheticMarket(**{**ALL_PARAMS, "anomaly_rate": 0.03})
    long = list(market.events(12_000))
    for count in (3_000, 5_555, 8_000):
        short = list(market.events(count))
        assert short == long[:count]
    cut = [label for label in labels_of(long[:5_555]) if label.end_index >= 5_555]
    assert cut, "no window runs past the end: pick another cut"


def test_a_mix_without_quote_types_leaves_quotes_alone() -> None:
    stream = generate(20_000, anomalies="level_shift,fat_finger", anomaly_rate=0.01)
    labels = labels_of(stream)
    assert labels and {label.anomaly for label in labels} == {"level_shift", "fat_finger"}
    assert {label.kind for label in labels} == {"trade"}


def test_weights_set_the_share_of_each_type() -> None:
    mix = "price_spike:3,size_burst:1"
    stream = generate(40_000, anomalies=mix, anomaly_rate=0.05, quote_ratio=0.0)
    found = Counter(label.anomaly for label in labels_of(stream))
    share = found["price_spike"] / (found["price_spike"] + found["size_burst"])
    assert share == pytest.approx(0.75, abs=0.04), found


def test_a_level_shift_moves_the_walk_and_it_stays(catalogue: Stream) -> None:
    where = positions(catalogue)
    labels = labels_of(catalogue)
    checked = 0
    for label in labels_of(catalogue, "level_shift"):
        claimed = re.match(r"walk ([+-]\d+\.\d)% \(", label.detail)
        assert claimed is not None, label.detail
        shift = float(claimed.group(1)) / 100
        assert 0.0095 <= abs(shift) <= 0.0305
        mine = where[label.entity]
        window = trades_between(catalogue, mine, label.index, label.end_index)
        assert len(window) == 20  # the window is the first 20 trades at the new level
        before = trades_between(catalogue, mine, 0, label.index - 1)
        after = trades_between(catalogue, mine, label.end_index + 1, len(catalogue))[:40]
        if len(before) < 10 or len(after) < 40:
            continue
        # skip a shift whose neighbourhood holds another anomaly of the symbol
        busy = [
            other
            for other in labels
            if other.entity == label.entity and other is not label
            and before[-10].time <= other.end and other.time <= after[-1].time
        ]  # fmt: skip
        if busy:
            continue
        reference = statistics.median(t.price for t in before[-10:])
        assert window[0].price / reference - 1 == pytest.approx(shift, abs=0.002)
        # ... and stays: 20 to 60 trades later the level is still shifted
        stays = statistics.median(t.price for t in after) / reference - 1
        assert stays == pytest.approx(shift, abs=0.006), label
        checked += 1
    assert checked >= 12


def test_a_volatility_burst_multiplies_the_walks_volatility(catalogue: Stream) -> None:
    # the same symbols without anomalies give each symbol's usual volatility
    clean = generate(60_000, **{**ALL_PARAMS, "anomaly_rate": 0.0})
    usual = {}
    for entity, events in by_symbol(clean).items():
        prices = [e.price for e, _ in events if isinstance(e, Trade)]
        usual[entity] = statistics.pstdev(math.log(b / a) for a, b in itertools.pairwise(prices))
    where = positions(catalogue)
    ratios = []
    for label in labels_of(catalogue, "volatility_burst"):
        claimed = re.match(r"volatility (\d+\.\d)x for (\d+) trades", label.detail)
        assert claimed is not None, label.detail
        factor, trades = float(claimed.group(1)), int(claimed.group(2))
        assert 5.0 <= factor <= 10.0 and 20 <= trades <= 50
        if not clean_window(label, catalogue):
            continue
        window = trades_between(catalogue, where[label.entity], label.index, label.end_index)
        assert len(window) == trades
        moves = [math.log(b.price / a.price) for a, b in itertools.pairwise(window)]
        ratios.append(statistics.pstdev(moves) / usual[label.entity] / factor)
    assert len(ratios) >= 20
    # rounding to the cent inflates the usual volatility of cheap symbols a little
    assert 0.7 <= statistics.median(ratios) <= 1.15
    assert min(ratios) > 0.4 and max(ratios) < 1.6


def test_a_flash_crash_drops_then_recovers(catalogue: Stream) -> None:
    where = positions(catalogue)
    checked = 0
    for label in labels_of(catalogue, "flash_crash"):
        claimed = re.match(
            r"price down (\d+\.\d)% over (\d+) trades, back over (\d+) more", label.detail
        )
        assert claimed is not None, label.detail
        depth, down, up = (
            float(claimed.group(1)) / 100,
            int(claimed.group(2)),
            int(claimed.group(3)),
        )
        assert 0.0495 <= depth <= 0.1005 and 3 <= down <= 6 and 5 <= up <= 15
        if not clean_window(label, catalogue):
            continue
        mine = where[label.entity]
        window = trades_between(catalogue, mine, label.index, label.end_index)
        assert len(window) == down + up  # the next trade is at the walk again
        before = trades_between(catalogue, mine, 0, label.index - 1)[-1]
        after = trades_between(catalogue, mine, label.end_index + 1, len(catalogue))
        if not after:
            continue
        # down in equal steps to the bottom, then back in equal steps
        below = [depth * k / down for k in range(1, down + 1)]
        below += [depth * (1 - k / (up + 1)) for k in range(1, up + 1)]
        for trade, expected in zip(window, below, strict=True):
            assert trade.price / before.price - 1 == pytest.approx(-expected, abs=0.004)
        assert {t.side for t in window[:down]} == {"sell"}
        assert {t.side for t in window[down:]} == {"buy"}
        assert abs(after[0].price / before.price - 1) < 0.005  # recovered to the walk
        quotes = [catalogue[i][0] for i in mine if label.index < i < label.end_index]
        assert all(q.ask < before.price for q in quotes if isinstance(q, Quote))
        checked += 1
    assert checked >= 20


def test_a_stale_feed_is_a_gap_and_the_first_event_after_it(catalogue: Stream) -> None:
    where = positions(catalogue)
    usual_gap = {
        entity: statistics.median(
            catalogue[b][0].timestamp - catalogue[a][0].timestamp
            for a, b in itertools.pairwise(mine)
        )
        for entity, mine in where.items()
    }
    checked = 0
    for label in labels_of(catalogue, "stale_feed"):
        claimed = re.match(r"no events for (\d+\.\d+) s \((\d+) missed\)", label.detail)
        assert claimed is not None, label.detail
        assert 50 <= int(claimed.group(2)) <= 200
        if not clean_window(label, catalogue):
            continue
        mine = where[label.entity]
        inside = [i for i in mine if label.index <= i <= label.end_index]
        assert inside == [label.end_index]  # nothing of the symbol but the first event after
        resumed = catalogue[label.end_index][0]
        assert resumed.kind == label.kind and resumed.time == label.end
        previous = catalogue[mine[mine.index(label.end_index) - 1]][0]
        assert previous.time < label.time
        gap = (resumed.time - previous.time).total_seconds()
        assert gap == pytest.approx(float(claimed.group(1)), abs=0.006)
        assert gap > 20 * usual_gap[label.entity]
        # the other symbols keep printing through the gap
        others = {catalogue[i][0].entity for i in range(label.index, label.end_index)}
        assert others and label.entity not in others
        checked += 1
    assert checked >= 50


def test_a_fat_finger_is_far_off_or_huge_and_leaves_the_walk_alone(catalogue: Stream) -> None:
    normal: dict[str, list[Trade]] = defaultdict(list)  # unlabelled trades of each symbol
    for event, label in catalogue:
        if label is None and isinstance(event, Trade):
            normal[event.entity].append(event)
    kinds: Counter[str] = Counter()
    for label in labels_of(catalogue, "fat_finger"):
        trade = catalogue[label.index][0]
        assert isinstance(trade, Trade)
        mine = normal[label.entity]
        k = bisect.bisect([t.time for t in mine], trade.time)
        before, after = mine[k - 1], mine[k : k + 1]
        price = re.match(r"price ([+-]\d+\.\d)% off the walk", label.detail)
        size = re.match(r"size (\d+)x usual \((\d+) vs (\d+)\)", label.detail)
        if price is not None:
            kinds["price"] += 1
            assert 0.0995 <= abs(float(price.group(1)) / 100) <= 0.5005
            assert abs(trade.price / before.price - 1) >= 0.095
        else:
            assert size is not None, label.detail
            kinds["size"] += 1
            assert int(size.group(1)) == 1000 and trade.size == float(size.group(2))
            assert abs(trade.price / before.price - 1) < 0.005
        if after:
            assert abs(after[0].price / before.price - 1) < 0.005  # the walk did not move
    assert kinds["price"] >= 15 and kinds["size"] >= 15, kinds


def test_the_intensity_factor_scales_every_anomaly() -> None:
    stream = generate(30_000, anomalies="price_spike", anomaly_rate=0.01, intensity=2.0)
    moves = [
        abs(float(m.group(1)))
        for label in labels_of(stream)
        if (m := re.match(r"price ([+-]\d+\.\d)%", label.detail))
    ]
    assert len(moves) > 50
    assert min(moves) >= 3.95 and max(moves) <= 10.05  # 2-5 % twice over
    assert max(moves) > 9.0


def test_a_type_can_have_its_own_intensity_range() -> None:
    spec = AnomalySpec("level_shift", intensity=(0.05, 0.05))
    stream = generate(30_000, anomalies=[spec, "stale_feed"], anomaly_rate=0.005)
    shifts = {label.detail.split(" ")[1] for label in labels_of(stream, "level_shift")}
    assert shifts <= {"+5.0%", "-5.0%"} and shifts
    assert labels_of(stream, "stale_feed")


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"anomalies": "nope"}, "unknown type 'nope'"),
        ({"anomalies": "price_spike,price_spike"}, "more than once"),
        ({"anomalies": [AnomalySpec("size_burst"), "size_burst"]}, "more than once"),
        ({"anomalies": "price_spike:0"}, "weight"),
        ({"anomalies": "price_spike:lots"}, "NAME"),
        ({"anomalies": "price_spike:1:0.5"}, "NAME"),
        ({"anomalies": "price_spike:1:0.3-0.1"}, "intensity"),
        ({"anomalies": "flash_crash:1:0.5-0.95"}, "outside"),
        ({"anomalies": "all", "intensity": 20}, "intensity factor 20"),
        ({"intensity": 0}, "intensity"),
        ({"intensity": math.nan}, "intensity"),
    ],
)
def test_a_bad_mix_is_refused_with_its_name(params: dict[str, Any], named: str) -> None:
    with pytest.raises(ValueError, match=re.escape(named)):
        SyntheticMarket(**params)


def test_parse_anomalies_reads_names_weights_and_ranges() -> None:
    assert [s.name for s in parse_anomalies("all")] == [a.name for a in ANOMALY_TYPES]
    assert parse_anomalies(" flash_crash:2.5 , stale_feed:1:80-90 ") == (
        AnomalySpec("flash_crash", 2.5),
        AnomalySpec("stale_feed", 1.0, (80.0, 90.0)),
    )


def test_old_labels_without_a_window_still_read() -> None:
    old = (
        '{"index": 7, "entity": "AAPL", "time": "2026-01-05T14:30:01.000000Z",'
        ' "kind": "trade", "anomaly": "price_spike", "detail": "price +2.5%"}'
    )
    label = Label.from_json(old)
    assert (label.end, label.end_index) == (label.time, 7)
    windowed = Label(7, "AAPL", label.time, "trade", "level_shift", "x", label.end, 30)
    assert Label.from_json(windowed.to_json()) == windowed
    with pytest.raises(ValueError, match="end_index"):
        Label(7, "AAPL", label.time, "trade", "level_shift", "x", label.time, 6)
    with pytest.raises(ValueError, match="end"):
        Label(7, "AAPL", label.time, "trade", "x", "x", label.time - timedelta(seconds=1), 8)


def test_windowed_labels_round_trip_through_json_lines(catalogue: Stream, tmp_path: Path) -> None:
    labels = labels_of(catalogue)
    path = tmp_path / "labels.jsonl"
    write_labels(path, labels)
    assert read_labels(path) == labels
