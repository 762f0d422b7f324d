"""Malformed records go to the dead-letter topic with their reason; good ones around them flow."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from kafka import KafkaProducer
from kafkastack import Stack, metrics_port, scrape, stop

from alerting.events import Trade, encode
from consumers.kafka_python import MAX_MESSAGE_BYTES


def _invalid_counts(exposition: str) -> dict[str, float]:
    """``alerting_events_invalid_total`` by reason, without the zero-initialised ones."""
    counts = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("alerting_events_invalid_total{")
    }
    return {reason: n for reason, n in counts.items() if n}


BAD = [
    (b"not json at all", "not_json"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": NaN, "size": 1, "time": 1}', "not_finite"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": -5, "size": 1, "time": 1}', "out_of_range"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": 5, "size": 1}', "missing_field"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": 5, "size": 1e15, "time": 1}', "out_of_range"),
    (b'{"kind": "option", "symbol": "AAPL", "time": 1}', "unknown_kind"),
    (b"[1, 2, 3]", "not_an_object"),
]


def test_malformed_records_are_dead_lettered_and_the_loop_goes_on(stack: Stack) -> None:
    stack.partitions = 1  # one partition: the order of good and bad records is the test's
    stack.create_topics()
    producer = stack.producer()
    sent_bad = []
    good = 0
    for i in range(300):
        trade = Trade(symbol="AAPL", price=100 + (i % 7) * 0.01, size=100, time=1_700_000_000 + i)
        producer.send(stack.events, key=b"AAPL", value=encode(trade))
        good += 1
        if i % 40 == 20:
            value, reason = BAD[len(sent_bad) % len(BAD)]
            headers = [("trace-id", f"t{i}".encode())]
            producer.send(stack.events, key=b"AAPL", value=value, headers=headers)
            sent_bad.append((value, reason, headers))
    producer.flush()
    producer.close()
    total = good + len(sent_bad)

    service = stack.start("run")
    try:
        stack.wait_for(lambda: stack.committed() == {0: total}, 60, "all records committed")
        port = metrics_port(stack.log())
        assert port is not None
        exposition = scrape(port)
    finally:
        assert stop(service) == 0, stack.log()

    letters = stack.read_all(stack.dead_letters)
    assert len(letters) == len(sent_bad)
    for record, (value, reason, headers) in zip(letters, sent_bad, strict=True):
        got = dict(record.headers)
        assert record.value == value
        assert record.key == b"AAPL"
        assert got["trace-id"] == headers[0][1]
        assert got["x-dlq-reason"].decode() == reason
        assert got["x-dlq-source-topic"].decode() == stack.events
        assert int(got["x-dlq-source-offset"]) >= 0
        assert got["x-dlq-detail"]

    assert f'alerting_events_processed_total{{kind="trade"}} {float(good)}' in exposition
    invalid = _invalid_counts(exposition)
    expected: dict[str, float] = {}
    for _, reason, _ in sent_bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert invalid == expected, json.dumps(invalid)


# -- an oversized record (issue 12, finding 2) ---------------------------------------------

# just over the service producer's max_request_size: its dead letter cannot be published whole
HUGE = MAX_MESSAGE_BYTES + 4096


def _send_around_a_huge_record(stack: Stack, before: int, after: int, start: int) -> bytes:
    """``before`` valid trades, one garbage record of HUGE bytes, ``after`` valid trades."""
    producer = KafkaProducer(
        bootstrap_servers=stack.bootstrap, acks="all", linger_ms=5, max_request_size=4 * HUGE
    )
    garbage = os.urandom(HUGE)
    try:
        for i in range(before + after):
            if i == before:
                producer.send(
                    stack.events, key=b"AAPL", value=garbage, headers=[("trace-id", b"huge")]
                )
            trade = Trade(symbol="AAPL", price=100 + (i % 7) * 0.01, size=100, time=start + i)
            producer.send(stack.events, key=b"AAPL", value=encode(trade))
        producer.flush()
    finally:
        producer.close()
    return garbage


def test_an_oversized_record_is_dead_lettered_as_a_stub_and_a_restart_goes_on(
    stack: Stack,
) -> None:
    stack.partitions = 1
    stack.create_topics()
    garbage = _send_around_a_huge_record(stack, before=40, after=40, start=1_700_000_000)

    service = stack.start("run")
    try:
        stack.wait_for(lambda: stack.committed() == {0: 81}, 90, "every record committed")
        port = metrics_port(stack.log())
        assert port is not None
        exposition = scrape(port)
        assert service.poll() is None, stack.log()  # still running
    finally:
        assert stop(service) == 0, stack.log()
    assert f'alerting_events_processed_total{{kind="trade"}} {80.0}' in exposition
    assert _invalid_counts(exposition) == {"too_large": 1.0}

    letters = stack.read_all(stack.dead_letters)
    assert len(letters) == 1
    stub = letters[0]
    headers = dict(stub.headers)
    assert stub.key == b"AAPL"
    assert stub.value == b""  # the value is left out, described by its size and hash
    assert headers["trace-id"] == b"huge"  # the original headers are kept
    assert headers["x-dlq-reason"] == b"too_large"
    assert headers["x-dlq-stub"] == b"too_large"
    assert int(headers["x-dlq-value-bytes"]) == HUGE
    assert headers["x-dlq-value-sha256"] == hashlib.sha256(garbage).hexdigest().encode()
    assert headers["x-dlq-source-offset"] == b"40"
    assert headers["x-dlq-source-topic"] == stack.events.encode()

    # a restart starts from the committed offsets: no crash, and later events flow
    _send_around_a_huge_record(stack, before=10, after=10, start=1_700_000_100)
    again = stack.start("run", log_name="restart")
    try:
        stack.wait_for(lambda: stack.committed() == {0: 81 + 21}, 90, "the restart committing")
        assert again.poll() is None, stack.log("restart")
    finally:
        assert stop(again) == 0, stack.log("restart")
    assert "Traceback" not in stack.log() + stack.log("restart")
    assert len(stack.read_all(stack.dead_letters)) == 2


@pytest.mark.parametrize(
    ("client", "refusal"),
    [
        ("kafka-python", "MessageSizeTooLargeError"),
        # the same path on librdkafka: make test-slow (12 s)
        pytest.param("confluent", "MSG_SIZE_TOO_LARGE", marks=pytest.mark.slow),
    ],
)
def test_a_dead_letter_the_producer_refuses_whole_is_sent_as_a_stub(
    stack: Stack, client: str, refusal: str
) -> None:
    # decoding is allowed for records larger than the producer's limit: the dead letter of
    # the garbage record is refused by the client itself and sent as a stub
    stack.partitions = 1
    stack.create_topics()
    garbage = _send_around_a_huge_record(stack, before=30, after=30, start=1_700_000_000)

    service = stack.start(
        "run",
        ALERTING__SERVICE__MAX_EVENT_BYTES=str(4 * HUGE),
        ALERTING__KAFKA__CLIENT=client,
    )
    try:
        stack.wait_for(lambda: stack.committed() == {0: 61}, 90, "every record committed")
        port = metrics_port(stack.log())
        assert port is not None
        exposition = scrape(port)
    finally:
        assert stop(service) == 0, stack.log()
    assert f'alerting_events_processed_total{{kind="trade"}} {60.0}' in exposition
    assert _invalid_counts(exposition) == {"not_json": 1.0}
    assert "alerting_publish_skipped_total" in exposition
    assert 'alerting_publish_skipped_total{reason="too_large"} 1.0' not in exposition

    letters = stack.read_all(stack.dead_letters)
    assert len(letters) == 1
    headers = dict(letters[0].headers)
    assert letters[0].value == b""
    assert headers["x-dlq-reason"] == b"not_json"  # why it is a dead letter
    assert headers["x-dlq-stub"] == b"too_large"  # why its value was left out
    assert int(headers["x-dlq-value-bytes"]) == HUGE
    assert headers["x-dlq-value-sha256"] == hashlib.sha256(garbage).hexdigest().encode()
    assert "x-dlq-stub-detail" in headers
    assert "dead letter refused whole" in stack.log()
    assert refusal in stack.log()
