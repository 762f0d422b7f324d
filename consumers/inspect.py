"""The records ``alerting inspect`` looks at: the last (or first) N of a topic, or of a
JSONL file (``.gz`` too), as :class:`Sample` values for :class:`alerting.inspect.Inspector`.

The last N of a topic are read without a group: every partition is moved to its true
high watermark (:func:`consumers.kafka_python.seek_to_high_watermark`, as tansu's
ListOffsets answers the last batch's base offset + 1), then back by its share of N
(:func:`spread`: even while every partition holds enough, a short one's rest going to
the others), and read up to where it was.
"""

from __future__ import annotations

import gzip
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alerting.settings import Settings

__all__ = ["Sample", "file_samples", "is_file", "spread", "topic_samples"]


@dataclass(frozen=True)
class Sample:
    """One record: its value as read, and the key, timestamp and headers it came with."""

    value: bytes | None
    key: bytes | None = None
    timestamp_ms: int | None = None
    headers: Sequence[tuple[str, bytes | None]] = ()


def file_samples(path: Path, max_records: int, from_beginning: bool = True) -> list[Sample]:
    """The first ``max_records`` non-blank lines of a JSONL file, or its last ones."""
    samples: list[Sample] = []
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as source:
        for raw in source:
            line = raw.strip()
            if not line:
                continue
            samples.append(Sample(line.removeprefix(b"\xef\xbb\xbf")))
            if from_beginning and len(samples) >= max_records:
                break
            if not from_beginning and len(samples) > 2 * max_records:
                del samples[:-max_records]
    return samples if from_beginning else samples[-max_records:]


def spread(total: int, held: Sequence[int]) -> list[int]:
    """How many of ``total`` records to take from each partition holding ``held`` records:
    as even as they allow.

    >>> spread(30, [40, 40, 40]), spread(30, [60, 0, 60]), spread(30, [5, 100, 2])
    ([10, 10, 10], [15, 0, 15], [5, 23, 2])
    >>> spread(10, [3, 3])
    [3, 3]
    """
    shares = [0] * len(held)
    left = total
    open_ = [i for i, n in enumerate(held) if n > 0]
    while left > 0 and open_:
        each = math.ceil(left / len(open_))
        for i in list(open_):
            take = min(each, held[i] - shares[i], left)
            shares[i] += take
            left -= take
            if shares[i] == held[i]:
                open_.remove(i)
    return shares


def topic_samples(
    settings: Settings,
    topic: str,
    max_records: int,
    from_beginning: bool = False,
    timeout_s: float = 15.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[Sample] | None:
    """Up to ``max_records`` records of ``topic``, the last ones (or the first), read
    within ``timeout_s`` or until ``should_stop()``; None when the topic has no
    partitions by then (it does not exist)."""
    from consumers.kafka_python import consumer_for, follow

    consumer = consumer_for(settings, group_id=None, auto_offset_reset="earliest")
    deadline = time.monotonic() + timeout_s
    samples: list[Sample] = []
    until: dict[Any, int] = {}
    started = False
    done = False

    def rewind() -> None:
        nonlocal started
        started = True
        assigned = list(consumer.assignment())
        if from_beginning:
            return
        beginnings = consumer.beginning_offsets(assigned)
        highs = [consumer.position(tp) for tp in assigned]
        held = [
            max(0, high - (beginnings.get(tp) or 0))
            for tp, high in zip(assigned, highs, strict=True)
        ]
        for tp, high, share in zip(assigned, highs, spread(max_records, held), strict=True):
            until[tp] = high
            consumer.seek(tp, high - share)

    def finished() -> None:
        nonlocal done
        done = True

    def stop() -> bool:
        return done or len(samples) >= max_records or time.monotonic() > deadline or should_stop()

    try:
        for batch in follow(
            consumer,
            topic,
            "beginning" if from_beginning else "end",
            stop,
            started=rewind,
            caught_up=finished,
        ):
            for tp, records in batch.items():
                end = until.get(tp)
                for record in records:
                    if end is not None and record.offset >= end:
                        continue
                    samples.append(_sample(record))
            if until and all(consumer.position(tp) >= end for tp, end in until.items()):
                done = True
    finally:
        consumer.close()
    if not started:
        return None
    return samples[:max_records]


def _sample(record: Any) -> Sample:
    return Sample(
        record.value,
        record.key,
        record.timestamp if record.timestamp is not None and record.timestamp >= 0 else None,
        tuple(record.headers or ()),
    )


def is_file(target: str) -> bool:
    """Whether ``alerting inspect``'s argument names a file rather than a topic."""
    return target.endswith((".jsonl", ".jsonl.gz", ".json", ".ndjson")) or Path(target).exists()
