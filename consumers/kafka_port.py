"""The :class:`~consumers.port.Port` on kafka-python: one consumer in a group, one producer.

``publish`` handles each message on its own: one the client or broker refuses for good
(:func:`refusal_reason`, e.g. ``MessageSizeTooLargeError`` raised by ``send`` itself) is
reported as refused, never raised, so that the rest of the batch is still sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import BrokerResponseError, CorruptRecordError
from kafka.structs import OffsetAndMetadata

from alerting.metrics import Metrics
from alerting.settings import Settings
from consumers.port import (
    DeliveryError,
    InputRecord,
    Outgoing,
    Refusal,
    UnreadableRecord,
    permanent_reason,
)

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def refusal_reason(exc: BaseException) -> str | None:
    """Why kafka-python refused a message for good (a skip reason), or None if the error
    is temporary and the message is to be sent again.

    >>> from kafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
    >>> refusal_reason(MessageSizeTooLargeError("17 MB")), refusal_reason(KafkaTimeoutError())
    ('too_large', None)
    """
    if isinstance(exc, TypeError | ValueError):  # send() refused its arguments: never sendable
        return "invalid_record"
    if isinstance(exc, BrokerResponseError):
        return permanent_reason(exc.errno, bool(exc.retriable))
    return None  # timeouts, connection trouble, a closed producer: try again


def _described(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def producer_for(settings: Settings, **extra: Any) -> KafkaProducer:
    k = settings.kafka
    return KafkaProducer(
        **k.client_options(),
        acks="all",
        linger_ms=k.producer_linger_ms,
        retries=5,
        max_in_flight_requests_per_connection=5,
        # a snapshot of a large model can pass the 1 MB default; the changelog topic is
        # created with a matching max.message.bytes
        max_request_size=MAX_MESSAGE_BYTES,
        **extra,
    )


def consumer_for(settings: Settings, group_id: str | None, **extra: Any) -> KafkaConsumer:
    k = settings.kafka
    options: dict[str, Any] = {
        **k.client_options(),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": settings.service.auto_offset_reset,
        "session_timeout_ms": k.session_timeout_ms,
        "heartbeat_interval_ms": k.heartbeat_interval_ms,
        "max_poll_interval_ms": k.max_poll_interval_ms,
        "fetch_max_wait_ms": k.fetch_max_wait_ms,
    }
    options.update(extra)
    return KafkaConsumer(**options)


def records_of(batches: Mapping[TopicPartition, list[Any]]) -> list[Any]:
    """The records of a ``poll()`` answer as one list (no copy for a single partition)."""
    if len(batches) == 1:
        return next(iter(batches.values()))
    records: list[Any] = []
    for part in batches.values():
        records.extend(part)
    return records


def commit_offsets(consumer: KafkaConsumer, offsets: Mapping[tuple[str, int], int]) -> None:
    """Commit ``{(topic, partition): next offset to read}`` synchronously."""
    consumer.commit(
        {
            TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
        }
    )


def read_to_high_watermark(
    settings: Settings, topic: str, partitions: set[int]
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``partitions`` of ``topic`` up to its high watermark, as ``(records
    remaining, partition, key, value)``: :meth:`consumers.port.Port.read_partitions`."""
    # a group-less consumer from the beginning to the high watermark of each partition
    # (fetch responses carry the true high watermark; tansu's ListOffsets does not)
    reader = consumer_for(settings, group_id=None, auto_offset_reset="earliest")
    try:
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        open_tps = set(tps)
        while open_tps:
            batch = reader.poll(timeout_ms=200, max_records=5000)
            for tp, records in batch.items():
                high = reader.highwater(tp) or 0
                for record in records:
                    yield high - record.offset - 1, tp.partition, record.key, record.value
            for tp in list(open_tps):
                high = reader.highwater(tp)
                if high is not None and reader.position(tp) >= high:
                    open_tps.discard(tp)
    finally:
        reader.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Runs inside poll(): revoked partitions are still ours, new ones not yet fetched."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.assigned: Callable[[set[int]], None] | None = None
        self.revoked: Callable[[set[int]], None] | None = None

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        if not revoked:
            return
        partitions = {tp.partition for tp in revoked}
        log.info("partitions revoked: %s", sorted(partitions))
        if self.revoked is not None:
            self.revoked(partitions)

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.metrics.rebalances.inc()
        self.metrics.assigned_partitions.set(len(assigned))
        partitions = {tp.partition for tp in assigned}
        log.info("partitions assigned: %s", sorted(partitions))
        if self.assigned is not None and partitions:
            self.assigned(partitions)


