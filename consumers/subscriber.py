"""Subscribe to the alerts topic: ``alerting tail``.

Reads with manual partition assignment (no consumer group, so it starts at once and
never moves the service's offsets). Prints each alert readably, or as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from alerting.settings import Settings

_COLOURS = {"critical": "\033[1;31m", "warning": "\033[33m", "resolved": "\033[32m"}
_RESET = "\033[0m"


def format_alert(cloudevent: dict[str, Any], color: bool = False) -> str:
    """One readable line for a CloudEvent alert."""
    data = cloudevent.get("data") or {}
    severity = str(cloudevent.get("severity") or data.get("severity") or "?")
    kind = str(cloudevent.get("type", "")).rsplit(".", 1)[-1]
    label = f"{severity.upper():8}" if kind == "firing" else f"{kind.upper():8}"
    if color:
        label = _COLOURS.get(severity if kind == "firing" else kind, "") + label + _RESET
    score = data.get("score")
    threshold = data.get("threshold")
    figures = (
        f"score {score:.1f} ≥ {threshold:g}"
        if isinstance(score, int | float) and isinstance(threshold, int | float)
        else ""
    )
    return (
        f"{cloudevent.get('time', '?')}  {label} {cloudevent.get('subject', '?'):10} "
        f"{figures:18}  {data.get('summary', '')}"
    )


def _seek_to_high_watermark(consumer: Any, assigned: list[Any], wait_s: float = 5.0) -> None:
    """Start after the newest alert.

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


def tail_command(
    settings: Settings,
    args: argparse.Namespace,
    should_stop: Callable[[], bool] | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Print alerts until ``--max``, ``--timeout``, ``should_stop()`` or Ctrl+C."""
    from kafka import TopicPartition

    from consumers.kafka_port import consumer_for

    consumer = consumer_for(settings, group_id=None)
    topic = settings.topics.alerts
    partitions = None
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while not partitions:
        partitions = consumer.partitions_for_topic(topic)
        if partitions:
            break
        if (deadline and time.monotonic() > deadline) or (should_stop and should_stop()):
            consumer.close()
            return 1 if args.max else 0
        time.sleep(0.2)
    assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(assigned)
    if args.from_beginning:
        consumer.seek_to_beginning(*assigned)
    else:
        _seek_to_high_watermark(consumer, assigned)
    color = args.color if args.color is not None else out.isatty()
    seen = 0
    try:
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                break
            if should_stop is not None and should_stop():
                break
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    if args.json:
                        out.write(record.value.decode() + "\n")
                    else:
                        try:
                            out.write(format_alert(json.loads(record.value), color) + "\n")
                        except (ValueError, AttributeError):
                            out.write(f"(unreadable alert at offset {record.offset})\n")
                    seen += 1
                    if args.max is not None and seen >= args.max:
                        out.flush()
                        return 0
            out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 1 if args.max is not None and seen < args.max else 0
