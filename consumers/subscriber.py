"""Subscribe to the alerts topic: ``alerting tail``.

Reads with manual partition assignment (no consumer group, so it starts at once and
never moves the service's offsets). Prints each alert readably (the lifecycle: firing
new/repeat/escalated, resolved with the episode's duration, drift; coloured by severity
and type), or as JSON lines; ``--entity``, ``--severity`` and ``--type`` filter both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from alerting.settings import Settings

_COLOURS = {
    "critical": "\033[1;31m",  # bold red
    "warning": "\033[33m",  # yellow
    "resolved": "\033[32m",  # green
    "drift": "\033[36m",  # cyan
}
_RESET = "\033[0m"
TYPES = ("firing", "resolved", "drift")


def decode_cloudevent(value: bytes | None) -> dict[str, Any] | None:
    """The JSON object in an alerts-topic record, or None if it holds none.

    >>> decode_cloudevent(b'{"type": "x"}'), decode_cloudevent(b"[1]"), decode_cloudevent(None)
    ({'type': 'x'}, None, None)
    """
    try:
        cloudevent = json.loads(value or b"")
    except (ValueError, TypeError):
        return None
    return cloudevent if isinstance(cloudevent, dict) else None


def _kind(cloudevent: dict[str, Any]) -> str:
    return str(cloudevent.get("type", "")).rsplit(".", 1)[-1]


def _severity(cloudevent: dict[str, Any]) -> str:
    data = cloudevent.get("data") or {}
    return str(cloudevent.get("severity") or data.get("severity") or "?")


def format_duration(seconds: float) -> str:
    """Short and readable.

    >>> [format_duration(s) for s in (0.4, 42, 185, 3720, 90061)]
    ['0.4s', '42s', '3m05s', '1h02m', '1d01h']
    """
    if seconds < 10:
        return f"{seconds:.1f}s".replace(".0s", "s")
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _drift_figures(data: dict[str, Any]) -> str:
    """The first drifted signal's mean before and after: ``score 0.8 → 2.1``."""
    signals = (data.get("drift") or {}).get("signals") or []
    first = signals[0] if signals and isinstance(signals[0], dict) else {}
    before, after = first.get("before"), first.get("after")
    if isinstance(before, int | float) and isinstance(after, int | float):
        return f"{first.get('signal', '?')} {before:.3g} → {after:.3g}"
    return ""


def format_alert(cloudevent: dict[str, Any], color: bool = False) -> str:
    """One readable line for a CloudEvent alert: time, what happened, entity, figures, summary.

    >>> ce = {"type": "io.alerting.anomaly.resolved", "time": "2026-01-05T10:00:42Z",
    ...       "subject": "AAPL", "severity": "critical",
    ...       "data": {"score": 1.5, "threshold": 6.0, "duration_s": 42.0, "summary": "ok"}}
    >>> format_alert(ce)
    '2026-01-05T10:00:42Z  RESOLVED after 42s    AAPL       critical, score 1.5 < 6  ok'
    """
    data = cloudevent.get("data") or {}
    severity = _severity(cloudevent)
    kind = _kind(cloudevent)
    score = data.get("score")
    threshold = data.get("threshold")
    numbers = isinstance(score, int | float) and isinstance(threshold, int | float)
    if kind == "firing":
        label = severity.upper()
        what = str(data.get("notification") or "")
        # a per-feature calibrated decision names the feature whose score breached
        name = data.get("decided_by") if isinstance(data.get("decided_by"), str) else "score"
        figures = f"{name} {score:.1f} ≥ {threshold:.3g}" if numbers else ""
        colour = _COLOURS.get(severity, "")
    elif kind == "resolved":
        label = "RESOLVED"
        duration = data.get("duration_s")
        what = f"after {format_duration(duration)}" if isinstance(duration, int | float) else ""
        figures = f"{severity}, score {score:.1f} < {threshold:.3g}" if numbers else severity
        colour = _COLOURS["resolved"]
    else:
        label = kind.upper() or "?"
        what = ""
        figures = _drift_figures(data)
        colour = _COLOURS.get(kind, "")
    label = f"{label:8}"
    if color and colour:
        label = colour + label + _RESET
    return (
        f"{cloudevent.get('time', '?')}  {label} {what:12} {cloudevent.get('subject', '?'):10} "
        f"{figures:18}  {data.get('summary', '')}"
    )


