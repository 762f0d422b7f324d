"""Metrics: every series with label values known in advance exists at 0 from the start,
and those label values are exactly what the code can emit (a new reason cannot be
forgotten: it fails here until it has its place in alerting/metrics.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest
from prometheus_client import CollectorRegistry

from alerting import alerts, events, feedback, metrics, policy, silences
from alerting.detectors import RollingZScore
from alerting.events import Metric
from alerting.metrics import KNOWN_SERIES, OPEN_SERIES, Metrics
from alerting.policy import AlertPolicy
from alerting.processor import Processor
from alerting.settings import FeedbackSettings
from alerting.thresholds import FixedThreshold

ROOT = Path(__file__).resolve().parents[3]


def source(*globs: str) -> str:
    return "\n".join(p.read_text() for g in globs for p in sorted(ROOT.glob(g)))


def first_arguments(call: str, text: str) -> set[str]:
    """The string literals passed first to ``call(`` in ``text``."""
    return set(re.findall(re.escape(call) + r'\(\s*"(\w+)"', text))


def test_a_fresh_registry_has_every_known_series_at_zero() -> None:
    m = Metrics(CollectorRegistry())
    for attribute, series in KNOWN_SERIES.items():
        name = getattr(m, attribute)._name
        for labels in series:
            got = m.registry.get_sample_value(f"{name}_total", labels)
            assert got == 0.0, (name, labels, got)
    # the ones the dashboard's invalid-event panels read, spelled out
    for reason in ("not_json", "schema", "processing_error"):
        assert m.registry.get_sample_value("alerting_events_invalid_total", {"reason": reason}) == 0
    assert m.registry.get_sample_value("alerting_entities_expired_total") == 0
    assert m.registry.get_sample_value("alerting_entities_stored") == 0


def test_the_processor_gauges_are_read_at_scrape_time() -> None:
    proc = Processor(RollingZScore(window=8), AlertPolicy(), FixedThreshold(6.0), warmup=3)
    m = Metrics(CollectorRegistry())
    m.follow(proc, model_bytes=1000)
    read = m.registry.get_sample_value
    assert read("alerting_live_models") == 0
    for i, entity in enumerate("aab"):
        proc.process(Metric(entity=entity, values={"load": 1.0}, time=100 + i))
    # no drain, no batch: what a scrape reads is the processor's state now
    assert read("alerting_live_models") == 2
    assert read("alerting_model_memory_bytes") == 2000
    assert read("alerting_entities_warming_up") == 2
    assert read("alerting_last_event_timestamp_seconds") == 102.0


def test_counts_drained_from_the_processor_are_added_to_the_counters() -> None:
    proc = Processor(RollingZScore(window=8), AlertPolicy(), FixedThreshold(6.0), warmup=2)
    m = Metrics(CollectorRegistry())
    for i in range(5):
        proc.process(Metric(entity="a", values={"load": 1.0}, time=i))
    m.count(proc.drain())
    m.count(proc.drain())  # drained: nothing counted twice
    read = m.registry.get_sample_value
    assert read("alerting_events_processed_total", {"kind": "metric"}) == 5
    assert read("alerting_score_ratio_count") == 3  # the events past warm-up
    assert proc.stats.processed == {}


def test_the_running_detector_gets_its_feedback_series() -> None:
    m = Metrics(CollectorRegistry())
    m.running("sad", "sad-1")
    for severity in metrics.SEVERITIES:
        for verdict in feedback.VERDICTS:
            labels = {"detector": "sad", "severity": severity, "verdict": verdict}
            assert m.registry.get_sample_value("alerting_feedback_total", labels) == 0


def test_every_labelled_counter_is_known_or_open_ended() -> None:
    m = Metrics(CollectorRegistry())
    labelled = {
        attribute for attribute, metric in vars(m).items() if getattr(metric, "_labelnames", ())
    }
    assert labelled - set(KNOWN_SERIES) - set(OPEN_SERIES) == set(), (
        "a labelled metric with neither its label values in KNOWN_SERIES nor a place in OPEN_SERIES"
    )
    assert set(KNOWN_SERIES) & set(OPEN_SERIES) == set()
    for attribute, series in KNOWN_SERIES.items():
        names = set(getattr(m, attribute)._labelnames)
        assert all(set(labels) == names for labels in series), attribute
        assert len({tuple(sorted(s.items())) for s in series}) == len(series), attribute


def test_invalid_event_reasons_are_what_decoding_and_the_loop_can_give() -> None:
    text = source("alerting/*.py", "consumers/*.py", "producers/*.py")
    emitted = first_arguments("InvalidEvent", text) | set(events._REASONS.values())
    emitted |= set(re.findall(r'invalid\.labels\(reason="(\w+)"\)', text))
    defaults = set(re.findall(r'_REASONS\.get\([^,]+,\s*"(\w+)"\)', source("alerting/events.py")))
    assert defaults == {"schema"}
    assert emitted | defaults == set(metrics.INVALID_EVENT_REASONS)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        b"",
        b"not json",
        b"[1, 2]",
        b'"text"',
        b'{"kind": "nope", "time": 0}',
        b'{"kind": "trade", "time": 0}',
        b'{"kind": "trade", "symbol": "A", "price": -1, "size": 1, "time": 0}',
        b'{"kind": "metric", "entity": "A", "values": {"x": "NaN"}, "time": 0}',
        b'{"kind": "metric", "entity": "A", "values": {}, "time": "yesterday"}',
    ],
)
def test_decoding_bad_records_gives_only_known_reasons(raw: bytes | None) -> None:
    with pytest.raises(events.InvalidEvent) as error:
        events.decode(raw)
    assert error.value.reason in metrics.INVALID_EVENT_REASONS


def test_snapshot_refusal_reasons_are_what_the_state_code_can_give() -> None:
    text = source("alerting/state.py")
    emitted = first_arguments("SnapshotRefused", text) | first_arguments("self._count", text)
    checked = re.search(r"expected = \{([^}]*)\}", text)
    assert checked is not None and 'f"{key}_mismatch"' in text
    emitted |= {f"{key}_mismatch" for key in re.findall(r'"(\w+)":', checked.group(1))}
    assert emitted == set(metrics.SNAPSHOT_REFUSAL_REASONS)


def test_the_other_label_values_match_their_sources() -> None:
    alerting_code = source("alerting/*.py")
    consumers_code = source("consumers/*.py")
    assert set(re.findall(r'suppressed="(\w+)"', alerting_code)) == set(policy.REASONS)
    assert set(policy.REASONS) == set(metrics.SUPPRESSED_REASONS)
    assert set(get_args(policy.Severity)) == set(silences.SEVERITIES) == set(metrics.SEVERITIES)
    assert (alerts.FIRING, alerts.RESOLVED, alerts.DRIFT) == metrics.ALERT_TYPES
    kinds = re.findall(r'kind: Literal\["(\w+)"\]', source("alerting/events.py"))
    assert tuple(kinds) == metrics.EVENT_KINDS
    assert set(re.findall(r'operation="(\w+)"', consumers_code)) == set(metrics.BROKER_OPERATIONS)
    assert set(re.findall(r'challengers\["(\w+)"\]', alerting_code)) == set(
        metrics.CHALLENGER_OUTCOMES
    )
    assert first_arguments("InvalidSilence", alerting_code) == set(metrics.SILENCE_RECORD_REASONS)
    feedback_code = source("alerting/feedback.py")
    assert first_arguments("InvalidFeedback", feedback_code) | first_arguments(
        "self._invalid", feedback_code
    ) == set(metrics.FEEDBACK_INVALID_REASONS)
    assert feedback.VERDICTS == metrics.VERDICTS
    assert get_args(FeedbackSettings.model_fields["action"].annotation) == metrics.PENALTY_ACTIONS
    control_code = source("consumers/control/*.py")
    assert set(re.findall(r'name="(\w+)"', control_code)) == set(metrics.CONTROL_READERS)
    reasons = set(re.findall(r'failures\.failed\(\s*"(\w+)"', control_code))
    assert reasons == set(metrics.READER_FAILURE_REASONS)
