"""The narrow port between the consume loop and Kafka: poll a batch, publish, commit.

The kafka-python adapter (:mod:`consumers.kafka_python`) passes the client's own
``ConsumerRecord`` objects through untouched (no per-record copy), as the
:class:`~alerting.records.InputRecord` they are; the confluent-kafka one
(:mod:`consumers.confluent`) wraps each message in a record of the same shape; unit
tests use an in-memory fake with records of the same shape. Both ports report
rebalances through one :class:`~consumers.rebalance.Rebalance`.

Publishing fails per message, in two kinds (:class:`DeliveryError`): *pending* messages
met a temporary error (broker unavailable, timeout, not the leader) and are sent again
until acknowledged; *refused* ones met a permanent error, a broker or client answer that
sending the same bytes again cannot change (too large, invalid record), each with a
low-cardinality reason (:data:`alerting.metrics.PUBLISH_SKIP_REASONS`). A missing ACL or
topic is the topic's fault, not the record's: retried, as an outage is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from alerting.errors import AlertingError
from alerting.records import InputRecord, Outgoing


@dataclass(frozen=True, slots=True)
class Refusal:
    """A message refused for good: ``reason`` is one of
    :data:`~alerting.metrics.PUBLISH_SKIP_REASONS`, ``detail`` the client's words."""

    message: Outgoing
    reason: str
    detail: str


class DeliveryError(AlertingError):
    """Some messages were not acknowledged: ``pending`` met a temporary error and are to
    be sent again; ``refused`` met a permanent one (sending them again cannot succeed)."""

    def __init__(
        self, message: str, pending: Sequence[Outgoing], refused: Sequence[Refusal] = ()
    ) -> None:
        super().__init__(message)
        self.pending = list(pending)
        self.refused = list(refused)


#: Kafka protocol error codes (the same in every client) answered for one record that
#: sending it again cannot change, and the reason each is counted under
PERMANENT_ERROR_CODES: dict[int, str] = {
    10: "too_large",  # MESSAGE_TOO_LARGE (also kafka-python's and librdkafka's own check)
    18: "too_large",  # RECORD_LIST_TOO_LARGE
    87: "invalid_record",  # INVALID_RECORD (e.g. a compacted topic and no key)
    32: "invalid_record",  # INVALID_TIMESTAMP (outside message.timestamp.difference.max.ms)
    43: "invalid_record",  # UNSUPPORTED_FOR_MESSAGE_FORMAT
}

#: errors of the topic or the principal, not of one record: a missing ACL or topic is
#: fixed by an operator, and skipping would lose every alert until then; retried, as
#: an outage is, until they pass or the service is stopped
TOPIC_ERROR_CODES = frozenset(
    {
        29,  # TOPIC_AUTHORIZATION_FAILED
        31,  # CLUSTER_AUTHORIZATION_FAILED
        53,  # TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        17,  # INVALID_TOPIC_EXCEPTION
    }
)

#: broker answers kafka-python marks as not retriable that do pass (Kafka itself retries
#: CORRUPT_MESSAGE; BROKER_NOT_AVAILABLE is an outage; the topic's ACLs and existence):
#: never a reason to skip
TEMPORARY_ERROR_CODES = frozenset({2, 8}) | TOPIC_ERROR_CODES


def permanent_reason(code: int | None, retriable: bool | None) -> str | None:
    """The skip reason of a publish error with Kafka error ``code``; None if temporary.

    Listed codes are permanent; any other broker answer (code 0 or more) that the client
    *knows* is not retriable (``retriable`` False: kafka-python's error classes say so;
    None: the client cannot tell, as librdkafka's delivery reports) is ``other``;
    everything else, client-side timeouts and connection trouble included, is temporary
    (retried until acknowledged).

    >>> permanent_reason(10, None), permanent_reason(6, True), permanent_reason(None, False)
    ('too_large', None, None)
    >>> permanent_reason(21, False), permanent_reason(21, None)  # INVALID_REQUIRED_ACKS
    ('other', None)
    >>> permanent_reason(8, False)  # BROKER_NOT_AVAILABLE: an outage, whatever the client says
    """
    if code is None:
        return None
    reason = PERMANENT_ERROR_CODES.get(code)
    if reason is not None:
        return reason
    if code >= 0 and retriable is False and code not in TEMPORARY_ERROR_CODES:
        return "other"
    return None


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
