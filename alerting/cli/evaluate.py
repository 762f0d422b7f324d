"""``alerting evaluate``: score detectors on a labelled stream (offline back-test, no broker)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alerting.cli.replay import add_column_arguments, add_input_argument, column_flags, file_input
from alerting.evaluation import PROFILES
from alerting.settings import Settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from alerting.backtest import EvaluatePlan, Recording


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="the recorded stream: CSV or JSONL (.gz too)")
    lab = p.add_argument_group("ground truth (one of)")
    lab.add_argument(
        "--labels",
        type=Path,
        help='synthetic labels (JSON lines) or a JSON object of windows {"entity": [[start, end]]}',
    )
    lab.add_argument(
        "--label-column",
        metavar="NAME",
        help="column of the data holding the truth (1/true/yes = anomalous event)",
    )
    what = p.add_argument_group("what to evaluate")
    what.add_argument(
        "--detectors",
        metavar="NAMES",
        help="comma-separated detectors, e.g. zscore,hst (default: the settings' detector)",
    )
    what.add_argument(
        "--config",
        dest="eval_configs",
        action="append",
        type=Path,
        metavar="FILE",
        help="TOML settings file; repeat to compare several (default: the global settings)",
    )
    what.add_argument(
        "--seed", type=int, help="seed of the detectors that take one (hst, loda; default theirs)"
    )
    score = p.add_argument_group("scoring and output")
    score.add_argument(
        "--window-slack",
        type=float,
        default=0.0,
        metavar="S",
        help="an alert up to S event-time seconds after a window's end still detects it "
        "(default 0)",
    )
    score.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="standard",
        help="NAB cost profile shown in tables (all three are in the results; default standard)",
    )
    score.add_argument("--compare", action="store_true", help="one side-by-side table of every run")
    score.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="write DIR/results.json, DIR/report.html and a PNG chart per entity",
    )
    score.add_argument(
        "--max-charts",
        type=int,
        default=20,
        metavar="N",
        help="chart at most N entities, those with the most windows first (default 20)",
    )
    add_column_arguments(p, "file columns (as alerting replay)")
    add_input_argument(p, "each line through its mapping, as the service maps the topic")
    p.add_argument("--no-progress", action="store_true", help="no progress on stderr")


def evaluate_plan(args: argparse.Namespace) -> EvaluatePlan:
    """The :func:`add_arguments` flags as plain values."""
    from dataclasses import asdict

    from alerting.backtest import EvaluatePlan

    return EvaluatePlan(
        data=args.data,
        labels=args.labels,
        label_column=args.label_column,
        detectors=args.detectors,
        configs=tuple(args.eval_configs or ()),
        seed=args.seed,
        window_slack=args.window_slack,
        profile=args.profile,
        compare=args.compare,
        output=args.output,
        max_charts=args.max_charts,
        columns=asdict(column_flags(args)),
        progress=not args.no_progress,
    )


def command(settings: Settings, args: argparse.Namespace) -> int:
    from alerting.backtest import evaluate
    from alerting.report import write_report
    from alerting.wiring import build_processor
    from producers.replay import LabelledFile, MappedFile

    plan = evaluate_plan(args)
    flags = column_flags(args)
    _, mapping = file_input(settings, args.input)
    open_data: Callable[[], Recording] = (
        (lambda: LabelledFile(plan.data, flags, plan.label_column))
        if mapping is None
        else (lambda: MappedFile(plan.data, mapping, plan.label_column))
    )
    done = evaluate(settings, plan, open_data, build_processor)  # offline: no broker
    if plan.output is not None:
        written = write_report(
            plan.output, done.doc, done.runs, done.windows, plan.profile, plan.max_charts
        )
        print(f"results in {plan.output / 'results.json'}, report in {written}", file=sys.stderr)
    return 0
