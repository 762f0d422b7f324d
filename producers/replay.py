"""``alerting replay``: publish a synthetic market or a recorded file to the events topic.

Events are keyed by entity and paced by event time: real time (``--speed 1``), a
factor (``--speed 10``), or as fast as possible (``--fast``). The Kafka record
timestamp is the publish time, so end-to-end latency measures the service, not the
age of the recording.

``--synthetic --output DIR`` writes the generated stream to ``DIR/events.jsonl`` (the
wire format, one event a line, which ``alerting replay DIR/events.jsonl`` reads back)
and its labels to ``DIR/labels.jsonl`` instead of publishing: no broker, no pacing.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from alerting.errors import ConfigError
from alerting.events import Event, encode
from alerting.settings import Settings

if TYPE_CHECKING:  # the CLI imports this module to build --help: keep it light
    from producers.files import ColumnMapping, InvalidRow
    from producers.synthetic import Label

log = logging.getLogger(__name__)

# for --help only; the catalogue itself lives in producers.synthetic (numpy: not imported here)
_ANOMALY_NAMES = (
    "price_spike", "size_burst", "spread_blowout", "level_shift", "volatility_burst",
    "flash_crash", "stale_feed", "fat_finger",
)  # fmt: skip


def add_replay_arguments(p: argparse.ArgumentParser) -> None:
    source = p.add_argument_group("what to replay")
    source.add_argument("file", nargs="?", type=Path, help="a CSV or JSONL (.gz too) recording")
    source.add_argument(
        "--synthetic",
        action="store_true",
        help="generate a seeded synthetic market with injected anomalies",
    )
    syn = p.add_argument_group("synthetic market")
    syn.add_argument("--symbols", type=int, default=5, help="number of symbols (default 5)")
    syn.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    syn.add_argument(
        "--count",
        type=int,
        default=10_000,
        help="events to generate; 0 = until stopped (default 10000)",
    )
    syn.add_argument(
        "--anomaly-rate",
        type=float,
        default=0.001,
        help="probability an event is an injected anomaly (default 0.001)",
    )
    syn.add_argument(
        "--anomalies",
        default="default",
        metavar="MIX",
        help="anomaly types to inject: 'all', 'default' (price_spike, size_burst, "
        "spread_blowout) or comma-separated NAME[:WEIGHT[:LOW-HIGH]], e.g. "
        "level_shift,flash_crash:2; types: " + ", ".join(_ANOMALY_NAMES),
    )
    syn.add_argument(
        "--intensity",
        type=float,
        default=1.0,
        help="multiplies the strength of every anomaly (default 1: the catalogue's ranges)",
    )
    syn.add_argument(
        "--style",
        choices=("realistic", "classic"),
        default="realistic",
        help="realistic (default): fat-tailed returns with volatility clusters, an intraday "
        "cycle, quote bursts, power-law sizes; classic: the light-tailed Gaussian walk",
    )
    syn.add_argument(
        "--events-per-second",
        type=float,
        default=200.0,
        help="event-time rate over all symbols (default 200)",
    )
    syn.add_argument(
        "--start-now",
        action="store_true",
        help="event times start now instead of the fixed 2026-01-05T14:30:00Z (live demos)",
    )
    syn.add_argument(
        "--labels", type=Path, help="write the injected anomalies (JSON lines) to this file"
    )
    syn.add_argument(
        "--backfill",
        type=int,
        default=0,
        metavar="N",
        help="publish the first N events at once, then pace the rest; with --start-now the "
        "stream starts N events' worth of event time before now, so the service starts with "
        "a recent history (the demo: its thresholds are calibrated before the live part)",
    )
    syn.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write the stream to DIR/events.jsonl and its labels to DIR/labels.jsonl "
        "instead of publishing (no broker needed)",
    )
    add_column_arguments(p, "file columns")
    pace = p.add_argument_group("pacing")
    pace.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="event-time speed factor: 1 = real time (default), 10 = 10x faster",
    )
    pace.add_argument("--fast", action="store_true", help="as fast as possible, no pacing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_column_arguments(p: argparse.ArgumentParser, title: str) -> None:
    """The flags mapping a recorded file's columns onto events (``replay FILE``, ``evaluate``).

    :func:`column_mapping` turns them into a :class:`~producers.files.ColumnMapping`.
    """
    cols = p.add_argument_group(title)
    cols.add_argument("--kind-column", help="column holding the event kind")
    cols.add_argument(
        "--kind",
        choices=["trade", "quote", "metric"],
        default="metric",
        help="event kind when there is no kind column (default metric)",
    )
    cols.add_argument("--key-column", help="column holding the entity key (symbol)")
    cols.add_argument("--key", help="fixed entity key for a single-series file")
    cols.add_argument(
        "--time-column",
        default="timestamp",
        help="column holding the event time (default timestamp)",
    )
    cols.add_argument(
        "--value-columns", help="comma-separated metric value columns (default: all numeric)"
    )


def column_mapping(args: argparse.Namespace, label: str | None = None) -> ColumnMapping:
    """The mapping the :func:`add_column_arguments` flags give, with ``label`` as the truth.

    Raises :class:`ValueError` naming the flag that fixes a bad combination.
    """
    from producers.files import ColumnMapping

    return ColumnMapping(
        kind=args.kind_column,
        default_kind=args.kind,
        key=args.key_column,
        fixed_key=args.key,
        time=args.time_column,
        values=tuple(args.value_columns.split(",")) if args.value_columns else None,
        label=label,
    )


def _start(args: argparse.Namespace) -> datetime | None:
    """Now (``--start-now``), less the backfill's event time; else the fixed default."""
    if not args.start_now:
        return None
    return datetime.now(UTC) - timedelta(seconds=args.backfill / args.events_per_second)


