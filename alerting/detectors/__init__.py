"""Detectors and their registry: a detector is one entry in :data:`REGISTRY`.

>>> build("zscore", {"window": 32}).window
32
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from alerting import __version__
from alerting.detectors.base import Detector
from alerting.detectors.zscore import RollingZScore

__all__ = ["REGISTRY", "Detector", "RollingZScore", "build", "model_version"]

REGISTRY: dict[str, Callable[..., Detector]] = {
    "zscore": RollingZScore,
}


def build(name: str, params: Mapping[str, Any] | None = None) -> Detector:
    """The template detector ``name`` with ``params``; ``ValueError`` names what is wrong."""
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown detector {name!r}; registered: {', '.join(sorted(REGISTRY))}"
        ) from None
    try:
        return factory(**dict(params or {}))
    except TypeError as exc:  # an unknown parameter name
        raise ValueError(f"detector {name!r}: {exc}") from None


def model_version(detector: Detector) -> str:
    """``name@hash`` of the detector's parameters and this package's version."""
    blob = json.dumps(
        {"name": detector.name, "params": detector.params(), "v": __version__}, sort_keys=True
    )
    return f"{detector.name}@{hashlib.sha256(blob.encode()).hexdigest()[:12]}"
