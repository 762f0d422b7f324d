"""The shapes of a Kafka record as the adapters hand them around: plain data, no client.

:class:`InputRecord` is what the consume loop reads of a consumed record (kafka-python's
attribute names, so its ``ConsumerRecord`` passes through untouched), :class:`Outgoing`
a message to publish. They live in the core so that both adapter layers can name them:
the consumers build input records and publish outgoing messages, the producers (the
dead-letter writer) turn one into the other, and neither imports the other for it.

>>> letter = Outgoing("dlq", b"AAPL", b"{}")
>>> letter.headers, letter.partition, letter.source
([], None, None)
"""

from __future__ import annotations

from collections.abc import Sequence
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


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A record the client could not read (a header name that is not UTF-8, say), as an
    input record of its position with no key, value or headers: the loop dead-letters
    it (reason ``unreadable``, ``detail`` the client's words) and goes on past it."""

    topic: str
    partition: int
    offset: int
    detail: str
    timestamp: int = -1
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@dataclass(slots=True)
class Outgoing:
    """A message to publish."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None  # None: the producer's partitioner (by key)
    # the input record that caused it, (topic, partition, offset): named in log lines
    source: tuple[str, int, int] | None = None
