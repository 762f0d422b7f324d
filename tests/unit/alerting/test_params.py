"""``params()`` and ``clone()`` read from the signature (:mod:`alerting.params`).

``params()`` feeds the model version in every alert and the configuration hash of
snapshots, so its keys, values, types and order are pinned here for every registered
detector, every threshold kind, the drift monitor and the alert policy.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from alerting.detectors import REGISTRY, build
from alerting.drift import DriftMonitor
from alerting.params import Parameterised, parameters
from alerting.policy import AlertPolicy
from alerting.thresholds import FeatureTails, FixedThreshold, QuantileThreshold, TailThreshold

#: each registered detector's params() with its defaults, as the hand-written bodies gave it
DEFAULTS: dict[str, dict[str, object]] = {
    "hst": {
        "n_trees": 20,
        "height": 5,
        "window_size": 250,
        "seed": 42,
        "max_features": 32,
        "scaler": "squash",
    },
    "oneclass_svm": {"nu": 0.2, "grace_period": 50, "max_features": 32},
    "gaussian": {"window_size": 256, "grace_period": 30, "max_features": 128},
    "loda": {
        "n_bins": 10,
        "n_random_cuts": 40,
        "seed": 42,
        "grace_period": 50,
        "scaler": "standard",
        "max_features": 32,
    },
    "sad": {"grace_period": 30, "max_features": 128, "half_life": 200, "clip": 3.5},
    "zscore": {"window": 256, "min_history": 8, "min_std": 1e-9, "max_features": 128},
}

#: a non-default value for every parameter of every registered detector
CUSTOM: dict[str, dict[str, object]] = {
    "hst": {
        "n_trees": 7,
        "height": 3,
        "window_size": 40,
        "seed": 3,
        "max_features": 9,
        "scaler": "minmax",
    },
    "oneclass_svm": {"nu": 0.3, "grace_period": 7, "max_features": 5},
    "gaussian": {"window_size": None, "grace_period": 9, "max_features": 6},
    "loda": {
        "n_bins": 5,
        "n_random_cuts": 9,
        "seed": 1,
        "grace_period": 8,
        "scaler": "minmax",
        "max_features": 4,
    },
    "sad": {"grace_period": 11, "max_features": 7, "half_life": 0, "clip": 4.5},
    "zscore": {"window": 20, "min_history": 3, "min_std": 1e-3, "max_features": 5},
}


def typed(params: dict[str, object]) -> list[tuple[str, type, object]]:
    """Keys in order, with each value's type: ``1 == 1.0`` would hide a changed type."""
    return [(name, type(value), value) for name, value in params.items()]


def test_every_registered_detector_is_pinned() -> None:
    assert set(DEFAULTS) == set(CUSTOM) == set(REGISTRY)
    for name, spec in REGISTRY.items():
        assert list(DEFAULTS[name]) == list(CUSTOM[name]) == spec.parameters


@pytest.mark.parametrize("name", sorted(REGISTRY))
@pytest.mark.parametrize("given", ["default", "custom"])
def test_detector_params_are_the_constructor_arguments(name: str, given: str) -> None:
    expected = DEFAULTS[name] if given == "default" else CUSTOM[name]
    detector = build(name) if given == "default" else build(name, CUSTOM[name])
    assert typed(detector.params()) == typed(expected)
    clone = detector.clone()
    assert type(clone) is type(detector) and clone is not detector
    assert typed(clone.params()) == typed(expected)
    assert typed(build(name, detector.params()).params()) == typed(expected)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_a_clone_has_learned_nothing(name: str) -> None:
    detector = build(name, CUSTOM[name])
    stream = [{"a": float(i % 7), "b": 1.0 + 0.1 * (i % 3)} for i in range(120)]
    for x in stream:
        detector.learn_one(x)
    clone = detector.clone()
    fresh = build(name, CUSTOM[name])
    probe = {"a": 30.0, "b": -4.0}
    assert clone.score_one(probe) == fresh.score_one(probe) == 0.0
    assert detector.score_one(probe) > 0.0


