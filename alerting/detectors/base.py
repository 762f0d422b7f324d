"""The detector protocol every model implements, as River's ``AnomalyDetector`` does.

A detector holds the state of *one* entity. ``score_one`` scores a feature dict
without changing anything; ``learn_one`` updates the state with it. The processor
always scores first, then learns, and never knows which detector it runs. Per-entity
detectors come from ``template.clone()``; the registered detectors take ``clone`` and
``params`` from :class:`alerting.params.Parameterised`, which reads them from the
constructor's signature. Higher scores are more anomalous; a detector with too little
history returns 0.0 (neutral).

Explanations are optional: a detector that can say how much each feature contributed
to a score also implements :class:`Explainer` (``explain_one``). The processor asks for
one only when a detector has it (see :func:`explain`); River's models do not. A detector
whose score is the largest of per-feature scores can say so with :class:`FeatureScorer`
(``score_features``), so that each feature is judged against its own tail.

>>> from alerting.detectors.zscore import RollingZScore
>>> det = RollingZScore(window=8, min_history=2)
>>> isinstance(det, Detector), isinstance(det, Explainer)
(True, True)
>>> for v in [1.0, 2.0, 1.0, 2.0]:
...     det.learn_one({"v": v})
>>> explain(det, {"v": 1.5})
{'v': 0.0}
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

    def clone(self) -> Detector:
        """A fresh detector with the same parameters and no learned state."""
        ...

    def params(self) -> dict[str, object]:
        """The constructor parameters, for the model version and snapshots."""
        ...


@runtime_checkable
class Explainer(Protocol):
    """Optional: a detector that can attribute a score to the features."""

    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        """Per-feature contribution to the score of ``x`` (called only for alerts)."""
        ...


@runtime_checkable
class FeatureScorer(Protocol):
    """Optional: a detector whose score is the largest of per-feature scores (``sad``,
    ``zscore``, ``gaussian``): each feature's can then be calibrated on its own."""

    def score_features(self, x: dict[str, float]) -> dict[str, float]:
        """Each scored feature's score (≥ 0); ``score_one(x)`` is the largest of them
        (0.0 when there is none); no side effects."""
        ...


def explain(detector: Detector, x: dict[str, float]) -> dict[str, float]:
    """``detector.explain_one(x)`` when the detector has it, else ``{}``."""
    if isinstance(detector, Explainer):
        return detector.explain_one(x)
    return {}
