"""The ``alerting evaluate --output DIR`` report: one self-contained HTML page and PNG charts.

Per charted entity, one PNG (matplotlib, Agg, no pyplot state): the series on top
(trade price / quote mid / a metric's first value) with the labelled windows shaded and
each run's alerts marked; below it one panel per run with its score, its threshold
(dashed) and its alerts. Long series are reduced to the minimum and maximum of each of
about 1,500 buckets, so a one-event spike stays visible. ``report.html`` embeds the same
PNGs as data URIs, with the summary table (best per column in bold) on top.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from alerting.evaluation import Window

if TYPE_CHECKING:
    from alerting.backtest import Run, Track

__all__ = ["entity_chart", "envelope", "write_report"]

_BUCKETS = 1500
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_WINDOW = "#d62728"


def envelope(x: np.ndarray, y: np.ndarray, buckets: int = _BUCKETS) -> tuple[Any, Any]:
    """At most ``2 × buckets`` points: each bucket's minimum and maximum, in order (NaN-safe).

    >>> x = np.arange(10.0); y = np.zeros(10); y[7] = 5.0
    >>> float(envelope(x, y, buckets=2)[1].max())   # the spike survives the reduction
    5.0
    """
    n = len(x)
    if n <= 2 * buckets:
        return x, y
    keep: list[int] = []
    edges = np.linspace(0, n, buckets + 1).astype(int)
    filled = np.where(np.isnan(y), -np.inf, y)
    emptied = np.where(np.isnan(y), np.inf, y)
    for a, b in itertools.pairwise(edges):
        if b <= a:
            continue
        hi = a + int(np.argmax(filled[a:b]))
        lo = a + int(np.argmin(emptied[a:b]))
        keep.extend(sorted({lo, hi}))
    index = np.array(keep)
    return x[index], y[index]


def _dates(times: Sequence[float] | np.ndarray) -> np.ndarray:
    return (np.asarray(times, dtype=float) * 1e6).astype("datetime64[us]")


def _nines(scores: np.ndarray) -> np.ndarray:
    return -np.log10(np.clip(1.0 - scores, 1e-16, None))


def _shade(ax: Any, windows: Sequence[Window], span: tuple[float, float]) -> None:
    low, high = span
    least = max((high - low) * 0.002, 1e-6)  # one-event windows stay visible
    for w in windows:
        if w.end < low or w.start > high:
            continue
        pad = max(0.0, least - (w.end - w.start)) / 2
        ax.axvspan(*_dates([w.start - pad, w.end + pad]), color=_WINDOW, alpha=0.18, lw=0)


def entity_chart(
    entity: str, runs: Sequence[Run], windows: Sequence[Window], summary: Sequence[str]
) -> bytes:
    """The PNG of one entity (see the module docstring)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    base: Track = runs[0].tracks[entity]
    times = np.asarray(base.times, dtype=float)
    span = (float(times[0]), float(times[-1])) if len(times) else (0.0, 1.0)
    heights = [2.2] + [1.25] * len(runs)
    fig = Figure(figsize=(11.5, 1.1 + sum(heights)), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(heights), 1, sharex=True, gridspec_kw={"height_ratios": heights})
    top = axes[0]
    values = np.asarray(base.values, dtype=float)
    x, y = envelope(times, values)
    top.plot(_dates(x), y, color="#333333", lw=0.7)
    _shade(top, windows, span)
    top.set_ylabel(base.value_name or "value")
    fig.suptitle(f"{entity}: " + "; ".join(summary), x=0.01, ha="left", fontsize=10)
    handles: list[Any] = [Patch(color=_WINDOW, alpha=0.3, label="labelled window")]
    offsets = np.linspace(0.0, 0.04, max(len(runs), 1))
    spread = float(np.nanmax(values) - np.nanmin(values)) if len(values) else 0.0
    for k, run in enumerate(runs):
        colour = _COLOURS[k % len(_COLOURS)]
        track = run.tracks[entity]
        fired = np.flatnonzero(np.asarray(track.alerts, dtype=np.int64))
        if len(fired):
            top.scatter(
                _dates(times[fired]),
                values[fired] + spread * (0.06 + offsets[k]),
                marker="v",
                s=26,
                color=colour,
                zorder=3,
            )
        handles.append(Line2D([], [], marker="v", ls="", color=colour, label=f"{run.name} alert"))
        ax = axes[k + 1]
        _score_panel(ax, run, track, times, windows, span, colour)
    top.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        fontsize=8,
        ncols=len(handles),
        frameon=False,
    )
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    for ax in axes:
        ax.grid(True, color="#eeeeee", lw=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _score_panel(
    ax: Any,
    run: Run,
    track: Track,
    times: np.ndarray,
    windows: Sequence[Window],
    span: tuple[float, float],
    colour: str,
) -> None:
    scores = np.asarray(track.scores, dtype=float)
    thresholds = np.asarray(track.thresholds, dtype=float)
    finite = thresholds[np.isfinite(thresholds)]
    label = "score"
    # probability-like scores (gaussian's threshold is 0.999999998) read best as nines
    if len(finite) and float(np.nanmax(finite)) > 0.99 and float(np.nanmax(scores, initial=0)) <= 1:
        scores, thresholds = _nines(scores), _nines(thresholds)
        label = "score, −log10(1−s)"
        finite = thresholds[np.isfinite(thresholds)]
    x, y = envelope(times, scores)
    ax.plot(_dates(x), y, color=colour, lw=0.7)
    ax.plot(_dates(times), thresholds, color="black", lw=0.9, ls="--")
    fired = np.flatnonzero(np.asarray(track.alerts, dtype=np.int64))
    if len(fired):
        ax.scatter(_dates(times[fired]), scores[fired], s=14, color=_WINDOW, zorder=3)
    _shade(ax, windows, span)
    if len(finite) and float(np.median(finite)) > 0:
        # linear up to the threshold, logarithmic above: the spikes fit, the noise shows
        level = float(np.median(finite))
        ax.set_yscale("symlog", linthresh=level, linscale=1.5)
        top = float(np.nanmax(scores, initial=level))
        ticks = [0.0, level]
        while ticks[-1] * 10 <= top * 1.5:
            ticks.append(ticks[-1] * 10)
        ax.set_yticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    ax.set_ylim(bottom=0)
    ax.set_ylabel(f"{run.name}\n{label}", fontsize=8)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:80] or "entity"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em;color:#222;
