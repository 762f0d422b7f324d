"""An in-memory fake of :class:`consumers.port.Port`, for unit tests of the consume loop.

Records have kafka-python's ``ConsumerRecord`` attribute names. The fake serves its input
in batches, records what was published and committed (and the order of those calls), and
can simulate a broker outage: the next N ``publish`` calls raise ``DeliveryError``.
Integration tests use a real broker, never this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from alerting.events import Event, encode
from consumers.port import DeliveryError, Outgoing

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


class FakePort:
    """In-memory :class:`consumers.port.Port`.

    ``calls`` is the sequence of operations seen, as ``(name, detail)`` pairs with name
    ``poll``, ``poll_failed``, ``publish``, ``publish_failed`` or ``commit``, so tests can
    check their order.
    """

    def __init__(self, records: Sequence[FakeRecord] = (), topic: str = DEFAULT_TOPIC) -> None:
        self.topic = topic
        self.records: list[FakeRecord] = list(records)
        self.position = 0  # index of the next record poll() serves
        self.published: list[Outgoing] = []
        self.commits: list[dict[tuple[str, int], int]] = []
        self.calls: list[tuple[str, object]] = []
        self.closed = False
        self.after_failed_publish: Callable[[int], None] | None = None
        self._publish_failures_left = 0
        self._poll_failures_left = 0
        self._acknowledge_first = 0
        self._failed_publishes = 0

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

    # -- simulating trouble -------------------------------------------------------------

    def fail_next_publishes(self, times: int, acknowledge_first: int = 0) -> None:
        """Make the next ``times`` publish calls fail, as during a broker outage.

        Each failing call acknowledges its first ``acknowledge_first`` messages (they count
        as published; the last message is never acknowledged) and raises ``DeliveryError``
        with the rest as ``pending``.
        """
        self._publish_failures_left = times
        self._acknowledge_first = acknowledge_first

    def fail_next_polls(self, times: int) -> None:
        """Make the next ``times`` poll calls raise, as when the group coordinator is gone."""
        self._poll_failures_left = times

    # -- the Port protocol --------------------------------------------------------------

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[FakeRecord]:
        if self._poll_failures_left > 0:
            self._poll_failures_left -= 1
            self.calls.append(("poll_failed", 0))
            raise ConnectionError("simulated outage: coordinator not available")
        batch = self.records[self.position : self.position + max_records]
        self.position += len(batch)
        self.calls.append(("poll", len(batch)))
        return batch

    def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        if self._publish_failures_left > 0:
            self._publish_failures_left -= 1
            self._failed_publishes += 1
            # a failed call always leaves at least one message unacknowledged
            split = min(self._acknowledge_first, len(messages) - 1)
            acked, pending = list(messages[:split]), list(messages[split:])
            self.published.extend(acked)
            self.calls.append(("publish_failed", len(messages)))
            if self.after_failed_publish is not None:
                self.after_failed_publish(self._failed_publishes)
            raise DeliveryError(
                f"simulated outage: {len(pending)} of {len(messages)} not acknowledged",
                pending=pending,
            )
        self.published.extend(messages)
        self.calls.append(("publish", len(messages)))

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))
        self.calls.append(("commit", dict(offsets)))

    def lag(self) -> dict[int, int]:
        """Records not yet polled, per partition (high watermark minus position)."""
        behind: dict[int, int] = {}
        for index, record in enumerate(self.records):
            if record.topic != self.topic:
                continue
            behind.setdefault(record.partition, 0)
            if index >= self.position:
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

    def published_to(self, topic: str) -> list[Outgoing]:
        return [m for m in self.published if m.topic == topic]
