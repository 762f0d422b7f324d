"""Alerts on the wire: CloudEvents 1.0, structured JSON mode, Kafka key = entity.

``id`` is deterministic: the same input record, detector and model version give the
same id, so subscribers can drop duplicates after an at-least-once redelivery.

>>> from datetime import datetime, UTC
>>> a = Alert(type=FIRING, entity="AAPL", time=datetime(2026, 1, 5, tzinfo=UTC), score=9.5,
...           threshold=6.0, severity="warning", detector="zscore",
...           model_version="zscore@abc", features={"log_return": 0.03},
...           contributions={"log_return": 9.5}, summary="AAPL trade: log_return z=+9.5",
...           source=SourcePosition("market.events", 0, 42))
>>> ce = a.to_cloudevent()
>>> ce["specversion"], ce["subject"], ce["time"], ce["id"] == a.id
('1.0', 'AAPL', '2026-01-05T00:00:00Z', True)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from alerting.times import rfc3339

FIRING: Final = "io.alerting.anomaly.firing"
#: reserved for the alert policy (resolve) and drift detection
RESOLVED: Final = "io.alerting.anomaly.resolved"
DRIFT: Final = "io.alerting.drift"

SPECVERSION: Final = "1.0"
CE_SOURCE: Final = "urn:alerting:detector"


class SourcePosition(NamedTuple):
    """Where the triggering event was read."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, before it is encoded as a CloudEvent."""

    type: str
    entity: str
    time: datetime
    score: float
    threshold: float
    severity: str
    detector: str
    model_version: str
    features: dict[str, float]
    contributions: dict[str, float]
    summary: str
    source: SourcePosition | None = None
    kind: str = "trade"
    #: more ``data`` fields for this alert type (a drift's signal and statistics)
    details: dict[str, Any] | None = None
    id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", alert_id(self))

    def to_cloudevent(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "score": self.score,
            "threshold": self.threshold,
            "severity": self.severity,
            "detector": self.detector,
            "model_version": self.model_version,
            "event_kind": self.kind,
            "features": self.features,
            "contributions": self.contributions,
            "summary": self.summary,
        }
        if self.source is not None:
            data["source"] = self.source._asdict()
        if self.details:
            data.update(self.details)
        return {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": CE_SOURCE,
            "type": self.type,
            "subject": self.entity,
            "time": rfc3339(self.time),
            "datacontenttype": "application/json",
            "severity": self.severity,
            "data": data,
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_cloudevent(), separators=(",", ":")).encode()


def alert_id(alert: Alert) -> str:
    """Deterministic id: a hash of what triggered the alert and which model decided."""
    where = (
        f"{alert.source.topic}/{alert.source.partition}/{alert.source.offset}"
        if alert.source is not None
        else rfc3339(alert.time)
    )
    blob = "\x1f".join((alert.type, alert.entity, where, alert.model_version))
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