max-width:1250px}
table{border-collapse:collapse;margin:0.6em 0 1.4em}
th,td{padding:3px 9px;border-bottom:1px solid #ddd;text-align:right;font-size:13px}
th:first-child,td:first-child{text-align:left}
th{background:#f4f4f4}
td.best{font-weight:bold;background:#e8f5e9}
img{max-width:100%;border:1px solid #eee}
.meta{color:#555;font-size:13px}
code{background:#f4f4f4;padding:1px 4px}
"""


def _table(header: Sequence[str], cells: Sequence[Sequence[str]], best: Any = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(cells):
        tds = []
        for j, cell in enumerate(row):
            mark = best is not None and j > 0 and best[i][j - 1]
            tds.append(f"<td{' class=best' if mark else ''}>{html.escape(cell)}</td>")
        out.append("<tr>" + "".join(tds) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def write_report(
    out: Path,
    doc: dict[str, Any],
    runs: Sequence[Run],
    windows: dict[str, list[Window]],
    profile: str,
    max_charts: int,
) -> Path:
    """Write ``out/report.html`` and ``out/charts/<entity>.png``; return the HTML's path."""
    from alerting.backtest import table_rows

    speed = doc["run"]["throughput"]
    rows = [(r["name"], r["overall"], speed[r["name"]]["events_per_s"]) for r in doc["runs"]]
    header, cells, best = table_rows(rows, profile)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        "<title>alerting evaluate: report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>alerting evaluate</h1>",
        "<p class=meta>data <code>{}</code> ({} events, sha256 {}…), labels {} "
        "({} windows over {} entities), window slack {} s, NAB profile {}; {}</p>".format(
            html.escape(doc["data"]["file"]),
            doc["data"]["events"],
            doc["data"]["sha256"][:12],
            html.escape(str(doc["labels"]["file"] or f"column {doc['labels']['column']}")),
            doc["labels"]["windows"],
            doc["labels"]["entities"],
            doc["options"]["window_slack_s"],
            html.escape(profile),
            html.escape(", ".join(f"{k} {v}" for k, v in doc["versions"].items())),
        ),
        "<h2>Summary</h2>",
        _table(header, cells, best if len(rows) > 1 else None),
        "<p class=meta>Event-level precision/recall/F1: an event is predicted if a FIRING "
        "alert was produced for it, positive if inside a labelled window. Windows: detected "
        "by a FIRING alert inside it (or within the slack after it); delays are medians. "
        "NAB: 0 = never alerting, 100 = every window caught at its first event and no "
        "false alert. Best of each column in bold.</p>",
    ]
    types = sorted({t for r in doc["runs"] for t in r["overall"]["window"]["by_anomaly"]})
    if types:
        parts.append("<h2>Windows detected per anomaly type</h2>")
        type_cells = []
        for r in doc["runs"]:
            by = r["overall"]["window"]["by_anomaly"]
            type_cells.append(
                [r["name"]]
                + [f"{by[t]['detected']}/{by[t]['windows']}" if t in by else "–" for t in types]
            )
        parts.append(_table(["run", *types], type_cells))
    charts = out / "charts"
    charts.mkdir(parents=True, exist_ok=True)
    entities = [e for e in runs[0].tracks if len(runs[0].tracks[e].times)] if runs else []
    entities.sort(key=lambda e: (-len(windows.get(e, [])), e))
    shown = entities[:max_charts]
    parts.append(f"<h2>Entities ({len(shown)} of {len(entities)} charted)</h2>")
    for entity in shown:
        summary = []
        entity_rows = []
        for r in doc["runs"]:
            f = r["entities"][entity]
            summary.append(
                f"{r['name']} {f['window']['detected']}/{f['window']['windows']} windows, "
                f"{f['alerts']['firing']} alerts"
            )
            entity_rows.append((r["name"], f, None))
        png = entity_chart(entity, runs, windows.get(entity, []), summary)
        (charts / f"{_safe(entity)}.png").write_bytes(png)
        h, c, b = table_rows(entity_rows, profile)
        parts.append(f"<h3 id='{html.escape(_safe(entity))}'>{html.escape(entity)}</h3>")
        parts.append(_table(h[:-1], [row[:-1] for row in c], b if len(c) > 1 else None))
        data = base64.b64encode(png).decode()
        parts.append(
            f"<img alt='{html.escape(entity)}: series, scores, thresholds, windows and alerts'"
            f" src='data:image/png;base64,{data}'>"
        )
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
