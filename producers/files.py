"""Read a recorded stream from CSV or JSON Lines into events, for ``alerting replay FILE``.

The format follows the suffix: ``.csv``, ``.jsonl`` or ``.ndjson``, each optionally
gzipped (``.csv.gz``). A :class:`ColumnMapping` says which columns hold the event
kind, the entity key and the time; the zero-config case is a CSV with a ``timestamp``
column and numeric columns (NAB style), replayed as metric events of one entity:

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as folder:
...     path = Path(folder, "cpu.csv")
...     _ = path.write_text("timestamp,value\\n2014-02-14 14:30:01,1.5\\n")
...     [event] = read_events(path, ColumnMapping(fixed_key="cpu"))
>>> event.entity, event.values, event.time.isoformat()
('cpu', {'value': 1.5}, '2014-02-14T14:30:01+00:00')

Rules:

- CSV rows become events of ``default_kind``, or of the kind named in the ``kind``
  column. Trade rows need ``price`` and ``size`` (``side`` and ``venue`` are optional);
  quote rows need ``bid`` and ``ask`` (``bid_size``, ``ask_size`` optional); the key
  column (or ``fixed_key``) becomes the symbol. Metric rows take their values from
  ``values``, or from every other column whose cell is a number (empty and NaN cells
  are treated as missing).
- JSON Lines objects that carry a ``kind`` field are decoded as events as they are;
  the mapping only renames the key and time fields when those are present. Objects
  without ``kind`` are mapped like CSV rows.
- Times are RFC 3339 / ISO 8601 strings (a time without a zone is UTC) or numbers since
  the epoch: seconds, or milliseconds above 2e10 (microseconds above 1e14, nanoseconds
  above 1e17). With the default time column ``timestamp``, a ``time`` column is used
  when there is no ``timestamp`` one.
- A row that cannot become a valid event is yielded as an :class:`InvalidRow` with its
  line number and a reason (the same reasons as dead letters, plus ``bad_row``,
  ``bad_time``, ``not_a_number``), so replay can count and skip it. Mapping errors
  visible from the CSV header or the first JSON object raise :class:`ValueError`
  naming the command-line flag that fixes them, before any row is read.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
from collections.abc import Collection, Generator, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Literal

from alerting.errors import InvalidEvent, ReasonedError
from alerting.events import Event, validate
from alerting.times import parse_time

if TYPE_CHECKING:
    from alerting.mapping import InputMapping, InputSpec

__all__ = [
    "ColumnMapping",
    "InvalidRow",
    "MappedLine",
    "check_file_sources",
    "count_rows",
    "read_events",
    "read_labelled_events",
    "read_mapped",
]

Kind = Literal["trade", "quote", "metric"]
_KINDS: tuple[Kind, ...] = ("trade", "quote", "metric")
_LABEL_COLUMNS = ("label", "is_anomaly")  # skipped from metric values unless mapped
_REQUIRED: dict[str, tuple[str, ...]] = {
    "trade": ("price", "size"),
    "quote": ("bid", "ask"),
    "metric": (),
}
_OPTIONAL: dict[str, tuple[str, ...]] = {
    "trade": ("side", "venue"),
    "quote": ("bid_size", "ask_size"),
    "metric": (),
}
_JSONL_PEEK_LINES = 1000  # lines searched for a first JSON object to check the mapping against


@dataclass(frozen=True)
class ColumnMapping:
    """How the columns (CSV) or fields (JSON Lines) of a file map onto events."""

    kind: str | None = None  #: column holding the event kind; None = every row is default_kind
    default_kind: Kind = "metric"
    key: str | None = None  #: column holding the entity key (--key-column)
    fixed_key: str | None = None  #: one entity key for the whole file (--key)
    time: str = "timestamp"  #: time column (--time-column)
    values: tuple[str, ...] | None = None  #: metric value columns (--value-columns)
    label: str | None = None  #: ground-truth column, never a value (default: label, is_anomaly)

    def __post_init__(self) -> None:
        if self.default_kind not in _KINDS:
            raise ValueError(
                f"default_kind must be one of trade, quote, metric (--kind), "
                f"got {self.default_kind!r}"
            )
        if self.key is not None and self.fixed_key is not None:
            raise ValueError("pass either --key NAME or --key-column COLUMN, not both")
        if self.fixed_key is not None and not self.fixed_key.strip():
            raise ValueError("fixed_key must not be empty (--key)")
        if not self.time:
            raise ValueError("time must name a column (--time-column)")
        if self.values is not None and not self.values:
            raise ValueError("values must name at least one column, or be None (--value-columns)")

    @property
    def label_columns(self) -> tuple[str, ...]:
        """Columns that hold ground truth and are never read as values."""
        return (self.label,) if self.label is not None else _LABEL_COLUMNS

    def time_columns(self) -> tuple[str, ...]:
        """Time columns tried in order: the default ``timestamp`` falls back to ``time``."""
        return (self.time, "time") if self.time == "timestamp" else (self.time,)


@dataclass(frozen=True)
class InvalidRow:
    """A row that could not become a valid event; replay counts and skips it."""

    line: int  #: 1-based line number in the file (first line of a multi-line CSV record)
    reason: str  #: short machine code: not_json, missing_field, bad_time, schema, ...
    detail: str  #: human explanation
    raw: str  #: the row as it appears in the file, without the line end


class _RowError(ReasonedError):
    """A row that cannot become an event: yielded as an :class:`InvalidRow`, never raised
    out of this module."""


def read_events(
    path: str | Path, mapping: ColumnMapping | None = None
) -> Iterator[Event | InvalidRow]:
    """Yield the events of a recorded stream, and an :class:`InvalidRow` per bad row.

    The header (CSV) or first object (JSON Lines) is checked against ``mapping`` now,
    so mapping errors raise :class:`ValueError` before the first row is yielded.
    """
    return _items(read_labelled_events(path, mapping))


def read_labelled_events(
    path: str | Path, mapping: ColumnMapping | None = None
) -> Iterator[tuple[Event | InvalidRow, object]]:
    """As :func:`read_events`, each item paired with its row's cell of ``mapping.label``.

    The cell is as read (a string in CSV, any JSON value in JSON Lines), None when the
    row has no such cell, is invalid, or the mapping names no label column; reading the
    truth with the events keeps the two aligned and reads the file once.
    """
    path = Path(path)
    mapping = mapping or ColumnMapping()
    fmt, gzipped = _format(path)
    if fmt == "csv":
        with _open_text(path, gzipped) as source:
            header = next(csv.reader(source), None)
        if header is None:
            return iter(())
        plan = _CsvPlan.from_header([name.strip() for name in header], mapping, path)
        return _read_csv(path, gzipped, plan)
    with _open_text(path, gzipped) as source:
        first = _first_object(source)
    if first is not None:
        _check_object(first, mapping, path)
    return _read_jsonl(path, gzipped, mapping)


def _items(rows: Iterator[tuple[Event | InvalidRow, object]]) -> Iterator[Event | InvalidRow]:
    try:
        for item, _ in rows:
            yield item
    finally:
        if isinstance(rows, Generator):  # closing a half-read file's reader closes the file
            rows.close()


# -- a declared input's JSON Lines ----------------------------------------------------------


@dataclass(frozen=True)
class MappedLine:
    """One line of a JSON Lines file of a declared input's shape."""

    line: int  #: 1-based line number
    raw: bytes  #: the line as it is, without its end (what the input's topic would carry)
    event: Event | InvalidRow  #: the line through the input's mapping
    label: object  #: the line's top-level ``label`` field (None: absent, or no label)


