"""Everything on kafka-python: the client factories, the reading helpers, and the port.

- :func:`producer_for` and :func:`consumer_for` build every kafka-python client of the
  project from the settings (the service's, the forwarder's, ``tail``'s, the control
  readers', the replay producer's), so that security and timeouts are set in one place;
- :func:`follow` reads every partition of a topic without a group from the beginning
  or the true high watermark, one poll at a time, until told to
  stop: ``alerting tail``, the control-topic readers and :func:`read_to_high_watermark`
  (the changelog restore) read through it. The service and the forwarder read in a
  consumer group instead, with their own loops, and commit with :func:`commit_offsets`
  (the forwarder through :class:`GroupSource`);
- :class:`KafkaPort` is the :class:`~consumers.port.Port` on kafka-python: one consumer
  in a group, one producer, rebalances through :class:`~consumers.rebalance.Rebalance`.

``publish`` handles each message on its own: one the client or broker refuses for good
(:func:`refusal_reason`, e.g. ``MessageSizeTooLargeError`` raised by ``send`` itself) is
reported as refused, never raised, so that the rest of the batch is still sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import BrokerResponseError, CorruptRecordError
from kafka.structs import OffsetAndMetadata

from alerting.metrics import Metrics
from alerting.records import InputRecord, Outgoing, UnreadableRecord
from alerting.settings import Settings
from consumers.port import DeliveryError, Refusal, permanent_reason
from consumers.rebalance import Rebalance

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


#: where :func:`follow` starts: the oldest record, or after the newest one (the true high
#: watermark)
START_AT = ("beginning", "end")


def wait_for_partitions(
    consumer: Any,
    topic: str,
    give_up: Callable[[], bool],
    pause: Callable[[float], bool | None] = time.sleep,
) -> set[int] | None:
    """The partitions of ``topic`` once the metadata lists any (it may not exist yet);
    None when ``give_up()`` says so or ``pause`` returns True (a stop event's ``wait``)."""
    while True:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        if give_up() or pause(0.2):
            return None


def seek_to_high_watermark(consumer: Any, assigned: list[Any], wait_s: float = 5.0) -> None:
    """Start after the newest record.

    ``seek_to_end`` asks ListOffsets, which some brokers (tansu) answer with the last
    record batch's base offset + 1; fetch responses carry the true high watermark, so
    fetch once from there and move to it. Records fetched on the way are all older.
    """
    consumer.seek_to_end(*assigned)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        consumer.poll(timeout_ms=100)
        if all(consumer.highwater(tp) is not None for tp in assigned):
            break
    for tp in assigned:
        high = consumer.highwater(tp)
        if high is not None:
            consumer.seek(tp, high)


def _caught_up(consumer: Any, assigned: list[Any]) -> bool:
    """Whether the position has reached the high watermark on every partition."""
    return all(
        consumer.highwater(tp) is not None
        and consumer.position(tp) >= (consumer.highwater(tp) or 0)
        for tp in assigned
    )


def follow(
    consumer: Any,
    topic: str,
    start_at: str,
    stop: Callable[[], bool],
    *,
    partitions: set[int] | None = None,
    pause: Callable[[float], bool | None] = time.sleep,
    max_records: int | None = None,
    timeout_ms: int = 200,
    started: Callable[[], None] | None = None,
    caught_up: Callable[[], None] | None = None,
    poll_failed: Callable[[Exception], None] | None = None,
) -> Iterator[Mapping[Any, list[Any]]]:
    """Each poll's answer (records per ``TopicPartition``, possibly none) of ``topic``
    read by ``consumer`` without a group, until ``stop()`` says so before a poll.

    ``partitions`` are read, or every partition of the topic once the metadata lists any
    (:func:`wait_for_partitions`, asking ``stop()`` and then ``pause`` between looks:
    nothing is yielded if it says stop first), from ``start_at`` (one of
    :data:`START_AT`). ``started`` is called once they are assigned and positioned,
    before the first poll; ``caught_up`` once, when the position has reached the high
    watermark on every partition (checked after each answer has been handled). A poll
    that raises is raised, or with ``poll_failed`` handed to it and made again
    (``poll_failed`` paces the attempts). The caller owns the consumer and closes it.
    """
    if start_at not in START_AT:
        raise ValueError(f"start_at must be one of {', '.join(START_AT)}, got {start_at!r}")
    if partitions is None:
        partitions = wait_for_partitions(consumer, topic, stop, pause)
        if partitions is None:
            return
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    if start_at == "beginning":
        consumer.seek_to_beginning(*assigned)
    elif start_at == "end":
        seek_to_high_watermark(consumer, assigned)
    if started is not None:
        started()
    while not stop():
        try:
            batch = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        except Exception as exc:
            if poll_failed is None:
                raise
            poll_failed(exc)
            continue
        yield batch
        if caught_up is not None and _caught_up(consumer, assigned):
            caught_up()
            caught_up = None


def read_to_high_watermark(
    settings: Settings, topic: str, partitions: set[int]
) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of ``partitions`` of ``topic`` up to its high watermark, as ``(records
    remaining, partition, key, value)``: :meth:`consumers.port.Port.read_partitions`."""
    # a group-less consumer from the beginning to the high watermark of each partition
    # (fetch responses carry the true high watermark; tansu's ListOffsets does not)
    reader = consumer_for(settings, group_id=None, auto_offset_reset="earliest")
    open_tps = {TopicPartition(topic, p) for p in partitions}
    try:
        for batch in follow(
            reader,
            topic,
            "beginning",
            lambda: not open_tps,
            partitions=partitions,
            max_records=5000,
        ):
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
    """kafka-python's rebalance callbacks (inside poll()), as partition numbers."""

    def __init__(self, rebalance: Rebalance) -> None:
        self.rebalance = rebalance

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.rebalance.revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.rebalance.assigned({tp.partition for tp in assigned})


class KafkaPort:
    """Consumes the events topic in the service's group; publishes with ``acks=all``."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.consumer = consumer_for(settings, settings.service.group_id)
        self.rebalance = Rebalance(metrics)
        self.consumer.subscribe([settings.topics.events], listener=_Listener(self.rebalance))
        self.producer = producer_for(settings)
        # per partition: (first, last) offsets of the latest run of unreadable records
        self._unreadable: dict[TopicPartition, tuple[int, int]] = {}

    def on_rebalance(
        self, assigned: Callable[[set[int]], None], revoked: Callable[[set[int]], None]
    ) -> None:
        self.rebalance.to(assigned, revoked)

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


class GroupSource:
    """One topic read in a consumer group with manual commits (the forwarder's
    :class:`~consumers.forward.loop.Source`: the alerts topic, committed after delivery)."""

    def __init__(self, consumer: Any, topic: str) -> None:
        self.consumer = consumer
        self.consumer.subscribe([topic])

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[Any]:
        return records_of(self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records))

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        commit_offsets(self.consumer, offsets)

    def keepalive(self) -> None:
        # a poll with every partition paused keeps max_poll_interval_ms from expiring;
        # a record it still returns (a partition assigned just now) is read again later
        assigned = list(self.consumer.assignment())
        self.consumer.pause(*assigned)
        try:
            batches = self.consumer.poll(timeout_ms=0)
            for tp, records in batches.items():
                if records:
                    self.consumer.seek(tp, min(r.offset for r in records))
        finally:
            self.consumer.resume(*self.consumer.paused())

    def close(self) -> None:
        self.consumer.close(autocommit=False)