UNITS: list[tuple[Any, dict[str, object]]] = [
    (FixedThreshold(6), {"value": 6.0}),
    (FixedThreshold(2.5), {"value": 2.5}),
    (QuantileThreshold(), {"q": 0.995, "window": 1000, "grace": 100, "min_value": 0.0}),
    (
        QuantileThreshold(0.9, 10, 5, 50.0),
        {"q": 0.9, "window": 10, "grace": 5, "min_value": 50.0},
    ),
    (TailThreshold(), {"budget": 1.0, "level": 0.95, "grace": 500, "half_life": 5000}),
    (TailThreshold(2, 0.9, 100, 0), {"budget": 2.0, "level": 0.9, "grace": 100, "half_life": 0}),
    (
        FeatureTails(),
        {"budget": 1.0, "level": 0.95, "grace": 500, "half_life": 5000, "max_features": 64},
    ),
    (
        FeatureTails(3, 0.97, 50, 100, 7),
        {"budget": 3.0, "level": 0.97, "grace": 50, "half_life": 100, "max_features": 7},
    ),
    (
        DriftMonitor(),
        {
            "detector": "adwin",
            "params": {},
            "features": True,
            "min_interval_s": 60.0,
            "max_signals": 33,
        },
    ),
    (
        DriftMonitor("kswin", {"alpha": 1e-5}, False, 5, 3),
        {
            "detector": "kswin",
            "params": {"alpha": 1e-5},
            "features": False,
            "min_interval_s": 5,
            "max_signals": 3,
        },
    ),
    (
        AlertPolicy(),
        {
            "warning_factor": 1.0,
            "critical_factor": 2.0,
            "clear_factor": 0.8,
            "for_events": 1,
            "repeat_after": 1000.0,
            "resolve_after": 20.0,
            "inhibit": True,
            "inhibit_silence": 100.0,
        },
    ),
    (
        AlertPolicy(1.5, 3, 1, 2, 50, 10, False, 7),
        {
            "warning_factor": 1.5,
            "critical_factor": 3,
            "clear_factor": 1,
            "for_events": 2,
            "repeat_after": 50,
            "resolve_after": 10,
            "inhibit": False,
            "inhibit_silence": 7,
        },
    ),
]


@pytest.mark.parametrize(("unit", "expected"), UNITS, ids=lambda u: type(u).__name__)
def test_unit_params_are_the_constructor_arguments(
    unit: Parameterised, expected: dict[str, object]
) -> None:
    assert list(expected) == list(parameters(type(unit)))
    assert typed(unit.params()) == typed(expected)
    clone = unit.clone()
    assert type(clone) is type(unit) and clone is not unit
    assert typed(clone.params()) == typed(expected)


def test_a_drift_clone_owns_its_detector_parameters() -> None:
    monitor = DriftMonitor("kswin", {"alpha": 1e-5})
    clone = monitor.clone()
    assert clone.params_ == monitor.params_ and clone.params_ is not monitor.params_


def test_slotted_units_stay_slotted() -> None:
    assert not hasattr(TailThreshold(), "__dict__")
    assert not hasattr(FeatureTails(), "__dict__")


def test_parameters_reads_a_signature_once() -> None:
    class Unit(Parameterised):
        def __init__(self, size: int = 3, *, step: float = 1.0, **extra: object) -> None:
            self.size, self.step = size, step

    assert parameters(Unit) == ("size", "step")
    assert parameters(Unit) is parameters(Unit)
    assert Unit(5, step=2.0).clone().params() == {"size": 5, "step": 2.0}


def test_stored_as_names_the_attribute() -> None:
    class Level(Parameterised):
        stored_as: ClassVar[dict[str, str]] = {"value": "_value"}

        def __init__(self, value: float = 1.0) -> None:
            self._value = value

        def value(self) -> float:
            return self._value

    assert Level(4.0).clone().value() == 4.0
    assert Level(4.0).params() == {"value": 4.0}
