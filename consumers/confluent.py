"""The :class:`~consumers.port.Port` on confluent-kafka (librdkafka): ``kafka.client = confluent``.

The same contract as :mod:`consumers.kafka_python`, for the service's consume loop only:
one consumer in the service's group (eager rebalances, callbacks inside ``poll``, offsets
committed by the loop, rebalances through :class:`~consumers.rebalance.Rebalance`), one
producer with ``acks=all``. Consuming is where librdkafka
wins: its batch ``consume`` hands over thousands of decoded messages per call, where
kafka-python parses each record in Python. The changelog restore (``read_partitions``)
is not on the hot path and stays on kafka-python.

Each message is handed to the loop as a small :class:`Record` with kafka-python's
attribute names (``record.offset``, not ``message.offset()``).

``publish`` handles each message on its own, as the kafka-python port does: one that
``produce`` or the delivery report refuses for good (:func:`refusal_reason`, e.g.
``MSG_SIZE_TOO_LARGE`` raised by ``produce`` itself) is reported as refused, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from alerting.errors import ConfigError
from alerting.metrics import Metrics
from alerting.records import InputRecord, Outgoing, UnreadableRecord
from alerting.settings import Settings
from consumers.health import login_refused
from consumers.kafka_python import MAX_MESSAGE_BYTES, read_to_high_watermark
from consumers.port import DeliveryError, Refusal, permanent_reason
from consumers.rebalance import Rebalance

log = logging.getLogger(__name__)


class Record:
    """A consumed message with kafka-python's attribute names (what the loop reads)."""

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(self, message: Any) -> None:
        self.topic: str = message.topic()
        self.partition: int = message.partition()
        self.offset: int = message.offset()
        self.timestamp: int = message.timestamp()[1]  # (type, milliseconds)
        self.key: bytes | None = message.key()
        self.value: bytes | None = message.value()
        self.headers: list[tuple[str, bytes | None]] = message.headers() or []


def _unreadable(message: Any, exc: Exception) -> UnreadableRecord:
    cause = exc.__cause__ or exc.__context__
    detail = f"{type(exc).__name__}: {exc}" + (f" ({cause!r})" if cause is not None else "")
    log.warning(
        "record %s/%d/%d cannot be read by the Kafka client (%s): dead-lettered, skipped",
        message.topic(),
        message.partition(),
        message.offset(),
        detail,
    )
    return UnreadableRecord(message.topic(), message.partition(), message.offset(), detail[:1000])


def refusal_reason(error: Any) -> str | None:
    """Why librdkafka refused a message for good (a skip reason), from its ``KafkaError``
    (a delivery report's, or a ``KafkaException``'s first argument); None if temporary.

    Only the codes of :data:`~consumers.port.PERMANENT_ERROR_CODES` are permanent: a
    delivery report's error is built from its code alone, so its ``retriable()`` is False
    even for NOT_LEADER or REQUEST_TIMED_OUT and cannot be trusted."""
    if not isinstance(error, KafkaError):
        return None
    return permanent_reason(error.code(), None)


def consumer_config(settings: Settings, group_id: str) -> dict[str, Any]:
    k = settings.kafka
    return {
        **k.librdkafka_options(),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": settings.service.auto_offset_reset,
        "session.timeout.ms": k.session_timeout_ms,
        "heartbeat.interval.ms": k.heartbeat_interval_ms,
        "max.poll.interval.ms": k.max_poll_interval_ms,
        "fetch.wait.max.ms": k.fetch_max_wait_ms,
        # eager rebalances, as kafka-python's: revoke everything, then assign
        "partition.assignment.strategy": "range",
        "logger": logging.getLogger("confluent_kafka"),
    }


def producer_config(settings: Settings) -> dict[str, Any]:
    k = settings.kafka
    return {
        **k.librdkafka_options(),
        "acks": "all",
        "linger.ms": k.producer_linger_ms,
        "retries": 5,
        "max.in.flight.requests.per.connection": 5,
        # a snapshot of a large model can pass the 1 MB default; the changelog topic is
        # created with a matching max.message.bytes
        "message.max.bytes": MAX_MESSAGE_BYTES,
        "logger": logging.getLogger("confluent_kafka"),
    }


