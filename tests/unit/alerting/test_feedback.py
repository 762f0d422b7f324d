"""Feedback: parsing, the alert index, false-positive windows and penalties, and both
silences and feedback in the consume loop (in-memory port, real processor)."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry

from alerting.alerts import FIRING, RESOLVED
from alerting.errors import InvalidFeedback
from alerting.events import Event, Metric
from alerting.feedback import (
    FALSE_POSITIVE,
    TRUE_POSITIVE,
    AlertIndex,
    AlertInfo,
    FeedbackHandler,
    FeedbackPolicy,
    Penalty,
    parse_feedback,
)
from alerting.metrics import Metrics
from alerting.processor import Processor
from alerting.settings import load_settings
from alerting.silences import Silence, new_silence
from alerting.wiring import build_processor
from consumers.control.hook import AlertControl
from consumers.runner import LoopConfig, Service
from tests.unit.fakes import FakePort

ALERTS = "test.alerts"


class Clock:
    def __init__(self, now: float = 1_764_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def value(metrics: Metrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


# -- messages -------------------------------------------------------------------------------


def test_a_verdict_parses_and_round_trips() -> None:
    f = parse_feedback(b'{"alert_id": "abc", "verdict": "true_positive", "note": "real"}')
    assert (f.alert_id, f.verdict, f.note) == ("abc", TRUE_POSITIVE, "real")
    assert parse_feedback(f.to_json()) == f


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"{not json", "not_json"),
        (b'"a string"', "schema"),
        (b'{"verdict": "false_positive"}', "schema"),
        (b'{"alert_id": "", "verdict": "false_positive"}', "schema"),
        (b'{"alert_id": 12, "verdict": "false_positive"}', "schema"),
        (b'{"alert_id": "a", "verdict": "fp"}', "verdict"),
        (b'{"alert_id": "a"}', "verdict"),
        (b'{"alert_id": "a", "verdict": "true_positive", "note": 3}', "schema"),
    ],
)
def test_malformed_feedback_has_a_reason(value: bytes | None, reason: str) -> None:
    with pytest.raises(InvalidFeedback) as caught:
        parse_feedback(value)
    assert caught.value.reason == reason


def test_the_index_is_bounded_and_keeps_the_newest() -> None:
    index = AlertIndex(max_size=100)
    for n in range(250):
        index.add(f"id{n}", AlertInfo(f"E{n % 7}", "zscore", "warning", "firing"))
    assert len(index) == 100
    assert index.get("id149") is None
    info = index.get("id249")
    assert info is not None and info.entity == "E4"
    with pytest.raises(ValueError, match="max_size"):
        AlertIndex(0)


# -- the false-positive window -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"false_positives": 0}, "false_positives"),
        ({"window_s": 0}, "window_s"),
        ({"action": "ignore"}, "action"),
        ({"threshold_factor": 0.5}, "threshold_factor"),
        ({"penalty_s": 0}, "penalty_s"),
        ({"max_entities": 0}, "max_entities"),
    ],
)
def test_policy_parameters_are_validated(kwargs: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FeedbackPolicy(**kwargs)  # type: ignore[arg-type]


def test_n_false_positives_within_the_window_give_one_penalty() -> None:
    policy = FeedbackPolicy(false_positives=3, window_s=100, action="raise", threshold_factor=2)
    assert policy.record("A", FALSE_POSITIVE, 0.0) is None
    assert policy.record("A", TRUE_POSITIVE, 10.0) is None  # true positives do not count
    assert policy.record("B", FALSE_POSITIVE, 20.0) is None  # per entity
    assert policy.record("A", FALSE_POSITIVE, 50.0) is None
    assert policy.counting("A", 50.0) == 2
    # the first one left the window (100 s before 100.0): still two
    assert policy.record("A", FALSE_POSITIVE, 100.0) is None
    assert policy.record("A", FALSE_POSITIVE, 120.0) == Penalty("A", "raise", 2.0, 0.0, 3600.0)
    # counting starts again after a penalty
    assert policy.counting("A", 120.0) == 0
    assert policy.record("A", FALSE_POSITIVE, 121.0) is None


def test_mute_penalty() -> None:
    policy = FeedbackPolicy(false_positives=1, window_s=10, action="mute", penalty_s=60)
    assert policy.record("A", FALSE_POSITIVE, 0.0) == Penalty("A", "mute", 1.0, 60.0, 60.0)


def test_policy_matches_a_brute_force_reference() -> None:
    rng = random.Random(3)
    for _trial in range(40):
        n = rng.randint(1, 4)
        window = rng.uniform(5, 50)
        policy = FeedbackPolicy(false_positives=n, window_s=window)
        since_penalty: dict[str, list[float]] = {}
        now = 0.0
        for _ in range(300):
            now += rng.expovariate(0.3)
            entity = rng.choice("ABC")
            verdict = rng.choice([FALSE_POSITIVE, FALSE_POSITIVE, TRUE_POSITIVE])
            expected = False
            if verdict == FALSE_POSITIVE:
                times = since_penalty.setdefault(entity, [])
                times.append(now)
                if sum(1 for t in times if t > now - window) >= n:
                    expected = True
                    since_penalty[entity] = []
            got = policy.record(entity, verdict, now)
            assert (got is not None) is expected


def test_per_entity_memory_is_bounded() -> None:
    policy = FeedbackPolicy(false_positives=2, window_s=1000, max_entities=10)
    for n in range(100):
        policy.record(f"E{n}", FALSE_POSITIVE, float(n))
    assert len(policy._recent) == 10


# -- the handler (reader thread) -----------------------------------------------------------


def handler(false_positives: int = 2, action: str = "mute") -> tuple[FeedbackHandler, Metrics]:
    metrics = Metrics(CollectorRegistry())
    index = AlertIndex()
    index.add("a1", AlertInfo("AAPL", "zscore", "warning", "firing"))
    index.add("a2", AlertInfo("AAPL", "zscore", "critical", "firing"))
    index.add("m1", AlertInfo("MSFT", "zscore", "warning", "firing"))
    policy = FeedbackPolicy(false_positives=false_positives, window_s=600, action=action)
    return FeedbackHandler(index, policy, metrics, Clock()), metrics


def verdict(alert_id: str, verdict: str) -> bytes:
    return json.dumps({"alert_id": alert_id, "verdict": verdict}).encode()


def test_verdicts_are_counted_with_precision_and_penalties_queued() -> None:
    h, metrics = handler()
    h.handle(verdict("a1", TRUE_POSITIVE))
    h.handle(verdict("a1", FALSE_POSITIVE))
    h.handle(verdict("m1", FALSE_POSITIVE))
    assert h.take_penalties() == []
    h.handle(verdict("a2", FALSE_POSITIVE))  # AAPL's second within the window
    assert (
        value(
            metrics,
            "alerting_feedback_total",
            detector="zscore",
            severity="warning",
            verdict=FALSE_POSITIVE,
        )
        == 2
    )
    assert value(
        metrics, "alerting_feedback_precision", detector="zscore", severity="warning"
    ) == pytest.approx(1 / 3)
    assert (
        value(metrics, "alerting_feedback_precision", detector="zscore", severity="critical") == 0
    )
    assert h.take_penalties() == [Penalty("AAPL", "mute", 1.0, 3600.0, 3600.0)]
    assert h.take_penalties() == []


def test_malformed_and_unknown_feedback_is_counted_and_logged_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h, metrics = handler()
    with caplog.at_level(logging.WARNING, logger="alerting.feedback"):
        for _ in range(5):
            assert h.handle(b"garbage", "t/0/1") is None
            assert h.handle(verdict("nope", FALSE_POSITIVE)) is None
        assert h.handle(b'{"alert_id": "a1", "verdict": "maybe"}') is None
    assert value(metrics, "alerting_feedback_invalid_total", reason="not_json") == 5
    assert value(metrics, "alerting_feedback_invalid_total", reason="unknown_alert") == 5
    assert value(metrics, "alerting_feedback_invalid_total", reason="verdict") == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines  # one per reason within the minute
    assert any("feedback t/0/1 skipped" in line for line in lines)
    assert any("nope" in line and "feedback.index_size" in line for line in lines)
    assert h.take_penalties() == []


# -- the consume loop: silences and feedback together ------------------------------------

START = 1_700_000_000.0


def make_processor() -> Processor:
    settings = load_settings(
        detector={"name": "zscore", "params": {"window": 16, "min_history": 4}, "warmup": 15},
        threshold={"kind": "fixed", "value": 6.0},
        drift={"enabled": False},
        policy={"repeat_after": 1e9, "resolve_after": 5.0},
    )
    return build_processor(settings)


def calm(entity: str, n: int, start: float) -> list[Metric]:
    rng = random.Random(f"{entity}{start}")
    return [
        Metric(entity=entity, values={"load": 1.0 + rng.gauss(0, 0.01)}, time=start + i)
        for i in range(n)
    ]


def spike(entity: str, time: float) -> Metric:
    return Metric(entity=entity, values={"load": 50.0}, time=time)


def episode(entity: str, start: float) -> list[Event]:
    """Calm, one spike (a firing alert), then calm long enough to resolve it."""
    return [*calm(entity, 20, start), spike(entity, start + 20), *calm(entity, 20, start + 21)]


def loop(clock: Clock) -> tuple[FakePort, Service, AlertControl, Metrics]:
    port = FakePort()
    metrics = Metrics(CollectorRegistry())
    h = FeedbackHandler(
        AlertIndex(),
        FeedbackPolicy(false_positives=2, window_s=600, action="mute", penalty_s=1e6),
        metrics,
        clock,
    )
    control = AlertControl(metrics, feedback=h, clock=clock)
    service = Service(
        port,
        make_processor(),
        metrics,
        LoopConfig(ALERTS, "test.dlq", poll_timeout_ms=1, retry_backoff_s=0.001),
        clock=clock,
        control=control,
    )
    return port, service, control, metrics


def add(port: FakePort, events: Sequence[Event]) -> None:
    for e in events:
        port.add_event(e)


def published(port: FakePort) -> list[dict[str, object]]:
    return [json.loads(m.value or b"") for m in port.published_to(ALERTS)]


def apply_silence(
    control: AlertControl, entity: str, now: float, duration_s: float = 3600
) -> Silence:
    s = new_silence(entity, None, duration_s, "test", "me", now)
    control.silences.apply(s.id.encode(), s.to_json())
    return s


def test_silenced_alerts_are_counted_not_sent_until_the_silence_expires() -> None:
    clock = Clock()
    port, service, control, metrics = loop(clock)
    s = apply_silence(control, "AAPL", clock.now)
    add(port, episode("AAPL", START) + episode("MSFT", START))
    service.run_once()
    sent = published(port)
    assert [(a["subject"], a["type"]) for a in sent] == [("MSFT", FIRING), ("MSFT", RESOLVED)]
    # AAPL's firing is silenced, and so its resolve
    assert value(metrics, "alerting_alerts_silenced_total", severity="critical") == 2
    assert value(metrics, "alerting_silences_active") == 1
    assert value(metrics, "alerting_alerts_total", type=FIRING, severity="critical") == 1

    clock.now += 60
    control.silences.apply(s.id.encode(), s.expired(clock.now).to_json())
    add(port, episode("AAPL", START + 100))
    service.run_once()
    assert [(a["subject"], a["type"]) for a in published(port)[2:]] == [
        ("AAPL", FIRING),
        ("AAPL", RESOLVED),
    ]
    assert value(metrics, "alerting_silences_active") == 0
    assert value(metrics, "alerting_alerts_silenced_total", severity="critical") == 2


def test_false_positives_mute_the_entity_through_the_processor() -> None:
    clock = Clock()
    port, service, control, metrics = loop(clock)
    add(port, episode("AAPL", START) + episode("AAPL", START + 60) + episode("MSFT", START))
    service.run_once()
    firing = [a for a in published(port) if a["type"] == FIRING]
    assert [a["subject"] for a in firing] == ["AAPL", "AAPL", "MSFT"]
    assert control.feedback is not None
    # garbage and unknown ids between the verdicts: counted, nothing breaks
    control.feedback.handle(b"{{{")
    control.feedback.handle(verdict("unknown-id", FALSE_POSITIVE))
    for a in firing[:2]:
        control.feedback.handle(verdict(str(a["id"]), FALSE_POSITIVE))
    assert value(metrics, "alerting_feedback_penalties_total", action="mute") == 0
    assert service.run_once() == 0  # idle: the penalty is applied anyway
    assert value(metrics, "alerting_feedback_penalties_total", action="mute") == 1
    assert value(metrics, "alerting_feedback_invalid_total", reason="unknown_alert") == 1
    assert value(metrics, "alerting_feedback_invalid_total", reason="not_json") == 1

    before = len(published(port))
    add(port, episode("AAPL", START + 80) + episode("MSFT", START + 80))
    service.run_once()
    later = published(port)[before:]
    assert [a["subject"] for a in later if a["type"] == FIRING] == ["MSFT"]
    assert value(metrics, "alerting_alerts_suppressed_total", reason="feedback_mute") >= 1
    assert (
        value(
            metrics,
            "alerting_feedback_total",
            detector="zscore",
            severity="critical",
            verdict=FALSE_POSITIVE,
        )
        == 2
    )


def test_a_penalty_for_an_entity_this_process_never_saw_is_logged_not_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    _port, service, control, metrics = loop(clock)
    assert control.feedback is not None
    control.feedback.index.add("x", AlertInfo("GONE", "zscore", "warning", "firing"))
    control.feedback.handle(verdict("x", FALSE_POSITIVE))
    control.feedback.handle(verdict("x", FALSE_POSITIVE))
    with caplog.at_level(logging.WARNING, logger="consumers.control"):
        service.run_once()
    assert value(metrics, "alerting_feedback_penalties_total", action="mute") == 0
    assert "penalty for GONE not applied" in caplog.text


def test_time_is_rfc3339_in_records() -> None:
    s = new_silence("A", None, 60, "c", "me", now=datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert json.loads(s.to_json())["starts_at"] == "2026-01-01T00:00:00Z"


def test_malformed_silence_records_are_logged_counted_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.unit.fakes import raw_record

    clock = Clock()
    metrics = Metrics(CollectorRegistry())
    control = AlertControl(metrics, clock=clock)
    good = new_silence("AAPL", None, 60, "c", "me", clock.now)
    with caplog.at_level(logging.INFO, logger="consumers.control"):
        control.on_silence_record(raw_record(b"garbage", 0, key=b"k1", topic="s"))
        control.on_silence_record(raw_record(good.to_json(), 1, key=b"other", topic="s"))
        control.on_silence_record(raw_record(good.to_json(), 2, key=None, topic="s"))
        control.on_silence_record(raw_record(good.to_json(), 3, key=good.id.encode(), topic="s"))
    assert value(metrics, "alerting_control_records_invalid_total", reason="invalid") == 1
    assert value(metrics, "alerting_control_records_invalid_total", reason="key_mismatch") == 1
    assert value(metrics, "alerting_control_records_invalid_total", reason="no_key") == 1
    assert [s.id for s in control.silences.all()] == [good.id]
    assert "silence record s/0/0 skipped: not JSON" in caplog.text
    assert f"silence {good.id} (active) for entity =~ AAPL" in caplog.text
