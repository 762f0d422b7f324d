"""The narrow port between the consume loop and Kafka: poll a batch, publish, commit.

The kafka-python adapter (:mod:`consumers.kafka_port`) passes the client's own
``ConsumerRecord`` objects through untouched (no per-record copy); unit tests use an
in-memory fake with records of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class InputRecord(Protocol):
    """The attributes of a consumed record the loop reads (kafka-python's names)."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def timestamp(self) -> int:
        """Kafka record timestamp, milliseconds since the epoch."""
        ...

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


@dataclass(slots=True)
class Outgoing:
    """A message to publish."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None  # None: the producer's partitioner (by key)


class DeliveryError(Exception):
    """Some messages were not acknowledged; ``pending`` are the ones to send again."""

    def __init__(self, message: str, pending: Sequence[Outgoing]) -> None:
        super().__init__(message)
        self.pending = list(pending)


class Port(Protocol):
    """What the consume loop needs from Kafka."""

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[InputRecord]:
        """The next batch of input records (possibly empty)."""
        ...

    def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        """Send ``messages`` and block until the broker acknowledged all of them.

        Raises :class:`DeliveryError` listing the unacknowledged ones.
        """
        ...

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit ``{(topic, partition): next offset to read}``."""
        ...

    def read_partitions(
        self, topic: str, partitions: set[int]
    ) -> Iterator[tuple[int, int, bytes | None, bytes | None]]:
        """Every record of ``partitions`` of ``topic`` up to its high watermark, as
        ``(records remaining, partition, key, value)``: the restore of a changelog."""
        ...

    def on_rebalance(
        self,
        assigned: Callable[[set[int]], None],
        revoked: Callable[[set[int]], None],
    ) -> None:
        """Call ``revoked`` before input partitions are taken away (still owned, so the
        loop can checkpoint) and ``assigned`` before any record of new ones is polled."""
        ...

    def pause(self, partitions: set[int]) -> None:
        """Fetch nothing more of these input partitions until :meth:`resume` (a partition
        whose state could not be restored must not be processed on an empty state)."""
        ...

    def resume(self, partitions: set[int]) -> None:
        """Fetch these input partitions again."""
        ...

    def lag(self) -> dict[int, int]:
        """Records behind the high watermark, per assigned input partition."""
        ...

    def close(self) -> None:
        """Leave the group and release the clients."""
        ...
