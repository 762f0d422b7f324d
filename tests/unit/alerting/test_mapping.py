"""alerting.mapping: the three shapes of issue 14, every error, the time units, and path
resolution checked against a brute-force oracle on random nested documents."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.errors import InvalidEvent
from alerting.events import Metric, Quote, Trade
from alerting.mapping import (
    InputError,
    InputMapping,
    compile_input,
    compile_inputs,
    epoch_seconds,
    parse_path,
)
from alerting.settings import InputSettings, load_settings

T0 = datetime(2024, 12, 4, 8, 13, 20, tzinfo=UTC)  # 1733300000


def _mapping(**spec: Any) -> InputMapping:
    return compile_input(InputSettings(**spec))


DESK = _mapping(
    topic="desk.trades",
    kind="trade",
    entity="sym",
    time="ts",
    fields={"price": "px", "size": "qty", "side": "side", "venue": "=XNAS"},
)
EXCHANGE = _mapping(
    topic="exchange.trades",
    kind="trade",
    entity="data.s",
    time="data.T",
    time_unit="us",
    fields={"price": "data.p", "size": "data.q"},
)
METRICS = _mapping(
    topic="metrics",
    kind="metric",
    entity="host",
    time=".@timestamp",
    fields={"values": "metrics.*"},
)


def test_trading_desk() -> None:
    event = DESK.decode(b'{"sym":"AAPL","px":191.2,"qty":100,"ts":1733300000123}')
    assert isinstance(event, Trade)
    assert (event.entity, event.price, event.size, event.side, event.venue) == (
        "AAPL",
        191.2,
        100.0,
        "unknown",
        "XNAS",
    )
    assert event.time == T0.replace(microsecond=123000)


def test_exchange_feed_nested_strings_and_microseconds() -> None:
    value = b'{"e":"trade","data":{"s":"BTCUSDT","p":"43000.10","q":"0.015","T":1733300000123456}}'
    for mapping in (EXCHANGE, _mapping(**{**_spec(EXCHANGE), "time_unit": "auto"})):
        event = mapping.decode(value)
        assert isinstance(event, Trade)
        assert (event.entity, event.price, event.size) == ("BTCUSDT", 43000.10, 0.015)
        assert event.time == T0.replace(microsecond=123456)


def test_metrics_pipeline_prefix_and_list() -> None:
    value = (
        b'{"host":"web-7","metrics":{"cpu":0.71,"mem":0.42,"up":true,"name":"x"},'
        b'"@timestamp":"2026-12-04T10:00:00Z"}'
    )
    listed = _mapping(
        topic="m2",
        kind="metric",
        entity="host",
        time=".@timestamp",
        time_unit="rfc3339",
        fields={"values": ["metrics.cpu", "metrics.mem", "metrics.disk"]},
    )
    for mapping in (METRICS, listed):
        event = mapping.decode(value)
        assert isinstance(event, Metric)
        assert event.entity == "web-7"
        assert event.values == {"cpu": 0.71, "mem": 0.42}
        assert event.time == datetime(2026, 12, 4, 10, tzinfo=UTC)


def _spec(mapping: InputMapping) -> dict[str, Any]:
    specs = {
        "desk.trades": {"entity": "sym", "time": "ts", "fields": {"price": "px", "size": "qty"}},
        "exchange.trades": {
            "entity": "data.s",
            "time": "data.T",
            "fields": {"price": "data.p", "size": "data.q"},
        },
    }
    return {"topic": mapping.topic, "kind": mapping.kind, **specs[mapping.topic]}


def test_a_quote_keeps_the_native_rules() -> None:
    quotes = _mapping(
        topic="q",
        kind="quote",
        entity="{venue}:{sym}",
        time="t",
        fields={"bid": "b[0]", "ask": "a[0]", "bid_size": "b[1]"},
    )
    event = quotes.from_object({"venue": "X", "sym": "EUR", "b": [1.1, 5], "a": [1.2], "t": 0})
    assert isinstance(event, Quote)
    assert (event.entity, event.bid, event.ask, event.bid_size, event.ask_size) == (
        "X:EUR",
        1.1,
        1.2,
        5.0,
        0.0,
    )
    with pytest.raises(InvalidEvent, match="crossed quote") as caught:
        quotes.from_object({"venue": "X", "sym": "EUR", "b": [1.3], "a": [1.2], "t": 0})
    assert caught.value.reason == "schema"


def test_key_timestamp_and_headers() -> None:
    mapping = _mapping(
        topic="k",
        kind="trade",
        entity="@key",
        time="@timestamp",
        fields={"price": "p", "size": "@header:size", "venue": "@header:venue"},
    )
    event = mapping.decode(
        b'{"p": 2}',
        key=b"MSFT",
        timestamp_ms=1733300000123,
        headers=[("size", b"1"), ("size", b"3"), ("other", None)],
    )
    assert isinstance(event, Trade)
    assert (event.entity, event.size, event.venue) == ("MSFT", 3.0, None)
    assert event.time == T0.replace(microsecond=123000)
    with pytest.raises(InvalidEvent, match="field @key in input k: expected a string") as bad:
        mapping.decode(b'{"p": 2}', key=b"\xff", timestamp_ms=1, headers=[("size", b"1")])
    assert bad.value.reason == "schema"
    with pytest.raises(InvalidEvent, match="field @header:size in input k: expected a number"):
        mapping.decode(b'{"p": 2}', key=b"A", timestamp_ms=1, headers=[("size", b"\xff")])
    with pytest.raises(InvalidEvent, match="missing field @key in input k"):
        mapping.decode(b'{"p": 2}', timestamp_ms=1, headers=[("size", b"1")])
    with pytest.raises(InvalidEvent, match="missing field @timestamp in input k"):
        mapping.decode(b'{"p": 2}', key=b"A", headers=[("size", b"1")])
    with pytest.raises(InvalidEvent, match="missing field @header:size in input k"):
        mapping.decode(b'{"p": 2}', key=b"A", timestamp_ms=1)


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (None, "empty", "no value (tombstone) in input exchange.trades"),
        (b"{", "not_json", "in input exchange.trades"),
        (b"\xff", "not_json", "in input exchange.trades"),
        (b"[1, 2]", "not_an_object", "expected a JSON object, got list in input exchange"),
        (
            b'{"data":{"s":"B","q":"1","T":1}}',
            "missing_field",
            "missing field data.p in input exchange.trades",
        ),
        (
            b'{"data":{"s":"B","p":"abc","q":"1","T":1}}',
            "schema",
            'field data.p in input exchange.trades: expected a number, got "abc"',
        ),
        (
            b'{"data":{"s":"B","p":true,"q":"1","T":1}}',
            "schema",
            "field data.p in input exchange.trades: expected a number, got true",
        ),
        (
            b'{"data":{"s":"B","p":{"x":1},"q":"1","T":1}}',
            "schema",
            "field data.p in input exchange.trades: expected a number",
        ),
        (
            b'{"data":{"s":"B","p":"-1","q":"1","T":1}}',
            "out_of_range",
            "field data.p in input exchange.trades: Input should be greater than 0",
        ),
        (
            b'{"data":{"s":"B","p":"1e10","q":"1","T":1}}',
            "out_of_range",
            "field data.p in input exchange.trades: Input should be less than",
        ),
        (
            b'{"data":{"s":"B","p":"nan","q":"1","T":1}}',
            "not_finite",
            "field data.p in input exchange.trades",
        ),
        (
            b'{"data":{"s":"","p":"1","q":"1","T":1}}',
            "schema",
            "field data.s in input exchange.trades: String should have at least 1 character",
        ),
        (
            b'{"data":{"s":"A\\u0000","p":"1","q":"1","T":1}}',
            "schema",
            "field data.s in input exchange.trades: String should match pattern",
        ),
        (
            b'{"data":{"s":["B"],"p":"1","q":"1","T":1}}',
            "schema",
            'field data.s in input exchange.trades: expected a string, got ["B"]',
        ),
        (
            b'{"data":{"s":"B","p":"1","q":"1"}}',
            "missing_field",
            "missing field data.T in input exchange.trades",
        ),
        (
            b'{"data":{"s":"B","p":"1","q":"1","T":"soon"}}',
            "schema",
            'field data.T in input exchange.trades: expected a number (us), got "soon"',
        ),
        (
            b'{"data":{"s":"B","p":"1","q":"1","T":1e300}}',
            "out_of_range",
            "field data.T in input exchange.trades: 1e+300 (us) is out of the supported",
        ),
        (
            b'{"data":"flat"}',
            "missing_field",
            "missing field data.T in input exchange.trades",
        ),
    ],
)
def test_every_error(value: bytes | None, reason: str, detail: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        EXCHANGE.decode(value)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_metric_errors() -> None:
    with pytest.raises(InvalidEvent, match="missing field metrics in input metrics"):
        METRICS.from_object({"host": "a", "@timestamp": 0})
    with pytest.raises(InvalidEvent, match="field metrics in input metrics: expected an object"):
        METRICS.from_object({"host": "a", "@timestamp": 0, "metrics": [1]})
    with pytest.raises(InvalidEvent, match="no numbers under metrics in input metrics") as c:
        METRICS.from_object({"host": "a", "@timestamp": 0, "metrics": {"up": True}})
    assert c.value.reason == "missing_field"
    with pytest.raises(InvalidEvent) as c:
        METRICS.from_object({"host": "a", "@timestamp": 0, "metrics": {"x": "inf"}})
    assert c.value.reason == "not_finite" and "field values.x in input metrics" in c.value.detail
    many = {f"m{i}": i for i in range(65)}
    with pytest.raises(InvalidEvent, match="field values in input metrics"):
        METRICS.from_object({"host": "a", "@timestamp": 0, "metrics": many})
    listed = _mapping(topic="l", kind="metric", entity="h", time="t", fields={"values": ["a", "b"]})
    with pytest.raises(InvalidEvent, match="missing field a in input l"):
        listed.from_object({"h": "x", "t": 0})
    top = _mapping(topic="top", kind="metric", entity="=all", time="t", fields={"values": "*"})
    assert top.from_object({"t": 5, "a": 1, "b": "2"}).values == {"t": 5.0, "a": 1.0, "b": 2.0}


@pytest.mark.parametrize(
    ("unit", "raw", "expected"),
    [
        ("s", 1733300000, T0),
        ("s", "1733300000.5", T0.replace(microsecond=500000)),
        ("ms", 1733300000123, T0.replace(microsecond=123000)),
        ("ms", "1733300000123", T0.replace(microsecond=123000)),
        ("us", 1733300000123456, T0.replace(microsecond=123456)),
        ("ns", 1733300000123456789, T0.replace(microsecond=123457)),
        ("rfc3339", "2024-12-04T08:13:20Z", T0),
        ("rfc3339", "2024-12-04T09:13:20.25+01:00", T0.replace(microsecond=250000)),
        ("rfc3339", "2024-12-04T08:13:20", T0),
        ("auto", 1733300000, T0),
        ("auto", 1733300000.25, T0.replace(microsecond=250000)),
        ("auto", 1733300000123, T0.replace(microsecond=123000)),
        ("auto", 1733300000123456, T0.replace(microsecond=123456)),
        ("auto", 1733300000123456789, T0.replace(microsecond=123457)),
        ("auto", "1733300000123", T0.replace(microsecond=123000)),
        ("auto", "2024-12-04T08:13:20Z", T0),
    ],
)
def test_time_units(unit: str, raw: object, expected: datetime) -> None:
    mapping = _mapping(
        topic="t", kind="trade", entity="=A", time="t", time_unit=unit,
        fields={"price": "=1", "size": "=1"},
    )  # fmt: skip
    assert mapping.from_object({"t": raw}).time == expected


@pytest.mark.parametrize(
    ("unit", "raw"), [("rfc3339", 1733300000), ("rfc3339", "yesterday"), ("s", True), ("auto", [1])]
)
def test_time_refused(unit: str, raw: object) -> None:
    mapping = _mapping(
        topic="t", kind="trade", entity="=A", time="t", time_unit=unit,
        fields={"price": "=1", "size": "=1"},
    )  # fmt: skip
    with pytest.raises(InvalidEvent, match="field t in input t: expected") as caught:
        mapping.from_object({"t": raw})
    assert caught.value.reason == "schema"


def test_auto_magnitudes() -> None:
    assert epoch_seconds(2e10) == 2e10
    assert epoch_seconds(2e10 + 1) == pytest.approx((2e10 + 1) / 1e3)
    assert epoch_seconds(2e13 + 1) == pytest.approx((2e13 + 1) / 1e6)
    assert epoch_seconds(2e16 + 4) == pytest.approx((2e16 + 4) / 1e9)
    assert epoch_seconds(-1733300000123) == pytest.approx(-1733300000.123)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("", "empty segment"),
        ("a.", "empty segment"),
        (".", "empty segment"),
        ("a..b", "empty segment"),
        ("[0]", "empty segment"),
        ("a[0", "unbalanced brackets"),
        ("a]", "unbalanced brackets"),
        ("a[0]b", "unbalanced brackets"),
        ("a[[0]]", "unbalanced brackets"),
        ("a[-1]", "not a non-negative integer"),
        ("a[x]", "not a non-negative integer"),
        ("a[1.5]", "unbalanced brackets"),
        ("a[]", "not a non-negative integer"),
        ("a[١]", "not a non-negative integer"),
    ],
)
def test_bad_path_syntax(path: str, problem: str) -> None:
    with pytest.raises(ValueError, match=f"bad path .*{problem}"):
        parse_path(path)


def test_compile_errors_name_the_setting() -> None:
    with pytest.raises(InputError) as caught:
        _mapping(topic="x", kind="trade", entity="s", time="t", fields={"price": "a..b"})
    assert (caught.value.setting, caught.value.problem) == (
        "fields.price",
        "bad path 'a..b': empty segment",
    )


def test_compile_inputs_by_topic() -> None:
    settings = load_settings(
        inputs=[
            {"topic": "a", "kind": "metric", "entity": "h", "time": "t", "fields": {"values": "*"}},
            {"topic": "b", "kind": "trade", "entity": "s", "time": "t",
             "fields": {"price": "p", "size": "q"}},
        ]
    )  # fmt: skip
    compiled = compile_inputs(settings)
    assert list(compiled) == ["a", "b"] and compiled["b"].kind == "trade"
    assert compile_inputs(load_settings()) == {}


# oracle: path resolution against a brute-force enumeration of every leaf's path


def _document(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth == 0 or roll < 0.3:
        return rng.choice([1, 2.5, "x", None, True, "7"])
    if roll < 0.65:
        return [_document(rng, depth - 1) for _ in range(rng.randint(0, 3))]
    keys = rng.sample(["a", "b", "c", "d-e", "@f", "g h"], rng.randint(0, 4))
    return {key: _document(rng, depth - 1) for key in keys}


def _every_path(doc: Any, prefix: str = "") -> dict[str, Any]:
    found = {prefix: doc} if prefix else {}
    if isinstance(doc, dict):
        for key, value in doc.items():
            found.update(_every_path(value, f"{prefix}.{key}" if prefix else f".{key}"))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            if prefix:
                found.update(_every_path(value, f"{prefix}[{index}]"))
    return found


def test_path_resolution_oracle() -> None:
    rng = random.Random(14)
    checked = 0
    for _ in range(300):
        doc = {"root": _document(rng, 4)}
        truth = _every_path(doc)
        candidates = [*truth, ".root.zz", ".root[9]", ".root.a[0].b", ".root[0].a"]
        for path in candidates:
            mapping = _mapping(
                topic="o", kind="metric", entity="=e", time="=0", fields={"values": [path]}
            )
            expected = truth.get(path)
            numeric = isinstance(expected, int | float | str) and not isinstance(expected, bool)
            if numeric and expected != "x":
                event = mapping.from_object(json.loads(json.dumps(doc)))
                assert isinstance(event, Metric)
                assert list(event.values.values()) == [float(expected)], path
            else:
                with pytest.raises(InvalidEvent):
                    mapping.from_object(doc)
            checked += 1
    assert checked > 1000
