"""Detection quality of every registered detector, through ``alerting evaluate``.

Two data sets, each run through the service's own processor (``alerting evaluate``, no
broker), every detector with its default parameters and default threshold and the
settings' defaults for everything else:

- the synthetic market with the full anomaly catalogue (``alerting replay --synthetic
  --anomalies all --output``), for several seeds: windows of each anomaly type per entity;
- River's bundled ``Shuttle`` set (first 10 000 samples, nothing to download) as one
  entity of metric events, one per second, its label column the truth.

Prints one ``--compare`` table per data set (best per column marked) and a summary of
window-level F1 and the NAB-style score averaged over the seeds; every run's results log
lands under ``--output`` (default ``benchmarks/detection/results``). The README's table
comes from::

    .venv/bin/python benchmarks/detection/run.py

About 15 minutes on a 2-core machine (loda and hst dominate); ``--detectors`` and
``--seeds`` narrow it.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import sys
import time
from pathlib import Path

from alerting.cli import main as alerting
from alerting.detectors import REGISTRY


def synthetic(out: Path, seed: int, events: int, symbols: int) -> Path:
    data = out / f"synthetic-seed{seed}"
    if not (data / "labels.jsonl").is_file():
        code = alerting(
            [
                "--log-level=warning",
                "replay",
                "--synthetic",
                "--anomalies=all",
                f"--count={events}",
                f"--symbols={symbols}",
                f"--seed={seed}",
                "--anomaly-rate=0.001",
                f"--output={data}",
                "--no-progress",
            ]
        )
        if code != 0:
            sys.exit(f"replay --synthetic failed with status {code}")
    return data


def shuttle_csv(out: Path, samples: int = 10_000) -> Path:
    from river import datasets

    path = out / "shuttle.csv"
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        rows = list(datasets.Shuttle().take(samples))
        names = sorted(rows[0][0])
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["timestamp", *names, "label"])
            for i, (x, y) in enumerate(rows):
                writer.writerow([1_767_225_600 + i, *(x[name] for name in names), int(y)])
    return path


def evaluate(args: list[str], output: Path) -> dict[str, object]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = alerting(
            [
                "--log-level=warning",
                "evaluate",
                *args,
                "--compare",
                "--no-progress",
                f"--output={output}",
                "--max-charts=8",
            ]
        )
    print(buffer.getvalue(), flush=True)
    if code != 0:
        sys.exit(f"evaluate failed with status {code}")
    doc: dict[str, object] = json.loads((output / "results.json").read_text())
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectors", default=",".join(REGISTRY), help="comma-separated")
    parser.add_argument("--seeds", default="7,11,13", help="synthetic market seeds")
    parser.add_argument("--events", type=int, default=200_000, help="events per synthetic set")
    parser.add_argument("--symbols", type=int, default=8)
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    started = time.perf_counter()
    summary: dict[str, list[tuple[float, float]]] = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        data = synthetic(args.output, seed, args.events, args.symbols)
        print(f"## synthetic market, all anomaly types, {args.events} events, seed {seed}")
        doc = evaluate(
            [
                str(data / "events.jsonl"),
                f"--labels={data / 'labels.jsonl'}",
                f"--detectors={args.detectors}",
            ],
            args.output / f"eval-seed{seed}",
        )
        for run in doc["runs"]:  # type: ignore[attr-defined]
            overall = run["overall"]
            summary.setdefault(run["name"], []).append(
                (overall["window"]["f1"] or 0.0, overall["nab"]["standard"] or 0.0)
            )
    print("## River's Shuttle, first 10 000 samples, one entity")
    evaluate(
        [
            str(shuttle_csv(args.output)),
            "--label-column=label",
            "--key=shuttle",
            f"--detectors={args.detectors}",
        ],
        args.output / "eval-shuttle",
    )
    print("## synthetic market, mean over seeds")
    print(f"{'detector':14} {'window F1':>9} {'NAB':>6}")
    for name, rows in summary.items():
        f1 = sum(r[0] for r in rows) / len(rows)
        nab = sum(r[1] for r in rows) / len(rows)
        print(f"{name:14} {f1:9.3f} {nab:6.1f}")
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
