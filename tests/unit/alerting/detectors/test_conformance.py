"""Every registered detector through the same checks, as River's ``river/checks`` does.

The suite is parametrized over :data:`alerting.detectors.REGISTRY`, so a new entry is
checked without touching this file. Streams are deterministic: per-entity features of
one symbol of the seeded synthetic market (trades and quotes, features arriving in
pieces), and a seeded "stable" stream whose events all carry the same four features.
"""

from __future__ import annotations

import math
import pickle
import random
import statistics
from collections.abc import Iterable

import pytest

from alerting.detectors import (
    REGISTRY,
    Detector,
    DetectorSpec,
    build,
    describe,
    explain,
    model_version,
)
from alerting.features import FeatureState, extract
from producers.synthetic import SyntheticMarket

SPECS = list(REGISTRY.values())
IDS = [spec.name for spec in SPECS]


def market_features(count: int, seed: int = 5) -> list[dict[str, float]]:
    """Features of one symbol's trades and quotes, as the processor computes them."""
    state = FeatureState()
    market = SyntheticMarket(symbols=1, seed=seed, anomaly_rate=0.0)
    return [extract(event, state) for event, _ in market.events(count)]


def stable_stream(count: int, seed: int = 11) -> list[dict[str, float]]:
    """Every event carries the same four features (different scales and shapes)."""
    rng = random.Random(seed)
    return [
        {
            "a": rng.gauss(0.0, 1.0),
            "b": rng.gauss(100.0, 5.0),
            "c": rng.expovariate(2.0),
            "d": rng.uniform(-1.0, 1.0),
        }
        for _ in range(count)
    ]


MARKET = market_features(900)
STABLE = stable_stream(900)


def warmup(spec: DetectorSpec, det: Detector) -> int:
    value = det.params()[spec.warmup_param]
    assert isinstance(value, int), f"{spec.name}.{spec.warmup_param} is not an int"
    return value


def check_score(score: object) -> float:
    assert isinstance(score, float), f"score {score!r} is not a float"
    assert math.isfinite(score) and score >= 0.0, f"score {score!r} is not finite and >= 0"
    return score


def run(det: Detector, stream: Iterable[dict[str, float]]) -> list[float]:
    """Score, then learn, each event (as the service does); the scores."""
    scores = []
    for x in stream:
        scores.append(check_score(det.score_one(x)))
        det.learn_one(x)
    return scores


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_implements_the_protocol(spec: DetectorSpec) -> None:
    det = build(spec.name)
    assert isinstance(det, Detector)
    assert det.name == spec.name
    assert spec.warmup_param in det.params()
    assert spec.default_threshold > 0 and math.isfinite(spec.default_threshold)
    assert spec.description and "\n" not in spec.description
    assert isinstance(explain(det, {"a": 1.0}), dict)  # explain_one is optional


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_scores_are_finite_non_negative_floats(spec: DetectorSpec) -> None:
    det = build(spec.name)
    run(det, MARKET)
    for x in [{}, {"a": 0.0}, {"log_size": 1e300}, {"log_size": -1e300}, {"spread_bps": 0.0}]:
        check_score(det.score_one(x))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@pytest.mark.parametrize("cut", [3, 200, 600])
