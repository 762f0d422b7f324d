"""The consume loop on the in-memory port: dead letters, at-least-once commits, metrics."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence

import pytest
from fakes import ALERTS, DEFAULT_TOPIC, DLQ, FakePort, FakeRecord, build_service

from alerting.alerts import FIRING, SourcePosition
from alerting.detectors import RollingZScore
from alerting.events import Event, Metric, Trade
from alerting.metrics import Metrics
from alerting.policy import AlertPolicy
from alerting.processor import Processor
from alerting.thresholds import FixedThreshold
from consumers.port import Outgoing
from consumers.runner import Service
from producers import dead_letters

WARMUP = 5


class Clock:
    """An injected wall clock that only moves when the test says so."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_processor(warmup: int = WARMUP, max_entities: int = 1000) -> Processor:
    return Processor(
        RollingZScore(window=16, min_history=4),
        AlertPolicy(critical_factor=2.0, repeat_after=0.0, resolve_after=0.0, inhibit=False),
        FixedThreshold(6.0),
        warmup=warmup,
        max_entities=max_entities,
    )


def make_service(
    port: FakePort,
    processor: Processor | None = None,
    clock: Clock | None = None,
    max_batch_records: int = 1000,
) -> tuple[Service, Metrics]:
    return build_service(
        port,
        processor if processor is not None else make_processor(),
        clock if clock is not None else Clock(),
        max_batch_records,
    )


