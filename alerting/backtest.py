"""``alerting evaluate``: replay a labelled stream through the service's processor and score it.

The events come in file order, read as ``alerting replay FILE`` reads them, with the same
column flags (the CLI hands :func:`evaluate` a :class:`Recording`, ``producers.replay``'s
``LabelledFile``); they are decided on event time, as fast as possible, by the processor
:func:`alerting.wiring.build_processor` builds from the settings (handed in by the
command, so that this module imports no factory), once per detector (and
settings file). No broker is involved. The figures come from :mod:`alerting.evaluation`;
the report, which the CLI writes after :func:`evaluate`, from :mod:`alerting.report`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

from alerting import __version__
from alerting.alerts import DRIFT, FIRING, RESOLVED
from alerting.errors import ConfigError, LabelError
from alerting.evaluation import (
    PROFILES,
    Figures,
    Window,
    combine,
    load_labels,
    score_entity,
)
from alerting.settings import Settings, load_settings

if TYPE_CHECKING:
    from alerting.events import Event
    from alerting.processor import Processor

log = logging.getLogger(__name__)

RESULTS_FORMAT = 1
_TRUE = frozenset({"1", "true", "t", "yes", "y", "anomaly", "anomalous"})
_FALSE = frozenset({"", "0", "false", "f", "no", "n", "normal", "nan", "none", "null"})


# -- one replay ----------------------------------------------------------------------------


@dataclass
class Track:
    """What one run recorded for one entity, event by event (compact arrays)."""

    times: array[float] = field(default_factory=lambda: array("d"))
    alerts: array[int] = field(default_factory=lambda: array("I"))
    scores: array[float] = field(default_factory=lambda: array("d"))
    thresholds: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    #: 1 where the score reached the threshold (the policy may still not have alerted)
    flags: array[int] = field(default_factory=lambda: array("B"))
    value_name: str = ""

    def sorted_by_time(self) -> Track:
        """The same track in event-time order (a no-op for the usual in-order file)."""
        t = self.times
        if all(t[i] <= t[i + 1] for i in range(len(t) - 1)):
            return self
        order = sorted(range(len(t)), key=t.__getitem__)
        times, alerts, scores, thresholds, values, flags = (
            array(a.typecode, (a[i] for i in order)) for a in self._arrays()
        )
        return Track(times, alerts, scores, thresholds, values, flags, self.value_name)

    def _arrays(self) -> tuple[array[Any], ...]:
        return (self.times, self.alerts, self.scores, self.thresholds, self.values, self.flags)


@dataclass
class Run:
    """One detector (and settings file) replayed over the data."""

    name: str
    detector: str
    config_file: Path | None
    settings: Settings
    model_version: str = ""
    seed: int | None = None
    tracks: dict[str, Track] = field(default_factory=dict)
    resolved: int = 0
    drift: int = 0
    events: int = 0
    wall_s: float = 0.0
    process_s: float = 0.0
    figures: dict[str, Figures] = field(default_factory=dict)
    overall: Figures = field(default_factory=Figures)


def chart_value(event: Event) -> tuple[str, float]:
    """The value drawn for an event: trade price, quote mid, or a metric's first value."""
    kind = event.kind
    if kind == "trade":
        return "price", float(event.price)  # type: ignore[union-attr]
    if kind == "quote":
        return "price", (float(event.bid) + float(event.ask)) / 2  # type: ignore[union-attr]
    name, value = next(iter(event.values.items()))  # type: ignore[union-attr]
    return name, float(value)


