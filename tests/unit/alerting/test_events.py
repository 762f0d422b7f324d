"""Decoding and validating input events: valid kinds, time forms, and every rejection reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alerting.errors import InvalidEvent
from alerting.events import ABSURD, Metric, Quote, Trade, decode, encode, validate


def _json(**fields: object) -> bytes:
    return json.dumps(fields).encode()


TRADE = {
    "kind": "trade",
    "symbol": "AAPL",
    "price": 190.5,
    "size": 100,
    "side": "buy",
    "venue": "XNAS",
    "time": "2026-11-25T14:30:00Z",
}
QUOTE = {
    "kind": "quote",
    "symbol": "AAPL",
    "bid": 190.4,
    "ask": 190.6,
    "bid_size": 300,
    "ask_size": 100,
    "time": "2026-11-25T14:30:00Z",
}
METRIC = {
    "kind": "metric",
    "entity": "host-1",
    "values": {"cpu": 0.5, "queue": 12},
    "time": "2026-11-25T14:30:00Z",
}


def test_valid_trade() -> None:
    event = decode(_json(**TRADE))
    assert isinstance(event, Trade)
    assert (event.entity, event.kind, event.price, event.size, event.side, event.venue) == (
        "AAPL",
        "trade",
        190.5,
        100.0,
        "buy",
        "XNAS",
    )
    assert event.time == datetime(2026, 11, 25, 14, 30, tzinfo=UTC)


def test_valid_quote() -> None:
    event = decode(_json(**QUOTE))
    assert isinstance(event, Quote)
    assert (event.entity, event.bid, event.ask, event.bid_size, event.ask_size) == (
        "AAPL",
        190.4,
        190.6,
        300.0,
        100.0,
    )


def test_locked_quote_is_valid() -> None:
    event = decode(_json(**{**QUOTE, "bid": 10.0, "ask": 10.0}))
    assert isinstance(event, Quote)


def test_valid_metric() -> None:
    event = decode(_json(**METRIC))
    assert isinstance(event, Metric)
    assert event.entity == "host-1"
    assert event.kind == "metric"
    assert event.values == {"cpu": 0.5, "queue": 12.0}


def test_decode_accepts_str_and_ignores_unknown_fields() -> None:
    event = decode(json.dumps({**TRADE, "extra": "ignored"}))
    assert isinstance(event, Trade)
    assert event.symbol == "AAPL"


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        ("2026-11-25T14:30:00Z", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
        ("2026-11-25T14:30:00.250Z", datetime(2026, 11, 25, 14, 30, 0, 250000, tzinfo=UTC)),
        ("2026-11-25T16:30:00+02:00", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
        (1_700_000_000, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        (1_700_000_000.5, datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        # no zone: read as UTC, not as the local time of the machine
        ("2026-11-25T14:30:00", datetime(2026, 11, 25, 14, 30, tzinfo=UTC)),
    ],
)
def test_event_time_forms(time: object, expected: datetime) -> None:
    event = decode(_json(**{**TRADE, "time": time}))
    assert event.time.tzinfo is not None
    assert event.time == expected
    assert event.timestamp == expected.timestamp()


def test_naive_time_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time as time_module

    if not hasattr(time_module, "tzset"):
        pytest.skip("tzset is not available on this platform")
    monkeypatch.setenv("TZ", "America/New_York")
    time_module.tzset()
    try:
        event = decode(_json(**{**TRADE, "time": "2026-01-01T00:00:00"}))
    finally:
        monkeypatch.undo()
        time_module.tzset()
    assert event.timestamp == datetime(2026, 1, 1, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "event",
    [
        Trade(
            symbol="AAPL",
            price=190.5,
            size=100,
            side="sell",
            venue="XNAS",
            time=datetime(2026, 1, 5, 9, 30, 0, 123456, tzinfo=UTC),
        ),
        Trade(symbol="X", price=1e-4, size=0.5, time=0),
        Quote(
            symbol="EURUSD",
            bid=1.0841,
            ask=1.0843,
            bid_size=1e6,
            ask_size=2e6,
            time=datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=-5))),
        ),
        Metric(entity="host-1", values={"cpu": 0.5, "neg": -3.25}, time=1_700_000_000.25),
    ],
)
def test_encode_decode_round_trip(event: Trade | Quote | Metric) -> None:
    wire = encode(event)
    assert isinstance(wire, bytes)
    back = decode(wire)
    assert back == event
    assert type(back) is type(event)
    assert back.timestamp == event.timestamp
    assert json.loads(wire)["kind"] == event.kind


def test_metric_is_encoded_with_its_wire_field_name() -> None:
    wire = json.loads(encode(Metric(entity="q", values={"depth": 3.0}, time=0)))
    assert wire["entity"] == "q"
    assert "entity_key" not in wire


def _reason(value: bytes | str | None) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as info:
        decode(value)
    return info.value


@pytest.mark.parametrize(
    ("value", "reason", "names"),
    [
        (b"not json at all", "not_json", None),
        (b"", "not_json", None),
        (b'{"kind": "trade", "symbol": "A"', "not_json", None),
        (b"[1, 2, 3]", "not_an_object", None),
        (b'"a string"', "not_an_object", None),
        (b"42", "not_an_object", None),
        (_json(**{**TRADE, "kind": "order"}), "unknown_kind", None),
        (_json(**{k: v for k, v in TRADE.items() if k != "symbol"}), "missing_field", "symbol"),
        (_json(**{k: v for k, v in TRADE.items() if k != "time"}), "missing_field", "time"),
        (_json(**{k: v for k, v in QUOTE.items() if k != "ask"}), "missing_field", "ask"),
        (_json(**{k: v for k, v in METRIC.items() if k != "values"}), "missing_field", "values"),
        # json.dumps writes the NaN / Infinity literals that Python's and pydantic's parsers read
        (_json(**{**TRADE, "price": float("nan")}), "not_finite", "price"),
        (_json(**{**TRADE, "size": float("inf")}), "not_finite", "size"),
        (_json(**{**QUOTE, "bid": float("-inf")}), "not_finite", "bid"),
        (_json(**{**METRIC, "values": {"cpu": float("nan")}}), "not_finite", "cpu"),
        (_json(**{**TRADE, "price": -1}), "out_of_range", "price"),
        (_json(**{**TRADE, "price": 0}), "out_of_range", "price"),
        (_json(**{**TRADE, "size": 0}), "out_of_range", "size"),
        (_json(**{**TRADE, "size": ABSURD}), "out_of_range", "size"),
        (_json(**{**TRADE, "price": 5e12}), "out_of_range", "price"),
        (_json(**{**QUOTE, "bid_size": -5}), "out_of_range", "bid_size"),
        (_json(**{**QUOTE, "bid": 191.0, "ask": 190.0}), "schema", "crossed"),
        (_json(**{**METRIC, "values": {}}), "schema", "values"),
        (_json(**{**TRADE, "time": "yesterday"}), "schema", "time"),
        (_json(**{**TRADE, "side": "short"}), "schema", "side"),
        (_json(**{**TRADE, "symbol": ""}), "schema", "symbol"),
    ],
)
def test_invalid_events_give_a_low_cardinality_reason(
    value: bytes, reason: str, names: str | None
) -> None:
    error = _reason(value)
    assert error.reason == reason, error
    if names is not None:
        assert names in error.detail
    assert str(error).startswith(f"{reason}: ")


def test_nan_and_infinity_literals_are_not_finite() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = '{"kind": "trade", "symbol": "A", "price": ' + literal + ', "size": 1, "time": 0}'
        error = _reason(raw.encode())
        assert error.reason == "not_finite", literal
        assert "price" in error.detail


def test_just_below_absurd_is_accepted() -> None:
    event = decode(_json(**{**TRADE, "size": ABSURD * 0.999}))
    assert isinstance(event, Trade)


def test_tombstone_is_empty() -> None:
    error = _reason(None)
    assert error.reason == "empty"
    assert error.detail


def test_detail_shows_the_offending_value() -> None:
    error = _reason(_json(**{**TRADE, "price": -7.5}))
    assert "price" in error.detail
    assert "-7.5" in error.detail


def test_several_errors_are_summarised_in_one_reason() -> None:
    error = _reason(_json(kind="trade", time=0))  # symbol, price and size all missing
    assert error.reason == "missing_field"
    assert "more" in error.detail


# -- strict numbers (issue 12, finding 9a) ------------------------------------------------

NUMBER_FIELDS = [
    (TRADE, "price"),
    (TRADE, "size"),
    (QUOTE, "bid"),
    (QUOTE, "ask"),
    (QUOTE, "bid_size"),
    (QUOTE, "ask_size"),
]


@pytest.mark.parametrize("boolean", [True, False])
@pytest.mark.parametrize(("base", "name"), NUMBER_FIELDS)
def test_a_boolean_is_not_a_number_on_the_wire(
    base: dict[str, object], name: str, boolean: bool
) -> None:
    error = _reason(_json(**{**base, name: boolean}))
    assert error.reason == "schema", error
    assert name in error.detail and "number" in error.detail


@pytest.mark.parametrize("boolean", [True, False])
def test_a_boolean_metric_value_is_refused(boolean: bool) -> None:
    error = _reason(_json(**{**METRIC, "values": {"cpu": 0.5, "up": boolean}}))
    assert error.reason == "schema"
    assert "up" in error.detail


@pytest.mark.parametrize(("base", "name"), NUMBER_FIELDS)
def test_a_numeric_string_is_not_a_number_on_the_wire(base: dict[str, object], name: str) -> None:
    error = _reason(_json(**{**base, name: "190.5"}))
    assert error.reason == "schema"
    assert name in error.detail
    error = _reason(_json(**{**METRIC, "values": {"cpu": "0.5"}}))
    assert (error.reason, "cpu" in error.detail) == ("schema", True)


def test_json_integers_are_still_numbers() -> None:
    event = decode(_json(**{**TRADE, "price": 190, "size": 100}))
    assert isinstance(event, Trade)
    assert (event.price, event.size) == (190.0, 100.0)
    assert type(event.price) is float
    metric = decode(_json(**{**METRIC, "values": {"queue": 12}}))
    assert isinstance(metric, Metric) and metric.values == {"queue": 12.0}


def test_file_rows_may_give_numbers_as_strings_but_not_booleans() -> None:
    # a CSV cell is a string: validate() (rows of recorded files) keeps reading "190.5"
    row = {**TRADE, "price": "190.5", "size": " 100 "}
    event = validate(row)
    assert isinstance(event, Trade) and (event.price, event.size) == (190.5, 100.0)
    metric = validate({**METRIC, "values": {"cpu": "0.5"}})
    assert isinstance(metric, Metric) and metric.values == {"cpu": 0.5}
    for obj, name in [
        ({**TRADE, "price": True}, "price"),
        ({**QUOTE, "ask_size": False}, "ask_size"),
        ({**METRIC, "values": {"cpu": True}}, "values.cpu"),
    ]:
        with pytest.raises(InvalidEvent) as info:
            validate(obj)
        assert info.value.reason == "schema"
        assert name in info.value.detail


def test_code_building_events_still_passes_ints_and_floats() -> None:
    trade = Trade(symbol="X", price=10, size=1, time=0)
    assert (trade.price, trade.size) == (10.0, 1.0)
    with pytest.raises(ValueError, match="valid number"):
        Trade(symbol="X", price=True, size=1, time=0)


@pytest.mark.parametrize(
    "number", [0, 1767623400, 2e10, 2e10 + 1, 5e10, 99_999_999_999, 253402300799, 1767623400000]
)
def test_a_number_since_the_epoch_is_the_same_time_on_the_wire_and_in_a_file(
    number: float,
) -> None:
    # a file's rows are replayed onto the wire: both must read seconds and milliseconds alike
    from alerting.events import decode
    from alerting.times import parse_time

    event = {"kind": "metric", "entity": "a", "values": {"x": 1.0}, "time": number}
    assert decode(json.dumps(event).encode()).time == parse_time(number)