def value(metrics: Metrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def calm(entity: str, n: int, start: float = 1_700_000_000.0) -> list[Metric]:
    rng = random.Random(entity)
    return [
        Metric(entity=entity, values={"load": 1.0 + rng.gauss(0, 0.01)}, time=start + i)
        for i in range(n)
    ]


def spike(entity: str, time: float) -> Metric:
    return Metric(entity=entity, values={"load": 50.0}, time=time)


def add_all(port: FakePort, events: Sequence[Event], partition: int = 0) -> list[FakeRecord]:
    return [port.add_event(e, partition=partition) for e in events]


def header_dict(message: Outgoing) -> dict[str, bytes]:
    return dict(message.headers)


# -- offsets ------------------------------------------------------------------------------


def test_valid_events_are_processed_and_next_offsets_committed() -> None:
    port = FakePort()
    for i, event in enumerate(calm("a", 6) + calm("b", 6)):
        port.add_event(event, partition=i % 2)
    port.add_event(Trade(symbol="T", price=10, size=1, time=0), partition=2)
    service, metrics = make_service(port)

    assert service.run_once() == 13
    assert port.commits == [{(DEFAULT_TOPIC, 0): 6, (DEFAULT_TOPIC, 1): 6, (DEFAULT_TOPIC, 2): 1}]
    assert port.published == []
    assert value(metrics, "alerting_events_consumed_total") == 13
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 12
    assert value(metrics, "alerting_events_processed_total", kind="trade") == 1
    # an empty poll commits nothing more
    assert service.run_once() == 0
    assert len(port.commits) == 1


def test_each_batch_commits_its_own_next_offsets() -> None:
    port = FakePort()
    add_all(port, calm("a", 10), partition=0)
    add_all(port, calm("b", 3), partition=1)
    service, _ = make_service(port, max_batch_records=4)
    sizes = [service.run_once() for _ in range(5)]
    assert sizes == [4, 4, 4, 1, 0]
    assert port.commits == [
        {(DEFAULT_TOPIC, 0): 4},
        {(DEFAULT_TOPIC, 0): 8},
        {(DEFAULT_TOPIC, 0): 10, (DEFAULT_TOPIC, 1): 2},
        {(DEFAULT_TOPIC, 1): 3},
    ]
    assert port.committed == {(DEFAULT_TOPIC, 0): 10, (DEFAULT_TOPIC, 1): 3}
    assert service.batches == 4


# -- dead letters -------------------------------------------------------------------------

GOOD = Metric(entity="g", values={"load": 1.0}, time=0)
MALFORMED = [
    (b"this is not json", "not_json"),
    (b'{"kind": "trade", "symbol": "A", "price": NaN, "size": 1, "time": 0}', "not_finite"),
    (b'{"kind": "trade", "symbol": "A", "price": -3, "size": 1, "time": 0}', "out_of_range"),
    (b'{"kind": "trade", "symbol": "A", "price": 3, "size": 1}', "missing_field"),
    (b'{"kind": "order", "symbol": "A", "time": 0}', "unknown_kind"),
    (None, "empty"),
]


def test_malformed_records_are_dead_lettered_byte_for_byte() -> None:
    port = FakePort()
    originals: list[tuple[FakeRecord, str]] = []
    headers = [("traceparent", b"00-4bf92f3577b34da6-00"), ("raw", bytes(range(256)))]
    port.add_event(GOOD)
    for i, (raw, reason) in enumerate(MALFORMED):
        record = port.add_raw(
            raw, key=f"key-{i}".encode(), headers=headers, timestamp_ms=1_700_000_000_000 + i
        )
        originals.append((record, reason))
        port.add_event(Metric(entity="g", values={"load": 1.0}, time=i + 1))
    service, metrics = make_service(port)

    assert service.run_once() == 1 + 2 * len(MALFORMED)
    letters = port.published_to(DLQ)
    assert len(letters) == len(MALFORMED)
    assert port.published_to(ALERTS) == []
    for letter, (record, reason) in zip(letters, originals, strict=True):
        assert letter.key == record.key
        assert letter.value == record.value
        assert letter.headers[: len(headers)] == headers  # originals first, unchanged
        extra = header_dict(letter)
        assert extra[dead_letters.REASON] == reason.encode()
        assert extra[dead_letters.SOURCE_TOPIC] == DEFAULT_TOPIC.encode()
        assert extra[dead_letters.SOURCE_PARTITION] == b"0"
        assert extra[dead_letters.SOURCE_OFFSET] == str(record.offset).encode()
        assert extra[dead_letters.SOURCE_TIMESTAMP] == str(record.timestamp).encode()
        assert extra[dead_letters.DETAIL]
    for reason in {r for _, r in MALFORMED}:
        expected = sum(r == reason for _, r in MALFORMED)
        assert value(metrics, "alerting_events_invalid_total", reason=reason) == expected
    # the good records around them were all processed, and everything was committed
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 1 + len(MALFORMED)
    assert value(metrics, "alerting_events_consumed_total") == 1 + 2 * len(MALFORMED)
    assert port.committed == {(DEFAULT_TOPIC, 0): 1 + 2 * len(MALFORMED)}


@pytest.mark.parametrize(("raw", "reason"), MALFORMED)
def test_each_invalid_reason_is_counted(raw: bytes | None, reason: str) -> None:
    port = FakePort()
    port.add_raw(raw, key=b"k")
    service, metrics = make_service(port)
    service.run_once()
    assert value(metrics, "alerting_events_invalid_total", reason=reason) == 1
    assert [m.topic for m in port.published] == [DLQ]
    assert header_dict(port.published[0])[dead_letters.REASON] == reason.encode()
    assert port.committed == {(DEFAULT_TOPIC, 0): 1}


class ExplodingProcessor(Processor):
    """A processor with a bug that shows for one entity."""

    def process(self, event: Event, source: SourcePosition | None = None) -> list:  # type: ignore[override]
        if event.entity == "boom":
            raise ZeroDivisionError("a bug in a detector")
        return super().process(event, source)


def test_a_processing_error_dead_letters_the_record_and_the_loop_goes_on() -> None:
    port = FakePort()
    port.add_event(GOOD)
    bad = port.add_event(Metric(entity="boom", values={"x": 1.0}, time=1), headers=[("h", b"v")])
    port.add_event(Metric(entity="g", values={"load": 1.0}, time=2))
    processor = ExplodingProcessor(
        RollingZScore(window=16, min_history=4),
        AlertPolicy(),
        FixedThreshold(6.0),
        warmup=WARMUP,
    )
    service, metrics = make_service(port, processor=processor)

    assert service.run_once() == 3
    letters = port.published_to(DLQ)
    assert len(letters) == 1
    assert letters[0].value == bad.value
    assert letters[0].key == b"boom"
    assert letters[0].headers[0] == ("h", b"v")
    assert header_dict(letters[0])[dead_letters.REASON] == b"processing_error"
    assert b"ZeroDivisionError" in header_dict(letters[0])[dead_letters.DETAIL]
    assert value(metrics, "alerting_events_invalid_total", reason="processing_error") == 1
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 2
    assert port.committed == {(DEFAULT_TOPIC, 0): 3}
    # and the next batch is still served
    port.add_event(Metric(entity="g", values={"load": 1.0}, time=3))
    assert service.run_once() == 1
    assert port.committed == {(DEFAULT_TOPIC, 0): 4}


# -- at-least-once ------------------------------------------------------------------------


def alerting_port() -> tuple[FakePort, int]:
    """Warm-up events, then two spikes of two entities: a batch that yields two alerts."""
    port = FakePort()
    add_all(port, calm("a", 20) + calm("b", 20))
    port.add_event(spike("a", 1_700_000_100.0))
    port.add_event(spike("b", 1_700_000_100.0))
    return port, len(port.records)


def test_commit_happens_only_after_publish_succeeded() -> None:
    port, n = alerting_port()
    port.add_raw(b"garbage")
    service, _ = make_service(port)
    service.run_once()
    assert [name for name, _ in port.calls] == ["poll", "publish", "commit"]
    assert [m.topic for m in port.published] == [ALERTS, ALERTS, DLQ]
    assert port.commits == [{(DEFAULT_TOPIC, 0): n + 1}]


def test_failed_publishes_are_retried_then_committed() -> None:
    port, n = alerting_port()
    port.fail_next_publishes(3)
    service, metrics = make_service(port)

    assert service.run_once() == n
    assert [name for name, _ in port.calls] == [
        "poll",
        "publish_failed",
        "publish_failed",
        "publish_failed",
        "publish",
        "commit",
    ]
    assert value(metrics, "alerting_broker_errors_total", operation="publish") == 3
    alerts = port.published_to(ALERTS)
    assert [json.loads(a.value or b"")["subject"] for a in alerts] == ["a", "b"]
    assert value(metrics, "alerting_alerts_total", type=FIRING, severity="critical") == 2
    assert port.committed == {(DEFAULT_TOPIC, 0): n}


def test_only_the_unacknowledged_messages_are_sent_again() -> None:
    port, n = alerting_port()
    port.fail_next_publishes(2, acknowledge_first=1)
    service, _ = make_service(port)
    service.run_once()
    # the first attempt acks "a"; the second gets only "b" and fails; the third delivers "b"
    subjects = [json.loads(m.value or b"")["subject"] for m in port.published]
    assert subjects == ["a", "b"]
    assert port.calls[1:4] == [("publish_failed", 2), ("publish_failed", 1), ("publish", 1)]
    assert port.calls[-1] == ("commit", {(DEFAULT_TOPIC, 0): n})


def test_stopping_while_publish_keeps_failing_commits_nothing() -> None:
    port, n = alerting_port()
    port.fail_next_publishes(10**9)
    service, metrics = make_service(port)

    def stop_after_three(failures: int) -> None:
        if failures == 3:
            service.stop.set()

    port.after_failed_publish = stop_after_three
    assert service.run_once() == n
    assert port.commits == []
    assert "commit" not in [name for name, _ in port.calls]
    assert value(metrics, "alerting_broker_errors_total", operation="publish") == 3
    assert value(metrics, "alerting_alerts_total", type=FIRING, severity="critical") == 0
    assert value(metrics, "alerting_end_to_end_latency_seconds_count") == 0
    assert service.batches == 0


def test_a_failed_poll_is_counted_and_the_loop_goes_on() -> None:
    port = FakePort()
    add_all(port, calm("a", 3))
    port.fail_next_polls(1)
    service, metrics = make_service(port)
    assert service.run_once() == 0
    assert value(metrics, "alerting_broker_errors_total", operation="poll") == 1
    assert port.commits == []
    assert service.run_once() == 3
    assert port.committed == {(DEFAULT_TOPIC, 0): 3}


def test_run_stops_cleanly_and_closes_the_port() -> None:
    port, n = alerting_port()
    service, _ = make_service(port, max_batch_records=10)

    original_poll = port.poll

    def poll(max_records: int, timeout_ms: int) -> Sequence[FakeRecord]:
        batch = original_poll(max_records, timeout_ms)
        if not batch:
            service.stop.set()
        return batch

    port.poll = poll  # type: ignore[method-assign]
    service.run()
    assert port.closed
    assert port.committed == {(DEFAULT_TOPIC, 0): n}
    assert len(port.published_to(ALERTS)) == 2


# -- metrics ------------------------------------------------------------------------------


def test_metrics_per_batch() -> None:
    port = FakePort()
    clock = Clock()
    warm = add_all(port, calm("a", 10) + calm("b", 10) + calm("c", 2))
    service, metrics = make_service(port, clock=clock, max_batch_records=len(warm))
    service.run_once()
    assert value(metrics, "alerting_events_consumed_total") == 22
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 22
    assert value(metrics, "alerting_live_models") == 3
    assert value(metrics, "alerting_entities_warming_up") == 1  # c has seen 2 of 5
    assert value(metrics, "alerting_batch_records_count") == 1
    assert value(metrics, "alerting_batch_records_sum") == 22
    assert value(metrics, "alerting_batch_processing_seconds_count") == 1

    record = port.add_event(spike("a", 1_700_000_050.0))
    clock.now = record.timestamp / 1000 + 0.5
    assert service.run_once() == 1
    assert value(metrics, "alerting_events_consumed_total") == 23
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 23
    assert value(metrics, "alerting_alerts_total", type=FIRING, severity="critical") == 1
    assert value(metrics, "alerting_alerts_total", type=FIRING, severity="warning") == 0
    assert value(metrics, "alerting_end_to_end_latency_seconds_count") == 1
    assert value(metrics, "alerting_end_to_end_latency_seconds_sum") == pytest.approx(0.5)
    assert value(metrics, "alerting_end_to_end_latency_seconds_bucket", le="0.5") == 1
    assert value(metrics, "alerting_end_to_end_latency_seconds_bucket", le="0.25") == 0
    assert value(metrics, "alerting_publish_seconds_count") == 1
    assert value(metrics, "alerting_commit_seconds_count") == 2
    assert value(metrics, "alerting_last_event_timestamp_seconds") == 1_700_000_050.0
    alerts = [m for m in port.published if m.topic == service.config.alerts_topic]
    assert len(alerts) == 1
    assert json.loads(alerts[0].value or b"")["subject"] == "a"


def test_latency_is_measured_per_alert_from_its_own_record() -> None:
    port = FakePort()
    clock = Clock()
    add_all(port, calm("a", 10) + calm("b", 10))
    service, metrics = make_service(port, clock=clock)
    service.run_once()
    first = port.add_event(spike("a", 1_700_000_050.0), timestamp_ms=1_700_000_060_000)
    port.add_event(spike("b", 1_700_000_051.0), timestamp_ms=1_700_000_061_000)
    clock.now = first.timestamp / 1000 + 2.0  # 2 s after a's record, 1 s after b's
    service.run_once()
    assert value(metrics, "alerting_end_to_end_latency_seconds_count") == 2
    assert value(metrics, "alerting_end_to_end_latency_seconds_sum") == pytest.approx(3.0)


def test_warming_up_and_evictions_follow_the_processor() -> None:
    port = FakePort()
    add_all(port, calm("a", 6) + calm("b", 1) + calm("c", 1) + calm("d", 1))
    processor = make_processor(max_entities=2)
    service, metrics = make_service(port, processor=processor)
    service.run_once()
    assert value(metrics, "alerting_live_models") == 2
    assert value(metrics, "alerting_entities_warming_up") == 2  # c and d
    assert value(metrics, "alerting_model_evictions_total") == 2  # a, then b
    assert processor.warming_up == 2
    assert processor.evictions == 0  # drained into the counter


def test_consumer_lag_is_exported_per_partition() -> None:
    port = FakePort()
    add_all(port, calm("a", 7), partition=0)
    add_all(port, calm("b", 2), partition=1)
    service, metrics = make_service(port, max_batch_records=5)
    service.run_once()
    assert value(metrics, "alerting_consumer_lag_records", partition="0") == 2
    assert value(metrics, "alerting_consumer_lag_records", partition="1") == 2
    service.run_once()
    assert value(metrics, "alerting_consumer_lag_records", partition="0") == 0
    assert value(metrics, "alerting_consumer_lag_records", partition="1") == 0
