"""Declared inputs: records of a foreign shape mapped onto the native events.

One ``[[inputs]]`` block (:class:`alerting.settings.InputSettings`) is compiled once, at
start, into an :class:`InputMapping`: its paths parsed into steps, its templates split,
its time unit fixed. Decoding a record is then a plain walk of the parsed JSON per field,
and the event is validated by the same models as a native one (:mod:`alerting.events`),
so every native rule holds (the entity's pattern, the ranges, crossed quotes).

A source is one of:

- a path: keys joined by dots, ``[i]`` for an array index (``data.s``, ``trades[0].p``);
  a key that contains a dot, a ``[`` or a ``]`` cannot be addressed; a path may begin
  with a dot, as in jq, and must when its first key begins with ``@`` or ``=``
  (``.@timestamp`` is the document's field, ``@timestamp`` the record's timestamp);
- ``@key`` (the record key, UTF-8), ``@timestamp`` (the record timestamp, ms; for
  ``time`` only) or ``@header:NAME`` (the last header of that name, UTF-8);
- ``=VALUE``, a constant;
- for ``entity``, a template such as ``{venue}:{sym}``, each ``{...}`` a path;
- for a metric's ``values``, a list of paths (each value named by its last key; absent
  ones are skipped, at least one must be there) or ``prefix.*``: every number directly
  under that object, named by its key (``*`` alone: the top level).

Numbers may be strings (``"43000.10"``); booleans are never numbers. A time is read by
its ``time_unit``; ``auto`` reads a number by magnitude (:func:`epoch_seconds`) and a
string as RFC 3339, or as a number when it holds one.

>>> from alerting.settings import InputSettings
>>> desk = compile_input(InputSettings(topic="desk.trades", kind="trade", entity="sym",
...     time="ts", fields={"price": "px", "size": "qty", "venue": "=XNAS"}))
>>> event = desk.decode(b'{"sym": "AAPL", "px": 191.2, "qty": 100, "ts": 1733300000123}')
>>> event.entity, event.price, event.venue, event.time.isoformat()
('AAPL', 191.2, 'XNAS', '2024-12-04T08:13:20.123000+00:00')
>>> desk.decode(b'{"sym": "AAPL", "qty": 100, "ts": 1733300000123}')
Traceback (most recent call last):
...
alerting.errors.InvalidEvent: missing_field: missing field px in input desk.trades
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import ValidationError
from pydantic_core import from_json

from alerting.errors import InvalidEvent
from alerting.events import Event, Metric, Quote, Trade
from alerting.times import parse_rfc3339

__all__ = [
    "KIND_FIELDS",
    "HasInputs",
    "InputError",
    "InputMapping",
    "InputSpec",
    "compile_input",
    "compile_inputs",
    "epoch_seconds",
    "parse_path",
]

Headers = Sequence[tuple[str, bytes | None]]
Kind = Literal["trade", "quote", "metric"]
Step = str | int

_MODELS: dict[str, type[Trade] | type[Quote] | type[Metric]] = {
    "trade": Trade,
    "quote": Quote,
    "metric": Metric,
}
#: the fields of each kind a mapping may set: (required, optional), from alerting.events
KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "trade": (("price", "size"), ("side", "venue")),
    "quote": (("bid", "ask"), ("bid_size", "ask_size")),
    "metric": (("values",), ()),
}
_NUMBERS = frozenset({"price", "size", "bid", "ask", "bid_size", "ask_size"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MISSING: Any = object()
_DIVISORS = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class InputSpec(Protocol):
    """What a mapping is compiled from: ``alerting.settings.InputSettings`` (which imports
    this module to check its blocks at start, hence a protocol, not an import)."""

    @property
    def topic(self) -> str: ...
    @property
    def kind(self) -> Kind: ...
    @property
    def entity(self) -> str: ...
    @property
    def time(self) -> str: ...
    @property
    def time_unit(self) -> str: ...
    @property
    def fields(self) -> Mapping[str, str | list[str]]: ...


class HasInputs(Protocol):
    """The part of ``alerting.settings.Settings`` that :func:`compile_inputs` reads."""

    @property
    def inputs(self) -> Sequence[InputSpec]: ...


class InputError(ValueError):
    """An ``[[inputs]]`` block that cannot work: ``setting`` is the key inside the block
    (``fields.price``), ``problem`` what is wrong with it."""

    def __init__(self, setting: str, problem: str) -> None:
        super().__init__(f"{setting}: {problem}")
        self.setting = setting
        self.problem = problem


def parse_path(text: str) -> tuple[Step, ...]:
    """The steps of a path: keys (str) and array indexes (int); ValueError for bad syntax.

    >>> parse_path("a.b[2].c"), parse_path("trades[0][1]"), parse_path(".@timestamp")
    (('a', 'b', 2, 'c'), ('trades', 0, 1), ('@timestamp',))
    >>> parse_path("px..x")
    Traceback (most recent call last):
    ...
    ValueError: bad path 'px..x': empty segment
    """
    steps: list[Step] = []
    for segment in (text[1:] if text.startswith(".") else text).split("."):
        key, bracket, rest = segment.partition("[")
        if not key and not (bracket and steps):
            raise ValueError(f"bad path {text!r}: empty segment")
        if "]" in key:
            raise ValueError(f"bad path {text!r}: unbalanced brackets")
        if key:
            steps.append(key)
        while bracket:
            index, closed, rest = rest.partition("]")
            if not closed or "[" in index:
                raise ValueError(f"bad path {text!r}: unbalanced brackets")
            if not index.isdigit() or not index.isascii():
                raise ValueError(
                    f"bad path {text!r}: index [{index}] is not a non-negative integer"
                )
            steps.append(int(index))
            if rest and not rest.startswith("["):
                raise ValueError(f"bad path {text!r}: unbalanced brackets")
            bracket, rest = ("[", rest[1:]) if rest else ("", "")
    return tuple(steps)


def epoch_seconds(number: float, unit: str = "auto") -> float:
    """Seconds since the epoch of a number in ``unit``; ``auto`` by magnitude: above 2e10
    milliseconds, above 2e13 microseconds, above 2e16 nanoseconds (so every unit reads
    times up to the year 2603).

    >>> epoch_seconds(1733300000), epoch_seconds(1733300000123), epoch_seconds(1733300000, "ms")
    (1733300000.0, 1733300000.123, 1733300.0)
    """
    if unit == "auto":
        unit = _auto_unit(number)
    return number / _DIVISORS[unit]


def _auto_unit(number: float) -> str:
    magnitude = abs(number)
    if magnitude > 2e16:
        return "ns"
    if magnitude > 2e13:
        return "us"
    return "ms" if magnitude > 2e10 else "s"


def _walk(obj: Any, steps: tuple[Step, ...]) -> Any:
    for step in steps:
        if isinstance(step, str):
            if not isinstance(obj, dict):
                return _MISSING
            obj = obj.get(step, _MISSING)
            if obj is _MISSING:
                return _MISSING
        else:
            if not isinstance(obj, list) or step >= len(obj):
                return _MISSING
            obj = obj[step]
    return obj


# A getter reads one source from (object, key, timestamp_ms, headers): _MISSING when absent.
_Getter = Callable[[Any, "bytes | None", "int | None", Headers], Any]


def _utf8(raw: bytes | None) -> Any:
    if raw is None:
        return _MISSING
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw  # refused by the field's type check, which shows the bytes


def _getter(source: str, setting: str, allow_timestamp: bool = False) -> _Getter:
    if source.startswith("=") and len(source) > 1:
        constant = source[1:]
        return lambda obj, key, ts, headers: constant
    if source == "@key":
        return lambda obj, key, ts, headers: _utf8(key)
    if source == "@timestamp":
        if not allow_timestamp:
            raise InputError(setting, "@timestamp is only a source of the time")
        return lambda obj, key, ts, headers: _MISSING if ts is None else ts
    if source.startswith("@header:"):
        name = source[len("@header:") :]
        if not name:
            raise InputError(setting, "@header: needs a header name, as in @header:symbol")

        def header(obj: Any, key: bytes | None, ts: int | None, headers: Headers) -> Any:
            found: Any = _MISSING
            for hname, raw in headers:
                if hname == name:
                    found = _utf8(raw)
            return found

        return header
    if source.startswith("@"):
        raise InputError(setting, f"unknown source {source!r}: @key, @timestamp or @header:NAME")
    try:
        steps = parse_path(source)
    except ValueError as exc:
        raise InputError(setting, str(exc)) from None
    if len(steps) == 1 and type(steps[0]) is str:
        only = steps[0]
        return lambda obj, key, ts, headers: obj.get(only, _MISSING)
    if len(steps) == 2 and isinstance(steps[0], str) and isinstance(steps[1], str):
        outer, inner = steps

        def nested(obj: Any, key: bytes | None, ts: int | None, headers: Headers) -> Any:
            under = obj.get(outer)
            return under.get(inner, _MISSING) if type(under) is dict else _MISSING

        return nested
    return lambda obj, key, ts, headers: _walk(obj, steps)


def _show(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class InputMapping:
    """One ``[[inputs]]`` block compiled once at start: paths parsed, templates split."""

    topic: str
    kind: Kind

    def __init__(self, spec: InputSpec) -> None:
        self.topic = spec.topic
        self.kind = spec.kind
        self._model = _MODELS[spec.kind]
        # the model's own validator, as Model(**data) runs it, without the call's overhead
        self._validate = self._model.__pydantic_validator__.validate_python
        self._where = f"in input {spec.topic}"
        self._time_unit = spec.time_unit
        self._time_source = spec.time
        self._time = _getter(spec.time, "time", allow_timestamp=True)
        self._stamped = spec.time == "@timestamp"
        fixed = "ms" if self._stamped else spec.time_unit
        # a number in a fixed unit is converted in one step; "auto" and text take the slow path
        self._divisor = _DIVISORS.get(fixed, 0.0)
        self._auto = fixed == "auto"
        self._entity_source, self._entity = self._compile_entity(spec.entity)
        required, optional = KIND_FIELDS[spec.kind]
        for name in spec.fields:
            if name not in required and name not in optional:
                raise InputError(
                    f"fields.{name}",
                    f"unknown field for kind {spec.kind}; the fields are "
                    + ", ".join(required + optional),
                )
        self._entity_name = "entity" if spec.kind == "metric" else "symbol"
        self._constants: dict[str, str | float] = {}
        self._fields: list[tuple[str, str, str | None, _Getter, bool, bool]] = []
        self._values: list[tuple[str, str, _Getter]] = []
        self._prefix: tuple[str, _Getter] | None = None
        for name, source in spec.fields.items():
            setting = f"fields.{name}"
            if name == "values":
                self._compile_values(source)
                continue
            if not isinstance(source, str):
                raise InputError(setting, "a source is a string (a path, =VALUE, @key, ...)")
            number = name in _NUMBERS
            if source.startswith("=") and len(source) > 1:
                self._constants[name] = self._constant(setting, source[1:], number)
                continue
            getter = _getter(source, setting)
            steps = parse_path(source) if not source.startswith("@") else ()
            key = steps[0] if len(steps) == 1 and isinstance(steps[0], str) else None
            self._fields.append((name, source, key, getter, name in required, number))
        self._sources = {name: source for name, source, *_ in self._fields}
        self._sources.update({name: str(spec.fields[name]) for name in self._constants})
        for name in required:
            if name not in spec.fields:
                raise InputError(f"fields.{name}", f"required for kind {spec.kind}, not mapped")

    @staticmethod
    def _constant(setting: str, text: str, number: bool) -> str | float:
        if not number:
            return text
        try:
            value = float(text)
        except ValueError:
            raise InputError(setting, f"the constant {text!r} is not a number") from None
        if not math.isfinite(value):
            raise InputError(setting, f"the constant {text!r} is not a finite number")
        return value

    def _compile_entity(self, source: str) -> tuple[str, _Getter]:
        if "{" not in source and "}" not in source:
            return source, _getter(source, "entity")
        parts: list[str | tuple[str, _Getter]] = []
        at = 0
        for match in _PLACEHOLDER.finditer(source):
            parts.append(source[at : match.start()])
            inner = match.group(1)
            if not inner:
                raise InputError("entity", f"bad template {source!r}: empty {{}}")
            parts.append((inner, _getter(inner, "entity")))
            at = match.end()
        parts.append(source[at:])
        if any(isinstance(p, str) and ("{" in p or "}" in p) for p in parts):
            raise InputError("entity", f"bad template {source!r}: unbalanced braces")
        pieces = [p for p in parts if p != ""]

        def template(obj: Any, key: bytes | None, ts: int | None, headers: Headers) -> Any:
            out = []
            for piece in pieces:
                if isinstance(piece, str):
                    out.append(piece)
                    continue
                value = self._text(piece[1](obj, key, ts, headers), piece[0])
                out.append(value)
            return "".join(out)

        return source, template

    def _compile_values(self, source: str | list[str]) -> None:
        if isinstance(source, str):
            if source != "*" and not source.endswith(".*"):
                raise InputError(
                    "fields.values", "a list of paths, or a prefix such as 'metrics.*'"
                )
            prefix = source[:-2] if source != "*" else ""
            if prefix:
                self._prefix = (prefix, _getter(prefix, "fields.values"))
            else:
                self._prefix = ("*", lambda obj, key, ts, headers: obj)
            return
        if not source:
            raise InputError("fields.values", "an empty list: map at least one value")
        named: dict[str, str] = {}
        for path in source:
            getter = _getter(path, "fields.values")
            if path.startswith(("=", "@")):
                name = path.rsplit(":", 1)[-1].lstrip("=@")
            else:
                keys = [s for s in parse_path(path) if isinstance(s, str)]
                name = keys[-1] if keys else path
            if name in named:
                raise InputError(
                    "fields.values",
                    f"{named[name]!r} and {path!r} would both be named {name!r}",
                )
            named[name] = path
            self._values.append((name, path, getter))

    def _fail(self, reason: str, path: str, problem: str) -> InvalidEvent:
        return InvalidEvent(reason, f"field {path} {self._where}: {problem}")

    def _missing(self, path: str) -> InvalidEvent:
        return InvalidEvent("missing_field", f"missing field {path} {self._where}")

    def _text(self, value: Any, path: str) -> str:
        if value is _MISSING or value is None:
            raise self._missing(path)
        if isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        raise self._fail("schema", path, f"expected a string, got {_show(value)}")

    def _number(self, value: Any, path: str) -> float:
        kind = type(value)
        if kind is float or kind is int:
            return float(value)
        if kind is str:
            try:
                return float(value)
            except ValueError:
                pass
        raise self._fail("schema", path, f"expected a number, got {_show(value)}")

    def _moment(self, value: Any) -> datetime:
        kind = type(value)
        if kind is int or kind is float:
            divisor = self._divisor or (self._auto and _DIVISORS[_auto_unit(value)])
            if divisor:
                try:
                    return datetime.fromtimestamp(value / divisor, UTC)
                except (OverflowError, ValueError, OSError):
                    pass  # the slow path below says why
        path = self._time_source
        unit: str = "ms" if self._stamped else self._time_unit
        if kind is str and unit != "rfc3339":
            try:
                value = float(value) if "." in value or "e" in value.lower() else int(value)
                kind = type(value)
            except ValueError:
                if unit != "auto":
                    raise self._fail(
                        "schema", path, f"expected a number ({unit}), got {_show(value)}"
                    ) from None
                unit = "rfc3339"
        if unit == "rfc3339":
            if kind is not str:
                raise self._fail("schema", path, f"expected an RFC 3339 time, got {_show(value)}")
            try:
                return parse_rfc3339(value)
            except ValueError:
                raise self._fail(
                    "schema", path, f"expected an RFC 3339 time, got {_show(value)}"
                ) from None
        if kind is not int and kind is not float:
            raise self._fail("schema", path, f"expected a time, got {_show(value)}")
        if not math.isfinite(value):
            raise self._fail("not_finite", path, f"expected a time, got {value}")
        if unit == "auto":
            unit = _auto_unit(value)
        try:
            return datetime.fromtimestamp(epoch_seconds(value, unit), UTC)
        except (OverflowError, ValueError, OSError):
            raise self._fail(
                "out_of_range", path, f"{value} ({unit}) is out of the supported time range"
            ) from None

    def decode(
        self,
        value: bytes | None,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Headers = (),
    ) -> Event:
        """One record's value (JSON) → an alerting.events Event, or InvalidEvent."""
        if value is None:
            raise InvalidEvent("empty", f"the record has no value (tombstone) {self._where}")
        try:
            obj = from_json(value)
        except ValueError as exc:
            raise InvalidEvent("not_json", f"{exc} {self._where}") from None
        return self.from_object(obj, key, timestamp_ms, headers)

    def from_object(
        self,
        obj: Mapping[str, Any],
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Headers = (),
    ) -> Event:
        """An already-parsed JSON object (a JSONL line) → Event; same rules."""
        if not isinstance(obj, dict):
            raise InvalidEvent(
                "not_an_object", f"expected a JSON object, got {type(obj).__name__} {self._where}"
            )
        raw_time = self._time(obj, key, timestamp_ms, headers)
        if raw_time is _MISSING or raw_time is None:
            raise self._missing(self._time_source)
        entity = self._entity(obj, key, timestamp_ms, headers)
        data: dict[str, Any] = self._constants.copy()
        data[self._entity_name] = (
            entity if type(entity) is str else self._text(entity, self._entity_source)
        )
        data["time"] = self._moment(raw_time)
        for name, path, simple, getter, required, number in self._fields:
            found = (
                obj.get(simple, _MISSING)
                if simple is not None
                else getter(obj, key, timestamp_ms, headers)
            )
            kind = type(found)
            if kind is float or kind is (int if number else str):
                data[name] = found
            elif found is _MISSING or found is None:
                if required:
                    raise self._missing(path)
            elif number and kind is str:
                try:
                    data[name] = float(found)
                except ValueError:
                    raise self._fail(
                        "schema", path, f"expected a number, got {_show(found)}"
                    ) from None
            elif number:
                data[name] = self._number(found, path)
            else:
                raise self._fail("schema", path, f"expected a string, got {_show(found)}")
        if self._values or self._prefix is not None:
            data["values"] = self._metric_values(obj, key, timestamp_ms, headers)
        try:
            event: Event = self._validate(data)
        except ValidationError as exc:
            raise self._invalid(exc) from None
        return event

    def _metric_values(
        self, obj: Any, key: bytes | None, ts: int | None, headers: Headers
    ) -> dict[str, float]:
        values: dict[str, float] = {}
        if self._prefix is not None:
            path, getter = self._prefix
            under = getter(obj, key, ts, headers)
            if under is _MISSING or under is None:
                raise self._missing(path)
            if not isinstance(under, dict):
                raise self._fail("schema", path, f"expected an object, got {_show(under)}")
            for name, found in under.items():
                kind = type(found)
                if kind is float or kind is int:
                    values[name] = float(found)
                elif kind is str:
                    with contextlib.suppress(ValueError):
                        values[name] = float(found)
            if not values:
                raise InvalidEvent("missing_field", f"no numbers under {path} {self._where}")
            return values
        for name, path, getter in self._values:
            found = getter(obj, key, ts, headers)
            if found is not _MISSING and found is not None:
                values[name] = self._number(found, path)
        if not values:
            raise self._missing(self._values[0][1])
        return values

    def _invalid(self, exc: ValidationError) -> InvalidEvent:
        from alerting.events import _REASONS

        first = exc.errors(include_url=False)[0]
        reason = _REASONS.get(first["type"], "schema")
        loc = [str(part) for part in first["loc"]]
        name = loc[0] if loc else ""
        if name in ("symbol", "entity"):
            path = self._entity_source
        elif name == "time":
            path = self._time_source
        elif name == "values":
            path = "values" + (f".{loc[1]}" if len(loc) > 1 else "")
        else:
            path = self._sources.get(name, name or "value")
        got = first.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        return self._fail(reason, path, f"{first['msg']}{shown}")


def compile_input(spec: InputSpec) -> InputMapping:
    """The mapping of one ``[[inputs]]`` block; :class:`InputError` (a ValueError) naming
    the key in the block when it cannot work."""
    return InputMapping(spec)


def compile_inputs(settings: HasInputs) -> dict[str, InputMapping]:
    """Every ``[[inputs]]`` block compiled, by topic."""
    return {spec.topic: compile_input(spec) for spec in settings.inputs}