_RECORD_SOURCES = ("@key", "@timestamp", "@header:")


def check_file_sources(spec: InputSpec) -> None:
    """A :class:`ValueError` when ``spec`` reads a record's key, timestamp or headers: a
    line of a file has none, so such a mapping cannot read a file (rather than guess)."""
    sources: list[tuple[str, str]] = [("time", spec.time)]
    inner = re.findall(r"\{([^{}]*)\}", spec.entity)
    sources += [("entity", source) for source in (inner or [spec.entity])]
    for name, source in spec.fields.items():
        for one in [source] if isinstance(source, str) else source:
            sources.append((f"fields.{name}", one))
    for setting, source in sources:
        if source.startswith(_RECORD_SOURCES):
            raise ValueError(
                f"input {spec.topic} maps {setting} from {source}, which a line of a file "
                "does not have (no record key, timestamp or headers); a file needs a block "
                "that maps it from a field of the lines"
            )


def read_mapped(
    path: str | Path, mapping: InputMapping, label: str | None = None
) -> Iterator[MappedLine]:
    """The lines of a JSON Lines file (``.gz`` too) of a declared input's shape, each
    through ``mapping`` (:meth:`~alerting.mapping.InputMapping.from_object`, the rules of
    the live topic); a line it refuses is an :class:`InvalidRow` with the mapping's
    reason and detail. ``label`` names a top-level field holding the truth.

    Raises :class:`ValueError` for a file that is not JSON Lines.
    """
    path = Path(path)
    fmt, gzipped = _format(path)
    if fmt != "jsonl":
        raise ValueError(
            f"{path.name}: an [[inputs]] mapping (--input) reads JSON Lines files (.jsonl, "
            ".ndjson, .gz too), not CSV"
        )
    return _read_mapped(path, gzipped, mapping, label)


