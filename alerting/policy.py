"""The alert policy: turns scores into few alerts, on event time.

The threshold comes from the entity's :mod:`alerting.thresholds` object; this first
policy adds severity and a per-entity cooldown. The richer lifecycle (hysteresis,
resolve, inhibition) plugs in behind the same ``evaluate`` verb.

>>> policy = CooldownPolicy(critical_factor=2.0, cooldown_s=30.0)
>>> state = PolicyState()
>>> policy.evaluate(state, score=7.0, threshold=6.0, event_time=100.0)
'warning'
>>> policy.evaluate(state, score=20.0, threshold=6.0, event_time=110.0) is None   # cooling down
True
>>> policy.evaluate(state, score=20.0, threshold=6.0, event_time=131.0)
'critical'
"""

from __future__ import annotations

from typing import Literal

Severity = Literal["warning", "critical"]


class PolicyState:
    """Per-entity policy memory."""

    __slots__ = ("last_fired", "suppressed")

    def __init__(self) -> None:
        self.last_fired: float | None = None
        self.suppressed = 0


class CooldownPolicy:
    """Fire when score ≥ threshold, at most once per ``cooldown_s`` of event time per entity.

    Severity is critical when the score is at least ``threshold × critical_factor``.
    """

    def __init__(self, critical_factor: float = 2.0, cooldown_s: float = 2.0) -> None:
        if not critical_factor >= 1:
            raise ValueError(f"critical_factor must be at least 1, got {critical_factor}")
        if not cooldown_s >= 0:
            raise ValueError(f"cooldown_s must not be negative, got {cooldown_s}")
        self.critical_factor = critical_factor
        self.cooldown_s = cooldown_s

    def evaluate(
        self, state: PolicyState, score: float, threshold: float, event_time: float
    ) -> Severity | None:
        """The severity to alert with, or None; updates ``state``."""
        if score < threshold:
            return None
        last = state.last_fired
        if last is not None and event_time - last < self.cooldown_s:
            state.suppressed += 1
            return None
        state.last_fired = event_time
        return "critical" if score >= threshold * self.critical_factor else "warning"
