"""The rolling z-score against a brute-force recompute, and its detector contract."""

from __future__ import annotations

import pickle
import random
import statistics
from collections import defaultdict
from math import isclose, isfinite

import pytest

from alerting.detectors import REGISTRY, Detector, RollingZScore, build, model_version
from alerting.detectors.zscore import MAX_SCORE


class BruteZScore:
    """The documented rule, recomputed from the full per-feature history every time."""

    def __init__(self, window: int, min_history: int, min_std: float) -> None:
        self.window, self.min_history, self.min_std = window, min_history, min_std
        self.history: dict[str, list[float]] = defaultdict(list)

    def z(self, name: str, value: float) -> float | None:
        past = self.history.get(name, [])[-self.window :]
        if len(past) < self.min_history:
            return None
        mean = statistics.mean(past)
        std = max(statistics.stdev(past), self.min_std)
        return min(abs(value - mean) / std, MAX_SCORE) * (1.0 if value >= mean else -1.0)

    def score(self, x: dict[str, float]) -> float:
        zs = [abs(z) for name, v in x.items() if (z := self.z(name, v)) is not None]
        return max(zs, default=0.0)

    def explain(self, x: dict[str, float]) -> dict[str, float]:
        return {name: z for name, v in x.items() if (z := self.z(name, v)) is not None}

    def learn(self, x: dict[str, float]) -> None:
        for name, value in x.items():
            self.history[name].append(value)


