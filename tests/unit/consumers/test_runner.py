"""The consume loop on the in-memory port: dead letters, at-least-once commits, metrics."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from alerting.alerts import FIRING, SourcePosition
from alerting.detectors import RollingZScore
from alerting.errors import ConfigError
from alerting.events import Event, Metric, Trade
from alerting.mapping import InputMapping, compile_input
from alerting.metrics import PUBLISH_SKIP_REASONS, Metrics
from alerting.policy import AlertPolicy
from alerting.processor import Outcome, Processor
from alerting.records import Outgoing
from alerting.settings import InputSettings, load_settings
from alerting.thresholds import FixedThreshold
from consumers.port import PERMANENT_ERROR_CODES
from consumers.runner import Service
from producers import dead_letters
from tests.unit.fakes import ALERTS, DEFAULT_TOPIC, DLQ, Crash, FakePort, FakeRecord, build_service

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
    **config: Any,
) -> tuple[Service, Metrics]:
    return build_service(
        port,
        processor if processor is not None else make_processor(),
        clock if clock is not None else Clock(),
        max_batch_records,
        **config,
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

    def process(
        self, event: Event, source: SourcePosition | None = None, *, with_threshold: bool = False
    ) -> Outcome:
        if event.entity == "boom":
            raise ZeroDivisionError("a bug in a detector")
        return super().process(event, source, with_threshold=with_threshold)


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
    assert processor.store.evictions == 0  # drained into the counter


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


# -- records the broker refuses for good (issue 12, finding 2) ----------------------------

LIMIT = 10_000  # the simulated producer's max_request_size


def too_large(message: Outgoing) -> str | None:
    size = len(message.value or b"") + len(message.key or b"")
    return "too_large" if size > LIMIT else None


def test_a_dead_letter_refused_as_too_large_is_sent_as_a_stub_and_the_loop_goes_on() -> None:
    port, n = alerting_port()  # two alerts in this batch
    garbage = b"\x00not json" + bytes(range(256)) * 100  # 25.6 kB: its dead letter is refused
    big = port.add_raw(garbage, key=b"AAPL", headers=[("trace-id", b"t1")], timestamp_ms=7)
    port.add_event(Metric(entity="g", values={"load": 1.0}, time=1_700_000_200.0))
    port.refuse(too_large)
    service, metrics = make_service(port)

    assert service.run_once() == n + 2
    letters = port.published_to(DLQ)
    assert len(letters) == 1
    letter = letters[0]
    headers = header_dict(letter)
    assert (letter.key, letter.value) == (b"AAPL", b"")
    assert letter.headers[0] == ("trace-id", b"t1")  # the original headers, first
    assert headers[dead_letters.REASON] == b"not_json"  # why it is a dead letter
    assert headers[dead_letters.STUB] == b"too_large"  # why its value was left out
    assert headers[dead_letters.VALUE_BYTES] == str(len(garbage)).encode()
    assert headers[dead_letters.VALUE_SHA256] == hashlib.sha256(garbage).hexdigest().encode()
    assert headers[dead_letters.KEY_BYTES] == b"4"
    assert headers[dead_letters.SOURCE_OFFSET] == str(big.offset).encode()
    assert headers[dead_letters.STUB_DETAIL]
    # the alerts of the batch and the event behind the garbage went through, all committed
    assert len(port.published_to(ALERTS)) == 2
    assert value(metrics, "alerting_events_invalid_total", reason="not_json") == 1
    assert value(metrics, "alerting_events_processed_total", kind="metric") == n + 1
    assert value(metrics, "alerting_publish_skipped_total", reason="too_large") == 0
    assert port.committed == {(DEFAULT_TOPIC, 0): n + 2}
    assert service.batches == 1


def test_a_message_refused_for_good_is_skipped_after_the_attempts_with_a_metric_and_a_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, n = alerting_port()
    port.refuse(lambda m: "invalid_record" if m.topic == ALERTS else None)
    port.add_raw(b"garbage", key=b"k")  # its dead letter is accepted, in the same calls
    service, metrics = make_service(port, max_refused_attempts=3)

    with caplog.at_level(logging.WARNING, logger="consumers.runner"):
        assert service.run_once() == n + 1
    # each alert was tried 3 times, then skipped; nothing else was held up
    assert [name for name, _ in port.calls].count("publish_refused") == 3
    assert len(port.refusals) == 6
    assert port.published_to(ALERTS) == []
    assert len(port.published_to(DLQ)) == 1
    assert value(metrics, "alerting_publish_skipped_total", reason="invalid_record") == 2
    assert value(metrics, "alerting_alerts_total", type=FIRING, severity="critical") == 0
    assert port.committed == {(DEFAULT_TOPIC, 0): n + 1}
    skipped = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(skipped) == 2
    spike_offsets = {n - 2, n - 1}
    for line in skipped:
        assert ALERTS in line and "invalid_record" in line and "3 times" in line
        assert any(f"{DEFAULT_TOPIC}/0/{offset}" in line for offset in spike_offsets), line
    # the loop goes on with the next batch
    port.add_event(Metric(entity="g", values={"load": 1.0}, time=1_700_000_300.0))
    assert service.run_once() == 1
    assert port.committed == {(DEFAULT_TOPIC, 0): n + 2}


def test_a_stub_the_broker_also_refuses_is_skipped_after_the_attempts() -> None:
    port = FakePort()
    port.add_raw(b"x" * 50_000, key=b"k")
    port.add_event(GOOD)
    port.refuse(lambda m: "invalid_record" if m.topic == DLQ else None)  # e.g. bad timestamps
    service, metrics = make_service(port, max_refused_attempts=2)

    assert service.run_once() == 2
    refused = [r.message for r in port.refusals]
    assert refused[0].value == b"x" * 50_000  # first whole...
    assert [m.value for m in refused[1:]] == [b"", b""]  # ...then its stub, twice
    assert value(metrics, "alerting_publish_skipped_total", reason="invalid_record") == 1
    assert port.committed == {(DEFAULT_TOPIC, 0): 2}


def test_temporary_failures_are_still_retried_without_limit_around_refusals() -> None:
    port, n = alerting_port()
    port.fail_next_publishes(5)  # more than max_refused_attempts: never a reason to skip
    service, metrics = make_service(port, max_refused_attempts=2)
    service.run_once()
    assert len(port.published_to(ALERTS)) == 2
    assert value(metrics, "alerting_broker_errors_total", operation="publish") == 5
    assert value(metrics, "alerting_publish_skipped_total", reason="other") == 0
    assert port.committed == {(DEFAULT_TOPIC, 0): n}


def test_a_refused_snapshot_is_skipped_and_the_offsets_committed() -> None:
    port = FakePort()
    add_all(port, calm("a", 3))
    port.refuse(lambda m: "too_large" if m.topic == "state" else None)
    service, metrics = build_service(port, make_processor(), Clock(), changelog="state")
    assert service.run_once() == 3
    assert port.published_to("state") == []
    assert value(metrics, "alerting_publish_skipped_total", reason="too_large") == 1
    assert port.committed == {(DEFAULT_TOPIC, 0): 3}


def test_a_record_over_max_event_bytes_is_stubbed_without_being_decoded() -> None:
    port = FakePort()
    port.add_event(GOOD)
    # a valid event, padded: over the bound, so it is never decoded nor processed
    padded = b'{"kind": "metric", "entity": "g", "values": {"load": 1.0}, "time": 1' + b" " * 5000
    huge_key = b"K" * 5000
    headers = [("small", b"s"), ("huge", b"h" * 100_000)]
    record = port.add_raw(padded + b"}", key=huge_key, headers=headers)
    port.add_event(Metric(entity="g", values={"load": 1.0}, time=2))
    service, metrics = make_service(port, max_event_bytes=4096)

    assert service.run_once() == 3
    assert value(metrics, "alerting_events_invalid_total", reason="too_large") == 1
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 2
    [letter] = port.published_to(DLQ)
    got = header_dict(letter)
    assert letter.value == b""
    assert letter.key == huge_key[: dead_letters.MAX_STUB_KEY_BYTES]
    assert got[dead_letters.KEY_BYTES] == b"5000"
    assert got[dead_letters.REASON] == got[dead_letters.STUB] == b"too_large"
    assert b"max_event_bytes" in got[dead_letters.DETAIL]
    assert got[dead_letters.VALUE_BYTES] == str(len(record.value or b"")).encode()
    assert (
        got[dead_letters.VALUE_SHA256] == hashlib.sha256(record.value or b"").hexdigest().encode()
    )
    assert got["small"] == b"s" and "huge" not in got  # over the header budget: dropped
    assert got[dead_letters.HEADERS_DROPPED] == b"1"
    assert sum(len(v) for _, v in letter.headers) < 10_000
    assert port.committed == {(DEFAULT_TOPIC, 0): 3}


def test_a_tombstone_without_a_key_is_dead_lettered_even_if_the_client_refuses_it() -> None:
    # kafka-python's send() raises ValueError for a message with neither key nor value
    port = FakePort()
    port.add_raw(None)
    port.refuse(lambda m: "invalid_record" if m.key is None and m.value is None else None)
    service, metrics = make_service(port)
    assert service.run_once() == 1
    assert value(metrics, "alerting_events_invalid_total", reason="empty") == 1
    [letter] = port.published_to(DLQ)
    assert header_dict(letter)[dead_letters.REASON] == b"empty"
    assert header_dict(letter)[dead_letters.VALUE_BYTES] == b"-1"
    assert port.committed == {(DEFAULT_TOPIC, 0): 1}


def test_an_error_out_of_the_loop_makes_nothing_durable_in_close() -> None:
    """kafka-python's close() runs the revocation listener: after an unexpected error it
    must neither snapshot nor commit the half-done batch (nor hide the error)."""
    port, _ = alerting_port()
    port.crash_after(1, topic=ALERTS)
    service, _ = build_service(port, make_processor(), Clock(), changelog="state")

    def close() -> None:
        service._revoked({0})  # what KafkaConsumer.close() does
        port.closed = True

    port.close = close  # type: ignore[method-assign]
    with pytest.raises(Crash):
        service.run()
    assert port.closed
    assert port.published_to("state") == []
    assert port.commits == []


# -- far-future events (issue 12, finding 7) ----------------------------------------------

NOW = 1_767_623_400.0  # the injected wall clock: 2026-01-05T14:30:00Z


def test_a_far_future_event_is_dead_lettered_and_evicts_nobody() -> None:
    port = FakePort()
    for entity in "abc":
        add_all(port, calm(entity, 6, start=NOW - 100))
    processor = Processor(
        RollingZScore(window=16, min_history=4),
        AlertPolicy(),
        FixedThreshold(6.0),
        warmup=WARMUP,
        idle_ttl_s=3600.0,
    )
    service, metrics = build_service(port, processor, Clock(NOW), max_time_ahead_s=86_400.0)
    service.run_once()
    assert value(metrics, "alerting_live_models") == 3

    far = port.add_event(
        Metric(entity="d", values={"load": 1.0}, time=datetime(9999, 12, 31, tzinfo=UTC))
    )
    add_all(port, calm("a", 2, start=NOW - 10))
    assert service.run_once() == 3
    [letter] = port.published_to(DLQ)
    got = header_dict(letter)
    assert got[dead_letters.REASON] == b"future_time"
    assert b"max_time_ahead_s" in got[dead_letters.DETAIL]
    assert letter.value == far.value  # an ordinary dead letter: kept whole
    assert value(metrics, "alerting_events_invalid_total", reason="future_time") == 1
    # event time did not jump: nobody was evicted, every entity is still live
    assert processor.newest_timestamp < NOW
    assert value(metrics, "alerting_model_evictions_total") == 0
    assert value(metrics, "alerting_live_models") == 3
    assert port.committed == {(DEFAULT_TOPIC, 0): 21}


def test_only_the_future_is_bounded_whatever_the_time_zone() -> None:
    port = FakePort()
    recorded = [
        b'{"kind": "metric", "entity": "old", "values": {"x": 1}, "time": "2001-09-09T01:46:40Z"}',
        b'{"kind": "metric", "entity": "old", "values": {"x": 1}, "time": 0}',
        # 23 h ahead, written in +05:00 then in UTC: inside the bound
        b'{"kind": "metric", "entity": "soon", "values": {"x": 1}, '
        b'"time": "2026-01-06T18:30:00+05:00"}',
        b'{"kind": "metric", "entity": "soon", "values": {"x": 1}, "time": 1767706200}',
        # 25 h ahead: refused, in either zone
        b'{"kind": "metric", "entity": "late", "values": {"x": 1}, '
        b'"time": "2026-01-06T20:30:00+05:00"}',
        b'{"kind": "metric", "entity": "late", "values": {"x": 1}, "time": "2026-01-06T15:30:00Z"}',
    ]
    for raw in recorded:
        port.add_raw(raw, key=b"k")
    service, metrics = build_service(port, make_processor(), Clock(NOW), max_time_ahead_s=86_400.0)
    assert service.run_once() == len(recorded)
    letters = port.published_to(DLQ)
    assert [m.value for m in letters] == recorded[4:]
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 4


def test_the_future_bound_follows_the_injected_clock() -> None:
    port = FakePort()
    port.add_event(Metric(entity="a", values={"x": 1.0}, time=NOW + 7200))
    clock = Clock(NOW)
    service, metrics = build_service(port, make_processor(), clock, max_time_ahead_s=3600.0)
    service.run_once()
    assert value(metrics, "alerting_events_invalid_total", reason="future_time") == 1
    port.add_event(Metric(entity="a", values={"x": 1.0}, time=NOW + 7200))
    clock.now = NOW + 5400  # the wall clock moved: now only 30 min ahead
    service.run_once()
    assert value(metrics, "alerting_events_invalid_total", reason="future_time") == 1
    assert value(metrics, "alerting_events_processed_total", kind="metric") == 1


# -- the settings of these bounds ---------------------------------------------------------


def test_the_bounds_have_validated_settings() -> None:
    service = load_settings().service
    assert (service.max_time_ahead_s, service.max_event_bytes) == (86_400.0, 1024 * 1024)
    assert service.max_refused_attempts == 3
    cases: list[dict[str, object]] = [
        {"max_time_ahead_s": 0},
        {"max_time_ahead_s": -60},
        {"max_time_ahead_s": "inf"},
        {"max_time_ahead_s": "nan"},
        {"max_event_bytes": 10},
        {"max_refused_attempts": 0},
    ]
    for bad in cases:
        [name] = bad
        with pytest.raises(ConfigError, match=f"service.{name}"):
            load_settings(service=bad)
    assert load_settings(service={"max_time_ahead_s": 60}).service.max_time_ahead_s == 60.0


def test_every_skip_reason_a_port_can_give_is_a_known_label_value() -> None:
    reasons = set(PERMANENT_ERROR_CODES.values()) | {"other", "invalid_record"}
    assert reasons == set(PUBLISH_SKIP_REASONS)


# -- the kafka-python port tells refusals from temporary failures -------------------------


class _Future:
    def __init__(self, error: Exception | None, done: bool = True) -> None:
        self.exception, self._done = error, done

    def succeeded(self) -> bool:
        return self._done and self.exception is None

    def failed(self) -> bool:
        return self._done and self.exception is not None


class _KafkaPythonProducer:
    """send() raises ``raises[value]``; the future of ``fails[value]`` fails with it; a
    value in ``late`` is never acknowledged (flush timed out)."""

    def __init__(
        self, raises: dict[bytes, Exception], fails: dict[bytes, Exception], late: set[bytes]
    ) -> None:
        self.raises, self.fails, self.late = raises, fails, late
        self.sent: list[bytes] = []

    def send(self, topic: str, key: bytes | None, value: bytes, **kw: Any) -> _Future:
        if value in self.raises:
            raise self.raises[value]
        self.sent.append(value)
        return _Future(self.fails.get(value), done=value not in self.late)

    def flush(self, timeout: float) -> None:
        return None


def test_the_kafka_python_port_reports_refusals_per_message() -> None:
    from kafka.errors import (
        KafkaTimeoutError,
        MessageSizeTooLargeError,
        NotLeaderForPartitionError,
        TopicAuthorizationFailedError,
    )

    from consumers.kafka_python import KafkaPort
    from consumers.port import DeliveryError

    producer = _KafkaPythonProducer(
        raises={b"huge": MessageSizeTooLargeError("17 MB"), b"none": ValueError("no key")},
        fails={b"denied": TopicAuthorizationFailedError(), b"moved": NotLeaderForPartitionError()},
        late={b"slow"},
    )
    port = KafkaPort.__new__(KafkaPort)
    port.producer = producer
    values = [b"ok", b"huge", b"denied", b"slow", b"none", b"moved", b"ok2"]
    with pytest.raises(DeliveryError, match="2 refused for good") as info:
        port.publish([Outgoing("t", b"k", v) for v in values], 1.0)
    assert producer.sent == [b"ok", b"denied", b"slow", b"moved", b"ok2"]
    # a missing ACL is the topic's, not the record's: retried until an operator fixes it
    assert [m.value for m in info.value.pending] == [b"denied", b"slow", b"moved"]
    refused = {r.message.value: r.reason for r in info.value.refused}
    assert refused == {b"huge": "too_large", b"none": "invalid_record"}
    assert "MessageSizeTooLargeError" in next(r.detail for r in info.value.refused)

    # a temporary error raised by send() (no metadata in time) holds the rest back
    producer = _KafkaPythonProducer(
        raises={b"b": KafkaTimeoutError("metadata")}, fails={}, late=set()
    )
    port.producer = producer
    with pytest.raises(DeliveryError) as info:
        port.publish([Outgoing("t", b"k", v) for v in (b"a", b"b", b"c")], 1.0)
    assert producer.sent == [b"a"]
    assert [m.value for m in info.value.pending] == [b"b", b"c"]
    assert info.value.refused == []


def test_kafka_python_errors_that_are_outages_are_never_refusals() -> None:
    from kafka.errors import (
        BrokerNotAvailableError,
        CorruptRecordError,
        InvalidRequiredAcksError,
        KafkaConnectionError,
        NotEnoughReplicasError,
        RecordListTooLargeError,
        RequestTimedOutError,
    )

    from consumers.kafka_python import refusal_reason

    assert refusal_reason(RecordListTooLargeError()) == "too_large"
    assert refusal_reason(InvalidRequiredAcksError()) == "other"
    for outage in (
        BrokerNotAvailableError(),
        CorruptRecordError(),
        KafkaConnectionError(),
        NotEnoughReplicasError(),
        RequestTimedOutError(),
        RuntimeError("anything else"),
    ):
        assert refusal_reason(outage) is None, outage


def test_a_record_the_client_cannot_read_is_dead_lettered_as_unreadable_and_passed() -> None:
    from alerting.records import UnreadableRecord

    port = FakePort()
    for i in range(3):
        port.add_event(Trade(symbol="AAPL", price=100.0, size=1, time=1_700_000_000 + i))
    detail = "CorruptRecordError: UnicodeDecodeError('utf-8', b'\\xff\\xfe-name', ...)"
    port.records.append(UnreadableRecord(DEFAULT_TOPIC, 0, 3, detail))  # type: ignore[arg-type]
    port.add_event(Trade(symbol="AAPL", price=100.0, size=1, time=1_700_000_004))
    service, metrics = make_service(port)
    assert service.run_once() == 5
    (letter,) = port.published_to(DLQ)
    headers = dict(letter.headers)
    assert headers[dead_letters.REASON] == b"unreadable"
    assert (
        headers[dead_letters.SOURCE_OFFSET] == b"3"
        and detail.encode() in headers[dead_letters.DETAIL]
    )
    assert letter.key is None and letter.value is None
    assert value(metrics, "alerting_events_invalid_total", reason="unreadable") == 1
    assert value(metrics, "alerting_events_processed_total", kind="trade") == 4
    assert port.commits[-1][(DEFAULT_TOPIC, 0)] == 5


# -- a declared input's decoder -------------------------------------------------------------


def _desk_mapping() -> InputMapping:
    return compile_input(
        InputSettings(
            topic="desk.trades",
            kind="trade",
            entity="@key",
            time="@timestamp",
            fields={"price": "px", "size": "qty", "venue": "@header:venue"},
        )
    )


def test_a_declared_input_is_decoded_by_its_mapping_with_key_timestamp_and_headers() -> None:
    port = FakePort(topic="desk.trades")
    rng = random.Random(3)
    for i in range(40):
        px = 100.0 + rng.gauss(0, 0.05) if i < 39 else 400.0
        port.add_raw(
            json.dumps({"px": px, "qty": 10}).encode(),
            key=b"AAPL",
            timestamp_ms=1_733_300_000_000 + 1000 * i,
            headers=[("venue", b"XNAS")],
        )
    seen: list[Event] = []
    processor = make_processor()
    process = processor.process

    def spy(event: Event, position: SourcePosition | None = None) -> Outcome:
        seen.append(event)
        return process(event, position)

    processor.process = spy  # type: ignore[method-assign]
    service, metrics = make_service(port, processor, decoder=_desk_mapping().decode)
    assert service.run_once() == 40
    assert len(seen) == 40
    assert all(isinstance(e, Trade) and e.symbol == "AAPL" and e.venue == "XNAS" for e in seen)
    assert seen[0].time == datetime.fromtimestamp(1_733_300_000, UTC)
    [alert] = [json.loads(m.value or b"") for m in port.published_to(ALERTS)]
    assert alert["subject"] == "AAPL"
    assert alert["time"].startswith("2024-12-04T08:13:59")
    assert port.published_to(DLQ) == []
    assert value(metrics, "alerting_events_processed_total", kind="trade") == 40


def test_a_record_the_mapping_refuses_is_dead_lettered_with_the_path() -> None:
    exchange = compile_input(
        InputSettings(
            topic="exchange.trades",
            kind="trade",
            entity="data.s",
            time="data.T",
            time_unit="us",
            fields={"price": "data.p", "size": "data.q"},
        )
    )
    port = FakePort(topic="exchange.trades")
    good = {"e": "trade", "data": {"s": "BTCUSDT", "p": "43000.10", "q": "0.015", "T": 1}}
    port.add_raw(json.dumps(good).encode(), key=b"BTCUSDT")
    record = port.add_raw(b'{"e": "trade", "data": {"s": "BTCUSDT", "q": "1", "T": 2}}')
    port.add_raw(b"not json")
    service, metrics = make_service(port, decoder=exchange.decode)
    assert service.run_once() == 3
    letters = port.published_to(DLQ)
    assert [header_dict(m)[dead_letters.REASON] for m in letters] == [b"missing_field", b"not_json"]
    assert letters[0].value == record.value
    assert header_dict(letters[0])[dead_letters.DETAIL] == (
        b"missing field data.p in input exchange.trades"
    )
    assert value(metrics, "alerting_events_invalid_total", reason="missing_field") == 1
    assert value(metrics, "alerting_events_processed_total", kind="trade") == 1
    assert port.committed == {("exchange.trades", 0): 3}


def test_without_a_decoder_a_foreign_record_is_refused_as_the_native_schema_says() -> None:
    port = FakePort()
    port.add_raw(b'{"sym": "AAPL", "px": 1.0, "qty": 1, "ts": 1733300000123}')
    service, metrics = make_service(port)
    service.run_once()
    assert [m.topic for m in port.published] == [DLQ]
    assert value(metrics, "alerting_events_processed_total", kind="trade") == 0
