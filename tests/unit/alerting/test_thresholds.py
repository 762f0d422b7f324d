"""Thresholds against a brute-force recompute of the quantile on random score streams."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable

import pytest

from alerting.thresholds import (
    FeatureTails,
    FixedThreshold,
    QuantileThreshold,
    TailThreshold,
    Threshold,
)


def brute_quantile(scores: list[float], q: float) -> float:
    """The documented definition: linear interpolation between the two nearest ranks."""
    ordered = sorted(scores)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


class BruteThreshold:
    """The documented rule, recomputed from the full history after every score."""

    def __init__(self, q: float, window: int, grace: int, min_value: float) -> None:
        self.q, self.window, self.grace, self.min_value = q, window, grace, min_value
        self.history: list[float] = []

    def value(self) -> float:
        if len(self.history) < self.grace:
            return math.inf
        return max(brute_quantile(self.history[-self.window :], self.q), self.min_value)

    def update(self, score: float) -> None:
        if math.isfinite(score):
            self.history.append(score)


def score_stream(rng: random.Random, length: int) -> list[float]:
    """Detector-like scores: mostly small, heavy-tailed, ties, a regime change, bad values."""
    out = []
    for i in range(length):
        kind = rng.random()
        if kind < 0.6:
            score = rng.expovariate(1.0)
        elif kind < 0.8:
            score = float(rng.randint(0, 5))  # ties
        elif kind < 0.97:
            score = rng.paretovariate(1.5)  # heavy tail
        else:
            score = rng.choice([0.0, 1e6, math.nan, math.inf])
        if i > length // 2:
            score = score * 10 + 3 if math.isfinite(score) else score  # a new regime
        out.append(score)
    return out


@pytest.mark.parametrize(
    ("seed", "q", "window", "grace", "min_value"),
    [
        (0, 0.995, 100, 20, 0.0),
        (1, 0.9, 10, 10, 0.0),
        (2, 0.5, 2, 1, 0.0),
        (3, 0.99, 257, 200, 2.5),
        (4, 0.01, 33, 5, 0.0),
        (5, 0.999, 1000, 100, 0.0),
        (6, 0.75, 7, 3, 1.0),
    ],
)
def test_value_equals_brute_force_after_every_update(
    seed: int, q: float, window: int, grace: int, min_value: float
) -> None:
    rng = random.Random(seed)
    threshold = QuantileThreshold(q=q, window=window, grace=grace, min_value=min_value)
    oracle = BruteThreshold(q, window, grace, min_value)
    assert threshold.value() == math.inf
    for score in score_stream(rng, min(3 * window + 50, 2500)):
        threshold.update(score)
        oracle.update(score)
        want, got = oracle.value(), threshold.value()
        if want == math.inf:
            assert got == math.inf
        else:
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
            assert got >= min_value


def test_flags_nothing_until_grace_scores_were_seen() -> None:
    threshold = QuantileThreshold(q=0.5, window=10, grace=4)
    for score in [1.0, 2.0, math.nan, 3.0]:  # NaN is not counted
        threshold.update(score)
        assert threshold.value() == math.inf
    threshold.update(4.0)
    assert threshold.value() == 2.5


def test_never_below_min_value() -> None:
    threshold = QuantileThreshold(q=0.9, window=50, grace=1, min_value=6.0)
    for _ in range(100):
        threshold.update(0.1)
    assert threshold.value() == 6.0
    for _ in range(50):
        threshold.update(10.0)
    assert threshold.value() == 10.0


def test_follows_a_change_of_regime_within_a_window() -> None:
    threshold = QuantileThreshold(q=0.99, window=200, grace=50)
    rng = random.Random(1)
    for _ in range(1000):
        threshold.update(rng.uniform(0.0, 1.0))
    assert threshold.value() < 1.0
    for _ in range(200):
        threshold.update(rng.uniform(100.0, 101.0))
    assert 100.0 < threshold.value() < 101.0  # the old regime has left the window


@pytest.mark.parametrize(
    "make",
    [lambda: FixedThreshold(6.0), lambda: QuantileThreshold(q=0.95, window=64, grace=10)],
    ids=["fixed", "quantile"],
)
def test_pickle_clone_and_determinism(make: Callable[[], Threshold]) -> None:
    rng = random.Random(9)
    scores = [rng.expovariate(1.0) for _ in range(300)]
    original = make()
    assert isinstance(original, Threshold)
    for score in scores[:100]:
        original.update(score)
    restored = pickle.loads(pickle.dumps(original))
    clone = original.clone()
    assert clone.params() == original.params()
    fresh = make()
    for score in scores[100:]:
        restored.update(score)
        original.update(score)
        clone.update(score)
        fresh.update(score)
        assert restored.value() == original.value()
        assert clone.value() == fresh.value()  # a clone starts empty, like a new one


def test_fixed_threshold() -> None:
    threshold = FixedThreshold(6)
    threshold.update(1e9)
    assert threshold.value() == 6.0
    assert threshold.params() == {"value": 6.0}
    assert threshold.clone().value() == 6.0


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"q": 0.0}, "q"),
        ({"q": 1.0}, "q"),
        ({"q": math.nan}, "q"),
        ({"q": "high"}, "q"),
        ({"window": 1}, "window"),
        ({"window": 2.5}, "window"),
        ({"window": True}, "window"),
        ({"window": "big"}, "window"),
        ({"grace": 0}, "grace"),
        ({"window": 10, "grace": 11}, "grace"),
        ({"grace": "some"}, "grace"),
        ({"min_value": -1.0}, "min_value"),
        ({"min_value": math.inf}, "min_value"),
        ({"min_value": math.nan}, "min_value"),
        ({"min_value": "low"}, "min_value"),
    ],
)
def test_quantile_errors_name_the_parameter(kwargs: dict[str, object], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter) as built:
        QuantileThreshold(**kwargs)  # type: ignore[arg-type]
    values = {"q": 0.995, "window": 1000, "grace": 100, "min_value": 0.0, **kwargs}
    with pytest.raises(ValueError) as checked:
        QuantileThreshold.check(**values)  # type: ignore[arg-type]
    assert str(checked.value) == str(built.value)  # the constructor's check, without River


def test_a_quantile_grace_above_its_window_is_refused_by_the_threshold_itself() -> None:
    with pytest.raises(ValueError) as info:
        QuantileThreshold(q=0.99, window=1000, grace=2000)
    assert str(info.value) == "grace must be at most window (1000), got 2000"
    QuantileThreshold.check(q=0.99, window=1000, grace=1000, min_value=0.0)  # at most: fine


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget": 0.0}, "budget must be a number in (0, 10000), got 0.0"),
        ({"level": 1.0}, "level must be a number in [0.5, 1), got 1.0"),
        ({"grace": 10}, "grace must be an integer >= 20, got 10"),
        ({"half_life": -1}, "half_life must be an integer >= 0 (0: never forget), got -1"),
        ({"grace": 500, "half_life": 100}, "half_life must be 0 or at least grace (500), got 100"),
        (
            {"budget": 300.0, "level": 0.98},
            "level must leave more than the budget's tail above it: 1 - level = 0.02 <= "
            "alpha = 0.03",
        ),
    ],
)
def test_tail_checks_are_the_thresholds_own(kwargs: dict[str, float], message: str) -> None:
    values = {"budget": 1.0, "level": 0.95, "grace": 500, "half_life": 5000, **kwargs}
    for unit in (TailThreshold, TailThreshold.check, FeatureTails):
        with pytest.raises(ValueError) as info:
            unit(**values)  # type: ignore[operator]
        assert str(info.value) == message, unit


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf, "six", True])
def test_fixed_errors_name_the_parameter(value: object) -> None:
    with pytest.raises(ValueError, match="value"):
        FixedThreshold(value)  # type: ignore[arg-type]