def replay(
    run: Run,
    events: Iterator[Event],
    total: int | None,
    progress: bool,
    build: Callable[[Settings], Processor],
) -> None:
    """Feed every event to a fresh processor (``build(run.settings)``: the factory the
    service uses), recording alerts, scores and thresholds."""
    from alerting.progress import Progress

    processor = build(run.settings)
    run.model_version = processor.model_version
    seed = processor.template.params().get("seed")
    run.seed = seed if isinstance(seed, int) else None
    tracks = run.tracks
    nan = math.nan
    process = processor.process
    clock = time.perf_counter
    busy = 0.0
    started = clock()
    with Progress(total, f"evaluate {run.name}", enabled=progress) as bar:
        for event in events:
            entity = event.entity
            track = tracks.get(entity)
            if track is None:
                track = tracks[entity] = Track()
            t0 = clock()
            outcome = process(event, with_threshold=True)
            busy += clock() - t0
            fired = 0
            for alert in outcome.alerts:
                if alert.type == FIRING:
                    fired += 1
                elif alert.type == RESOLVED:
                    run.resolved += 1
                elif alert.type == DRIFT:
                    run.drift += 1
            threshold = outcome.threshold
            name, value = chart_value(event)
            track.times.append(event.timestamp)
            track.alerts.append(fired)
            track.scores.append(outcome.score)
            track.thresholds.append(threshold if math.isfinite(threshold) else nan)
            track.values.append(value)
            track.flags.append(outcome.breached)
            track.value_name = track.value_name or name
            run.events += 1
            bar.update()
            if run.events % 2000 == 0:
                processor.drain()  # the counts are not kept: nothing grows with the file
    run.wall_s = clock() - started
    run.process_s = busy


# -- data, labels and settings ----------------------------------------------------------------


def truthy(cell: object, where: str) -> bool:
    """A label cell as a flag: 1/true/yes/anomaly are anomalous; 0/false/no/empty are not."""
    if cell is None or isinstance(cell, bool):
        return bool(cell)
    if isinstance(cell, int | float):
        return not math.isnan(cell) and cell != 0
    text = str(cell).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    try:
        number = float(text)
    except ValueError:
        raise LabelError(
            f"{where}: label {cell!r:.40} is neither true (1, true, yes) nor false "
            "(0, false, no, empty)"
        ) from None
    return not math.isnan(number) and number != 0


def _with_detector(settings: Settings, name: str | None, seed: int | None) -> Settings:
    """The settings with ``detector.name`` overridden (another detector: its own defaults)."""
    from alerting.detectors import REGISTRY, build

    d, t = settings.detector, settings.threshold
    params = dict(d.params)
    if name is not None and name != d.name:
        if name not in REGISTRY:
            raise ConfigError(
                f"unknown detector {name!r} in --detectors; registered: {', '.join(REGISTRY)}"
            )
        # parameters and a fixed threshold are on the configured detector's scale
        params = {}
        t = t.model_copy(update={"value": None} if t.kind == "fixed" else {"min_value": None})
    name = name or d.name
    if seed is not None and "seed" in REGISTRY[name].parameters:
        params["seed"] = seed
    try:
        build(name, params)
    except ValueError as exc:
        raise ConfigError(f"detector settings: {exc}") from None
    detector = d.model_copy(update={"name": name, "params": params})
    return settings.model_copy(update={"detector": detector, "threshold": t})


def plan_runs(
    settings: Settings,
    configs: Sequence[Path] = (),
    detectors: str | None = None,
    seed: int | None = None,
) -> list[Run]:
    """One run per detector named in ``detectors`` (comma-separated; None: the settings')
    and settings file in ``configs`` (none: ``settings``)."""
    files: list[Path | None] = [*configs] or [None]
    names: list[str | None] = (
        [n.strip() for n in detectors.split(",") if n.strip()] if detectors else [None]
    )
    if not names:
        raise ConfigError("--detectors names no detector, e.g. --detectors zscore,hst")
    runs = []
    for config in files:
        base = load_settings(config) if config is not None else settings
        for name in names:
            s = _with_detector(base, name, seed)
            label = s.detector.name
            if len(files) > 1 and config is not None:
                label = f"{label} [{config.stem}]"
            runs.append(Run(label, s.detector.name, config, s))
    seen = [r.name for r in runs]
    if len(set(seen)) != len(seen):
        raise ConfigError(f"the same run twice ({', '.join(seen)}): drop a duplicate detector")
    return runs


# -- figures and the results log -------------------------------------------------------------


def score_runs(runs: Sequence[Run], windows: dict[str, list[Window]], slack_s: float) -> None:
    for run in runs:
        figures: dict[str, Figures] = {}
        first, last = math.inf, -math.inf
        for entity in sorted(set(run.tracks) | set(windows)):
            track = run.tracks.get(entity, Track()).sorted_by_time()
            if len(track.times):
                first, last = min(first, track.times[0]), max(last, track.times[-1])
            figures[entity] = score_entity(
                track.times, track.alerts, windows.get(entity, []), slack_s, track.flags
            )
            run.tracks[entity] = track
        run.figures = figures
        run.overall = combine(list(figures.values()))
        run.overall.span_s = last - first if last >= first else 0.0