class ConfluentPort:
    """Consumes the events topic in the service's group; publishes with ``acks=all``."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        on_refused: Callable[[ConfigError], None] | None = None,
    ) -> None:
        self.settings = settings
        self.on_refused = on_refused
        self.rebalance = Rebalance(metrics)
        errors = {"error_cb": self.client_error}
        self.consumer = Consumer({**consumer_config(settings, settings.service.group_id), **errors})
        self.consumer.subscribe(
            [settings.topics.events], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        self.producer = Producer({**producer_config(settings), **errors})

    def client_error(self, error: Any) -> None:
        """librdkafka's ``error_cb``: a refused login goes to ``on_refused`` (it stops the
        service; librdkafka alone would retry for ever); the rest is logged here (with an
        ``error_cb`` set, librdkafka no longer logs them itself) and retried by it."""
        if error.code() != KafkaError._AUTHENTICATION:
            log.warning("Kafka client error (retried by the client): %s", error.str())
            return
        refused = login_refused(self.settings.kafka, error.str())
        if self.on_refused is not None:
            self.on_refused(refused)
        else:
            log.error("%s", refused)

    # rebalance callbacks run inside consume(): revoked partitions are still ours, and
    # librdkafka assigns the new ones (and starts fetching) only after _on_assign returns

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        self.rebalance.revoked({tp.partition for tp in partitions})

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        self.rebalance.assigned({tp.partition for tp in partitions})

    def on_rebalance(
        self, assigned: Callable[[set[int]], None], revoked: Callable[[set[int]], None]
    ) -> None:
        self.rebalance.to(assigned, revoked)

    def read_partitions(
        self, topic: str, partitions: set[int]
    ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
        return read_to_high_watermark(self.settings, topic, partitions)

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[InputRecord]:
        messages = self.consumer.consume(max_records, timeout_ms / 1000)
        records: list[InputRecord] = []
        for message in messages:
            error = message.error()
            if error is None:
                try:
                    records.append(Record(message))
                except Exception as exc:  # headers() on a header name that is not UTF-8
                    records.append(_unreadable(message, exc))
            elif error.code() != KafkaError._PARTITION_EOF:
                if error.fatal():
                    raise RuntimeError(f"Kafka consumer failed: {error}")
                log.warning("consumer error (retried by the client): %s", error)
        return records

    def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        acked = [False] * len(messages)
        errors: dict[int, Any] = {}  # index → the KafkaError (or exception) that failed it

        def delivered(index: int) -> Callable[[Any, Any], None]:
            def report(error: Any, _message: Any) -> None:
                if error is None:
                    acked[index] = True
                else:
                    errors[index] = error

            return report

        produce, poll = self.producer.produce, self.producer.poll
        for i, m in enumerate(messages):
            kwargs: dict[str, Any] = {"on_delivery": delivered(i)}
            if m.partition is not None:
                kwargs["partition"] = m.partition
            if m.headers:
                kwargs["headers"] = m.headers
            while True:
                try:
                    produce(m.topic, m.value, m.key, **kwargs)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    poll(0.05)
                except KafkaException as exc:  # e.g. MSG_SIZE_TOO_LARGE, checked locally
                    errors[i] = exc.args[0] if exc.args else exc
                    break
                except (TypeError, ValueError) as exc:  # arguments produce() cannot take
                    errors[i] = exc
                    break
        self.producer.flush(timeout_s)
        pending: list[Outgoing] = []
        refused: list[Refusal] = []
        for i, (m, ok) in enumerate(zip(messages, acked, strict=True)):
            if ok:
                continue
            error = errors.get(i)
            if isinstance(error, TypeError | ValueError):
                refused.append(Refusal(m, "invalid_record", f"{type(error).__name__}: {error}"))
                continue
            reason = refusal_reason(error)
            if reason is None:
                pending.append(m)
            else:
                refused.append(Refusal(m, reason, str(error)))
        if pending or refused:
            failed = next(iter(errors.values()), "not acknowledged in time")
            raise DeliveryError(
                f"{len(pending)} of {len(messages)} not acknowledged"
                + (f", {len(refused)} refused for good" if refused else "")
                + f": {failed}",
                pending,
                refused,
            )

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
            asynchronous=False,
        )

    def pause(self, partitions: set[int]) -> None:
        topic = self.settings.topics.events
        self.consumer.pause([TopicPartition(topic, p) for p in sorted(partitions)])

    def resume(self, partitions: set[int]) -> None:
        topic = self.settings.topics.events
        self.consumer.resume([TopicPartition(topic, p) for p in sorted(partitions)])

    def lag(self) -> dict[int, int]:
        # the cached high watermark comes from fetch responses (tansu's ListOffsets would
        # answer differently, see kafka_python); the position is the next offset to consume
        out: dict[int, int] = {}
        try:
            assigned = self.consumer.assignment()
            positions = self.consumer.position(assigned) if assigned else []
        except Exception:  # no figure rather than a guess
            return out
        for tp in positions:
            if tp.offset < 0:  # not known yet (OFFSET_INVALID)
                continue
            try:
                _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            except Exception:
                continue
            if high >= 0:
                out[tp.partition] = max(high - tp.offset, 0)
        return out

    def close(self) -> None:
        try:
            self.producer.flush(5)
        finally:
            self.consumer.close()