@dataclass(frozen=True, slots=True)
class AlertFilter:
    """Which alerts ``tail`` shows; an unset criterion lets everything through.

    >>> f = AlertFilter(entity=re.compile("^AA"), types=frozenset({"firing"}))
    >>> f.matches({"type": "io.alerting.anomaly.firing", "subject": "AAPL"})
    True
    >>> f.matches({"type": "io.alerting.drift", "subject": "AAPL"})
    False
    """

    entity: re.Pattern[str] | None = None
    severities: frozenset[str] | None = None
    types: frozenset[str] | None = None

    def matches(self, cloudevent: dict[str, Any]) -> bool:
        if self.types is not None and _kind(cloudevent) not in self.types:
            return False
        if self.severities is not None and _severity(cloudevent) not in self.severities:
            return False
        if self.entity is not None:
            return self.entity.search(str(cloudevent.get("subject", ""))) is not None
        return True

    @property
    def active(self) -> bool:
        return self.entity is not None or self.severities is not None or self.types is not None


def render(
    value: bytes | None, offset: int, wanted: AlertFilter, as_json: bool, color: bool
) -> str | None:
    """The line ``tail`` prints for one record, or None when the filter leaves it out.

    An unreadable record is shown (as such) only when no filter is set.
    """
    cloudevent = decode_cloudevent(value)
    if cloudevent is None:
        if wanted.active:
            return None  # cannot tell whether it matches
        if as_json and value is not None:
            return value.decode(errors="replace")
        return f"(unreadable alert at offset {offset})"
    if not wanted.matches(cloudevent):
        return None
    if as_json:
        return (value or b"").decode(errors="replace")
    return format_alert(cloudevent, color)


def tail(
    settings: Settings,
    wanted: AlertFilter,
    *,
    as_json: bool = False,
    from_beginning: bool = False,
    max_alerts: int | None = None,
    timeout_s: float | None = None,
    color: bool | None = None,
    should_stop: Callable[[], bool] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print the alerts ``wanted`` lets through until ``max_alerts``, ``timeout_s``,
    ``should_stop()`` or Ctrl+C; 1 if the stream ended before ``max_alerts`` were shown.

    ``color`` None colours when ``out`` is a terminal.
    """
    from consumers.kafka_python import consumer_for, follow

    consumer = consumer_for(settings, group_id=None)
    topic = settings.topics.alerts
    deadline = time.monotonic() + timeout_s if timeout_s else None

    def stop() -> bool:
        if deadline is not None and time.monotonic() >= deadline:
            return True
        return should_stop is not None and should_stop()

    reading = False

    def started() -> None:
        nonlocal reading
        reading = True

    shown_in_color = color if color is not None else out.isatty()
    seen = 0
    start_at = "beginning" if from_beginning else "end"
    try:
        for batch in follow(consumer, topic, start_at, stop, started=started):
            for records in batch.values():
                for record in records:
                    line = render(record.value, record.offset, wanted, as_json, shown_in_color)
                    if line is None:
                        continue
                    out.write(line + "\n")
                    seen += 1
                    if max_alerts is not None and seen >= max_alerts:
                        out.flush()
                        return 0
            out.flush()
    except KeyboardInterrupt:
        if not reading:  # while waiting for the topic or its high watermark
            raise
    except BrokenPipeError:  # the reader went away (| head): done, quietly
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the interpreter closes it
        return 0
    finally:
        consumer.close()
    return 1 if max_alerts is not None and seen < max_alerts else 0