def _read_mapped(
    path: Path, gzipped: bool, mapping: InputMapping, label: str | None
) -> Iterator[MappedLine]:
    with _open_text(path, gzipped) as source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            text = line.rstrip("\r\n")
            raw = text.encode()
            try:
                value = json.loads(text)
            except ValueError as exc:
                yield MappedLine(number, raw, InvalidRow(number, "not_json", str(exc), text), None)
                continue
            cell = value.get(label) if label is not None and isinstance(value, dict) else None
            try:
                event: Event | InvalidRow = mapping.from_object(value)
            except InvalidEvent as exc:
                event = InvalidRow(number, exc.reason, exc.detail, text)
            yield MappedLine(number, raw, event, cell)


def count_rows(path: str | Path) -> int:
    """Number of data rows, for a progress total: lines, less the CSV header.

    Counts physical lines, so blank lines and multi-line CSV cells make it an upper bound.
    """
    path = Path(path)
    fmt, gzipped = _format(path)
    lines = 0
    last = b"\n"
    with gzip.open(path, "rb") if gzipped else path.open("rb") as source:
        while chunk := source.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    if fmt == "csv" and lines:
        lines -= 1
    return lines


# -- formats ------------------------------------------------------------------------------


def _format(path: Path) -> tuple[Literal["csv", "jsonl"], bool]:
    suffixes = [suffix.lower() for suffix in path.suffixes]
    gzipped = suffixes[-1:] == [".gz"]
    if gzipped:
        suffixes.pop()
    suffix = suffixes[-1] if suffixes else ""
    if suffix == ".csv":
        return "csv", gzipped
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl", gzipped
    raise ValueError(
        f"cannot tell the format of {path.name}: expected a .csv, .jsonl or .ndjson file "
        "(optionally .gz)"
    )


def _open_text(path: Path, gzipped: bool) -> IO[str]:
    # utf-8-sig drops a spreadsheet's byte-order mark; undecodable bytes become U+FFFD so
    # the row they are in turns into an InvalidRow instead of stopping the replay.
    if gzipped:
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace", newline="")
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


def _columns_hint(columns: Collection[str]) -> str:
    shown = ", ".join(list(columns)[:20])
    return f"columns: {shown}{', ...' if len(columns) > 20 else ''}"


# -- CSV ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CsvPlan:
    header: list[str]
    mapping: ColumnMapping
    time: str  # the time column actually used
    reserved: frozenset[str]  # columns that are never metric values

    @classmethod
    def from_header(cls, header: list[str], mapping: ColumnMapping, path: Path) -> _CsvPlan:
        columns = set(header)
        where = f"the header of {path.name}"
        hint = _columns_hint(header)
        if mapping.kind is not None and mapping.kind not in columns:
            raise ValueError(
                f"kind column {mapping.kind!r} is not in {where}; "
                f"pass --kind-column COLUMN ({hint})"
            )
        if mapping.key is not None and mapping.key not in columns:
            raise ValueError(
                f"key column {mapping.key!r} is not in {where}; "
                f"pass --key-column COLUMN or --key NAME ({hint})"
            )
        if mapping.key is None and mapping.fixed_key is None:
            raise ValueError(f"no entity key: pass --key NAME or --key-column COLUMN ({hint})")
        time = next((name for name in mapping.time_columns() if name in columns), None)
        if time is None:
            raise ValueError(
                f"time column {mapping.time!r} is not in {where}; "
                f"pass --time-column COLUMN ({hint})"
            )
        if mapping.label is not None and mapping.label not in columns:
            raise ValueError(f"label column {mapping.label!r} is not in {where} ({hint})")
        if mapping.values is not None:
            missing = [name for name in mapping.values if name not in columns]
            if missing:
                raise ValueError(
                    f"value columns {', '.join(missing)} are not in {where}; "
                    f"fix --value-columns ({hint})"
                )
        reserved = frozenset(
            name
            for name in (mapping.kind, mapping.key, time, *mapping.label_columns)
            if name is not None
        )
        if mapping.kind is None:
            kind = mapping.default_kind
            missing = [name for name in _REQUIRED[kind] if name not in columns]
            if missing:
                raise ValueError(
                    f"{kind} rows need columns {' and '.join(_REQUIRED[kind])}, but {where} "
                    f"lacks {', '.join(missing)}; pass --kind metric, or --kind-column "
                    f"COLUMN for mixed files ({hint})"
                )
            if kind == "metric" and mapping.values is None and not columns - reserved:
                raise ValueError(
                    f"{where} has no column left for metric values; "
                    f"pass --value-columns COLUMN,... ({hint})"
                )
        return cls(header, mapping, time, reserved)


