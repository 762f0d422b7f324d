"""What a topic's records look like, and the ``[[inputs]]`` block that would map them.

Pure: :class:`Inspector` is fed records (the raw value, or an already-parsed JSON
object, with the record's key, timestamp and headers when there are some) and
:meth:`Inspector.report` gives an :class:`Inspection`: every field found, flattened into
the paths of :mod:`alerting.mapping` (dots for keys, ``[i]`` for array indexes, down to
:data:`MAX_DEPTH` steps and the first :data:`MAX_INDEXES` items of an array), with its
JSON types, the share of records it appears in and a few samples. :func:`suggest` then
guesses the block, each line with the reason of its guess; :func:`render_table` and
:func:`render_block` write both as text (the block is TOML a person can paste).

The guesses decide, in this order:

- the time: a field named like a time (``ts``, ``time``, ``timestamp``, ``T``,
  ``@timestamp``…) holding epoch numbers (its unit by magnitude, as ``time_unit = "auto"``
  reads them) or RFC 3339 text; else any field holding epoch numbers; else the record's
  timestamp (``@timestamp``) when records have one;
- the kind: ``quote`` when a bid-like and an ask-like number are found, ``trade`` when a
  price-like and a size-like number are, else ``metric``;
- the entity: a string field named like one (``sym``, ``symbol``, ``s``, ``host``…)
  with fewer distinct values than records (any, in fewer than ten records); else the
  record key (``@key``); else any such low-cardinality string field;
- the fields: the kind's by name, among numbers (numbers in strings count) for the
  numeric ones; a metric's ``values`` are the remaining numbers, as ``prefix.*`` when
  they are all the numbers directly under one object.

What cannot be guessed is written as a commented line marked ``# fill in:``.

>>> inspector = Inspector()
>>> for i in range(4):
...     inspector.add(b'{"sym": "%s", "px": 1%d.5, "qty": 10, "ts": 173330000012%d}'
...                   % (b"AB"[i % 2 : i % 2 + 1], i, i))
>>> print(render_block(suggest(inspector.report(), "desk.trades")))
[[inputs]]
topic = "desk.trades"
kind = "trade"  # guess: a price-like number (px) and a size-like number (qty)
entity = "sym"  # guess: a string named like an entity, 2 distinct values in 4 records
time = "ts"  # guess: named like a time, epoch numbers
time_unit = "ms"  # guess: numbers around 1.7e+12 are milliseconds
[inputs.fields]
price = "px"  # guess: named like a price, a number
size = "qty"  # guess: named like a size, a number
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from alerting.times import parse_rfc3339

__all__ = [
    "MAX_DEPTH",
    "MAX_INDEXES",
    "FieldStats",
    "Inspection",
    "Inspector",
    "Line",
    "Suggestion",
    "path_text",
    "render_block",
    "render_table",
    "suggest",
]

#: how many steps deep paths are followed (deeper values are counted as their container)
MAX_DEPTH = 6
#: how many items of an array are followed, from the first
MAX_INDEXES = 3
#: distinct values remembered per field (beyond: "many")
MAX_DISTINCT = 200
SAMPLES = 3
CUT = 24

Step = str | int
Headers = Sequence[tuple[str, bytes | None]]

_TIME_NAMES = (
    "ts",
    "timestamp",
    "time",
    "t",
    "@timestamp",
    "event_time",
    "eventtime",
    "datetime",
    "date",
    "created_at",
    "time_ms",
    "ts_ms",
    "epoch",
)
_ENTITY_NAMES = (
    "sym",
    "symbol",
    "s",
    "ticker",
    "instrument",
    "instrument_id",
    "pair",
    "market",
    "product_id",
    "host",
    "hostname",
    "server",
    "service",
    "device",
    "sensor",
    "entity",
    "name",
    "id",
)
#: the kind's fields and the names they go by
_FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "price": ("price", "px", "p", "last", "last_price", "trade_price", "rate"),
    "size": ("size", "qty", "q", "quantity", "volume", "vol", "amount", "sz", "shares", "v"),
    "bid": ("bid", "bid_price", "bidpx", "bid_px", "bp", "b", "best_bid"),
    "ask": ("ask", "ask_price", "askpx", "ask_px", "ap", "a", "offer", "best_ask"),
    "bid_size": ("bid_size", "bidsize", "bid_qty", "bid_sz", "bs", "bq", "bid_volume"),
    "ask_size": ("ask_size", "asksize", "ask_qty", "ask_sz", "as", "aq", "ask_volume"),
    "side": ("side", "taker_side", "aggressor", "aggressor_side", "direction"),
    "venue": ("venue", "exchange", "exch", "mic", "x"),
}
_NUMERIC = ("price", "size", "bid", "ask", "bid_size", "ask_size")
_KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "trade": (("price", "size"), ("side", "venue")),
    "quote": (("bid", "ask"), ("bid_size", "ask_size")),
    "metric": (("values",), ()),
}
#: the share of a field's occurrences that must be of one sort for a guess to use it
_MOSTLY = 0.9
_EPOCH_MIN = 1e8  # 1973 in seconds: smaller numbers are no epoch times
#: below this many records, an entity-like name is enough (every value may be distinct)
_FEW = 10


def path_text(steps: Sequence[Step]) -> str | None:
    """The path of ``steps`` as :mod:`alerting.mapping` reads it, or None when one of its
    keys cannot be addressed (empty, or holding a dot or a bracket).

    >>> path_text(("data", "s")), path_text(("trades", 0, "p")), path_text(("@timestamp",))
    ('data.s', 'trades[0].p', '.@timestamp')
    >>> path_text(("a.b",)) is None
    True
    """
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
            continue
        if not step or any(c in step for c in ".[]"):
            return None
        text += f".{step}" if text or step[0] in "@=" else step
    return text


def _shown(steps: Sequence[Step]) -> str:
    """A path for the table, addressable or not."""
    text = ""
    for step in steps:
        if isinstance(step, int):
            text += f"[{step}]"
        elif not step or any(c in step for c in ".[]"):
            text += f"[{json.dumps(step)}]"
        else:
            text += f".{step}" if text or step[0] in "@=" else step
    return text


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: Any) -> float | None:
    """The number a value holds (a number, or a number in a string), None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or len(value) < 10 or not value[:4].isdigit():
        return False
    try:
        parse_rfc3339(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        return False
    return True


@dataclass
class FieldStats:
    """One path and what its values were."""

    steps: tuple[Step, ...]
    count: int = 0
    types: Counter[str] = field(default_factory=Counter)
    numbers: list[float] = field(default_factory=list)
    number_strings: int = 0
    times: int = 0
    samples: list[Any] = field(default_factory=list)
    distinct: set[str] = field(default_factory=set)
    many: bool = False

    @property
    def path(self) -> str | None:
        """The path a mapping can use, None when it cannot be addressed."""
        return path_text(self.steps)

    @property
    def shown(self) -> str:
        return _shown(self.steps)

    @property
    def name(self) -> str:
        """The last key (the field's name), or the path when it ends with an index."""
        last = self.steps[-1] if self.steps else ""
        return last if isinstance(last, str) else self.shown

    @property
    def numeric(self) -> bool:
        """Whether its values are mostly numbers, or numbers in strings."""
        return bool(self.count) and len(self.numbers) >= _MOSTLY * self.count

    @property
    def text(self) -> bool:
        """Whether its values are mostly strings that are neither numbers nor times."""
        words = self.types["string"] - self.number_strings - self.times
        return bool(self.count) and words >= _MOSTLY * self.count

    @property
    def timelike(self) -> bool:
        """Whether its values are mostly RFC 3339 text or epoch-sized numbers."""
        epochs = sum(1 for n in self.numbers if n >= _EPOCH_MIN)
        return bool(self.count) and max(epochs, self.times) >= _MOSTLY * self.count

    def add(self, value: Any) -> None:
        self.count += 1
        kind = _json_type(value)
        self.types[kind] += 1
        if kind in ("object", "array"):
            return
        number = _number(value)
        if number is not None:
            self.numbers.append(number)
            if kind == "string":
                self.number_strings += 1
        elif _is_rfc3339(value):
            self.times += 1
        if not self.many:
            token = json.dumps(value)
            if token not in self.distinct:
                if len(self.distinct) >= MAX_DISTINCT:
                    self.many = True
                else:
                    self.distinct.add(token)
                    if len(self.samples) < SAMPLES:
                        self.samples.append(value)


@dataclass
class Inspection:
    """What :class:`Inspector` saw."""

    records: int
    objects: int
    not_json: int
    not_object: int
    bad_samples: list[str]
    keyed: int
    key_samples: list[str]
    stamped: int
    headers: Counter[str]
    fields: list[FieldStats]

    def share(self, stats: FieldStats) -> float:
        """The share of the JSON objects that hold ``stats``'s path."""
        return stats.count / self.objects if self.objects else 0.0


class Inspector:
    """Gathers :class:`FieldStats` over records, one at a time."""

    def __init__(self) -> None:
        self._fields: dict[tuple[Step, ...], FieldStats] = {}
        self._records = self._objects = self._not_json = self._not_object = 0
        self._bad: list[str] = []
        self._keyed = self._stamped = 0
        self._keys: list[str] = []
        self._headers: Counter[str] = Counter()

    def add(
        self,
        value: bytes | str | None,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Headers = (),
    ) -> None:
        """One record's raw value (JSON, or not: then counted and sampled)."""
        try:
            obj = json.loads(value) if value is not None else None
        except ValueError:
            obj = _NOT_JSON
        if obj is _NOT_JSON or value is None:
            self._note(key, timestamp_ms, headers)
            self._not_json += 1
            raw = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if len(self._bad) < SAMPLES:
                self._bad.append(_cut("(no value)" if raw is None else raw, 60))
            return
        self.add_object(obj, key, timestamp_ms, headers)

    def add_object(
        self,
        obj: Any,
        key: bytes | None = None,
        timestamp_ms: int | None = None,
        headers: Headers = (),
    ) -> None:
        """One record's parsed JSON value (a JSONL line's); not an object: counted."""
        self._note(key, timestamp_ms, headers)
        if not isinstance(obj, dict):
            self._not_object += 1
            if len(self._bad) < SAMPLES:
                self._bad.append(_cut(json.dumps(obj), 60))
            return
        self._objects += 1
        seen: dict[tuple[Step, ...], Any] = {}
        _flatten(obj, (), seen)
        for steps, value in seen.items():
            stats = self._fields.get(steps)
            if stats is None:
                stats = self._fields[steps] = FieldStats(steps)
            stats.add(value)

    def _note(self, key: bytes | None, timestamp_ms: int | None, headers: Headers) -> None:
        self._records += 1
        if key is not None:
            self._keyed += 1
            shown = _cut(key.decode("utf-8", "replace"), CUT)
            if len(self._keys) < SAMPLES and shown not in self._keys:
                self._keys.append(shown)
        if timestamp_ms is not None:
            self._stamped += 1
        for name, _ in headers:
            self._headers[name] += 1

    def report(self) -> Inspection:
        return Inspection(
            records=self._records,
            objects=self._objects,
            not_json=self._not_json,
            not_object=self._not_object,
            bad_samples=list(self._bad),
            keyed=self._keyed,
            key_samples=list(self._keys),
            stamped=self._stamped,
            headers=Counter(self._headers),
            fields=list(self._fields.values()),
        )


_NOT_JSON: Any = object()


def _flatten(value: Any, steps: tuple[Step, ...], into: dict[tuple[Step, ...], Any]) -> None:
    if steps:
        into[steps] = value
    if len(steps) >= MAX_DEPTH:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, (*steps, str(k)), into)
    elif isinstance(value, list):
        for i, v in enumerate(value[:MAX_INDEXES]):
            _flatten(v, (*steps, i), into)


