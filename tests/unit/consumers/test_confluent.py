"""kafka.client = confluent: settings, the record wrapper, poll errors and publish acks.

The port against a real broker is tested in tests/integration/test_state_recovery.py
(killed mid-stream and restarted, the same alert ids as an uninterrupted run).
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from alerting.errors import ConfigError
from alerting.metrics import Metrics
from alerting.records import Outgoing
from alerting.settings import load_settings
from consumers.confluent import (
    ConfluentPort,
    Record,
    consumer_config,
    producer_config,
    refusal_reason,
)
from consumers.port import DeliveryError
from consumers.rebalance import Rebalance


class FakeError:
    def __init__(self, code: int, fatal: bool = False) -> None:
        self._code, self._fatal = code, fatal

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return f"error {self._code}"


class FakeMessage:
    def __init__(self, offset: int, error: FakeError | None = None) -> None:
        self._offset, self._error = offset, error

    def error(self) -> FakeError | None:
        return self._error

    def topic(self) -> str:
        return "market.events"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_767_623_400_000)

    def key(self) -> bytes:
        return b"AAPL"

    def value(self) -> bytes:
        return b"{}"

    def headers(self) -> list[tuple[str, bytes]] | None:
        return None


class FakeConsumer:
    def __init__(self, messages: list[FakeMessage]) -> None:
        self.messages = messages
        self.asked: list[tuple[int, float]] = []

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        self.asked.append((num_messages, timeout))
        return self.messages


class FakeProducer:
    """Acknowledges every message except the values in ``fail``; full once if ``full``."""

    def __init__(self, fail: set[bytes], full: bool = False) -> None:
        self.fail, self.full = fail, full
        self.reports: list[Callable[[Any, Any], None]] = []
        self.sent: list[tuple[str, bytes | None, dict[str, Any]]] = []

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: Any) -> None:
        if self.full:
            self.full = False
            raise BufferError("queue full")
        self.sent.append((topic, value, kw))
        report = kw["on_delivery"]
        self.reports.append(lambda: report("broker said no" if value in self.fail else None, None))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for report in self.reports:
            report()
        self.reports.clear()
        return 0


def bare_port(consumer: Any = None, producer: Any = None) -> ConfluentPort:
    port = ConfluentPort.__new__(ConfluentPort)
    port.rebalance = Rebalance(Metrics(CollectorRegistry()))
    port.consumer, port.producer = consumer, producer
    return port


def test_settings_map_to_librdkafka_names() -> None:
    s = load_settings(
        kafka={
            "bootstrap_servers": "k1:9092,k2:9092",
            "client": "confluent",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "svc",
            "sasl_password": "pw",
            "ssl_cafile": "/etc/ca.pem",
        }
    )
    consumer = consumer_config(s, "grp")
    assert consumer["bootstrap.servers"] == "k1:9092,k2:9092"
    assert (consumer["security.protocol"], consumer["sasl.mechanism"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert (consumer["sasl.username"], consumer["sasl.password"]) == ("svc", "pw")
    assert consumer["ssl.ca.location"] == "/etc/ca.pem"
    assert (consumer["group.id"], consumer["enable.auto.commit"]) == ("grp", False)
    assert consumer["session.timeout.ms"] == s.kafka.session_timeout_ms
    producer = producer_config(s)
    assert (producer["acks"], producer["linger.ms"]) == ("all", s.kafka.producer_linger_ms)
    assert "pw" not in str(s.masked())


def test_the_confluent_client_without_its_package_fails_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "confluent_kafka" else real(name, *a),
    )
    with pytest.raises(ConfigError, match=r"kafka\.client.*pip install"):
        load_settings(kafka={"client": "confluent"})
    assert load_settings().kafka.client == "kafka-python"  # the default needs nothing more


def test_a_record_has_kafka_python_attribute_names() -> None:
    record = Record(FakeMessage(41))
    assert (record.topic, record.partition, record.offset) == ("market.events", 2, 41)
    assert (record.timestamp, record.key, record.value, record.headers) == (
        1_767_623_400_000,
        b"AAPL",
        b"{}",
        [],
    )


def test_poll_skips_end_of_partition_and_transient_errors_and_raises_fatal_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = FakeConsumer(
        [
            FakeMessage(1),
            FakeMessage(-1, FakeError(KafkaError._PARTITION_EOF)),
            FakeMessage(-1, FakeError(KafkaError._TRANSPORT)),
            FakeMessage(2),
        ]
    )
    port = bare_port(consumer=consumer)
    with caplog.at_level(logging.WARNING):
        records = port.poll(500, 200)
    assert [r.offset for r in records] == [1, 2]
    assert consumer.asked == [(500, 0.2)]
    assert "consumer error" in caplog.text and str(KafkaError._TRANSPORT) in caplog.text
    consumer.messages = [FakeMessage(-1, FakeError(KafkaError._FATAL, fatal=True))]
    with pytest.raises(RuntimeError, match="Kafka consumer failed"):
        port.poll(500, 200)


def test_publish_raises_with_exactly_the_unacknowledged_messages() -> None:
    producer = FakeProducer(fail={b"b"}, full=True)
    port = bare_port(producer=producer)
    messages = [
        Outgoing("alerts", b"k", b"a", [("content-type", b"x")]),
        Outgoing("alerts", b"k", b"b"),
        Outgoing("state", b"k", b"c", partition=3),
    ]
    with pytest.raises(DeliveryError, match="1 of 3 not acknowledged: broker said no") as info:
        port.publish(messages, 1.0)
    assert info.value.pending == [messages[1]]
    # the full queue was waited out: every message went, with its headers and partition
    assert [v for _, v, _ in producer.sent] == [b"a", b"b", b"c"]
    assert producer.sent[0][2]["headers"] == [("content-type", b"x")]
    assert producer.sent[2][2]["partition"] == 3 and "partition" not in producer.sent[0][2]
    producer.fail = set()
    port.publish(messages, 1.0)  # all acknowledged: no error


def test_rebalance_callbacks_reach_the_loop_with_partition_numbers() -> None:
    port = bare_port()
    calls: list[tuple[str, set[int]]] = []
    port.on_rebalance(
        lambda p: calls.append(("assigned", p)), lambda p: calls.append(("revoked", p))
    )

    class TP:
        def __init__(self, partition: int) -> None:
            self.partition = partition

    port._on_revoke(None, [TP(0), TP(1)])
    port._on_revoke(None, [])  # nothing to revoke: not called
    port._on_assign(None, [TP(1), TP(3)])
    assert calls == [("revoked", {0, 1}), ("assigned", {1, 3})]


class RefusingProducer(FakeProducer):
    """``produce`` raises ``raises[value]``; the delivery report of ``reports[value]``
    carries that KafkaError; everything else is acknowledged."""

    def __init__(self, raises: dict[bytes, Exception], reports: dict[bytes, KafkaError]) -> None:
        super().__init__(fail=set())
        self.raises, self.errors = raises, reports

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kw: Any) -> None:
        if value in self.raises:
            raise self.raises[value]
        self.sent.append((topic, value, kw))
        report = kw["on_delivery"]
        error = self.errors.get(value or b"")
        self.reports.append(lambda: report(error, None))


def test_publish_tells_refusals_from_temporary_failures_per_message() -> None:
    too_large = KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    producer = RefusingProducer(
        raises={b"huge": too_large, b"bad": TypeError("header value must be bytes")},
        reports={
            b"denied": KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED),
            b"slow": KafkaError(KafkaError._MSG_TIMED_OUT),
            b"moved": KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION),
        },
    )
    port = bare_port(producer=producer)
    values = [b"ok", b"huge", b"denied", b"slow", b"bad", b"moved", b"ok2"]
    messages = [Outgoing("t", b"k", v) for v in values]
    with pytest.raises(DeliveryError, match="2 refused for good") as info:
        port.publish(messages, 1.0)
    # nothing raised by produce() escaped, and the messages after it were still sent
    assert [v for _, v, _ in producer.sent] == [b"ok", b"denied", b"slow", b"moved", b"ok2"]
    # a missing ACL is the topic's, not the record's: retried until an operator fixes it
    assert [m.value for m in info.value.pending] == [b"denied", b"slow", b"moved"]
    refused = {r.message.value: r.reason for r in info.value.refused}
    assert refused == {b"huge": "too_large", b"bad": "invalid_record"}
    assert all(r.detail for r in info.value.refused)


def test_refusal_reasons_of_librdkafka_errors() -> None:
    assert refusal_reason(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)) == "too_large"
    assert refusal_reason(KafkaError(KafkaError.RECORD_LIST_TOO_LARGE)) == "too_large"
    assert refusal_reason(KafkaError(KafkaError.INVALID_RECORD)) == "invalid_record"
    assert refusal_reason(KafkaError(KafkaError.TOPIC_EXCEPTION)) is None  # the topic's
    assert refusal_reason(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)) is None
    # a delivery report's error has retriable() False whatever its code: only listed
    # codes are refusals, the rest is retried
    for temporary in (
        KafkaError(KafkaError._MSG_TIMED_OUT),
        KafkaError(KafkaError._TRANSPORT),
        KafkaError(KafkaError._ALL_BROKERS_DOWN),
        KafkaError(KafkaError.REQUEST_TIMED_OUT),
        KafkaError(KafkaError.NOT_LEADER_FOR_PARTITION),
        KafkaError(KafkaError.NOT_ENOUGH_REPLICAS),
        "not a KafkaError",
    ):
        assert refusal_reason(temporary) is None, temporary