def random_feature_stream(rng: random.Random, length: int) -> list[dict[str, float]]:
    """Features with different scales; some appear late, some go missing for a while."""
    stream = []
    level = 0.0
    for i in range(length):
        level += rng.gauss(0, 0.1)
        x: dict[str, float] = {"always": rng.gauss(0, 1)}
        if rng.random() < 0.7:
            x["sometimes"] = rng.gauss(100, 5)  # large mean, small spread
        if i > length // 3:
            x["late"] = rng.expovariate(2.0)
        if not (length // 4 < i < length // 2):
            x["gap"] = level + rng.gauss(0, 0.01)  # a random walk, absent in the middle
        if rng.random() < 0.05:
            x["always"] = rng.choice([8.0, -12.0])  # spikes
        if rng.random() < 0.1:
            x["rare"] = float(rng.randint(0, 3))  # few distinct values, often a flat window
        stream.append(x)
    return stream


def _close(a: float, b: float) -> bool:
    return isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


@pytest.mark.parametrize(
    ("seed", "window", "min_history"),
    [(0, 8, 2), (1, 16, 4), (2, 32, 8), (3, 50, 50), (4, 13, 5)],
)
def test_scores_equal_brute_force(seed: int, window: int, min_history: int) -> None:
    rng = random.Random(seed)
    det = RollingZScore(window=window, min_history=min_history)
    oracle = BruteZScore(window, min_history, det.min_std)
    stream = random_feature_stream(rng, window * 12)
    nonzero = 0
    for i, x in enumerate(stream):
        want = oracle.score(x)
        got = det.score_one(x)
        assert _close(got, want), (i, x, got, want)
        explained = det.explain_one(x)
        expected = oracle.explain(x)
        assert set(explained) == set(expected), i
        for name, z in expected.items():
            assert _close(explained[name], z), (i, name, explained[name], z)
        nonzero += want > 0
        det.learn_one(x)
        oracle.learn(x)
    assert nonzero > len(stream) // 2  # the comparison was not all zeros


def test_neutral_before_min_history() -> None:
    det = RollingZScore(window=16, min_history=5)
    for i in range(4):
        assert det.score_one({"v": 1000.0 * (i + 1)}) == 0.0
        assert det.explain_one({"v": 1000.0}) == {}
        det.learn_one({"v": float(i % 2)})
    assert det.score_one({"v": 1000.0}) == 0.0  # 4 past values, 5 needed
    det.learn_one({"v": 0.0})
    assert det.score_one({"v": 1000.0}) > 100


def test_a_new_feature_is_neutral_while_others_score() -> None:
    det = RollingZScore(window=16, min_history=4)
    for i in range(10):
        det.learn_one({"old": float(i % 2)})
    assert det.score_one({"new": 1e6}) == 0.0
    assert det.score_one({"old": 0.5, "new": 1e6}) == pytest.approx(0.0, abs=1e-12)
    assert det.score_one({}) == 0.0


def test_score_has_no_side_effects() -> None:
    rng = random.Random(7)
    stream = random_feature_stream(rng, 200)
    scored_twice = RollingZScore(window=16, min_history=4)
    scored_once = RollingZScore(window=16, min_history=4)
    for x in stream:
        first = scored_twice.score_one(x)
        assert scored_twice.score_one(x) == first
        scored_twice.explain_one(x)
        assert scored_twice.score_one(x) == first
        assert scored_once.score_one(x) == first
        scored_twice.learn_one(x)
        scored_once.learn_one(x)


def test_score_first_then_learn() -> None:
    det = RollingZScore(window=8, min_history=4)
    for v in [1.0, 2.0, 1.0, 2.0, 1.0, 2.0]:
        det.learn_one({"v": v})
    before = det.score_one({"v": 50.0})
    det.learn_one({"v": 50.0})
    after = det.score_one({"v": 50.0})
    assert before > after  # learning the outlier widened the window it is measured against


def test_clone_has_no_learned_state_and_same_params() -> None:
    det = RollingZScore(window=24, min_history=6, min_std=1e-6)
    for i in range(30):
        det.learn_one({"v": float(i % 3)})
    assert det.score_one({"v": 40.0}) > 0
    twin = det.clone()
    assert isinstance(twin, RollingZScore)
    assert twin is not det
    assert (
        twin.params()
        == det.params()
        == {
            "window": 24,
            "min_history": 6,
            "min_std": 1e-6,
            "max_features": 128,
        }
    )
    assert twin.score_one({"v": 40.0}) == 0.0
    assert twin.stats("v") is None
    twin.learn_one({"v": 1.0})
    assert det.stats("v") is not None
    assert det.stats("v") != twin.stats("v")


def test_constant_then_change_gives_a_large_finite_capped_score() -> None:
    det = RollingZScore(window=16, min_history=4)
    for _ in range(40):
        det.learn_one({"flat": 0.1})
    assert det.score_one({"flat": 0.1}) == 0.0
    jump = det.score_one({"flat": 0.2})
    assert isfinite(jump)
    assert 1e3 < jump <= MAX_SCORE
    assert det.score_one({"flat": 1e300}) == MAX_SCORE


def test_explain_signs() -> None:
    det = RollingZScore(window=16, min_history=4)
    for v in [9.0, 10.0, 11.0, 10.0, 9.0, 11.0]:
        det.learn_one({"up": v, "down": v, "mid": v})
    explained = det.explain_one({"up": 20.0, "down": 0.0, "mid": 10.0})
    assert explained["up"] > 5
    assert explained["down"] < -5
    assert explained["up"] == pytest.approx(-explained["down"])
    assert explained["mid"] == pytest.approx(0.0, abs=1e-9)
    assert max(abs(z) for z in explained.values()) == pytest.approx(
        det.score_one({"up": 20.0, "down": 0.0, "mid": 10.0})
    )


def test_pickle_round_trip_scores_identically() -> None:
    det = RollingZScore(window=16, min_history=4)
    stream = random_feature_stream(random.Random(3), 100)
    for x in stream[:60]:
        det.learn_one(x)
    restored = pickle.loads(pickle.dumps(det))
    for x in stream[60:]:
        assert restored.score_one(x) == det.score_one(x)
        restored.learn_one(x)
        det.learn_one(x)


def test_memory_is_bounded_by_the_window() -> None:
    det = RollingZScore(window=8, min_history=2)
    for i in range(1000):
        det.learn_one({"v": float(i)})
    window = det._features["v"]
    assert len(window.buf) == 8
    assert window.n == 8


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"window": 1}, "window"),
        ({"window": 0}, "window"),
        ({"min_history": 1}, "min_history"),
        ({"window": 8, "min_history": 9}, "min_history"),
        ({"min_std": 0.0}, "min_std"),
        ({"min_std": -1.0}, "min_std"),
        ({"min_std": float("nan")}, "min_std"),
    ],
)
def test_constructor_errors_name_the_parameter(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        RollingZScore(**kwargs)  # type: ignore[arg-type]


def test_implements_the_detector_protocol() -> None:
    det = RollingZScore()
    assert isinstance(det, Detector)
    assert det.name == "zscore"
    assert REGISTRY["zscore"].factory is RollingZScore


def test_build_returns_a_configured_template() -> None:
    det = build("zscore", {"window": 32, "min_history": 3})
    assert isinstance(det, RollingZScore)
    assert (det.window, det.min_history) == (32, 3)
    assert build("zscore").params() == RollingZScore().params()


def test_build_rejects_unknown_names_listing_registered_ones() -> None:
    with pytest.raises(ValueError, match="isolation_forest") as info:
        build("isolation_forest")
    for name in REGISTRY:
        assert name in str(info.value)


def test_build_passes_parameter_errors_through() -> None:
    with pytest.raises(ValueError, match="window"):
        build("zscore", {"window": 1})


def test_model_version_follows_the_params() -> None:
    base = model_version(RollingZScore(window=32, min_history=4))
    assert base.startswith("zscore@")
    assert model_version(RollingZScore(window=32, min_history=4)) == base
    assert model_version(RollingZScore(window=32, min_history=4).clone()) == base
    learned = RollingZScore(window=32, min_history=4)
    learned.learn_one({"v": 1.0})
    assert model_version(learned) == base  # learned state is not part of the version
    others = {
        model_version(RollingZScore(window=33, min_history=4)),
        model_version(RollingZScore(window=32, min_history=5)),
        model_version(RollingZScore(window=32, min_history=4, min_std=1e-6)),
    }
    assert base not in others
    assert len(others) == 3


def _level_shifts(rng: random.Random, length: int, hold: int) -> list[dict[str, float]]:
    """A gauge (memory in bytes, say) that sits at a level, then jumps to another one."""
    out = []
    level = 0.0
    for i in range(length):
        if i % hold == 0:
            level = float(rng.uniform(1e6, 1e7))
        out.append({"bytes": level})
    return out


@pytest.mark.parametrize("seed", range(4))
def test_flat_window_after_a_level_shift_equals_brute_force(seed: int) -> None:
    # once the window holds one level again its std is 0: the oracle scores the unchanged
    # value 0 and any move MAX_SCORE; rounding left over from the shift must not change that
    window = 16
    det = RollingZScore(window=window, min_history=4)
    oracle = BruteZScore(window, 4, det.min_std)
    for i, x in enumerate(_level_shifts(random.Random(seed), 12 * window, hold=3 * window)):
        for probe in (x, {"bytes": x["bytes"] + 0.5}):
            got, want = det.score_one(probe), oracle.score(probe)
            # a z of 1e-3 against an exact 0 is harmless; a different decision is not
            assert isclose(got, want, rel_tol=1e-6, abs_tol=1e-3), (i, probe, got, want)
        det.learn_one(x)
        oracle.learn(x)


def test_an_unchanged_gauge_does_not_score_after_a_level_shift() -> None:
    worst = 0.0
    for seed in range(50):
        det = RollingZScore(window=16, min_history=4)
        stream = _level_shifts(random.Random(seed), 222, hold=48)  # ends on a flat window
        for x in stream:
            det.learn_one(x)
        worst = max(worst, det.score_one(stream[-1]))
    assert worst < 1.0  # the default threshold is 6: this must never alert


def test_feature_names_per_entity_are_bounded() -> None:
    det = RollingZScore(window=8, min_history=2, max_features=3)
    for i in range(100):
        det.learn_one({f"metric{i}": 1.0, "steady": float(i % 2)})
    assert len(det._features) == 3  # the first three names seen, never more
    assert det.score_one({"metric99": 50.0}) == 0.0  # untracked: neutral, not an error