@dataclass(frozen=True)
class Line:
    """One line of the block: ``key = value`` with why it was guessed, or a line to fill
    in (``value`` None) with what belongs there."""

    key: str
    value: str | list[str] | None
    why: str = ""


@dataclass
class Suggestion:
    """The guessed ``[[inputs]]`` block: its top lines, then its ``[inputs.fields]``."""

    top: list[Line]
    fields: list[Line]


def _unit(numbers: Sequence[float]) -> tuple[str, str]:
    middle = sorted(abs(n) for n in numbers)[len(numbers) // 2]
    for limit, unit, name in (
        (2e16, "ns", "nanoseconds"),
        (2e13, "us", "microseconds"),
        (2e10, "ms", "milliseconds"),
    ):
        if middle > limit:
            return unit, f"numbers around {middle:.2g} are {name}"
    return "s", f"numbers around {middle:.2g} are seconds"


def _time(inspection: Inspection, usable: list[FieldStats]) -> tuple[Line, Line | None, str]:
    """The time and time_unit lines, and the path used (to keep it out of the fields)."""
    timelike = [f for f in usable if f.timelike]
    named = [f for f in timelike if f.name.lower() in _TIME_NAMES]
    named.sort(key=lambda f: _TIME_NAMES.index(f.name.lower()))
    for found, how in ((named, "named like a time"), (timelike, "not named like a time")):
        if found:
            best = found[0]
            path = best.path or ""
            if best.times >= len(best.numbers):
                return (
                    Line("time", path, f"{how}, RFC 3339 text"),
                    Line("time_unit", "rfc3339", "the values are RFC 3339 text"),
                    path,
                )
            unit, why = _unit(best.numbers)
            return Line("time", path, f"{how}, epoch numbers"), Line("time_unit", unit, why), path
    if inspection.stamped:
        return Line("time", "@timestamp", "no time field found: the record timestamp"), None, ""
    return (
        Line("time", None, "a field path of the event time (or @timestamp on a topic)"),
        Line("time_unit", "auto", "auto reads numbers by magnitude and text as RFC 3339"),
        "",
    )


def _entity(inspection: Inspection, usable: list[FieldStats]) -> tuple[Line, str]:
    def low(f: FieldStats) -> bool:
        return f.text and not f.many and len(f.distinct) < f.count

    def named_like(f: FieldStats) -> bool:
        few = f.text and f.count < _FEW
        return f.name.lower() in _ENTITY_NAMES and (few or low(f))

    named = [f for f in usable if named_like(f)]
    named.sort(key=lambda f: (-inspection.share(f), _ENTITY_NAMES.index(f.name.lower())))
    if named:
        best = named[0]
        why = (
            f"a string named like an entity, {len(best.distinct)} distinct values "
            f"in {best.count} records"
        )
        return Line("entity", best.path, why), best.path or ""
    if inspection.keyed:
        return Line("entity", "@key", "no entity-like field: the record key"), ""
    others = [f for f in usable if low(f) and len(f.distinct) > 1]
    others.sort(key=lambda f: (-inspection.share(f), len(f.distinct)))
    if others:
        best = others[0]
        why = f"a string with {len(best.distinct)} distinct values in {best.count} records"
        return Line("entity", best.path, why), best.path or ""
    return Line("entity", None, "a field path, @key, or a template such as {venue}:{sym}"), ""


def _by_name(name: str, candidates: list[FieldStats], taken: set[str]) -> FieldStats | None:
    names = _FIELD_NAMES[name]
    found = [f for f in candidates if f.name.lower() in names and f.path not in taken]
    found.sort(key=lambda f: (names.index(f.name.lower()), -f.count, len(f.steps)))
    return found[0] if found else None


def suggest(inspection: Inspection, topic: str, topic_why: str = "") -> Suggestion:
    """The ``[[inputs]]`` block guessed from ``inspection`` for ``topic``."""
    usable = [
        f
        for f in inspection.fields
        if f.path is not None and not f.types["object"] and not f.types["array"]
    ]
    time_line, unit_line, time_path = _time(inspection, usable)
    entity_line, entity_path = _entity(inspection, usable)
    taken = {time_path, entity_path}
    numbers = [f for f in usable if f.numeric and f.path not in taken]
    found: dict[str, FieldStats] = {}
    for name in _FIELD_NAMES:
        pool = numbers if name in _NUMERIC else [f for f in usable if f.text]
        stats = _by_name(name, pool, taken | {s.path or "" for s in found.values()})
        if stats is not None:
            found[name] = stats
    if "bid" in found and "ask" in found:
        kind, kind_why = "quote", f"a bid-like ({found['bid'].path}) and an ask-like number"
        kind_why += f" ({found['ask'].path})"
    elif "price" in found and "size" in found:
        kind = "trade"
        kind_why = (
            f"a price-like number ({found['price'].path}) and a size-like number "
            f"({found['size'].path})"
        )
    else:
        kind, kind_why = "metric", "no price and size, nor bid and ask: numbers as values"
    required, optional = _KIND_FIELDS[kind]
    lines: list[Line] = []
    if kind == "metric":
        lines.append(_values(numbers))
    else:
        for name in required + optional:
            stats = found.get(name)
            if stats is not None:
                sort = "a number" if name in _NUMERIC else "a string"
                lines.append(Line(name, stats.path, f"named like a {name}, {sort}"))
            elif name in required:
                lines.append(Line(name, None, f"the path of the {name} (a number)"))
    top = [
        Line("topic", topic, topic_why),
        Line("kind", kind, kind_why),
        entity_line,
        time_line,
    ]
    if unit_line is not None:
        top.append(unit_line)
    return Suggestion(top, lines)


def _values(numbers: list[FieldStats]) -> Line:
    if not numbers:
        return Line("values", None, 'the numbers\' paths, as ["a.b", "c"], or "prefix.*"')
    parents = {f.steps[:-1] for f in numbers}
    keyed = all(isinstance(f.steps[-1], str) for f in numbers)
    if len(parents) == 1 and len(numbers) > 1 and keyed:
        parent = next(iter(parents))
        if parent and all(isinstance(s, str) for s in parent):
            prefix = path_text(parent)
            if prefix is not None:
                return Line(
                    "values",
                    f"{prefix}.*",
                    f"the {len(numbers)} numbers are all under {prefix}",
                )
    paths = [f.path or "" for f in numbers]
    return Line("values", paths, f"the {len(paths)} numeric fields")


def _toml(value: str | list[str]) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())


