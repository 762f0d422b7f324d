"""An in-memory fake of :class:`consumers.port.Port`, for unit tests of the consume loop.

Records have kafka-python's ``ConsumerRecord`` attribute names. The fake serves its input
in batches, keeps what was published per topic and partition, records what was committed
(and the order of those calls), and can simulate a broker outage (the next N ``publish``
calls raise ``DeliveryError``), permanent refusals of some messages (:meth:`FakePort.refuse`:
too large, not authorised), a rebalance (run inside the next ``poll``, as kafka-python
runs its listener) and a crash (:class:`Crash` raised right after a publish or commit took
effect). :class:`FakeKafkaConsumer` is a group-less kafka-python consumer, for the readers
that follow a topic. Integration tests use a real broker, never these.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from alerting.events import Event, encode
from alerting.metrics import Metrics
from alerting.processor import Processor
from alerting.records import Outgoing
from consumers.port import DeliveryError, Refusal
from consumers.runner import LoopConfig, Service

DEFAULT_TOPIC = "market.events"


@dataclass(frozen=True, slots=True)
class FakeRecord:
    """A consumed record, shaped like kafka-python's ``ConsumerRecord``."""

    topic: str
    partition: int
    offset: int
    timestamp: int  # milliseconds since the epoch, as Kafka record timestamps are
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def record_of(
    event: Event,
    offset: int,
    *,
    partition: int = 0,
    topic: str = DEFAULT_TOPIC,
    timestamp_ms: int | None = None,
    headers: Sequence[tuple[str, bytes]] = (),
) -> FakeRecord:
    """A record carrying ``event`` as its producer would write it (key = entity)."""
    return FakeRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=round(event.timestamp * 1000) if timestamp_ms is None else timestamp_ms,
        key=event.entity.encode(),
        value=encode(event),
        headers=list(headers),
    )


def raw_record(
    value: bytes | None,
    offset: int,
    *,
    key: bytes | None = None,
    partition: int = 0,
    topic: str = DEFAULT_TOPIC,
    timestamp_ms: int = 0,
    headers: Sequence[tuple[str, bytes]] = (),
) -> FakeRecord:
    """A record with an arbitrary value (malformed input, tombstones)."""
    return FakeRecord(topic, partition, offset, timestamp_ms, key, value, list(headers))


class Crash(BaseException):
    """The process died. A BaseException, so the loop's ``except Exception`` cannot catch it."""


