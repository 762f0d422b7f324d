"""Scoring a back-test against labels: event and window metrics, and a NAB-style score.

The pure core of ``alerting evaluate``: labelled windows (loaded from the synthetic
generator's labels, a JSON file of windows per entity, or a label column), and the
figures of one entity's replay, computed from its event times and the number of
FIRING alerts each event produced. No I/O except reading a labels file.

Definitions (one entity; the overall figures add the counts up):

- an event is *positive* if its time lies in a labelled window ``[start, end]``
  (inclusive), *predicted* if at least one FIRING alert was produced for it;
- a window is *detected* if a FIRING alert of its entity lies in
  ``[start, end + slack_s]``; its delay is counted from the window's first event to the
  first such alert, in the entity's events and in event-time seconds;
- the NAB score follows the Numenta Anomaly Benchmark's scoring rules (Lavin and Ahmad
  2015) on the entity's own event sequence: see :func:`nab_raw` and the README.

>>> from alerting.evaluation import Window, score_entity
>>> times = [float(t) for t in range(10)]
>>> alerts = [0, 0, 0, 1, 0, 0, 0, 1, 0, 0]          # alerts at events 3 and 7
>>> f = score_entity(times, alerts, [Window(3.0, 4.0)])
>>> f.tp, f.fp, f.fn, f.windows_detected, f.alerts_outside
(1, 1, 1, 1, 1)
>>> round(f.nab["standard"], 2)   # detected at the window's start, one far false positive
94.5
"""

from __future__ import annotations

import itertools
import json
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alerting.errors import LabelError
from alerting.labels import Label
from alerting.times import parse_time

__all__ = [
    "PROFILES",
    "Figures",
    "Window",
    "combine",
    "load_labels",
    "merge_windows",
    "nab_raw",
    "scaled_sigmoid",
    "score_entity",
    "windows_from_flags",
]

#: NAB's published cost profiles (``config/profiles.json`` of the benchmark).
PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tp": 1.0, "fp": 0.11, "fn": 1.0},
    "reward_low_FP_rate": {"tp": 1.0, "fp": 0.22, "fn": 1.0},
    "reward_low_FN_rate": {"tp": 1.0, "fp": 0.11, "fn": 2.0},
}


@dataclass(frozen=True, order=True)
class Window:
    """A labelled anomaly window of one entity, event time in seconds, both ends inclusive."""

    start: float
    end: float
    #: anomaly type(s) when the labels name them (synthetic labels), else ""
    anomaly: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start) and math.isfinite(self.end)):
            raise ValueError(f"window bounds must be finite, got {self.start}, {self.end}")
        if self.end < self.start:
            raise ValueError(f"window ends ({self.end}) before it starts ({self.start})")


def merge_windows(windows: Sequence[Window]) -> list[Window]:
    """Sorted windows with overlapping ones merged (NAB's windows never overlap).

    >>> merge_windows([Window(5, 6, "b"), Window(0, 2, "a"), Window(1, 3, "a")])
    [Window(start=0, end=3, anomaly='a'), Window(start=5, end=6, anomaly='b')]
    """
    merged: list[Window] = []
    for w in sorted(windows):
        if merged and w.start <= merged[-1].end:
            last = merged[-1]
            names = last.anomaly.split("+") if last.anomaly else []
            if w.anomaly and w.anomaly not in names:
                names.append(w.anomaly)
            merged[-1] = Window(last.start, max(last.end, w.end), "+".join(names))
        else:
            merged.append(w)
    return merged


def windows_from_flags(
    series: Mapping[str, Sequence[tuple[float, bool]]],
) -> dict[str, list[Window]]:
    """Windows from per-event flags: consecutive anomalous events of an entity form one.

    >>> windows_from_flags({"cpu": [(0, False), (1, True), (2, True), (3, False), (4, True)]})
    {'cpu': [Window(start=1, end=2, anomaly=''), Window(start=4, end=4, anomaly='')]}
    """
    result: dict[str, list[Window]] = {}
    for entity, flags in series.items():
        windows: list[Window] = []
        start: float | None = None
        last = 0.0
        for moment, flagged in sorted(flags, key=lambda pair: pair[0]):
            if flagged:
                if start is None:
                    start = moment
                last = moment
            elif start is not None:
                windows.append(Window(start, last))
                start = None
        if start is not None:
            windows.append(Window(start, last))
        if windows:
            result[entity] = windows
    return result


