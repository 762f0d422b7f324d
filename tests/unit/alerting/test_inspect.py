"""``alerting inspect``'s analysis: the fields found and the suggested ``[[inputs]]`` block,
for the three shapes of issue 14 and for records that are missing fields, not JSON, not
objects, or none at all."""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable
from typing import Any

import pytest

from alerting.inspect import Inspection, Inspector, path_text, render_block, render_table, suggest

Shape = Callable[[random.Random, int], dict[str, Any]]


def desk(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "sym": rng.choice(["AAPL", "MSFT", "NVDA", "TSLA"]),
        "px": round(100 + 100 * rng.random(), 2),
        "qty": rng.randint(1, 1000),
        "ts": 1733300000123 + 17 * i,
    }


def exchange(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "e": "trade",
        "data": {
            "s": rng.choice(["BTCUSDT", "ETHUSDT", "SOLUSDT"]),
            "p": f"{43000 + 100 * rng.random():.2f}",
            "q": f"{rng.random():.3f}",
            "T": 1733300000123456 + 1000 * i,
        },
    }


def metrics(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "host": f"web-{rng.randint(1, 8)}",
        "metrics": {"cpu": rng.random(), "mem": rng.random()},
        "@timestamp": f"2026-12-04T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
    }


#: shape, and the block's lines expected (fields apart)
SHAPES: dict[str, tuple[Shape, dict[str, Any]]] = {
    "desk.trades": (
        desk,
        {
            "kind": "trade",
            "entity": "sym",
            "time": "ts",
            "time_unit": "ms",
            "fields": {"price": "px", "size": "qty"},
        },
    ),
    "exchange.trades": (
        exchange,
        {
            "kind": "trade",
            "entity": "data.s",
            "time": "data.T",
            "time_unit": "us",
            "fields": {"price": "data.p", "size": "data.q"},
        },
    ),
    "host.metrics": (
        metrics,
        {
            "kind": "metric",
            "entity": "host",
            "time": ".@timestamp",
            "time_unit": "rfc3339",
            "fields": {"values": "metrics.*"},
        },
    ),
}

#: the keys an [[inputs]] block may have (alerting/settings.py InputSettings)
TOP_KEYS = {"topic", "kind", "entity", "time", "time_unit", "fields"}
KIND_FIELDS = {
    "trade": {"price", "size", "side", "venue"},
    "quote": {"bid", "ask", "bid_size", "ask_size"},
    "metric": {"values"},
}
TIME_UNITS = {"auto", "s", "ms", "us", "ns", "rfc3339"}


def inspect(objects: list[Any], *, keys: bool = False, stamped: bool = True) -> Inspection:
    inspector = Inspector()
    for i, obj in enumerate(objects):
        inspector.add(
            json.dumps(obj).encode(),
            key=f"k{i % 3}".encode() if keys else None,
            timestamp_ms=1733300000000 + i if stamped else None,
        )
    return inspector.report()