def test_pickled_mid_stream_scores_the_rest_identically(spec: DetectorSpec, cut: int) -> None:
    det = build(spec.name)
    run(det, MARKET[:cut])
    restored = pickle.loads(pickle.dumps(det))
    assert run(restored, MARKET[cut:]) == run(det, MARKET[cut:])


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_same_parameters_and_stream_give_the_same_scores(spec: DetectorSpec) -> None:
    first = run(build(spec.name), MARKET)
    assert run(build(spec.name), MARKET) == first
    assert any(score > 0 for score in first)
    params = build(spec.name).params()
    if "seed" in params:  # and the seed is really used
        other = build(spec.name, {**params, "seed": int(str(params["seed"])) + 1})
        assert run(other, MARKET) != first


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_clones_are_fresh_independent_and_equal_to_a_new_build(spec: DetectorSpec) -> None:
    template = build(spec.name)
    run(template, STABLE[:400])  # learned state must not leak into clones
    one, two = template.clone(), template.clone()
    assert type(one) is type(template) and one is not two
    fresh = run(build(spec.name), MARKET)
    assert run(one, MARKET) == fresh
    # `two` saw nothing of what `one` learned: it scores the stable stream like a new build
    assert run(two, STABLE) == run(build(spec.name), STABLE)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_neutral_during_the_documented_warmup(spec: DetectorSpec) -> None:
    det = build(spec.name)
    n = warmup(spec, det)
    scores = run(det, STABLE[: n + 20])
    assert scores[:n] == [0.0] * n, f"{spec.name} scored before {n} learned events"
    assert any(score > 0 for score in scores[n:]), f"{spec.name} still neutral after {n}"
    # features arriving in pieces (trades and quotes) never shorten the warm-up
    assert run(build(spec.name), MARKET[:n]) == [0.0] * n


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_score_one_has_no_side_effects(spec: DetectorSpec) -> None:
    scored_twice, scored_once = build(spec.name), build(spec.name)
    for i, x in enumerate(MARKET[:500]):
        before = pickle.dumps(scored_twice) if i % 25 == 0 else None
        first = scored_twice.score_one(x)
        # never-seen names, new at every step, so a lazily created entry shows each time
        probes = [{}, {f"never_seen_{i}": 3.0}, {"log_size": 50.0, f"brand_new_{i}": -1.0}]
        for probe in probes:
            scored_twice.score_one(probe)
        explain(scored_twice, x)
        assert scored_twice.score_one(x) == first
        if before is not None:
            assert pickle.dumps(scored_twice) == before, f"{spec.name}.score_one changed state"
        assert scored_once.score_one(x) == first
        scored_twice.learn_one(x)
        scored_once.learn_one(x)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_survives_missing_and_new_features(spec: DetectorSpec) -> None:
    det = build(spec.name)
    rng = random.Random(3)
    for i, x in enumerate(STABLE[:700]):
        x = dict(x)
        if 200 <= i < 300:
            del x["b"]  # a feature goes missing for a while
        if i >= 400:
            x["late"] = rng.gauss(5.0, 1.0)  # a feature appears after warm-up
        if i % 97 == 0:
            x = {}  # an event with no features at all
        if i % 13 == 0:
            x = {"only_once_" + str(i): 1.0}  # a feature that never comes back
        check_score(det.score_one(x))
        det.learn_one(x)
    check_score(det.score_one({"late": 1e6}))
    check_score(det.score_one({"a": 0.0}))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_an_endless_stream_of_new_feature_names_stays_bounded(spec: DetectorSpec) -> None:
    det = build(spec.name)
    run(det, STABLE[:300])
    sizes = []
    for i in range(600):
        x = dict(STABLE[300 + i % 600])
        x[f"metric_{i}"] = float(i % 7)
        check_score(det.score_one(x))
        det.learn_one(x)
        if i in (299, 599):
            sizes.append(len(pickle.dumps(det)))
    assert sizes[1] <= sizes[0] * 1.1 + 1024, f"{spec.name} grows with new names: {sizes}"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_an_obvious_outlier_scores_above_typical_points_and_the_default_threshold(
    spec: DetectorSpec,
) -> None:
    det = build(spec.name)
    n = warmup(spec, det)
    run(det, STABLE[: n + 300])
    typical = [check_score(det.score_one(x)) for x in stable_stream(200, seed=99)]
    outlier = check_score(det.score_one({"a": 30.0, "b": 250.0, "c": 40.0, "d": 25.0}))
    assert outlier >= spec.default_threshold, (spec.name, outlier)
    assert outlier > max(typical), (spec.name, outlier, max(typical))
    # margin: the default threshold sits above nearly all typical points
    assert statistics.quantiles(typical, n=20)[-1] < spec.default_threshold, spec.name


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_params_round_trip_through_build_and_clone(spec: DetectorSpec) -> None:
    default = build(spec.name)
    changed = {spec.warmup_param: warmup(spec, default) + 1}
    det = build(spec.name, changed)
    params = det.params()
    assert params[spec.warmup_param] == warmup(spec, default) + 1
    assert build(spec.name, params).params() == params
    assert det.clone().params() == params
    assert model_version(det.clone()) == model_version(build(spec.name, params))
    assert model_version(det) != model_version(default)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_bad_and_unknown_parameters_are_value_errors_naming_them(spec: DetectorSpec) -> None:
    for name in build(spec.name).params():
        for bad in ("lots", -1):
            with pytest.raises(ValueError, match=name):
                build(spec.name, {name: bad})
    with pytest.raises(ValueError, match="no_such_parameter"):
        build(spec.name, {"no_such_parameter": 1})


