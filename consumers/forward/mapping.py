"""A CloudEvent as Alertmanager API v2 alerts: which alerts, their labels and times.

Pure: no I/O, the time ``now`` is passed in. Drift becomes a warning alert ``Drift``
unless it is left out (``forward.drift = "skip"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from alerting.alerts import DRIFT, FIRING, RESOLVED
from alerting.silences import SEVERITIES
from alerting.times import rfc3339, rfc3339_or_none

ANOMALY_ALERTNAME = "Anomaly"
DRIFT_ALERTNAME = "Drift"
_SHORT_TYPES = {FIRING: "firing", RESOLVED: "resolved", DRIFT: "drift"}


def short_type(cloudevent: Mapping[str, Any]) -> str:
    """``firing``, ``resolved``, ``drift`` or ``other``: the metric label of an alert type.

    >>> short_type({"type": "io.alerting.anomaly.resolved"}), short_type({"type": "x"})
    ('resolved', 'other')
    """
    return _SHORT_TYPES.get(str(cloudevent.get("type", "")), "other")


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def alertmanager_alerts(
    cloudevent: Mapping[str, Any],
    now: datetime,
    firing_ttl_s: float = 3600.0,
    drift_ttl_s: float = 3600.0,
    drift: bool = True,
) -> list[dict[str, Any]]:
    """The Alertmanager API v2 alerts for one CloudEvent (empty: nothing to send).

    Firing: one alert, ``startsAt`` the episode start, ``endsAt`` ``now + firing_ttl_s``
    (a repeat notification extends it; an alert whose resolve never comes expires). An
    escalated one also resolves the warning label set. Resolved: the episode's label
    sets of both severities, ``endsAt`` the resolve time. Drift: a warning ``Drift``
    alert active for ``drift_ttl_s``. Times past ``now`` are clamped to it (clock skew).

    >>> from datetime import UTC
    >>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    >>> ce = {"type": "io.alerting.anomaly.resolved", "subject": "AAPL", "severity": "critical",
    ...       "time": "2026-01-01T11:00:30Z", "id": "r1",
    ...       "data": {"detector": "zscore", "event_kind": "trade", "firing_id": "f1",
    ...                "started_at": "2026-01-01T11:00:00Z", "duration_s": 30.0}}
    >>> for a in alertmanager_alerts(ce, now):
    ...     print(a["labels"]["severity"], a["startsAt"], a["endsAt"])
    warning 2026-01-01T11:00:00Z 2026-01-01T11:00:30Z
    critical 2026-01-01T11:00:00Z 2026-01-01T11:00:30Z
    """
    kind = short_type(cloudevent)
    if kind == "other" or (kind == "drift" and not drift):
        return []
    data = cloudevent.get("data") or {}
    if not isinstance(data, Mapping):
        data = {}
    at = rfc3339_or_none(cloudevent.get("time")) or now
    started = rfc3339_or_none(data.get("started_at")) or at
    severity = str(cloudevent.get("severity") or data.get("severity") or "warning")
    labels = {
        "alertname": DRIFT_ALERTNAME if kind == "drift" else ANOMALY_ALERTNAME,
        "entity": str(cloudevent.get("subject") or ""),
        "severity": "warning" if kind == "drift" else severity,
        "detector": str(data.get("detector") or ""),
        "event_kind": str(data.get("event_kind") or ""),
    }
    labels = {k: v for k, v in labels.items() if v}  # an empty value is no label
    annotations = {
        "summary": str(data.get("summary") or ""),
        "score": _number(data.get("score", "")),
        "threshold": _number(data.get("threshold", "")),
        "firing_id": str(data.get("firing_id") or ""),
        "alert_id": str(cloudevent.get("id") or ""),
        "model_version": str(data.get("model_version") or ""),
        "notification": str(data.get("notification") or "") if kind == "firing" else "",
        "duration_s": _number(data["duration_s"]) if "duration_s" in data else "",
    }
    annotations = {k: v for k, v in annotations.items() if v}

    def ended(moment: datetime) -> str:
        return rfc3339(max(started, min(moment, now)))

    def alert(labels: dict[str, str], ends: datetime | str) -> dict[str, Any]:
        ends_text = ends if isinstance(ends, str) else rfc3339(max(ends, started))
        return {
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(started),
            "endsAt": ends_text,
        }

    if kind == "firing":
        out = [alert(labels, now + timedelta(seconds=firing_ttl_s))]
        if data.get("notification") == "escalated" and severity == "critical":
            out.append(alert({**labels, "severity": "warning"}, ended(at)))
        return out
    if kind == "resolved":
        return [alert({**labels, "severity": s}, ended(at)) for s in SEVERITIES]
    return [alert(labels, max(at, now) + timedelta(seconds=drift_ttl_s))]