def _synthetic(args: argparse.Namespace, labels: list[Label]) -> Iterator[Event]:
    from producers.synthetic import SyntheticMarket, parse_anomalies

    try:
        market = SyntheticMarket(
            symbols=args.symbols,
            seed=args.seed,
            anomaly_rate=args.anomaly_rate,
            events_per_second=args.events_per_second,
            start=_start(args),
            anomalies=parse_anomalies(args.anomalies),
            intensity=args.intensity,
            style=args.style,
        )
    except ValueError as exc:  # checked now, before anything connects to Kafka
        hint = (
            " (--anomalies, --intensity)" if str(exc).startswith(("anomalies", "intensity")) else ""
        )
        raise ConfigError(f"replay --synthetic: {exc}{hint}") from None
    return _labelled(market.events(args.count or None), labels)


def _labelled(stream: Iterator[tuple[Event, Label | None]], labels: list[Label]) -> Iterator[Event]:
    for event, label in stream:
        if label is not None:
            labels.append(label)
        yield event


def _from_file(args: argparse.Namespace, skipped: list[InvalidRow]) -> Iterator[Event]:
    from producers.files import read_events

    try:
        mapping = column_mapping(args)
    except ValueError as exc:
        raise ConfigError(f"replay {args.file}: {exc}") from None
    try:
        rows = read_events(args.file, mapping)  # checks the header now, before any publishing
    except ValueError as exc:
        raise ConfigError(f"replay {args.file}: {exc}") from None
    return _valid_rows(rows, args.file, skipped)


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


def replay_command(settings: Settings, args: argparse.Namespace) -> int:
    from alerting.cli import StopSignals
    from alerting.progress import Progress
    from producers.files import count_rows
    from producers.pacing import Pacer
    from producers.synthetic import write_labels

    if bool(args.synthetic) == bool(args.file):
        raise ConfigError("replay needs exactly one source: a FILE or --synthetic")
    if args.labels is not None and not args.synthetic:
        raise ConfigError("replay --labels writes the synthetic market's labels: add --synthetic")
    if args.output is not None:
        if not args.synthetic:
            raise ConfigError("replay --output writes a synthetic market to files: add --synthetic")
        if not args.count:
            raise ConfigError("replay --output needs a finite stream: pass --count N (N > 0)")
        return _write_synthetic(args)
    if args.file is not None and not args.file.exists():
        raise ConfigError(f"replay: no such file {args.file}")
    if not args.fast and not args.speed > 0:
        raise ConfigError("replay --speed must be positive (or use --fast)")
    backfill = getattr(args, "backfill", 0)
    if backfill < 0:
        raise ConfigError(f"replay --backfill must be at least 0, got {backfill}")
    labels: list[Label] = []
    skipped: list[InvalidRow] = []
    if args.synthetic:
        events = _synthetic(args, labels)
        total = args.count or None
    else:
        events = _from_file(args, skipped)
        total = count_rows(args.file)
    from consumers.kafka_python import producer_for
    from producers.topics import ensure_topics

    if settings.topics.create:
        ensure_topics(settings)
    topic = settings.topics.events
    producer = producer_for(settings)
    pacer = Pacer(None if args.fast else args.speed)
    stop = StopSignals().install()
    sent = 0
    errors: list[BaseException] = []
    progress = Progress(total, f"replay → {topic}", enabled=not args.no_progress)
    try:
        with progress:
            for event in events:
                if stop.event.is_set():
                    break
                if sent >= backfill:  # the backfill goes at once, the rest is paced
                    pacer.wait_until_due(event.timestamp)
                producer.send(topic, key=event.entity.encode(), value=encode(event)).add_errback(
                    errors.append
                )
                sent += 1
                progress.update()
                if errors:
                    break
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
        if args.labels is not None and args.synthetic:
            write_labels(args.labels, sorted(labels, key=_by_index))
    if errors:
        print(f"alerting replay: publishing failed: {errors[0]}", file=sys.stderr)
        return 1
    extra = f", {len(skipped)} invalid rows skipped" if skipped else ""
    extra += f", {len(labels)} anomalies labelled in {args.labels}" if args.labels else ""
    log.info("replayed %d events to %s%s", sent, topic, extra)
    return 0


def _write_synthetic(args: argparse.Namespace) -> int:
    """``replay --synthetic --output DIR``: the stream and its labels to files, unpaced."""
    from alerting.progress import Progress
    from producers.synthetic import write_labels

    labels: list[Label] = []
    events = _synthetic(args, labels)  # validates the market before touching the disk
    folder: Path = args.output
    try:
        folder.mkdir(parents=True, exist_ok=True)
        events_path = folder / "events.jsonl"
        out = events_path.open("wb")
    except OSError as exc:
        raise ConfigError(f"replay --output {folder}: cannot write there: {exc}") from None
    written = 0
    progress = Progress(args.count, f"replay → {events_path}", enabled=not args.no_progress)
    with out, progress:  # no pacing, no broker; Ctrl+C leaves a partial file and no labels
        for event in events:
            out.write(encode(event))
            out.write(b"\n")
            written += 1
            progress.update()
    labels.sort(key=_by_index)
    write_labels(folder / "labels.jsonl", labels)
    if args.labels is not None:
        write_labels(args.labels, labels)
    log.info(
        "wrote %d events to %s and %d labels to %s",
        written,
        events_path,
        len(labels),
        folder / "labels.jsonl",
    )
    return 0