def test_unknown_detector_lists_the_registered_ones() -> None:
    with pytest.raises(ValueError, match="isolation_forest") as info:
        build("isolation_forest")
    for name in REGISTRY:
        assert name in str(info.value)


def test_registry_names_and_help() -> None:
    assert set(REGISTRY) == {"hst", "oneclass_svm", "gaussian", "loda", "sad", "zscore"}
    assert all(name == spec.name for name, spec in REGISTRY.items())
    assert [name for name, _ in describe()] == list(REGISTRY)
    assert all("default threshold" in text for _, text in describe())


@pytest.mark.parametrize("name", ["hst", "loda"])
def test_disjoint_feature_sets_get_their_own_models(name: str) -> None:
    """Trades and quotes share no feature: each set is modelled apart, no padding."""
    from alerting.detectors.river_models import MAX_GROUPS

    det = build(name, {REGISTRY[name].warmup_param: 40})
    rng = random.Random(3)
    for _ in range(200):
        det.learn_one({"a": rng.gauss(0, 1), "b": rng.gauss(5, 1)})
        det.learn_one({"c": rng.gauss(-3, 1), "d": rng.gauss(0, 2)})
    groups = det._groups  # type: ignore[attr-defined]
    assert [sorted(g.features) for g in groups] == [["a", "b"], ["c", "d"]]
    assert all(g.learned == 200 for g in groups)
    usual_quote = det.score_one({"c": -3.0, "d": 0.0})
    assert det.score_one({"c": 40.0, "d": 0.0}) > usual_quote
    assert det.score_one({"a": 0.0, "b": 60.0}) > det.score_one({"a": 0.0, "b": 5.0})
    # a feature first seen after warm-up, next to known ones, is ignored by that group
    det.learn_one({"a": 0.1, "b": 5.0, "z": 1.0})
    assert "z" not in groups[0].features
    # feature sets that never meet open groups up to MAX_GROUPS; later ones are not modelled
    for i in range(MAX_GROUPS + 2):
        det.learn_one({f"only{i}": 1.0})
    assert len(det._groups) == MAX_GROUPS  # type: ignore[attr-defined]
    assert det.score_one({f"only{MAX_GROUPS}": 99.0}) == 0.0


@pytest.mark.parametrize("fading", [1e-9, 0.01, 0.2])
def test_fading_statistics_equal_a_brute_force_weighted_mean_and_variance(fading: float) -> None:
    """sad's forgetting statistics: weight max(1/n, fading) per value, recomputed from scratch."""
    from alerting.detectors.river_models import _FadingMean, _FadingVar

    rng = random.Random(4)
    values = [rng.gauss(3, 2) + (10 if i > 150 else 0) for i in range(300)]
    mean, var = _FadingMean(fading), _FadingVar(fading)
    for n, value in enumerate(values, start=1):
        mean.update(value)
        var.update(value)
        # each value's final weight: its own step weight times (1 - w) of every later step
        steps = [max(1 / k, fading) for k in range(1, n + 1)]
        weights = [steps[i] * math.prod(1 - w for w in steps[i + 1 :]) for i in range(n)]
        want_mean = sum(w * v for w, v in zip(weights, values, strict=False))
        want_var = sum(w * (v - want_mean) ** 2 for w, v in zip(weights, values, strict=False))
        assert mean.get() == pytest.approx(want_mean, rel=1e-9, abs=1e-9)
        assert var.get() == pytest.approx(want_var, rel=1e-7, abs=1e-9)


