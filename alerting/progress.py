"""A dependency-free progress reporter for long work (replays, back-tests, benchmarks).

On a terminal it redraws one line in place (bar, count/total, rate, ETA), at most
every ``min_interval`` seconds. Otherwise (a log file, CI) it prints a plain line at
most every ``plain_interval`` seconds. Either way :meth:`Progress.close` prints a
summary line. ``update`` is called once per event, so it only compares a counter;
the clock is read every few updates (at most 256), with the stride adapted to the rate.

>>> import io
>>> ticks = iter(range(100))
>>> out = io.StringIO()
>>> with Progress(3, "replay", stream=out, clock=lambda: float(next(ticks))) as progress:
...     for _ in range(3):
...         progress.update()
>>> print(out.getvalue(), end="")
replay: done, 3/3 in 4.0 s (0.8/s)
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]

_BAR_WIDTH = 20
_CLEAR_TO_END = "\x1b[K"
_CLOCK_READS_PER_INTERVAL = 8
# The clock is read at least every this many updates: a sudden slowdown shows up after
# at most this many more events, and at a million updates/s it costs a few µs per second.
_MAX_STRIDE = 256


class Progress:
    """Report the progress of ``total`` units of work (None when unknown)."""

    def __init__(
        self,
        total: int | None,
        label: str,
        stream: TextIO | None = None,
        min_interval: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
        enabled: bool = True,
        tty: bool | None = None,
        plain_interval: float = 5.0,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError(f"total must be None or >= 0, got {total!r}")
        if not min_interval >= 0:
            raise ValueError(f"min_interval must be >= 0, got {min_interval!r}")
        if not plain_interval > 0:
            raise ValueError(f"plain_interval must be > 0, got {plain_interval!r}")
        self.total = total
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.min_interval = min_interval
        self.clock = clock
        self.enabled = enabled
        self.tty = _isatty(self.stream) if tty is None else tty
        self.plain_interval = plain_interval
        self.count = 0
        self.closed = False
        self._start = clock()
        # a terminal gets its first bar at once; a log waits a full interval
        self._last_draw = self._start - min_interval if self.tty else self._start
        self._stride = 1
        self._last_check, self._last_count = self._start, 0
        self._next_check = 1 if enabled else math.inf

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done. Cheap: reads the clock only every few calls."""
        self.count += n
        if self.count >= self._next_check:
            self._check()

    @property
    def elapsed(self) -> float:
        """Seconds since the reporter was created."""
        return self.clock() - self._start

    def close(self) -> None:
        """Print the summary line (once)."""
        if self.closed:
            return
        self.closed = True
        if not self.enabled:
            return
        elapsed = self.clock() - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        of = f"/{self.total:,}" if self.total is not None else ""
        line = f"{self.label}: done, {self.count:,}{of} in {_duration(elapsed)} ({_rate(rate)})"
        self._write(f"\r{line}{_CLEAR_TO_END}\n" if self.tty else f"{line}\n")

    def _check(self) -> None:
        now = self.clock()
        elapsed = now - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        interval = self.min_interval if self.tty else self.plain_interval
        if now - self._last_draw >= interval and not self.closed:
            self._last_draw = now
            self._draw(elapsed, rate)
        # Aim at a few clock reads per interval at the recent rate; grow the stride at
        # most twofold per read so that one fast burst cannot hide a slow stretch.
        since = now - self._last_check
        if since > 0:
            recent = (self.count - self._last_count) / since
            wanted = int(recent * self.min_interval / _CLOCK_READS_PER_INTERVAL)
            self._stride = max(1, min(wanted, self._stride * 2, _MAX_STRIDE))
        else:  # the clock has not moved: back off
            self._stride = min(self._stride * 2, 1024)
        self._last_check, self._last_count = now, self.count
        self._next_check = self.count + self._stride

    def _draw(self, elapsed: float, rate: float) -> None:
        total = self.total
        if total is None:
            if self.tty:
                line = f"{self.label} {self.count:,} {_rate(rate)} {_clock(elapsed)}"
            else:
                line = f"{self.label}: {self.count:,} in {_clock(elapsed)}, {_rate(rate)}"
        else:
            done = min(self.count / total, 1.0) if total else 1.0
            left = max(total - self.count, 0)
            eta = _clock(left / rate) if rate > 0 else "?"
            if self.tty:
                filled = round(done * _BAR_WIDTH)
                bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
                line = (
                    f"{self.label} [{bar}] {self.count:,}/{total:,} {done:4.0%} "
                    f"{_rate(rate)} ETA {eta}"
                )
            else:
                line = (
                    f"{self.label}: {self.count:,}/{total:,} ({done:.0%}), {_rate(rate)}, ETA {eta}"
                )
        self._write(f"\r{line}{_CLEAR_TO_END}" if self.tty else f"{line}\n")

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: progress is not worth a crash
            self.enabled = False
            self._next_check = math.inf


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f}M/s"
    if per_second >= 1e4:
        return f"{per_second / 1e3:.0f}k/s"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f}k/s"
    if per_second >= 10:
        return f"{per_second:.0f}/s"
    return f"{per_second:.1f}/s"


def _clock(seconds: float) -> str:
    """H:MM:SS, or M:SS under an hour."""
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 60 else _clock(seconds)
