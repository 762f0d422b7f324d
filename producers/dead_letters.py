"""Dead letters: an invalid input record, kept whole, plus why and where it failed.

The original key, value and headers are kept byte for byte; the reason and source
position are added as ``x-dlq-*`` headers, so the record can be inspected and replayed.
"""

from __future__ import annotations

from alerting.errors import InvalidEvent
from consumers.port import InputRecord, Outgoing

REASON = "x-dlq-reason"
DETAIL = "x-dlq-detail"
SOURCE_TOPIC = "x-dlq-source-topic"
SOURCE_PARTITION = "x-dlq-source-partition"
SOURCE_OFFSET = "x-dlq-source-offset"
SOURCE_TIMESTAMP = "x-dlq-source-timestamp"


def dead_letter(record: InputRecord, error: InvalidEvent, topic: str) -> Outgoing:
    """The dead-letter message for ``record`` rejected with ``error``."""
    headers = [(name, value if value is not None else b"") for name, value in record.headers]
    headers += [
        (REASON, error.reason.encode()),
        (DETAIL, error.detail[:1000].encode()),
        (SOURCE_TOPIC, record.topic.encode()),
        (SOURCE_PARTITION, str(record.partition).encode()),
        (SOURCE_OFFSET, str(record.offset).encode()),
        (SOURCE_TIMESTAMP, str(record.timestamp).encode()),
    ]
    return Outgoing(topic=topic, key=record.key, value=record.value, headers=headers)
