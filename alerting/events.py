"""Input events on the wire: one JSON object per Kafka message, keyed by entity.

A ``kind`` field selects the schema; every event carries an event ``time`` (RFC 3339
string, or seconds since the epoch; a time without a zone is read as UTC).

Numbers are strict: on the wire (:func:`decode`) a price, size or metric value must be a
JSON number; a boolean (``true`` is not 1.0) or a string is refused (reason ``schema``).
Rows of recorded files (:func:`validate`) may still give numbers as strings, since CSV
cells are strings, but never booleans.

>>> event = decode(b'{"kind": "trade", "symbol": "AAPL", "price": 190.5, "size": 100,'
...                b' "side": "buy", "venue": "XNAS", "time": "2026-11-25T14:30:00Z"}')
>>> event.entity, event.kind, event.price
('AAPL', 'trade', 190.5)
>>> decode(b'{"kind": "trade", "symbol": "AAPL", "price": -1, "size": 1, "time": 0}')
Traceback (most recent call last):
...
alerting.errors.InvalidEvent: out_of_range: price: Input should be greater than 0 (got -1)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from alerting.errors import InvalidEvent

#: Prices and sizes above this are treated as corrupt input, not as market data.
ABSURD = 1e9

# strict: a JSON number (int or float) only, checked in pydantic-core at no extra cost
_Number = Annotated[float, Field(strict=True)]
_Price = Annotated[float, Field(strict=True, gt=0, lt=ABSURD)]
_Size = Annotated[float, Field(strict=True, ge=0, lt=ABSURD)]
# no control characters (C0, DEL, C1): an entity becomes a changelog key, an alert's
# subject and a log line, where a NUL, a carriage return or an escape sequence would lie
_Entity = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    time: datetime = Field(description="Event time: RFC 3339, or seconds since the epoch.")

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    @property
    def entity(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def timestamp(self) -> float:
        """Event time in seconds since the epoch."""
        return self.time.timestamp()


class Trade(_Event):
    """An executed trade."""

    kind: Literal["trade"] = "trade"
    symbol: _Entity
    price: _Price
    size: Annotated[float, Field(strict=True, gt=0, lt=ABSURD)]
    side: Literal["buy", "sell", "unknown"] = "unknown"
    venue: str | None = None

    @property
    def entity(self) -> str:
        return self.symbol


class Quote(_Event):
    """A top-of-book quote."""

    kind: Literal["quote"] = "quote"
    symbol: _Entity
    bid: _Price
    ask: _Price
    bid_size: _Size = 0.0
    ask_size: _Size = 0.0

    @model_validator(mode="after")
    def _not_crossed(self) -> Quote:
        if self.ask < self.bid:
            raise ValueError(f"crossed quote: ask {self.ask} is below bid {self.bid}")
        return self

    @property
    def entity(self) -> str:
        return self.symbol


class Metric(_Event):
    """One or more named values of any entity (a host, a queue, a strategy)."""

    kind: Literal["metric"] = "metric"
    entity_key: _Entity = Field(alias="entity")
    values: dict[str, _Number] = Field(min_length=1, max_length=64)

    model_config = ConfigDict(populate_by_name=True)

    @property
    def entity(self) -> str:
        return self.entity_key


Event = Trade | Quote | Metric
_ADAPTER: TypeAdapter[Event] = TypeAdapter(
    Annotated[Trade | Quote | Metric, Field(discriminator="kind")]
)

# pydantic error types → the low-cardinality reasons used in metrics and dead letters
_REASONS = {
    "json_invalid": "not_json",
    "json_type": "not_json",
    "dict_type": "not_an_object",
    "union_tag_not_found": "unknown_kind",
    "union_tag_invalid": "unknown_kind",
    "missing": "missing_field",
    "finite_number": "not_finite",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
}


def decode(value: bytes | str | None) -> Event:
    """Parse and validate one message value; raise :class:`InvalidEvent` with a reason."""
    if value is None:
        raise InvalidEvent("empty", "the record has no value (tombstone)")
    try:
        return _ADAPTER.validate_json(value)
    except ValidationError as exc:
        raise _invalid(exc) from None


#: the number fields of the schemas, besides a metric's values
_NUMBER_FIELDS = ("price", "size", "bid", "ask", "bid_size", "ask_size")


def validate(obj: object) -> Event:
    """Validate an already-parsed object (a dict from a file row); same errors as decode,
    except that numbers may be strings (CSV cells are), as pydantic's lax mode reads them."""
    if isinstance(obj, dict):
        _no_booleans(obj)
    try:
        return _ADAPTER.validate_python(obj, strict=False)
    except ValidationError as exc:
        raise _invalid(exc) from None


def _no_booleans(obj: dict[object, object]) -> None:
    """Refuse a boolean where a number is expected (lax mode would read True as 1.0)."""
    for name in _NUMBER_FIELDS:
        if type(obj.get(name)) is bool:
            raise InvalidEvent(
                "schema", f"{name}: Input should be a valid number (got {obj[name]})"
            )
    values = obj.get("values")
    if isinstance(values, dict):
        for name, value in values.items():
            if type(value) is bool:
                raise InvalidEvent(
                    "schema", f"values.{name}: Input should be a valid number (got {value})"
                )


def _invalid(exc: ValidationError) -> InvalidEvent:
    first = exc.errors(include_url=False)[0]
    reason = _REASONS.get(first["type"], "schema")
    where = ".".join(str(part) for part in first["loc"][1:] or first["loc"]) or "value"
    got = first.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    extra = f" and {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
    return InvalidEvent(reason, f"{where}: {first['msg']}{shown}{extra}")


def encode(event: Event) -> bytes:
    """Serialise an event to its wire form (the inverse of :func:`decode`)."""
    return event.model_dump_json(by_alias=True).encode()