def test_sad_with_a_half_life_forgets_an_old_regime() -> None:
    rng = random.Random(8)
    forgetting = build("sad", {"half_life": 200})
    remembering = build("sad", {"half_life": 0, "clip": 0})  # River's own SAD
    for i in range(4000):
        x = {"v": rng.gauss(0 if i < 2000 else 50, 1)}
        forgetting.learn_one(x)
        remembering.learn_one(x)
    # the new level is usual to both; back at the old level is news only to the forgetting one
    assert forgetting.score_one({"v": 50.0}) < 3.0
    assert forgetting.score_one({"v": 0.0}) > 20.0 > 2.0 > remembering.score_one({"v": 0.0})


def _contaminated(seed: int, n: int) -> list[float]:
    """Normal values N(0, 1), and 4 % outliers at 9-10 σ."""
    rng = random.Random(seed)
    return [rng.uniform(9, 10) if rng.random() < 0.04 else rng.gauss(0, 1) for _ in range(n)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sad_winsorised_learning_keeps_frequent_outliers_visible(seed: int) -> None:
    clipped = build("sad")  # clip = 3.5 σ by default
    learns_all = build("sad", {"clip": 0})
    for value in _contaminated(seed, 5000):
        for det in (clipped, learns_all):
            if det.score_one({"v": value}) < 6.0:  # as the processor's protect: flagged
                det.learn_one({"v": value})  # events are not learned
    # learned as they are, the outliers almost double σ and score under 5: never flagged,
    # so protect never keeps them out
    assert learns_all.score_one({"v": 9.5}) < 5.0
    # winsorised at 3.5 σ they hold σ up less, score over 6, and protect keeps them out
    assert clipped.score_one({"v": 9.5}) > 8.0
    assert clipped.score_one({"v": 1.0}) < 1.5  # σ is about the normal values' 1 again


def test_sad_winsorised_learning_still_learns_a_lasting_change() -> None:
    det = build("sad")
    rng = random.Random(9)
    for i in range(6000):
        det.learn_one({"v": rng.gauss(0 if i < 3000 else 20, 1), "flat": 1.0 if i < 100 else 2.0})
    # a 20 σ level shift is clipped at first, but the band widens with every clipped value
    assert det.score_one({"v": 20.0}) < 3.0 < 6.0 < det.score_one({"v": 0.0})
    # a so-far constant feature (σ = 0) that moves is learned as is, not held at its old value
    assert det.score_one({"flat": 2.0}) < 0.1


@pytest.mark.parametrize("clip", [1.5, -1, True, "3", float("inf"), float("nan")])
def test_sad_clip_is_checked(clip: object) -> None:
    with pytest.raises(ValueError, match=r"clip must be 0 \(off\) or a number >= 2"):
        build("sad", {"clip": clip})


def test_sad_fast_path_matches_river_calls_exactly() -> None:
    # the default sad scores and learns inline; the generic path calls River's score_one /
    # learn_one and the statistics' get / update: both must agree to the last bit
    from alerting.detectors.river_models import (
        MAX_SCORE,
        StandardAbsoluteDeviationDetector,
        _PerFeatureDetector,
    )

    rng = random.Random(12)
    fast = StandardAbsoluteDeviationDetector(grace_period=5, max_features=3, half_life=40)
    slow = StandardAbsoluteDeviationDetector(grace_period=5, max_features=3, half_life=40)
    for i in range(3000):
        x = {"a": rng.gauss(0, 1) + (25.0 if rng.random() < 0.03 else 0.0)}
        if i % 3:
            x["b"] = 1.0 if i < 600 else 2.0  # constant, then a step (σ = 0 at first)
        if rng.random() < 0.3:
            x["c"] = rng.lognormvariate(0, 2)
        if i > 2000:
            x["d"] = 0.0  # a fourth feature: beyond max_features, never admitted
        assert fast.score_one(x) == _PerFeatureDetector.score_one(slow, x)
        fast.learn_one(x)
        _PerFeatureDetector.learn_one(slow, x)
    assert fast._counts == slow._counts and set(fast._detectors) == {"a", "b", "c"}
    for name, detector in fast._detectors.items():
        twin = slow._detectors[name]
        assert (detector.variance.var, detector.sub_stat.mean) == (
            twin.variance.var,
            twin.sub_stat.mean,
        )
    assert fast.score_one({"a": 1e300, "b": float("nan")}) == MAX_SCORE