class KafkaPort:
    """Consumes the events topic in the service's group; publishes with ``acks=all``."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.consumer = consumer_for(settings, settings.service.group_id)
        self.listener = _Listener(metrics)
        self.consumer.subscribe([settings.topics.events], listener=self.listener)
        self.producer = producer_for(settings)
        # per partition: (first, last) offsets of the latest run of unreadable records
        self._unreadable: dict[TopicPartition, tuple[int, int]] = {}

    def on_rebalance(
        self, assigned: Callable[[set[int]], None], revoked: Callable[[set[int]], None]
    ) -> None:
        self.listener.assigned = assigned
        self.listener.revoked = revoked

    def read_partitions(
        self, topic: str, partitions: set[int]
    ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
        return read_to_high_watermark(self.settings, topic, partitions)

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[InputRecord]:
        try:
            return records_of(self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records))
        except CorruptRecordError as exc:
            unreadable = self._skip_unreadable(exc)
            if unreadable is None:
                raise
            return [unreadable]

    def _skip_unreadable(self, exc: CorruptRecordError) -> UnreadableRecord | None:
        """Move past the record kafka-python could not parse (it decodes header names as
        UTF-8, and then polls that partition again forever, or blocks); the record, to be
        dead-lettered. None if the partition cannot be told (then the error stands)."""
        # which partition: kafka-python 3.x keeps the records it was reading here
        fetcher = getattr(self.consumer, "_fetcher", None)
        current = getattr(fetcher, "_next_partition_records", None)
        tp = getattr(current, "topic_partition", None)
        if not isinstance(tp, TopicPartition):
            return None
        offset = self.consumer.position(tp)
        if offset is None:
            return None
        self.consumer.seek(tp, offset + 1)
        detail = str(exc)[:1000]
        first = self._unreadable.get(tp)
        if first is not None and first[1] == offset - 1:
            # kafka-python reads a record batch in one pass: past an unreadable record it
            # reads none of the batch's others (kafka.client = "confluent" does)
            detail = (
                f"in the record batch of the unreadable record at offset {first[0]}, which "
                f"kafka-python cannot read past (kafka.client = confluent can): {detail}"
            )[:1000]
            self._unreadable[tp] = (first[0], offset)
        else:
            self._unreadable[tp] = (offset, offset)
            log.warning(
                "record %s/%d/%d cannot be read by the Kafka client (%s): dead-lettered, skipped",
                tp.topic,
                tp.partition,
                offset,
                exc,
            )
        return UnreadableRecord(tp.topic, tp.partition, offset, detail)

    def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        send = self.producer.send
        sent: list[tuple[Outgoing, Any]] = []
        unsent: list[Outgoing] = []
        pending: list[Outgoing] = []
        refused: list[Refusal] = []
        first_error: BaseException | None = None
        for index, m in enumerate(messages):
            try:
                future = send(
                    m.topic,
                    key=m.key,
                    value=m.value,
                    headers=m.headers or None,
                    partition=m.partition,
                )
            except Exception as exc:  # raised by send itself, e.g. MessageSizeTooLargeError
                first_error = first_error or exc
                reason = refusal_reason(exc)
                if reason is not None:
                    refused.append(Refusal(m, reason, _described(exc)))
                    continue
                # temporary (no metadata within max_block_ms...): the rest waits too
                unsent = list(messages[index:])
                break
            sent.append((m, future))
        try:
            self.producer.flush(timeout=timeout_s)
        except Exception as exc:  # KafkaTimeoutError and friends: find what is missing below
            log.debug("flush failed: %s", exc)
        for m, future in sent:
            if future.succeeded():
                continue
            if not future.failed():  # not acknowledged in time
                pending.append(m)
                continue
            error = future.exception
            first_error = first_error or error
            reason = refusal_reason(error)
            if reason is None:
                pending.append(m)
            else:
                refused.append(Refusal(m, reason, _described(error)))
        pending += unsent  # in the order given
        if pending or refused:
            raise DeliveryError(
                f"{len(pending)} of {len(messages)} not acknowledged"
                + (f", {len(refused)} refused for good" if refused else "")
                + f": {first_error or 'not acknowledged in time'}",
                pending,
                refused,
            )

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        commit_offsets(self.consumer, offsets)

    def pause(self, partitions: set[int]) -> None:
        topic = self.settings.topics.events
        self.consumer.pause(*(TopicPartition(topic, p) for p in sorted(partitions)))

    def resume(self, partitions: set[int]) -> None:
        topic = self.settings.topics.events
        self.consumer.resume(*(TopicPartition(topic, p) for p in sorted(partitions)))

    def lag(self) -> dict[int, int]:
        # highwater() is the fetch response's true high watermark; tansu's ListOffsets
        # (end_offsets) would answer the last batch's base offset + 1 instead
        out = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # position not known yet: no figure rather than a guess
                continue
            if position is not None:
                out[tp.partition] = max(int(high) - int(position), 0)
        return out

    def close(self) -> None:
        try:
            self.producer.flush(timeout=5)
        finally:
            self.producer.close(timeout=5)
            self.consumer.close(autocommit=False)
