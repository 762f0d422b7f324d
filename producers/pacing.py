"""Pace a replayed stream by its event time: real time, N times faster, or flat out.

The schedule is absolute: event ``e`` is due ``(e.timestamp - first.timestamp) / speed``
wall seconds after the first event was seen, so short sleeps that are skipped or
overshoot do not add up to drift. Three things keep a replay watchable:

- an event earlier than one already seen is due at once (time never runs backwards);
- a gap in event time longer than ``max_gap_seconds`` of wall time (a night, a weekend,
  a hole in the recording) is cut down to ``max_gap_seconds``;
- when the caller falls more than ``max_gap_seconds`` behind the schedule (a stalled
  broker), the schedule restarts from now instead of bursting to catch up.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["Pacer"]


class Pacer:
    """Sleep until each event is due, relative to the first event seen.

    ``speed`` 1.0 is real time, 10 is ten times faster, None is as fast as possible.
    The clock and the sleep are injected, so tests run on a fake clock:

    >>> now = [0.0]
    >>> def sleep(seconds: float) -> None:
    ...     now[0] += seconds
    >>> pacer = Pacer(speed=10, clock=lambda: now[0], sleep=sleep)
    >>> pacer.wait_until_due(1_000.0)  # the first event is due at once
    0.0
    >>> pacer.wait_until_due(1_002.0)  # 2 s of event time at 10x
    0.2
    >>> pacer.wait_until_due(9_000.0)  # a long gap waits max_gap_seconds at most
    5.0
    """

    #: Waits shorter than this are skipped; the absolute schedule absorbs them.
    min_sleep_seconds = 0.001

    def __init__(
        self,
        speed: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_gap_seconds: float = 5.0,
    ) -> None:
        if speed is not None and not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number or None, got {speed!r}")
        if not (math.isfinite(max_gap_seconds) and max_gap_seconds > 0):
            raise ValueError(f"max_gap_seconds must be positive, got {max_gap_seconds!r}")
        self.speed = speed
        self.clock = clock
        self.sleep = sleep
        self.max_gap_seconds = max_gap_seconds
        self.slept = 0.0  #: total seconds slept so far
        self._wall_origin: float | None = None
        self._event_origin = 0.0  # moves forward when a long gap is cut short
        self._latest = -math.inf

    def wait_until_due(self, event_timestamp: float) -> float:
        """Sleep until the event is due; return the seconds slept (0.0 if none)."""
        speed = self.speed
        if speed is None:
            return 0.0
        now = self.clock()
        if self._wall_origin is None:
            self._wall_origin, self._event_origin = now, event_timestamp
            self._latest = event_timestamp
            return 0.0
        if event_timestamp <= self._latest:
            return 0.0
        gap = event_timestamp - self._latest
        self._latest = event_timestamp
        longest = self.max_gap_seconds * speed
        if gap > longest:
            self._event_origin += gap - longest
        due = self._wall_origin + (event_timestamp - self._event_origin) / speed
        wait = due - now
        if wait < -self.max_gap_seconds:
            self._wall_origin, self._event_origin = now, event_timestamp
            return 0.0
        if wait < self.min_sleep_seconds:
            return 0.0
        self.sleep(wait)
        self.slept += wait
        return wait
