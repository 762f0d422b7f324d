"""``alerting replay``: publish a synthetic market or a recorded file to the events topic.

Events are keyed by entity and paced by event time: real time (``--speed 1``), a
factor (``--speed 10``), or as fast as possible (``--fast``). The Kafka record
timestamp is the publish time, so end-to-end latency measures the service, not the
age of the recording.

``--synthetic --output DIR`` writes the generated stream to ``DIR/events.jsonl`` (the
wire format, one event a line, which ``alerting replay DIR/events.jsonl`` reads back)
and its labels to ``DIR/labels.jsonl`` instead of publishing: no broker, no pacing.

``replay FILE --input TOPIC`` replays a JSON Lines recording of a declared input's own
shape: each line is published as it is to the input's topic, keyed by its mapped entity
and paced by its mapped event time, so that the service maps it exactly as it maps the
live records; lines the mapping refuses are skipped with their line number and reason,
as invalid rows are. :class:`MappedFile` reads such a file for ``evaluate --input``.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from alerting.errors import ConfigError
from alerting.events import Event, encode
from alerting.settings import Settings

if TYPE_CHECKING:
    from alerting.backtest import Skipped
    from alerting.evaluation import Window
    from alerting.mapping import InputMapping
    from producers.files import ColumnMapping, InvalidRow, Kind, MappedLine
    from producers.synthetic import Label

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ColumnFlags:
    """How a recorded file's columns map onto events, as the column flags give it
    (``replay FILE``, ``evaluate``); :meth:`mapping` checks the combination."""

    kind_column: str | None = None
    kind: Kind = "metric"
    key_column: str | None = None
    key: str | None = None
    time_column: str = "timestamp"
    #: comma-separated metric value columns; None: all numeric
    value_columns: str | None = None

    def mapping(self, label: str | None = None) -> ColumnMapping:
        """The :class:`~producers.files.ColumnMapping`, with ``label`` as the truth.

        Raises :class:`ValueError` naming the flag that fixes a bad combination.
        """
        from producers.files import ColumnMapping

        return ColumnMapping(
            kind=self.kind_column,
            default_kind=self.kind,
            key=self.key_column,
            fixed_key=self.key,
            time=self.time_column,
            values=tuple(self.value_columns.split(",")) if self.value_columns else None,
            label=label,
        )


@dataclass(frozen=True)
class ReplayPlan:
    """What to replay (a ``file`` or a ``synthetic`` market), how to pace it, where to."""

    file: Path | None = None
    synthetic: bool = False
    symbols: int = 5
    seed: int = 7
    #: events to generate; 0: until stopped
    count: int = 10_000
    anomaly_rate: float = 0.001
    anomalies: str = "default"
    intensity: float = 1.0
    style: Literal["realistic", "classic"] = "realistic"
    events_per_second: float = 200.0
    start_now: bool = False
    labels: Path | None = None
    #: events published at once before the pacing starts
    backfill: int = 0
    #: a folder to write the synthetic stream to instead of publishing it
    output: Path | None = None
    columns: ColumnFlags = field(default_factory=ColumnFlags)
    speed: float = 1.0
    fast: bool = False
    progress: bool = True


def _start(plan: ReplayPlan) -> datetime | None:
    """Now (``--start-now``), less the backfill's event time; else the fixed default."""
    if not plan.start_now:
        return None
    return datetime.now(UTC) - timedelta(seconds=plan.backfill / plan.events_per_second)


def _synthetic(plan: ReplayPlan, labels: list[Label]) -> Iterator[Event]:
    from producers.synthetic import SyntheticMarket, parse_anomalies

    try:
        market = SyntheticMarket(
            symbols=plan.symbols,
            seed=plan.seed,
            anomaly_rate=plan.anomaly_rate,
            events_per_second=plan.events_per_second,
            start=_start(plan),
            anomalies=parse_anomalies(plan.anomalies),
            intensity=plan.intensity,
            style=plan.style,
        )
    except ValueError as exc:  # checked now, before anything connects to Kafka
        hint = (
            " (--anomalies, --intensity)" if str(exc).startswith(("anomalies", "intensity")) else ""
        )
        raise ConfigError(f"replay --synthetic: {exc}{hint}") from None
    return _labelled(market.events(plan.count or None), labels)


def _labelled(stream: Iterator[tuple[Event, Label | None]], labels: list[Label]) -> Iterator[Event]:
    for event, label in stream:
        if label is not None:
            labels.append(label)
        yield event


def _from_file(file: Path, columns: ColumnFlags, skipped: list[InvalidRow]) -> Iterator[Event]:
    from producers.files import read_events

    try:
        mapping = columns.mapping()
    except ValueError as exc:
        raise ConfigError(f"replay {file}: {exc}") from None
    try:
        rows = read_events(file, mapping)  # checks the header now, before any publishing
    except ValueError as exc:
        raise ConfigError(f"replay {file}: {exc}") from None
    return _valid_rows(rows, file, skipped)


def _by_index(label: Label) -> tuple[int, str]:
    # by the window's first event: a stale feed's label comes with the event before its gap
    return label.index, label.entity