def _rendered(line: Line) -> str:
    if line.value is None:
        return f'# {line.key} = "..."  # fill in: {_comment(line.why)}'
    text = f"{line.key} = {_toml(line.value)}"
    return f"{text}  # guess: {_comment(line.why)}" if line.why else text


def render_block(suggestion: Suggestion) -> str:
    """The block as TOML: guessed lines with ``# guess:``, the rest ``# fill in:``."""
    out = ["[[inputs]]", *(_rendered(line) for line in suggestion.top), "[inputs.fields]"]
    out += [_rendered(line) for line in suggestion.fields]
    return "\n".join(out)


def _cut(text: str, width: int = CUT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _row(cells: Iterable[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def render_table(inspection: Inspection) -> str:
    """The fields found: path, JSON types, share of records, samples (long values cut);
    after a line that says how many records were read and what else they had."""
    head = f"{inspection.records} records: {inspection.objects} JSON objects"
    if inspection.not_json:
        head += f", {inspection.not_json} not JSON"
    if inspection.not_object:
        head += f", {inspection.not_object} JSON but not objects"
    lines = [head]
    if inspection.bad_samples:
        lines.append("  not JSON objects, e.g.: " + " | ".join(inspection.bad_samples))
    if inspection.keyed:
        lines.append(
            f"  keys: {inspection.keyed} of {inspection.records} records, e.g. "
            + ", ".join(inspection.key_samples)
        )
    if inspection.headers:
        lines.append(
            "  headers: " + ", ".join(f"{n} ({c})" for n, c in inspection.headers.most_common())
        )
    if not inspection.fields:
        return "\n".join(lines)
    rows = [("path", "types", "share", "samples")]
    for f in inspection.fields:
        types = ", ".join(t for t, _ in f.types.most_common())
        if f.number_strings:
            types += " (numbers in text)"
        path = f.shown if f.path is not None else f"{f.shown} (cannot be addressed)"
        samples = ", ".join(_cut(json.dumps(s, ensure_ascii=False)) for s in f.samples)
        if f.many or len(f.distinct) > len(f.samples):
            samples += f", … ({'many' if f.many else len(f.distinct)} distinct)"
        rows.append((path, types, f"{100 * inspection.share(f):.0f} %", samples))
    widths = [max(len(r[i]) for r in rows) for i in range(3)] + [0]
    lines.append("")
    lines += [_row(r, widths) for r in rows]
    return "\n".join(lines)
