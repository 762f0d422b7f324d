"""The cooldown policy against a brute-force reading of its documented rule."""

from __future__ import annotations

import random
from math import nextafter

import pytest

from alerting.policy import CooldownPolicy, PolicyState


def brute_force(
    stream: list[tuple[str, float, float]],
    threshold: float,
    critical_factor: float,
    cooldown_s: float,
) -> list[str | None]:
    """Fire when score ≥ threshold unless *any* earlier alert of the entity is less than
    ``cooldown_s`` of event time before this event; recomputed from the full history."""
    fired: list[tuple[str, float]] = []
    out: list[str | None] = []
    for entity, score, t in stream:
        if score < threshold or any(e == entity and t - f < cooldown_s for e, f in fired):
            out.append(None)
            continue
        fired.append((entity, t))
        out.append("critical" if score >= threshold * critical_factor else "warning")
    return out


def random_stream(
    rng: random.Random, length: int, threshold: float, factor: float
) -> list[tuple[str, float, float]]:
    entities = ["a", "b", "c"]
    clocks = dict.fromkeys(entities, 1000.0)
    stream = []
    for _ in range(length):
        entity = rng.choice(entities)
        # whole seconds make event times land exactly on the cooldown boundary often;
        # negative steps are late events
        clocks[entity] += rng.choice([0, 1, 2, 5, 10, 30, -3, rng.uniform(-1, 20)])
        score = rng.choice(
            [
                0.0,
                rng.uniform(0, threshold),
                threshold,
                nextafter(threshold, 0.0),
                threshold * factor,
                nextafter(threshold * factor, 0.0),
                rng.uniform(threshold, 3 * threshold * factor),
            ]
        )
        stream.append((entity, score, clocks[entity]))
    return stream


@pytest.mark.parametrize(
    ("seed", "threshold", "factor", "cooldown"),
    [
        (0, 6.0, 2.0, 30.0),
        (1, 3.5, 1.0, 10.0),
        (2, 0.1, 3.0, 0.0),
        (3, 6.0, 1.5, 7.0),
        (4, 1.0, 2.0, 2.5),
    ],
)
def test_evaluate_equals_brute_force(
    seed: int, threshold: float, factor: float, cooldown: float
) -> None:
    rng = random.Random(seed)
    stream = random_stream(rng, 2000, threshold, factor)
    policy = CooldownPolicy(critical_factor=factor, cooldown_s=cooldown)
    states: dict[str, PolicyState] = {}
    got = [
        policy.evaluate(states.setdefault(e, PolicyState()), s, threshold, t) for e, s, t in stream
    ]
    want = brute_force(stream, threshold, factor, cooldown)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (i, stream[i], g, w)
    # the streams reach every outcome, so the comparison is not vacuous
    assert None in got
    assert "critical" in got
    assert "warning" in got or factor == 1.0  # with a factor of 1 every alert is critical
    over = sum(s >= threshold for _, s, _ in stream)
    fired = sum(g is not None for g in got)
    assert sum(st.suppressed for st in states.values()) == over - fired
    if cooldown > 0:
        assert over > fired


def test_alerts_of_one_entity_are_a_cooldown_apart() -> None:
    rng = random.Random(11)
    stream = random_stream(rng, 3000, 6.0, 2.0)
    policy = CooldownPolicy(cooldown_s=30.0)
    states: dict[str, PolicyState] = {}
    last: dict[str, float] = {}
    for entity, score, t in stream:
        if policy.evaluate(states.setdefault(entity, PolicyState()), score, 6.0, t) is not None:
            if entity in last:
                assert t - last[entity] >= 30.0
            last[entity] = t


def test_entities_cool_down_independently() -> None:
    policy = CooldownPolicy(cooldown_s=30.0)
    a, b = PolicyState(), PolicyState()
    assert policy.evaluate(a, 7.0, 6.0, 100.0) == "warning"
    assert policy.evaluate(b, 7.0, 6.0, 101.0) == "warning"
    assert policy.evaluate(a, 7.0, 6.0, 102.0) is None
    assert (a.suppressed, b.suppressed) == (1, 0)


def test_cooldown_boundary_is_inclusive() -> None:
    policy = CooldownPolicy(cooldown_s=30.0)
    state = PolicyState()
    assert policy.evaluate(state, 7.0, 6.0, 100.0) == "warning"
    assert policy.evaluate(state, 7.0, 6.0, nextafter(130.0, 0.0)) is None
    assert policy.evaluate(state, 7.0, 6.0, 130.0) == "warning"
    assert state.last_fired == 130.0


def test_suppressed_scores_do_not_extend_the_cooldown() -> None:
    policy = CooldownPolicy(cooldown_s=30.0)
    state = PolicyState()
    assert policy.evaluate(state, 7.0, 6.0, 0.0) is not None
    for t in range(1, 30):
        assert policy.evaluate(state, 7.0, 6.0, float(t)) is None
    assert policy.evaluate(state, 7.0, 6.0, 30.0) is not None


def test_below_threshold_is_neither_an_alert_nor_suppressed() -> None:
    policy = CooldownPolicy(cooldown_s=30.0)
    state = PolicyState()
    policy.evaluate(state, 7.0, 6.0, 0.0)
    assert policy.evaluate(state, 5.0, 6.0, 1.0) is None
    assert state.suppressed == 0
    assert state.last_fired == 0.0


def test_zero_cooldown_fires_every_time() -> None:
    policy = CooldownPolicy(cooldown_s=0.0)
    state = PolicyState()
    assert [policy.evaluate(state, 6.0, 6.0, 5.0) for _ in range(3)] == ["warning"] * 3


@pytest.mark.parametrize(
    ("threshold", "factor", "score", "expected"),
    [
        (6.0, 2.0, 6.0, "warning"),
        (6.0, 2.0, nextafter(6.0, 0.0), None),
        (6.0, 2.0, 12.0, "critical"),
        (6.0, 2.0, nextafter(12.0, 0.0), "warning"),
        (6.0, 1.0, 6.0, "critical"),
        (0.1, 3.0, 0.1 * 3.0, "critical"),
        (0.1, 3.0, nextafter(0.1 * 3.0, 0.0), "warning"),
    ],
)
def test_severity_boundaries_are_exact(
    threshold: float, factor: float, score: float, expected: str | None
) -> None:
    policy = CooldownPolicy(critical_factor=factor, cooldown_s=30.0)
    assert policy.evaluate(PolicyState(), score, threshold, 0.0) == expected


def test_constructor_stores_its_parameters() -> None:
    policy = CooldownPolicy(critical_factor=3.0, cooldown_s=12.5)
    assert (policy.critical_factor, policy.cooldown_s) == (3.0, 12.5)


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"critical_factor": 0.5}, "critical_factor"),
        ({"critical_factor": float("nan")}, "critical_factor"),
        ({"cooldown_s": -1.0}, "cooldown_s"),
        ({"cooldown_s": float("nan")}, "cooldown_s"),
    ],
)
def test_constructor_errors_name_the_parameter(kwargs: dict[str, float], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        CooldownPolicy(**kwargs)