def _valid_rows(
    rows: Iterator[Event | InvalidRow], path: Path, skipped: list[InvalidRow]
) -> Iterator[Event]:
    from producers.files import InvalidRow

    for item in rows:
        if isinstance(item, InvalidRow):
            skipped.append(item)
            if len(skipped) <= 10:
                log.warning(
                    "%s line %d skipped (%s): %s", path, item.line, item.reason, item.detail
                )
            continue
        yield item


def _check_sources(plan: ReplayPlan) -> None:
    if bool(plan.synthetic) == bool(plan.file):
        raise ConfigError("replay needs exactly one source: a FILE or --synthetic")
    if plan.labels is not None and not plan.synthetic:
        raise ConfigError("replay --labels writes the synthetic market's labels: add --synthetic")


def _from_mapped(
    file: Path, mapping: InputMapping, skipped: list[InvalidRow]
) -> Iterator[tuple[Event, bytes]]:
    from producers.files import InvalidRow, read_mapped

    try:
        lines = read_mapped(file, mapping)
    except ValueError as exc:
        raise ConfigError(f"replay {file}: {exc}") from None
    for line in lines:
        if isinstance(line.event, InvalidRow):
            skipped.append(line.event)
            if len(skipped) <= 10:
                log.warning(
                    "%s line %d skipped (%s): %s",
                    file,
                    line.line,
                    line.event.reason,
                    line.event.detail,
                )
            continue
        yield line.event, line.raw


def _native(events: Iterator[Event]) -> Iterator[tuple[Event, bytes]]:
    for event in events:
        yield event, encode(event)


def replay(
    settings: Settings,
    plan: ReplayPlan,
    install_stop: Callable[[], threading.Event],
    mapping: InputMapping | None = None,
) -> int:
    """Publish the plan's events to the events topic, paced; with ``plan.output``, write
    them to files instead (:func:`write_synthetic`). With ``mapping`` (a declared input,
    whose topic ``settings.topics.events`` then is) the file's lines are published as
    they are, keyed and paced by what the mapping reads of them.

    ``install_stop`` is called once the producer is open: it installs the signal handlers
    and returns the event they set, which ends the replay.
    """
    from alerting.progress import Progress
    from producers.files import count_rows
    from producers.pacing import Pacer
    from producers.synthetic import write_labels

    _check_sources(plan)
    if plan.output is not None:
        return write_synthetic(plan)
    if plan.file is not None and not plan.file.exists():
        raise ConfigError(f"replay: no such file {plan.file}")
    if not plan.fast and not plan.speed > 0:
        raise ConfigError("replay --speed must be positive (or use --fast)")
    backfill = plan.backfill
    if backfill < 0:
        raise ConfigError(f"replay --backfill must be at least 0, got {backfill}")
    labels: list[Label] = []
    skipped: list[InvalidRow] = []
    events: Iterator[tuple[Event, bytes]]
    if plan.file is None:
        if mapping is not None:
            raise ConfigError("replay --input reads a FILE of the input's shape, not --synthetic")
        events = _native(_synthetic(plan, labels))
        total = plan.count or None
    elif mapping is not None:
        events = _from_mapped(plan.file, mapping, skipped)
        total = count_rows(plan.file)
    else:
        events = _native(_from_file(plan.file, plan.columns, skipped))
        total = count_rows(plan.file)
    from consumers.kafka_python import producer_for
    from producers.topics import ensure_topics

    if settings.topics.create:
        ensure_topics(settings)
    topic = settings.topics.events
    producer = producer_for(settings)
    pacer = Pacer(None if plan.fast else plan.speed)
    stop = install_stop()
    sent = 0
    errors: list[BaseException] = []
    progress = Progress(total, f"replay → {topic}", enabled=plan.progress)
    try:
        with progress:
            for event, value in events:
                if stop.is_set():
                    break
                if sent >= backfill:  # the backfill goes at once, the rest is paced
                    pacer.wait_until_due(event.timestamp)
                producer.send(topic, key=event.entity.encode(), value=value).add_errback(
                    errors.append
                )
                sent += 1
                progress.update()
                if errors:
                    break
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
        if plan.labels is not None and plan.synthetic:
            write_labels(plan.labels, sorted(labels, key=_by_index))
    if errors:
        print(f"alerting replay: publishing failed: {errors[0]}", file=sys.stderr)
        return 1
    extra = f", {len(skipped)} invalid rows skipped" if skipped else ""
    extra += f", {len(labels)} anomalies labelled in {plan.labels}" if plan.labels else ""
    log.info("replayed %d events to %s%s", sent, topic, extra)
    return 0


