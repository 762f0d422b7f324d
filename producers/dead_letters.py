"""Dead letters: an invalid input record, kept whole, plus why and where it failed.

The original key, value and headers are kept byte for byte; the reason and source
position are added as ``x-dlq-*`` headers, so the record can be inspected and replayed.

A record too large to keep whole (over ``service.max_event_bytes``, or a dead letter the
broker or client refused) is dead-lettered as a *stub*: the same headers, an empty value,
the key cut to :data:`MAX_STUB_KEY_BYTES`, original headers up to
:data:`MAX_STUB_HEADER_BYTES`, and ``x-dlq-stub`` (why the value was left out),
``x-dlq-stub-detail``, ``x-dlq-value-bytes``, ``x-dlq-value-sha256`` (hex; of b"" for a
tombstone, whose size is -1), ``x-dlq-key-bytes`` and, if some did not fit,
``x-dlq-headers-dropped``. A stub is small whatever the record was.

>>> letter = Outgoing("dlq", b"k" * 5000, b"x" * 10, [("trace", b"t"), (REASON, b"not_json")])
>>> small = stub(letter, "too_large", "over the limit")
>>> len(small.key), small.value, dict(small.headers)[VALUE_BYTES], dict(small.headers)[STUB]
(1024, b'', b'10', b'too_large')
"""

from __future__ import annotations

import hashlib

from alerting.errors import InvalidEvent
from alerting.records import InputRecord, Outgoing

REASON = "x-dlq-reason"
DETAIL = "x-dlq-detail"
SOURCE_TOPIC = "x-dlq-source-topic"
SOURCE_PARTITION = "x-dlq-source-partition"
SOURCE_OFFSET = "x-dlq-source-offset"
SOURCE_TIMESTAMP = "x-dlq-source-timestamp"
STUB = "x-dlq-stub"
STUB_DETAIL = "x-dlq-stub-detail"
VALUE_BYTES = "x-dlq-value-bytes"
VALUE_SHA256 = "x-dlq-value-sha256"
KEY_BYTES = "x-dlq-key-bytes"
HEADERS_DROPPED = "x-dlq-headers-dropped"

_OURS = frozenset((REASON, DETAIL, SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET, SOURCE_TIMESTAMP))

#: A stub keeps at most this much of the key...
MAX_STUB_KEY_BYTES = 1024
#: ...and original headers (name + value + 8 bytes each) up to this total, in order
MAX_STUB_HEADER_BYTES = 64 * 1024


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
    return Outgoing(
        topic=topic,
        key=record.key,
        value=record.value,
        headers=headers,
        source=(record.topic, record.partition, record.offset),
    )


def stub(letter: Outgoing, why: str, detail: str) -> Outgoing:
    """``letter`` (a dead letter) without its value, small whatever its size: see the
    module docstring. ``why`` is a skip reason (``too_large``, ``invalid_record``, ...)."""
    value, key = letter.value, letter.key
    # the headers dead_letter() appended (the last of each name) are always kept; the
    # record's own, x-dlq-* ones of a replayed dead letter included, share the budget
    ours: set[int] = set()
    seen: set[str] = set()
    for index in range(len(letter.headers) - 1, -1, -1):
        name, header = letter.headers[index]
        if name in _OURS and name not in seen and len(header) <= 4096:
            seen.add(name)
            ours.add(index)
    kept: list[tuple[str, bytes]] = []
    budget, dropped = MAX_STUB_HEADER_BYTES, 0
    for index, (name, header) in enumerate(letter.headers):
        if index in ours:
            kept.append((name, header))
            continue
        size = len(name.encode()) + len(header) + 8  # + a record header's own bytes
        if size > budget:
            dropped += 1
            continue
        budget -= size
        kept.append((name, header))
    kept += [
        (STUB, why.encode()),
        (STUB_DETAIL, detail[:1000].encode()),
        (VALUE_BYTES, str(-1 if value is None else len(value)).encode()),
        (VALUE_SHA256, hashlib.sha256(value or b"").hexdigest().encode()),
        (KEY_BYTES, str(-1 if key is None else len(key)).encode()),
    ]
    if dropped:
        kept.append((HEADERS_DROPPED, str(dropped).encode()))
    return Outgoing(
        topic=letter.topic,
        key=None if key is None else key[:MAX_STUB_KEY_BYTES],
        value=b"",
        headers=kept,
        partition=letter.partition,
        source=letter.source,
    )


def is_stub(letter: Outgoing) -> bool:
    """Whether ``letter`` is already a stub (a refused stub is not stubbed again)."""
    return not letter.value and any(name == STUB for name, _ in letter.headers)