class FakePort:
    """In-memory :class:`consumers.port.Port`.

    ``calls`` is the sequence of operations seen, as ``(name, detail)`` pairs with name
    ``poll``, ``poll_failed``, ``publish``, ``publish_failed`` or ``commit``, so tests can
    check their order. ``history`` is the finer global order: one ``("publish", topic,
    message)`` per acknowledged message, ``("publish_failed", None, n)`` per failed call,
    ``("commit", None, offsets)``, ``("revoked" | "assigned", None, partitions)``,
    ``("read", topic, partitions)`` (a changelog restore) and ``("poll", None, n)``.

    Consumption follows Kafka: a position (next offset) per input partition; a rebalance
    or :meth:`restart` resets the positions of the assigned partitions to their committed
    offsets. Until the first rebalance every partition is assigned. Messages published
    without an explicit ``partition`` land in partition 0.
    """

    def __init__(self, records: Sequence[FakeRecord] = (), topic: str = DEFAULT_TOPIC) -> None:
        self.topic = topic
        self.records: list[FakeRecord] = list(records)
        self.positions: dict[tuple[str, int], int] = {}  # next offset to serve
        self.assignment: set[int] | None = None  # None: every partition of the input
        self.published: list[Outgoing] = []
        self.log: dict[tuple[str, int], list[Outgoing]] = {}
        self.commits: list[dict[tuple[str, int], int]] = []
        self.calls: list[tuple[str, object]] = []
        self.history: list[tuple[str, str | None, object]] = []
        self.closed = False
        self.after_failed_publish: Callable[[int], None] | None = None
        self._assigned_cb: Callable[[set[int]], None] | None = None
        self._revoked_cb: Callable[[set[int]], None] | None = None
        self._rebalances: list[tuple[set[int], set[int]]] = []
        self._scan_from = 0  # records before this index are all consumed
        self.paused: set[int] = set()  # input partitions not fetched (pause/resume)
        self.read_failures_left = 0  # read_partitions calls that fail, then succeed
        self._publish_failures_left = 0
        self._poll_failures_left = 0
        self._acknowledge_first = 0
        self._failed_publishes = 0
        self._crash_in: int | None = None
        self._crash_topic: str | None = None
        self._refuse: Callable[[Outgoing], str | None] | None = None
        self.refusals: list[Refusal] = []  # every refusal, in order

    # -- building the input -------------------------------------------------------------

    def _next_offset(self, topic: str, partition: int) -> int:
        offsets = [r.offset for r in self.records if (r.topic, r.partition) == (topic, partition)]
        return max(offsets) + 1 if offsets else 0

    def add_event(
        self,
        event: Event,
        *,
        partition: int = 0,
        timestamp_ms: int | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> FakeRecord:
        """Append ``event`` at the next offset of ``partition``; the record."""
        record = record_of(
            event,
            self._next_offset(self.topic, partition),
            partition=partition,
            topic=self.topic,
            timestamp_ms=timestamp_ms,
            headers=headers,
        )
        self.records.append(record)
        return record

    def add_raw(
        self,
        value: bytes | None,
        *,
        key: bytes | None = None,
        partition: int = 0,
        timestamp_ms: int = 0,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> FakeRecord:
        """Append a record with raw bytes as its value; the record."""
        record = raw_record(
            value,
            self._next_offset(self.topic, partition),
            key=key,
            partition=partition,
            topic=self.topic,
            timestamp_ms=timestamp_ms,
            headers=headers,
        )
        self.records.append(record)
        return record

    def input_partitions(self) -> set[int]:
        return {r.partition for r in self.records if r.topic == self.topic}

    # -- simulating trouble -------------------------------------------------------------

    def fail_next_publishes(self, times: int, acknowledge_first: int = 0) -> None:
        """Make the next ``times`` publish calls fail, as during a broker outage.

        Each failing call acknowledges its first ``acknowledge_first`` messages (they count
        as published; the last message is never acknowledged) and raises ``DeliveryError``
        with the rest as ``pending``.
        """
        self._publish_failures_left = times
        self._acknowledge_first = acknowledge_first

    def refuse(self, rule: Callable[[Outgoing], str | None] | None) -> None:
        """From now on, refuse for good every message for which ``rule`` gives a reason
        (``too_large``, ``invalid_record``...), as a broker or client does: the others of
        the call are acknowledged, and ``DeliveryError`` lists the refused. None: stop."""
        self._refuse = rule

    def fail_next_polls(self, times: int) -> None:
        """Make the next ``times`` poll calls raise, as when the group coordinator is gone."""
        self._poll_failures_left = times

    def crash_after(self, operations: int | None, topic: str | None = None) -> None:
        """Raise :class:`Crash` right after the ``operations``-th next successful publish
        or commit took effect (what it published or committed stays); with ``topic``, count
        only publishes to that topic (e.g. the changelog: snapshots written, offsets not
        committed). None: never."""
        if operations is not None and operations < 1:
            raise ValueError(f"operations must be at least 1, got {operations}")
        self._crash_in = operations
        self._crash_topic = topic

    def _maybe_crash(self, topics: set[str] | None) -> None:
        if self._crash_in is None:
            return
        if self._crash_topic is not None and (topics is None or self._crash_topic not in topics):
            return
        self._crash_in -= 1
        if self._crash_in == 0:
            self._crash_in = None
            raise Crash("simulated crash")

    def rebalance(self, revoked: Iterable[int] = (), assigned: Iterable[int] = ()) -> None:
        """Inside the next ``poll``: call the revoked listener (partitions still owned),
        change the assignment, reset the assigned partitions to their committed offsets,
        then call the assigned listener before any of their records is served."""
        self._rebalances.append((set(revoked), set(assigned)))

    def restart(self, assigned: set[int] | None = None) -> None:
        """A new process joins after a crash: forget the assignment and positions; the next
        ``poll`` assigns ``assigned`` (default: every input partition) from the committed
        offsets, calling only the assigned listener (nothing was owned)."""
        self.assignment = set()
        self.positions = {}
        self._rebalances = [(set(), self.input_partitions() if assigned is None else assigned)]

    def _run_rebalances(self) -> None:
        while self._rebalances:
            revoked, assigned = self._rebalances.pop(0)
            if self.assignment is None:
                self.assignment = self.input_partitions()
            revoked &= self.assignment
            if revoked:
                self.history.append(("revoked", None, set(revoked)))
                if self._revoked_cb is not None:
                    self._revoked_cb(set(revoked))
            self.assignment -= revoked
            self.assignment |= assigned
            committed = self.committed
            for partition in assigned:
                self.positions[(self.topic, partition)] = committed.get((self.topic, partition), 0)
            self._scan_from = 0
            if assigned:
                self.history.append(("assigned", None, set(assigned)))
                if self._assigned_cb is not None:
                    self._assigned_cb(set(assigned))

    # -- the Port protocol --------------------------------------------------------------

    def _servable(self, record: FakeRecord) -> bool:
        if self.assignment is not None and record.partition not in self.assignment:
            return False
        if record.topic == self.topic and record.partition in self.paused:
            return False
        return record.offset >= self.positions.get((record.topic, record.partition), 0)

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[FakeRecord]:
        if self._poll_failures_left > 0:
            self._poll_failures_left -= 1
            self.calls.append(("poll_failed", 0))
            raise ConnectionError("simulated outage: coordinator not available")
        self._run_rebalances()
        batch: list[FakeRecord] = []
        consumed_prefix = True
        for index in range(self._scan_from, len(self.records)):
            if len(batch) >= max_records:
                break
            record = self.records[index]
            if self._servable(record):
                batch.append(record)
                self.positions[(record.topic, record.partition)] = record.offset + 1
            elif record.offset >= self.positions.get((record.topic, record.partition), 0):
                consumed_prefix = False  # not assigned now, maybe later
            if consumed_prefix:
                self._scan_from = index + 1
        self.calls.append(("poll", len(batch)))
        self.history.append(("poll", None, len(batch)))
        return batch

    def _deliver(self, messages: Sequence[Outgoing]) -> None:
        for message in messages:
            partition = 0 if message.partition is None else message.partition
            self.log.setdefault((message.topic, partition), []).append(message)
            self.published.append(message)
            self.history.append(("publish", message.topic, message))

    def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        if self._publish_failures_left > 0:
            self._publish_failures_left -= 1
            self._failed_publishes += 1
            # a failed call always leaves at least one message unacknowledged
            split = min(self._acknowledge_first, len(messages) - 1)
            acked, pending = list(messages[:split]), list(messages[split:])
            self._deliver(acked)
            self.calls.append(("publish_failed", len(messages)))
            self.history.append(("publish_failed", None, len(messages)))
            if self.after_failed_publish is not None:
                self.after_failed_publish(self._failed_publishes)
            raise DeliveryError(
                f"simulated outage: {len(pending)} of {len(messages)} not acknowledged",
                pending=pending,
            )
        rule = self._refuse
        refused = [] if rule is None else [(m, rule(m)) for m in messages]
        refusals = [Refusal(m, reason, f"simulated: {reason}") for m, reason in refused if reason]
        if refusals:
            ok = [m for m, reason in refused if not reason]
            self._deliver(ok)
            self.refusals += refusals
            self.calls.append(("publish_refused", len(refusals)))
            for refusal in refusals:
                self.history.append(("publish_refused", refusal.message.topic, refusal.message))
            raise DeliveryError(f"simulated: {len(refusals)} refused", [], refusals)
        self._deliver(messages)
        self.calls.append(("publish", len(messages)))
        self._maybe_crash({m.topic for m in messages})

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))
        self.calls.append(("commit", dict(offsets)))
        self.history.append(("commit", None, dict(offsets)))
        self._maybe_crash(None)

    def read_partitions(
        self, topic: str, partitions: set[int]
    ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
        """Everything published to ``partitions`` of ``topic``, partition by partition."""
        self.history.append(("read", topic, set(partitions)))
        if self.read_failures_left > 0:
            self.read_failures_left -= 1
            raise ConnectionError("simulated outage: the changelog cannot be read")
        for partition in sorted(partitions):
            messages = list(self.log.get((topic, partition), []))
            for index, message in enumerate(messages):
                yield len(messages) - index - 1, partition, message.key, message.value

    def pause(self, partitions: set[int]) -> None:
        self.paused |= partitions
        self.history.append(("pause", None, set(partitions)))

    def resume(self, partitions: set[int]) -> None:
        self.paused -= partitions
        self.history.append(("resume", None, set(partitions)))

    def on_rebalance(
        self, assigned: Callable[[set[int]], None], revoked: Callable[[set[int]], None]
    ) -> None:
        self._assigned_cb = assigned
        self._revoked_cb = revoked

    def lag(self) -> dict[int, int]:
        """Records not yet polled, per assigned input partition."""
        behind: dict[int, int] = {}
        for record in self.records:
            if record.topic != self.topic:
                continue
            if self.assignment is not None and record.partition not in self.assignment:
                continue
            behind.setdefault(record.partition, 0)
            if record.offset >= self.positions.get((record.topic, record.partition), 0):
                behind[record.partition] += 1
        return behind

    def close(self) -> None:
        self.closed = True

    # -- reading back -------------------------------------------------------------------

    @property
    def committed(self) -> dict[tuple[str, int], int]:
        """The latest committed offset (next offset to read) per (topic, partition)."""
        latest: dict[tuple[str, int], int] = {}
        for commit in self.commits:
            latest.update(commit)
        return latest

    def published_to(self, topic: str, partition: int | None = None) -> list[Outgoing]:
        """What was acknowledged on ``topic`` (one partition of it, if given), in order."""
        if partition is not None:
            return list(self.log.get((topic, partition), []))
        return [m for m in self.published if m.topic == topic]


ALERTS = "test.alerts"
DLQ = "test.dlq"


def build_service(
    port: FakePort,
    processor: Processor,
    clock: Callable[[], float],
    max_batch_records: int = 1000,
    changelog: str | None = None,
    interval: float = 0.0,
    **config: Any,
) -> tuple[Service, Metrics]:
    """The consume loop on a fake port, with fast retries and its own metrics registry;
    ``config``: more :class:`~consumers.runner.LoopConfig` fields."""
    metrics = Metrics(CollectorRegistry())
    config = LoopConfig(
        alerts_topic=ALERTS,
        dead_letter_topic=DLQ,
        max_batch_records=max_batch_records,
        poll_timeout_ms=1,
        delivery_timeout_s=0.01,
        retry_backoff_s=0.001,
        changelog_topic=changelog,
        commit_interval_s=interval,
        **config,
    )
    return Service(port, processor, metrics, config, clock=clock), metrics


class FakeKafkaConsumer:
    """A group-less kafka-python consumer over ``log`` (values per partition), for the
    readers that follow a topic (:func:`consumers.kafka_python.follow`).

    As tansu does, ListOffsets (``seek_to_end``) answers the last record batch's base
    offset + 1 (here: one record short of the end), while each fetch carries the true
    high watermark (``highwater``, unknown before the first fetch). ``metadata_after``
    polls of the metadata pass before the topic exists; ``poll_errors`` are raised by the
    first polls, one each.
    """

    def __init__(
        self,
        log: dict[int, list[bytes]],
        metadata_after: int = 0,
        poll_errors: list[BaseException] | None = None,
    ) -> None:
        self.log = log
        self.metadata_after = metadata_after
        self.poll_errors = list(poll_errors or [])
        self.assigned: list[TopicPartition] = []
        self.positions: dict[TopicPartition, int] = {}
        self.high: dict[TopicPartition, int] = {}
        self.calls: list[str] = []
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        self.calls.append("metadata")
        if self.metadata_after > 0:
            self.metadata_after -= 1
            return None
        return set(self.log)

    def assign(self, tps: list[TopicPartition]) -> None:
        self.calls.append(f"assign {[tp.partition for tp in tps]}")
        self.assigned = list(tps)
        self.positions = dict.fromkeys(tps, 0)  # auto_offset_reset / committed offsets

    def seek_to_beginning(self, *tps: TopicPartition) -> None:
        self.calls.append("seek_to_beginning")
        for tp in tps:
            self.positions[tp] = 0

    def seek_to_end(self, *tps: TopicPartition) -> None:
        self.calls.append("seek_to_end")
        for tp in tps:
            self.positions[tp] = max(len(self.log[tp.partition]) - 1, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.calls.append(f"seek {tp.partition} {offset}")
        self.positions[tp] = offset

    def poll(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        self.calls.append("poll")
        if self.poll_errors:
            raise self.poll_errors.pop(0)
        answer: dict[TopicPartition, list[FakeRecord]] = {}
        budget = max_records or 500
        for tp in self.assigned:
            values = self.log[tp.partition]
            self.high[tp] = len(values)
            start = self.positions[tp]
            taken = values[start : start + budget]
            budget -= len(taken)
            if taken:
                answer[tp] = [
                    raw_record(v, start + i, key=b"k", partition=tp.partition, topic=tp.topic)
                    for i, v in enumerate(taken)
                ]
                self.positions[tp] = start + len(taken)
        return answer

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high.get(tp)

    def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    def close(self) -> None:
        self.closed = True