def sha256_file(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def versions() -> dict[str, str]:
    import numpy
    import river

    return {
        "python": platform.python_version(),
        "river": str(getattr(river, "__version__", "unknown")),
        "numpy": str(numpy.__version__),
        "alerting": __version__,
    }


#: the settings sections decisions depend on (Kafka, topics or metrics change no figure)
DECIDING = ("detector", "threshold", "policy", "drift")


def deciding_settings(settings: Settings) -> dict[str, Any]:
    masked = settings.masked()
    return {section: masked[section] for section in DECIDING if section in masked}


def settings_hash(settings: Settings) -> str:
    """SHA-256 of the deciding settings, as canonical JSON."""
    blob = json.dumps(deciding_settings(settings), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def results(
    runs: Sequence[Run],
    plan: EvaluatePlan,
    labels_format: str,
    windows: dict[str, list[Window]],
    invalid_rows: int,
) -> dict[str, Any]:
    """The results log: everything that decides the figures, and the figures.

    Wall-clock facts (throughput, when) live under ``"run"`` only, so two runs on the same
    inputs give the same document apart from that key.
    """
    data = Path(plan.data)
    doc: dict[str, Any] = {
        "format": RESULTS_FORMAT,
        "data": {
            "file": data.name,
            "sha256": sha256_file(data),
            "events": runs[0].events if runs else 0,
            "invalid_rows": invalid_rows,
        },
        "labels": {
            "format": labels_format,
            "file": plan.labels.name if plan.labels is not None else None,
            "sha256": sha256_file(plan.labels) if plan.labels is not None else None,
            "column": plan.label_column,
            "entities": len(windows),
            "windows": sum(len(w) for w in windows.values()),
        },
        "options": {
            "window_slack_s": plan.window_slack,
            "profiles": PROFILES,
            "seed": plan.seed,
            "columns": dict(plan.columns),
        },
        "versions": versions(),
        "runs": [],
        "run": {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "host": platform.node(),
            "throughput": {},
        },
    }
    for run in runs:
        doc["runs"].append(
            {
                "name": run.name,
                "detector": run.detector,
                "config_file": str(run.config_file) if run.config_file else None,
                "settings": deciding_settings(run.settings),
                "settings_sha256": settings_hash(run.settings),
                "model_version": run.model_version,
                "seed": run.seed,
                "other_alerts": {"resolved": run.resolved, "drift": run.drift},
                "overall": run.overall.to_dict(),
                "entities": {name: f.to_dict() for name, f in run.figures.items()},
            }
        )
        doc["run"]["throughput"][run.name] = throughput(run)
    return doc


def throughput(run: Run) -> dict[str, float]:
    return {
        "events": run.events,
        "wall_s": round(run.wall_s, 3),
        "events_per_s": round(run.events / run.wall_s, 1) if run.wall_s > 0 else 0.0,
        "process_events_per_s": round(run.events / run.process_s, 1) if run.process_s else 0.0,
    }


# -- tables ------------------------------------------------------------------------------------

#: (header, path into Figures.to_dict() or "throughput", format, better: max/min/None)
COLUMNS: tuple[tuple[str, str, str, str | None], ...] = (
    ("precision", "event.precision", "{:.3f}", "max"),
    ("recall", "event.recall", "{:.3f}", "max"),
    ("F1", "event.f1", "{:.3f}", "max"),
    ("windows", "window.detected/window.windows", "", None),
    ("win recall", "window.recall", "{:.3f}", "max"),
    ("win F1", "window.f1", "{:.3f}", "max"),
    ("flagged", "window.flagged", "{}", "max"),
    ("delay ev", "window.delay_events_median", "{:.1f}", "min"),
    ("delay s", "window.delay_s_median", "{:.3f}", "min"),
    ("NAB", "nab.{profile}", "{:.1f}", "max"),
    ("alerts", "alerts.firing", "{}", None),
    ("/1k ev", "alerts.per_1000_events", "num", None),
    ("/hour", "alerts.per_hour", "num", None),
    ("outside", "alerts.outside_windows", "{}", "min"),
    ("events/s", "throughput", "{:,.0f}", "max"),
)


def _get(figures: dict[str, Any], path: str) -> Any:
    value: Any = figures
    for part in path.split("."):
        value = value[part] if isinstance(value, dict) else None
    return value


def table_rows(
    rows: Sequence[tuple[str, dict[str, Any], float | None]], profile: str
) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Header, formatted cells, and which cells are the best of their column.

    Each row is ``(name, figures as Figures.to_dict(), events/s or None)``.
    """
    header = ["run"] + [c[0] for c in COLUMNS]
    raw: list[list[Any]] = []
    for _, figures, speed in rows:
        values: list[Any] = []
        for _, path, _, _ in COLUMNS:
            if path == "throughput":
                values.append(speed)
            elif "/" in path:
                a, b = path.split("/")
                values.append(f"{_get(figures, a)}/{_get(figures, b)}")
            else:
                values.append(_get(figures, path.format(profile=profile)))
        raw.append(values)
    best = [[False] * len(COLUMNS) for _ in rows]
    for j, (_, _, _, better) in enumerate(COLUMNS):
        numbers = [v[j] for v in raw if isinstance(v[j], int | float)]
        if better is None or len(rows) < 2 or not numbers:
            continue
        target = max(numbers) if better == "max" else min(numbers)
        for i, v in enumerate(raw):
            best[i][j] = isinstance(v[j], int | float) and v[j] == target
    cells = [
        [name]
        + [
            "–" if v is None else _cell(v, fmt)
            for v, (_, _, fmt, _) in zip(values, COLUMNS, strict=True)
        ]
        for (name, _, _), values in zip(rows, raw, strict=True)
    ]
    return header, cells, best


def _cell(value: Any, fmt: str) -> str:
    if not fmt:
        return str(value)
    if fmt != "num":
        return fmt.format(value)
    # rates span orders of magnitude (alerts per hour of a 4-minute stream, or of a year)
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 0.1 or size == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def render_table(
    header: list[str], cells: list[list[str]], best: list[list[bool]] | None = None
) -> str:
    """Plain-text table; a best cell gets a trailing ``*``."""
    marked = [
        [row[0]] + [c + ("*" if best and best[i][j] else "") for j, c in enumerate(row[1:])]
        for i, row in enumerate(cells)
    ]
    widths = [max(len(r[k]) for r in [header, *marked]) for k in range(len(header))]
    lines = [
        "  ".join(
            h.ljust(w) if k == 0 else h.rjust(w)
            for k, (h, w) in enumerate(zip(header, widths, strict=True))
        )
    ]
    for row in marked:
        lines.append(
            "  ".join(
                c.ljust(w) if k == 0 else c.rjust(w)
                for k, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(lines)


def summary_text(doc: dict[str, Any], compare: bool, profile: str) -> str:
    """What the command prints: a comparison of the runs, or each run per entity."""
    speed = doc["run"]["throughput"]
    out: list[str] = []
    if compare or len(doc["runs"]) > 1:
        rows = [(r["name"], r["overall"], speed[r["name"]]["events_per_s"]) for r in doc["runs"]]
        header, cells, best = table_rows(rows, profile)
        out.append(render_table(header, cells, best if compare else None))
        if compare:
            out.append(f"(* best of the column; NAB profile {profile}; delays are medians)")
    if not compare:
        for r in doc["runs"]:
            out.append(f"\n{r['name']} ({r['model_version']}), per entity:")
            rows = [(e, f, None) for e, f in r["entities"].items()]
            rows.append(("overall", r["overall"], speed[r["name"]]["events_per_s"]))
            header, cells, _ = table_rows(rows, profile)
            out.append(render_table(header, cells))
    return "\n".join(out).strip("\n")


# -- the evaluation ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EvaluatePlan:
    """What ``alerting evaluate`` scores, against which truth, and how it reports."""

    data: Path
    #: synthetic labels or a windows JSON; exactly one of this and ``label_column``
    labels: Path | None = None
    label_column: str | None = None
    #: comma-separated detector names; None: the settings' detector
    detectors: str | None = None
    #: settings files to compare; none: the global settings
    configs: tuple[Path, ...] = ()
    seed: int | None = None
    window_slack: float = 0.0
    profile: str = "standard"
    compare: bool = False
    output: Path | None = None
    max_charts: int = 20
    #: the column flags as the results log records them (``kind_column``, ``key``, ...)
    columns: Mapping[str, str | None] = field(default_factory=dict)
    progress: bool = True


class Skipped(Protocol):
    """An invalid row of the data (:class:`producers.files.InvalidRow`)."""

    @property
    def line(self) -> int: ...
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> str: ...


class Recording(Protocol):
    """The labelled data an evaluation reads, in file order."""

    def count(self) -> int:
        """The number of rows."""
        ...

    def events(self, skipped: list[Skipped]) -> Iterator[Event]:
        """The valid events; invalid rows are collected in ``skipped``."""
        ...

    def windows_from_column(self) -> dict[str, list[Window]]:
        """The truth the label column holds, as windows per entity."""
        ...


@dataclass
class Evaluation:
    """What :func:`evaluate` decided: the results log, the runs, the truth."""

    doc: dict[str, Any]
    runs: list[Run]
    windows: dict[str, list[Window]]


def check_plan(plan: EvaluatePlan) -> None:
    """A :class:`ConfigError` naming the flag, for a plan that cannot be evaluated."""
    if not plan.data.is_file():
        raise ConfigError(f"evaluate: no such data file {plan.data}")
    if (plan.labels is None) == (plan.label_column is None):
        raise ConfigError(
            "evaluate needs the truth: --labels FILE (synthetic labels or windows JSON) "
            "or --label-column NAME, not both"
        )
    if not (math.isfinite(plan.window_slack) and plan.window_slack >= 0):
        raise ConfigError(f"--window-slack must be >= 0 seconds, got {plan.window_slack}")
    if plan.max_charts < 0:
        raise ConfigError(f"--max-charts must be >= 0, got {plan.max_charts}")


def evaluate(
    settings: Settings,
    plan: EvaluatePlan,
    open_data: Callable[[], Recording],
    build: Callable[[Settings], Processor],
    out: TextIO | None = None,
) -> Evaluation:
    """Replay the data through every planned run, score it, and print the summary to ``out``
    (None: standard output).

    ``open_data`` is called once the plan is checked (it may raise a :class:`ConfigError`
    about the column flags). With ``plan.output``, the results log is written there too.
    """
    check_plan(plan)
    data = plan.data
    recording = open_data()
    runs = plan_runs(settings, plan.configs, plan.detectors, plan.seed)
    try:
        if plan.labels is not None:
            labels_format, windows = load_labels(plan.labels)
        else:
            labels_format = "column"
            windows = recording.windows_from_column()
    except LabelError as exc:
        raise ConfigError(str(exc)) from None
    total = recording.count()
    skipped: list[Skipped] = []  # the first run's; every run skips the same rows
    for n, run in enumerate(runs):
        events = recording.events(skipped if n == 0 else [])
        replay(run, events, total, plan.progress, build)
    for item in skipped[:10]:
        log.warning("%s line %d skipped (%s): %s", data, item.line, item.reason, item.detail)
    if not runs[0].events:
        raise ConfigError(
            f"evaluate: {data} has no valid event ({len(skipped)} invalid rows); "
            "check the column flags (--key, --key-column, --time-column, --value-columns)"
        )
    _check_entities(windows, runs[0].tracks)
    score_runs(runs, windows, plan.window_slack)
    doc = results(runs, plan, labels_format, windows, len(skipped))
    print(summary_text(doc, plan.compare, plan.profile), file=out)
    if plan.output is not None:
        write_results(doc, plan.output)
    return Evaluation(doc, runs, windows)


def write_results(doc: dict[str, Any], out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot write to --output {out}: {exc}") from None


def _check_entities(windows: dict[str, list[Window]], tracks: dict[str, Track]) -> None:
    labelled = set(windows)
    missing = sorted(labelled - set(tracks))
    if labelled and len(missing) == len(labelled):
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        seen = ", ".join(sorted(tracks)[:5]) + (", ..." if len(tracks) > 5 else "")
        raise ConfigError(
            f"evaluate: no labelled entity ({shown}) is in the data (entities: {seen}); "
            "label keys must equal the entity keys: check --key or --key-column"
        )
    if missing:
        log.warning(
            "labels name %d entities that are not in the data: %s",
            len(missing),
            ", ".join(missing[:10]),
        )