def _read_csv(
    path: Path, gzipped: bool, plan: _CsvPlan
) -> Iterator[tuple[Event | InvalidRow, object]]:
    width = len(plan.header)
    label = plan.mapping.label
    with _open_text(path, gzipped) as source:
        taken: list[str] = []  # physical lines of the record being parsed

        def tap() -> Iterator[str]:
            for line in source:
                taken.append(line)
                yield line

        reader = csv.reader(tap())
        next(reader)  # the header, checked already
        consumed = len(taken)
        taken.clear()
        while True:
            problem = None
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:  # e.g. a cell over the size limit; the reader recovers
                row, problem = [], str(exc)
            line = consumed + 1
            consumed += len(taken)
            raw = "".join(taken).rstrip("\r\n")
            taken.clear()
            if problem is not None:
                yield InvalidRow(line, "bad_row", problem, raw), None
                continue
            if not row:
                continue  # blank line
            if len(row) != width:
                detail = f"expected {width} cells, got {len(row)}"
                yield InvalidRow(line, "bad_row", detail, raw), None
                continue
            cells = dict(zip(plan.header, row, strict=True))
            try:
                event = _build(cells, plan.mapping, plan.time, plan.reserved)
            except (_RowError, InvalidEvent) as exc:
                yield InvalidRow(line, exc.reason, exc.detail, raw), None
                continue
            yield event, (cells.get(label) if label is not None else None)


# -- JSON Lines ---------------------------------------------------------------------------


def _first_object(source: IO[str]) -> dict[str, object] | None:
    for number, line in enumerate(source, 1):
        if number > _JSONL_PEEK_LINES:
            break
        try:
            value = json.loads(line) if line.strip() else None
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _check_object(first: Mapping[str, object], mapping: ColumnMapping, path: Path) -> None:
    where = f"the first object of {path.name}"
    hint = _columns_hint(first)
    passthrough = _is_event(first, mapping)
    if mapping.kind is not None and mapping.kind not in first:
        raise ValueError(
            f"kind field {mapping.kind!r} is not in {where}; pass --kind-column FIELD ({hint})"
        )
    if mapping.key is not None and mapping.key not in first:
        raise ValueError(
            f"key field {mapping.key!r} is not in {where}; "
            f"pass --key-column FIELD or --key NAME ({hint})"
        )
    has_entity = passthrough and ("symbol" in first or "entity" in first)
    if mapping.key is None and mapping.fixed_key is None and not has_entity:
        raise ValueError(f"no entity key: pass --key NAME or --key-column COLUMN ({hint})")
    times = _event_time_columns(mapping) if passthrough else mapping.time_columns()
    if not any(name in first for name in times):
        raise ValueError(
            f"time field {mapping.time!r} is not in {where}; pass --time-column FIELD ({hint})"
        )


def _read_jsonl(
    path: Path, gzipped: bool, mapping: ColumnMapping
) -> Iterator[tuple[Event | InvalidRow, object]]:
    label = mapping.label
    reserved = frozenset(
        name
        for name in (mapping.kind, mapping.key, *mapping.time_columns(), *mapping.label_columns)
        if name is not None
    )
    with _open_text(path, gzipped) as source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            raw = line.rstrip("\r\n")
            try:
                value = json.loads(line)
            except ValueError as exc:
                yield InvalidRow(number, "not_json", str(exc), raw), None
                continue
            if not isinstance(value, dict):
                detail = f"expected an object, got {value!r:.60}"
                yield InvalidRow(number, "not_an_object", detail, raw), None
                continue
            cell = value.get(label) if label is not None else None  # before renames
            try:
                if _is_event(value, mapping):
                    event = _passthrough(value, mapping)
                else:
                    time = next((n for n in mapping.time_columns() if n in value), mapping.time)
                    event = _build(value, mapping, time, reserved)
            except (_RowError, InvalidEvent) as exc:
                yield InvalidRow(number, exc.reason, exc.detail, raw), None
                continue
            yield event, cell