# -- labels files ------------------------------------------------------------------------


def load_labels(path: str | Path) -> tuple[str, dict[str, list[Window]]]:
    """``(format, windows per entity)`` from a labels file, windows merged and sorted.

    Two formats, told apart by content: a JSON object of windows per entity,
    ``{"entity": [[start, end], ...]}`` (``"windows"``), or the synthetic generator's
    labels, one JSON object per line (``"synthetic"``). Raises :class:`LabelError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelError(f"labels file {path} does not exist (--labels)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LabelError(f"cannot read labels file {path}: {exc}") from None
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None
    if isinstance(whole, dict) and all(isinstance(v, list) for v in whole.values()):
        return "windows", _windows_json(whole, path)
    return "synthetic", _synthetic_labels(text, path)


def _windows_json(data: Mapping[str, Any], path: Path) -> dict[str, list[Window]]:
    result: dict[str, list[Window]] = {}
    for entity, pairs in data.items():
        windows = []
        for number, pair in enumerate(pairs, 1):
            where = f"{path.name}: {entity!r} window {number}"
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise LabelError(f"{where}: expected [start, end], got {pair!r:.60}")
            try:
                start, end = (parse_time(value).timestamp() for value in pair)
                windows.append(Window(start, end))
            except ValueError as exc:
                raise LabelError(
                    f"{where}: {exc} (times are RFC 3339 or seconds since the epoch)"
                ) from None
        if windows:
            result[str(entity)] = merge_windows(windows)
    return result


def _synthetic_labels(text: str, path: Path) -> dict[str, list[Window]]:
    per_entity: dict[str, list[Window]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            label = Label.from_json(line)  # a one-event label's ``end`` is its ``time``
            window = Window(label.time.timestamp(), label.end.timestamp(), label.anomaly)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise LabelError(
                f"{path.name} line {number}: not a label ({type(exc).__name__}: {exc}); "
                'expected the synthetic labels (JSON lines with "entity", "time", ...) '
                'or a JSON object of windows {"entity": [[start, end], ...]}'
            ) from None
        per_entity.setdefault(label.entity, []).append(window)
    return {entity: merge_windows(ws) for entity, ws in per_entity.items()}


# -- scoring -------------------------------------------------------------------------------


def scaled_sigmoid(position: float) -> float:
    """NAB's reward curve: 2/(1+e^(5y)) − 1; y = −1 at a window's start, 0 at its end.

    >>> round(scaled_sigmoid(-1.0), 5), scaled_sigmoid(0.0), scaled_sigmoid(3.0)
    (0.98661, 0.0, -1.0)
    """
    if position >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_raw(
    detections: Sequence[int],
    windows: Sequence[tuple[int, int]],
    weights: Mapping[str, float],
) -> tuple[float, int]:
    """NAB's raw score of one series: ``(score, windows credited)``.

    ``detections`` are sorted event indices with an alert; ``windows`` are sorted,
    disjoint ``(first, last)`` event-index ranges (inclusive). The first detection in a
    window earns ``tp·σ(y)/σ(−1)`` with ``y = −(last − i + 1)/width``; later ones in the
    same window count nothing; a window without one costs ``fn``; a detection outside
    every window costs ``fp·σ(y)`` with ``y = (i − last_prev)/(width_prev − 1)`` past the
    previous window (``width − 1`` at least 1) or ``fp`` before any window.
    """
    max_tp = scaled_sigmoid(-1.0)
    credited = [False] * len(windows)
    lasts = [last for _, last in windows]
    score = 0.0
    for i in detections:
        k = bisect_left(lasts, i)  # the first window ending at or after i
        if k < len(windows) and windows[k][0] <= i:
            if not credited[k]:
                first, last = windows[k]
                width = last - first + 1
                score += weights["tp"] * scaled_sigmoid(-(last - i + 1) / width) / max_tp
                credited[k] = True
            continue
        if k == 0:
            score += weights["fp"] * scaled_sigmoid(3.0)
        else:
            first, last = windows[k - 1]
            score += weights["fp"] * scaled_sigmoid((i - last) / max(last - first, 1))
    detected = sum(credited)
    score -= weights["fn"] * (len(windows) - detected)
    return score, detected


@dataclass
class Figures:
    """The figures of one entity, or of several added up (see :func:`combine`)."""

    events: int = 0
    alerts: int = 0  #: FIRING alerts
    alerts_outside: int = 0  #: FIRING alerts outside every [start, end + slack] window
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    windows: int = 0  #: labelled windows holding at least one event
    windows_empty: int = 0  #: labelled windows no event of the entity falls in
    windows_detected: int = 0
    #: windows where the detector's score reached the threshold (before the alert policy)
    windows_flagged: int = 0
    delays_events: list[int] = field(default_factory=list)
    delays_s: list[float] = field(default_factory=list)
    span_s: float = 0.0  #: event time from the first to the last event
    nab_raw: dict[str, float] = field(default_factory=dict)
    nab_windows: int = 0  #: windows the NAB score is normalised over
    #: anomaly type → [windows, detected], when the labels name types
    by_anomaly: dict[str, list[int]] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else None

    @property
    def window_recall(self) -> float | None:
        return self.windows_detected / self.windows if self.windows else None

    @property
    def window_precision(self) -> float | None:
        """Share of the FIRING alerts that fell inside a labelled window (or its slack)."""
        return (self.alerts - self.alerts_outside) / self.alerts if self.alerts else None

    @property
    def window_f1(self) -> float | None:
        """Harmonic mean of window precision and window recall (0 when neither is > 0)."""
        p, r = self.window_precision, self.window_recall
        if p is None or r is None:
            return None
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def nab(self) -> dict[str, float | None]:
        """Normalised NAB score per profile: 0 = never alerting, 100 = perfect."""
        result: dict[str, float | None] = {}
        for name, raw in self.nab_raw.items():
            weights = PROFILES[name]
            null = -weights["fn"] * self.nab_windows
            perfect = weights["tp"] * self.nab_windows
            result[name] = 100.0 * (raw - null) / (perfect - null) if perfect > null else None
        return result

    def to_dict(self) -> dict[str, Any]:
        """Every figure, JSON-ready, rounded so that runs compare equal."""
        hours = self.span_s / 3600.0

        def r(value: float | None, digits: int = 6) -> float | None:
            return None if value is None else round(value, digits)

        return {
            "events": self.events,
            "event": {
                "tp": self.tp,
                "fp": self.fp,
                "fn": self.fn,
                "tn": self.tn,
                "precision": r(self.precision),
                "recall": r(self.recall),
                "f1": r(self.f1),
            },
            "window": {
                "windows": self.windows,
                "empty": self.windows_empty,
                "detected": self.windows_detected,
                "recall": r(self.window_recall),
                "precision": r(self.window_precision),
                "f1": r(self.window_f1),
                "flagged": self.windows_flagged,
                "delay_events_mean": r(_mean(self.delays_events), 3),
                "delay_events_median": r(_median(self.delays_events), 3),
                "delay_events_max": max(self.delays_events, default=None),
                "delay_s_mean": r(_mean(self.delays_s)),
                "delay_s_median": r(_median(self.delays_s)),
                "delay_s_max": r(max(self.delays_s, default=None)),
                "by_anomaly": {
                    name: {"windows": n, "detected": d, "recall": r(d / n if n else None)}
                    for name, (n, d) in sorted(self.by_anomaly.items())
                },
            },
            "nab": {name: r(value, 3) for name, value in self.nab.items()},
            "alerts": {
                "firing": self.alerts,
                "outside_windows": self.alerts_outside,
                "per_1000_events": r(1000.0 * self.alerts / self.events if self.events else None),
                "per_hour": r(self.alerts / hours if hours > 0 else None),
            },
            "span_s": r(self.span_s),
        }


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def score_entity(
    times: Sequence[float],
    alerts: Sequence[int],
    windows: Sequence[Window],
    slack_s: float = 0.0,
    flagged: Sequence[int] | None = None,
) -> Figures:
    """The figures of one entity's replay.

    ``times`` are its event times (seconds, non-decreasing, in the order processed),
    ``alerts`` the number of FIRING alerts each event produced, ``windows`` its labelled
    windows (sorted and disjoint, see :func:`merge_windows`); ``flagged`` optionally marks
    the events whose score reached the threshold, whether or not the policy alerted.
    """
    if len(times) != len(alerts):
        raise ValueError(f"times and alerts differ in length: {len(times)} != {len(alerts)}")
    if flagged is not None and len(flagged) != len(times):
        raise ValueError(f"times and flagged differ in length: {len(times)} != {len(flagged)}")
    if not slack_s >= 0:
        raise ValueError(f"slack_s must not be negative, got {slack_s}")
    if any(b < a for a, b in itertools.pairwise(times)):
        raise ValueError("times must be non-decreasing (sort the entity's events by time)")
    n = len(times)
    f = Figures(events=n, span_s=times[-1] - times[0] if n else 0.0)
    detections = [i for i, count in enumerate(alerts) if count]
    flags = [i for i, flag in enumerate(flagged) if flag] if flagged is not None else []
    f.alerts = sum(alerts)
    ranges: list[tuple[int, int]] = []  # (first, last) event index of each non-empty window
    positive = 0
    covered = bytearray(n)  # 1 inside [start, end + slack] of a window
    for w in windows:
        first = bisect_left(times, w.start)
        stop = bisect_right(times, w.end)
        stats = f.by_anomaly.setdefault(w.anomaly, [0, 0]) if w.anomaly else None
        if first >= stop:
            f.windows_empty += 1
            continue
        f.windows += 1
        if stats is not None:
            stats[0] += 1
        ranges.append((first, stop - 1))
        positive += stop - first
        slack_stop = bisect_right(times, w.end + slack_s)
        covered[first:slack_stop] = b"\x01" * (slack_stop - first)
        k = bisect_left(flags, first)
        if k < len(flags) and flags[k] < slack_stop:
            f.windows_flagged += 1
        k = bisect_left(detections, first)
        if k < len(detections) and detections[k] < slack_stop:
            i = detections[k]
            f.windows_detected += 1
            if stats is not None:
                stats[1] += 1
            f.delays_events.append(i - first)
            f.delays_s.append(times[i] - w.start)
    inside = bytearray(n)
    for first, last in ranges:
        inside[first : last + 1] = b"\x01" * (last - first + 1)
    f.tp = sum(1 for i in detections if inside[i])
    f.fp = len(detections) - f.tp
    f.fn = positive - f.tp
    f.tn = n - f.tp - f.fp - f.fn
    f.alerts_outside = sum(alerts[i] for i in detections if not covered[i])
    f.nab_windows = len(ranges)
    for name, weights in PROFILES.items():
        f.nab_raw[name] = nab_raw(detections, ranges, weights)[0]
    return f


def combine(parts: Sequence[Figures]) -> Figures:
    """Overall figures: counts and raw NAB scores added up, delays pooled (NAB's corpus score).

    The event-time span is the largest of the parts' spans unless set by the caller.
    """
    total = Figures()
    for f in parts:
        total.events += f.events
        total.alerts += f.alerts
        total.alerts_outside += f.alerts_outside
        total.tp += f.tp
        total.fp += f.fp
        total.fn += f.fn
        total.tn += f.tn
        total.windows += f.windows
        total.windows_empty += f.windows_empty
        total.windows_detected += f.windows_detected
        total.windows_flagged += f.windows_flagged
        total.delays_events.extend(f.delays_events)
        total.delays_s.extend(f.delays_s)
        total.span_s = max(total.span_s, f.span_s)
        total.nab_windows += f.nab_windows
        for name, raw in f.nab_raw.items():
            total.nab_raw[name] = total.nab_raw.get(name, 0.0) + raw
        for name, (n, d) in f.by_anomaly.items():
            stats = total.by_anomaly.setdefault(name, [0, 0])
            stats[0] += n
            stats[1] += d
    if not parts:
        total.nab_raw = {name: 0.0 for name in PROFILES}
    return total
