"""How long to wait before trying again: the one backoff of the project.

Every retry loop that backs off (the forwarder's deliveries, the control readers and
their supervisor, the corpus download) asks a :class:`Backoff` for its delay by attempt
number; the threads wait on their stop event, so that a stop is not held up. The consume
loop retries its broker calls (poll, publish, commit, restore) at the constant
``service.retry_backoff_s``, waiting on its stop event too: an outage must not make the
service slower to notice the broker is back.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential: ``initial_s × 2^(attempt-1)``, at most ``max_s``; ``initial_s ==
    max_s`` is a constant delay.

    >>> [Backoff(0.5, 4.0).delay(a) for a in (1, 2, 3, 4, 5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> Backoff(0.5, 0.25)
    Traceback (most recent call last):
    ...
    ValueError: max_s: must be ≥ initial_s, got 0.25
    """

    initial_s: float = 0.5
    max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.initial_s <= 0:
            raise ValueError(f"initial_s: must be > 0, got {self.initial_s}")
        if self.max_s < self.initial_s:
            raise ValueError(f"max_s: must be ≥ initial_s, got {self.max_s}")

    def delay(self, attempt: int) -> float:
        """The wait after the ``attempt``-th failure in a row (1 for the first)."""
        return float(min(self.initial_s * 2 ** min(attempt - 1, 60), self.max_s))
