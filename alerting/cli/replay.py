"""``alerting replay``: publish a synthetic market or a recorded file to the events topic,
or (``--output``) write a synthetic one to files."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from alerting.errors import ConfigError
from alerting.settings import Settings
from alerting.wiring import StopSignals, kafka_cluster, select_input

if TYPE_CHECKING:
    from alerting.mapping import InputMapping
    from producers.replay import ColumnFlags, ReplayPlan

# for --help only; the catalogue itself lives in producers.synthetic (numpy: not imported here)
_ANOMALY_NAMES = (
    "price_spike", "size_burst", "spread_blowout", "level_shift", "volatility_burst",
    "flash_crash", "stale_feed", "fat_finger",
)  # fmt: skip


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    add_input_argument(
        p, "publish each line as it is to that input's topic, keyed and paced by its mapping"
    )
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

    :func:`column_flags` reads them back.
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


def add_input_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--input TOPIC``: read a JSON Lines file of a declared input's shape."""
    p.add_argument(
        "--input",
        metavar="TOPIC",
        help=f"the FILE is JSON Lines of the shape of this [[inputs]] block: {what} (the "
        "column flags do not apply)",
    )


def file_input(settings: Settings, topic: str | None) -> tuple[Settings, InputMapping | None]:
    """The settings and mapping of ``--input TOPIC`` for a file (:func:`select_input`; a
    mapping that reads a record's key, timestamp or headers is refused: lines have none).
    Without ``--input``, the settings as they are: a file is read by its column flags."""
    if topic is None:
        return settings, None
    from producers.files import check_file_sources

    derived, mapping = select_input(settings, topic)
    (spec,) = [spec for spec in settings.inputs if spec.topic == topic]
    try:
        check_file_sources(spec)
    except ValueError as exc:
        raise ConfigError(f"--input {topic}: {exc}") from None
    return derived, mapping


def column_flags(args: argparse.Namespace) -> ColumnFlags:
    """The :func:`add_column_arguments` flags as plain values."""
    from producers.replay import ColumnFlags

    return ColumnFlags(
        kind_column=args.kind_column,
        kind=args.kind,
        key_column=args.key_column,
        key=args.key,
        time_column=args.time_column,
        value_columns=args.value_columns,
    )


def replay_plan(args: argparse.Namespace) -> ReplayPlan:
    """The :func:`add_arguments` flags as plain values."""
    from producers.replay import ReplayPlan

    return ReplayPlan(
        file=args.file,
        synthetic=args.synthetic,
        symbols=args.symbols,
        seed=args.seed,
        count=args.count,
        anomaly_rate=args.anomaly_rate,
        anomalies=args.anomalies,
        intensity=args.intensity,
        style=args.style,
        events_per_second=args.events_per_second,
        start_now=args.start_now,
        labels=args.labels,
        backfill=args.backfill,
        output=args.output,
        columns=column_flags(args),
        speed=args.speed,
        fast=args.fast,
        progress=not args.no_progress,
    )


def _install_stop() -> threading.Event:
    return StopSignals().install().event


def command(settings: Settings, args: argparse.Namespace) -> int:
    from producers.replay import replay

    plan = replay_plan(args)
    if plan.output is not None:  # --output writes files: no broker to start
        return replay(settings, plan, _install_stop)
    settings, mapping = file_input(settings, args.input)  # the input's topic is the events'
    with kafka_cluster(settings) as s:
        return replay(s, plan, _install_stop, mapping)