def write_synthetic(plan: ReplayPlan) -> int:
    """``replay --synthetic --output DIR``: the stream and its labels to files, unpaced."""
    from alerting.progress import Progress
    from producers.synthetic import write_labels

    folder = plan.output
    if folder is None:
        raise ValueError("write_synthetic needs plan.output, the folder to write to")
    _check_sources(plan)
    if not plan.synthetic:
        raise ConfigError("replay --output writes a synthetic market to files: add --synthetic")
    if not plan.count:
        raise ConfigError("replay --output needs a finite stream: pass --count N (N > 0)")

    labels: list[Label] = []
    events = _synthetic(plan, labels)  # validates the market before touching the disk
    try:
        folder.mkdir(parents=True, exist_ok=True)
        events_path = folder / "events.jsonl"
        out = events_path.open("wb")
    except OSError as exc:
        raise ConfigError(f"replay --output {folder}: cannot write there: {exc}") from None
    written = 0
    progress = Progress(plan.count, f"replay → {events_path}", enabled=plan.progress)
    with out, progress:  # no pacing, no broker; Ctrl+C leaves a partial file and no labels
        for event in events:
            out.write(encode(event))
            out.write(b"\n")
            written += 1
            progress.update()
    labels.sort(key=_by_index)
    write_labels(folder / "labels.jsonl", labels)
    if plan.labels is not None:
        write_labels(plan.labels, labels)
    log.info(
        "wrote %d events to %s and %d labels to %s",
        written,
        events_path,
        len(labels),
        folder / "labels.jsonl",
    )
    return 0


class LabelledFile:
    """A recorded file as ``alerting evaluate`` reads it (a
    :class:`~alerting.backtest.Recording`): its events as replay reads them, and the truth
    its label column holds.

    Raises :class:`ConfigError` naming the file when the column flags do not fit together.
    """

    def __init__(self, path: Path, columns: ColumnFlags, label_column: str | None = None) -> None:
        try:
            self.mapping = columns.mapping(label=label_column)
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        self.path = path

    def count(self) -> int:
        from producers.files import count_rows

        return count_rows(self.path)

    def events(self, skipped: list[Skipped]) -> Iterator[Event]:
        """The valid events; invalid rows are collected in ``skipped`` (as replay skips them)."""
        return valid_events(self.path, self.mapping, skipped)

    def windows_from_column(self) -> dict[str, list[Window]]:
        return windows_from_column(self.path, self.mapping)


class MappedFile:
    """A JSON Lines recording of a declared input's shape as ``alerting evaluate --input``
    reads it (a :class:`~alerting.backtest.Recording`): each line through the input's
    mapping, the truth in its top-level ``label_column`` field."""

    def __init__(self, path: Path, mapping: InputMapping, label_column: str | None = None) -> None:
        self.path = path
        self.mapping = mapping
        self.label = label_column
        try:
            read_mapped_lines(path, mapping, None)  # checks the format now
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def count(self) -> int:
        from producers.files import count_rows

        return count_rows(self.path)

    def events(self, skipped: list[Skipped]) -> Iterator[Event]:
        """The valid events; lines the mapping refuses are collected in ``skipped``."""
        from producers.files import InvalidRow

        for line in read_mapped_lines(self.path, self.mapping, None):
            if isinstance(line.event, InvalidRow):
                skipped.append(line.event)
                continue
            yield line.event

    def windows_from_column(self) -> dict[str, list[Window]]:
        """Windows from the label field: consecutive anomalous events of an entity form one."""
        from alerting.backtest import truthy
        from alerting.evaluation import windows_from_flags
        from producers.files import InvalidRow

        assert self.label is not None
        flags: dict[str, list[tuple[float, bool]]] = {}
        for line in read_mapped_lines(self.path, self.mapping, self.label):
            if isinstance(line.event, InvalidRow):
                continue
            where = f"{self.path.name} line {line.line}, field {self.label!r}"
            flags.setdefault(line.event.entity, []).append(
                (line.event.timestamp, truthy(line.label, where))
            )
        return windows_from_flags(flags)


def read_mapped_lines(path: Path, mapping: InputMapping, label: str | None) -> Iterator[MappedLine]:
    """:func:`producers.files.read_mapped`, imported when used."""
    from producers.files import read_mapped

    return read_mapped(path, mapping, label)


def _rows(path: Path, mapping: ColumnMapping) -> Iterator[tuple[Event | InvalidRow, object]]:
    """The file's rows, each with its label cell (:func:`producers.files.read_labelled_events`)."""
    from producers.files import read_labelled_events

    try:
        return read_labelled_events(path, mapping)  # checks the header now
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def valid_events(path: Path, mapping: ColumnMapping, skipped: list[Skipped]) -> Iterator[Event]:
    """The file's events; invalid rows are collected in ``skipped`` (as replay skips them)."""
    from producers.files import InvalidRow

    for item, _ in _rows(path, mapping):
        if isinstance(item, InvalidRow):
            skipped.append(item)
            continue
        yield item


def windows_from_column(path: Path, mapping: ColumnMapping) -> dict[str, list[Window]]:
    """Windows from the label column: consecutive anomalous events of an entity form one."""
    from alerting.backtest import truthy
    from alerting.evaluation import windows_from_flags
    from producers.files import InvalidRow

    assert mapping.label is not None
    flags: dict[str, list[tuple[float, bool]]] = {}
    for number, (item, cell) in enumerate(_rows(path, mapping), 1):
        if isinstance(item, InvalidRow):
            continue
        where = f"{path.name} row {number}, column {mapping.label!r}"
        flags.setdefault(item.entity, []).append((item.timestamp, truthy(cell, where)))
    return windows_from_flags(flags)