def _is_event(value: Mapping[str, object], mapping: ColumnMapping) -> bool:
    """True for an object already in the events schema (it has a ``kind`` field)."""
    return "kind" in value and mapping.kind in (None, "kind")


def _event_time_columns(mapping: ColumnMapping) -> tuple[str, ...]:
    # An object in the events schema keeps its own ``time`` unless a column was named.
    if mapping.time == "timestamp":
        return ("time", "timestamp")
    return (mapping.time, "time")


def _passthrough(value: dict[str, object], mapping: ColumnMapping) -> Event:
    entity_field = "entity" if value.get("kind") == "metric" else "symbol"
    if mapping.key is not None:
        value[entity_field] = _key(value, mapping.key)
    elif mapping.fixed_key is not None and entity_field not in value:
        value[entity_field] = mapping.fixed_key
    time = next((name for name in _event_time_columns(mapping) if name in value), None)
    if time is None:
        raise _RowError("missing_field", f"no {mapping.time!r} field; pass --time-column FIELD")
    value["time"] = _time(value[time], time)
    return _validate(value)


# -- rows to events -----------------------------------------------------------------------


def _empty(cell: object) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def _number(cell: object) -> float | None:
    """The cell as a float, or None when it is not a number."""
    if isinstance(cell, bool):
        return None
    if isinstance(cell, int | float):
        return float(cell)
    if isinstance(cell, str):
        try:
            return float(cell)
        except ValueError:
            return None
    return None


def _key(cells: Mapping[str, object], column: str) -> str:
    cell = cells.get(column)
    if _empty(cell) or isinstance(cell, dict | list):
        raise _RowError("missing_field", f"key column {column!r} is empty")
    return str(cell).strip()


def _time(cell: object, column: str) -> datetime:
    if _empty(cell):
        raise _RowError("missing_field", f"time column {column!r} is empty")
    try:
        return parse_time(cell)
    except ValueError as exc:
        raise _RowError("bad_time", f"{column}: {exc}") from None


def _build(
    cells: Mapping[str, object], mapping: ColumnMapping, time: str, reserved: frozenset[str]
) -> Event:
    kind: str = mapping.default_kind
    if mapping.kind is not None:
        cell = cells.get(mapping.kind)
        if not _empty(cell):
            kind = str(cell).strip().lower()
            if kind not in _KINDS:
                raise _RowError(
                    "unknown_kind",
                    f"{mapping.kind}: {cell!r:.40} is not one of trade, quote, metric",
                )
    entity = _key(cells, mapping.key) if mapping.key is not None else mapping.fixed_key
    if time not in cells:
        raise _RowError("missing_field", f"no {time!r} field; pass --time-column FIELD")
    payload: dict[str, object] = {"kind": kind, "time": _time(cells[time], time)}
    if kind == "metric":
        payload["entity"] = entity
        payload["values"] = _values(cells, mapping, reserved)
    else:
        payload["symbol"] = entity
        for name in _REQUIRED[kind]:
            if not _empty(cells.get(name)):
                payload[name] = cells[name]
        for name in _OPTIONAL[kind]:
            cell = cells.get(name)
            if not _empty(cell):
                payload[name] = cell.strip() if isinstance(cell, str) else cell
        side = payload.get("side")
        if isinstance(side, str):
            payload["side"] = side.lower()
    return _validate(payload)


def _validate(payload: dict[str, object]) -> Event:
    # validating the row's dict directly is about twice as fast as a JSON round trip
    return validate(payload)


def _values(
    cells: Mapping[str, object], mapping: ColumnMapping, reserved: frozenset[str]
) -> dict[str, float]:
    values: dict[str, float] = {}
    if mapping.values is not None:
        for name in mapping.values:
            cell = cells.get(name)
            if _empty(cell):
                continue
            number = _number(cell)
            if number is None:
                raise _RowError("not_a_number", f"{name}: {cell!r:.40} is not a number")
            if math.isfinite(number):
                values[name] = number
    else:
        for name, cell in cells.items():
            if name in reserved:
                continue
            number = _number(cell)
            if number is not None and math.isfinite(number):
                values[name] = number
    if not values:
        raise _RowError("missing_field", "no numeric value in the row")
    return values