def generated(shape: Shape, n: int = 200, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [shape(rng, i) for i in range(n)]


def block_of(inspection: Inspection, topic: str) -> dict[str, Any]:
    text = render_block(suggest(inspection, topic))
    parsed = tomllib.loads(text)
    assert list(parsed) == ["inputs"] and len(parsed["inputs"]) == 1
    block: dict[str, Any] = parsed["inputs"][0]
    return block


def assert_allowed_keys(block: dict[str, Any]) -> None:
    """Exactly the keys of the spec's [[inputs]] shape: required ones present, none other."""
    assert set(block) <= TOP_KEYS
    assert {"topic", "kind", "entity", "time"} <= set(block)
    assert block["kind"] in KIND_FIELDS
    assert set(block.get("fields", {})) <= KIND_FIELDS[block["kind"]]
    assert block.get("time_unit", "auto") in TIME_UNITS


@pytest.mark.parametrize("topic", list(SHAPES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_three_shapes_get_the_right_block(topic: str, seed: int) -> None:
    shape, expected = SHAPES[topic]
    block = block_of(inspect(generated(shape, seed=seed)), topic)
    assert_allowed_keys(block)
    assert block == {"topic": topic, **expected}


@pytest.mark.parametrize("topic", list(SHAPES))
def test_every_guessed_line_says_why_and_the_block_is_in_the_spec_shape(topic: str) -> None:
    shape, _ = SHAPES[topic]
    text = render_block(suggest(inspect(generated(shape)), topic))
    lines = text.splitlines()
    assert lines[0] == "[[inputs]]" and "[inputs.fields]" in lines
    for line in lines:
        if line.startswith(("[", "topic =")):
            continue
        assert "  # guess: " in line, line


def test_the_table_shows_paths_types_shares_and_cut_samples() -> None:
    objects = generated(exchange, 20)
    objects[0]["data"]["note"] = "x" * 100
    table = render_table(inspect(objects))
    assert table.splitlines()[0] == "20 records: 20 JSON objects"
    rows = {line.split()[0]: line for line in table.splitlines()[2:]}
    assert set(rows) >= {"path", "e", "data", "data.s", "data.p", "data.q", "data.T", "data.note"}
    assert "string (numbers in text)" in rows["data.p"] and "100 %" in rows["data.p"]
    assert "5 %" in rows["data.note"] and "x" * 100 not in table and "…" in rows["data.note"]
    assert '"trade"' in rows["e"]


def test_missing_fields_have_shares_below_100_and_are_still_guessed() -> None:
    objects = generated(desk, 100)
    for obj in objects[::4]:
        del obj["qty"]
    for obj in objects[::10]:
        obj["side"] = "buy" if obj["px"] > 150 else "sell"
    inspection = inspect(objects)
    share = {f.path: inspection.share(f) for f in inspection.fields}
    assert share["qty"] == 0.75 and share["side"] == 0.1 and share["sym"] == 1.0
    block = block_of(inspection, "desk.trades")
    assert block["fields"] == {"price": "px", "size": "qty", "side": "side"}
    assert "75 %" in render_table(inspection)


def test_records_that_are_not_json_or_not_objects_are_counted_and_shown() -> None:
    inspector = Inspector()
    for obj in generated(desk, 10):
        inspector.add(json.dumps(obj).encode())
    inspector.add(b"\xff\xfe garbage")
    inspector.add(b"[1, 2]")
    inspector.add(None)
    inspection = inspector.report()
    assert (inspection.records, inspection.objects) == (13, 10)
    assert (inspection.not_json, inspection.not_object) == (2, 1)
    table = render_table(inspection)
    assert (
        table.splitlines()[0] == "13 records: 10 JSON objects, 2 not JSON, 1 JSON but not objects"
    )
    assert "garbage" in table and "[1, 2]" in table
    assert block_of(inspection, "t")["kind"] == "trade"
    assert inspection.share(inspection.fields[0]) == 1.0  # of the JSON objects


def test_no_records_give_an_empty_inspection_and_a_block_to_fill_in() -> None:
    inspection = Inspector().report()
    assert (inspection.records, inspection.objects, inspection.fields) == (0, 0, [])
    assert render_table(inspection) == "0 records: 0 JSON objects"
    text = render_block(suggest(inspection, "empty"))
    assert "# entity = " in text and "# fill in:" in text
    block = tomllib.loads(text)["inputs"][0]
    assert block["kind"] == "metric" and "entity" not in block and "time" not in block


def test_arrays_are_flattened_with_indexes() -> None:
    rng = random.Random(3)
    objects = [
        {
            "venue": "XNAS",
            "book": {
                "sym": rng.choice(["AAPL", "MSFT"]),
                "bids": [[str(100 - j - rng.random()), j + 1] for j in range(5)],
                "asks": [[str(101 + j + rng.random()), j + 1] for j in range(5)],
            },
            "bid": 99.5 + rng.random() / 10,
            "ask": 100.5 + rng.random() / 10,
            "time": 1733300000 + i,
        }
        for i in range(30)
    ]
    inspection = inspect(objects)
    paths = {f.shown for f in inspection.fields}
    assert {"book.bids", "book.bids[0]", "book.bids[0][0]", "book.bids[2][1]"} <= paths
    assert "book.bids[3]" not in paths  # the first MAX_INDEXES items only
    array = next(f for f in inspection.fields if f.shown == "book.bids")
    assert array.types == {"array": 30}
    block = block_of(inspection, "books")
    assert_allowed_keys(block)
    assert (block["kind"], block["entity"], block["time"], block["time_unit"]) == (
        "quote",
        "book.sym",
        "time",
        "s",
    )
    assert block["fields"] == {"bid": "bid", "ask": "ask"}


def test_a_top_level_array_of_numbers_becomes_metric_values_by_index() -> None:
    objects = [
        {"host": f"h{i % 2}", "load": [i / 10, i / 20], "ts": 1733300000 + i} for i in range(9)
    ]
    block = block_of(inspect(objects), "loads")
    assert block["kind"] == "metric" and block["entity"] == "host"
    assert block["fields"]["values"] == ["load[0]", "load[1]"]


def test_without_entity_like_fields_the_key_is_the_entity_else_a_line_to_fill_in() -> None:
    objects = [{"value": i / 3, "at": 1733300000 + i} for i in range(20)]
    assert block_of(inspect(objects, keys=True), "t")["entity"] == "@key"
    text = render_block(suggest(inspect(objects), "t"))
    assert "# entity = " in text
    block = tomllib.loads(text)["inputs"][0]
    assert block["time"] == "at" and block["fields"] == {"values": ["value"]}


def test_without_a_time_field_the_record_timestamp_is_the_time() -> None:
    objects = [{"sym": "AB"[i % 2], "price": 1.5 + i, "size": 2} for i in range(20)]
    assert block_of(inspect(objects), "t")["time"] == "@timestamp"
    text = render_block(suggest(inspect(objects, stamped=False), "t"))  # a file: no timestamps
    assert "# time = " in text and "time" not in tomllib.loads(text)["inputs"][0]


def test_metric_values_under_one_object_are_a_prefix_else_a_list() -> None:
    objects = [{"host": "a", "m": {"x": 1, "y": 2}, "z": 3, "ts": 1733300000} for _ in range(3)]
    assert block_of(inspect(objects), "t")["fields"] == {"values": ["m.x", "m.y", "z"]}


def test_keys_that_cannot_be_addressed_are_shown_but_never_guessed() -> None:
    objects = [{"a.b": "AAPL", "px": 1.0, "size": 2, "ts": 1733300000} for _ in range(3)]
    inspection = inspect(objects)
    assert '["a.b"] (cannot be addressed)' in render_table(inspection)
    assert "a.b" not in render_block(suggest(inspection, "t"))


def test_paths_are_written_as_the_mapping_reads_them() -> None:
    assert path_text(("data", "s")) == "data.s"
    assert path_text(("trades", 0, "p")) == "trades[0].p"
    assert path_text(("@timestamp",)) == ".@timestamp"
    assert path_text(("=x", "y")) == ".=x.y"
    assert path_text(("a", "")) is None and path_text(("x[1]",)) is None


def test_values_needing_escapes_stay_valid_toml() -> None:
    objects = [{'sy"m': "A", "px": 1.0, "qty": 1, "ts": 1733300000} for _ in range(3)]
    text = render_block(suggest(inspect(objects), 'we"ird\\topic'))
    assert tomllib.loads(text)["inputs"][0]["topic"] == 'we"ird\\topic'
