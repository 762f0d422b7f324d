"""The detector protocol every model implements, as River's ``AnomalyDetector`` does.

A detector holds the state of *one* entity. ``score_one`` scores a feature dict
without changing anything; ``learn_one`` updates the state with it. The processor
always scores first, then learns, and never knows which detector it runs. Per-entity
detectors come from ``template.clone()``. Higher scores are more anomalous; a detector
with too little history returns 0.0 (neutral).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Detector(Protocol):
    """Score, then learn, one event's features at a time."""

    name: str

    def score_one(self, x: dict[str, float]) -> float:
        """Anomaly score of ``x`` (≥ 0, higher is more anomalous); no side effects."""
        ...

    def learn_one(self, x: dict[str, float]) -> None:
        """Update the state with ``x``."""
        ...

    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        """Per-feature contribution to the score of ``x`` (called only for alerts)."""
        ...

    def clone(self) -> Detector:
        """A fresh detector with the same parameters and no learned state."""
        ...

    def params(self) -> dict[str, object]:
        """The constructor parameters, for the model version and snapshots."""
        ...
