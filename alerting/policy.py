"""The alert policy: turns scores into few alerts with a lifecycle, on event time.

The threshold comes from the entity's :mod:`alerting.thresholds` object; the policy
decides, per entity and event kind, when an *episode* starts (hysteresis, ``for_events``),
which notifications it sends (``new``, ``repeat`` after ``repeat_interval_s``, ``escalated``
at once when the severity rises), what it holds back (counted by reason), and when the
episode is over (``resolved`` after ``resolve_after_s`` below the clear level). There are
no timers: everything is decided when an event of the entity and kind arrives.

Levels, for a threshold ``T`` (times an active feedback penalty, see :meth:`penalize`):

* breaching: ``score ≥ T × warning_factor``; severity ``critical`` from ``T × critical_factor``
* an episode opens after ``for_events`` breaching events in a row (of that kind), and stays
  open while scores are above ``T × clear_factor``; once they have been below it for
  ``resolve_after_s`` of event time, it is resolved
* one notification per episode, except a repeat (only on a breaching event, at least
  ``repeat_interval_s`` after the previous notification) and an escalation (at once, when a
  breaching event raises the episode's severity); the severity of a notification is the
  episode's highest so far, so it never goes down within an episode
* held back, and counted by reason: ``for`` (not enough breaching events in a row yet),
  ``repeat_interval``, ``feedback_mute`` (the entity is muted by feedback), ``inhibited``
  (a warning while another kind of the same entity has an open critical episode, and
  that kind has sent an event within ``inhibit_silence_s``: a feed that went silent
  mid-episode does not hold back the others for good); a
  notification held back is sent at the next breaching event that is not held back, as
  ``new`` if the episode has sent nothing yet
* a resolved notification is sent only for an episode that sent a firing one

>>> policy = AlertPolicy(warning_factor=1.0, critical_factor=2.0, clear_factor=0.8,
...                      repeat_interval_s=300.0, resolve_after_s=30.0)
>>> state = PolicyState()
>>> [policy.evaluate(state, score, 6.0, t).label for score, t in
...  [(7.0, 100.0), (8.0, 101.0), (13.0, 102.0), (5.0, 110.0), (4.0, 120.0), (4.0, 150.0)]]
['new warning', 'held back: repeat_interval', 'escalated critical', '', '', 'resolved critical']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

Severity = Literal["warning", "critical"]
Notification = Literal["new", "repeat", "escalated"]

_RANK: Final = {"warning": 1, "critical": 2}

#: suppression reasons (``alerting_alerts_suppressed_total{reason}``)
REASONS: Final = ("for", "repeat_interval", "inhibited", "feedback_mute")


class Episode:
    """One open episode of an entity and event kind."""

    __slots__ = (
        "below_since",
        "firing_id",
        "last_at",
        "notified",
        "notified_at",
        "severity",
        "started_at",
    )

    def __init__(self, started_at: float, severity: Severity) -> None:
        self.started_at = started_at
        self.last_at = started_at  # event time of the latest event of its kind
        self.severity: Severity = severity  # highest severity of its breaching events
        self.notified: Severity | None = None  # highest severity sent; None: nothing sent yet
        self.notified_at = -math.inf  # event time of the last notification sent
        self.below_since: float | None = None  # start of the current run below the clear level
        self.firing_id = ""  # id of the episode's first firing alert (set by the processor)

    def __setstate__(self, state: tuple[None, dict[str, object]]) -> None:
        """Unpickle; episodes snapshotted before ``last_at`` existed take ``started_at``."""
        slots = state[1]
        for name, value in slots.items():
            setattr(self, name, value)
        if "last_at" not in slots:
            self.last_at = self.started_at


class PolicyState:
    """Per-entity policy memory: breaching runs and open episodes per event kind, and the
    feedback penalty (bounded: a few entries per event kind)."""

    __slots__ = ("episodes", "mute_until", "penalty_factor", "penalty_until", "runs")

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}  # kind -> breaching events in a row
        self.episodes: dict[str, Episode] = {}  # kind -> open episode
        self.penalty_factor = 1.0
        self.penalty_until = -math.inf
        self.mute_until = -math.inf


@dataclass(slots=True)  # not frozen: made for every event, and frozen init is 7x slower
class Decision:
    """What the policy decided for one event (treat as read-only)."""

    #: the fire threshold in force (the detector's threshold × any feedback penalty factor)
    threshold: float
    #: a firing notification to send, or None
    notification: Notification | None = None
    #: severity of the notification, or of the resolved episode (its highest)
    severity: Severity | None = None
    #: the episode notified about (open) or resolved (closed) by this event
    episode: Episode | None = None
    #: True when this event resolved an episode that had sent a firing notification
    resolved: bool = False
    #: why a breaching event sent nothing (one of :data:`REASONS`), or None
    suppressed: str | None = None

    @property
    def label(self) -> str:
        """Short text: ``new warning``, ``resolved critical``, ``held back: for``, or ``''``."""
        if self.notification is not None:
            return f"{self.notification} {self.severity}"
        if self.resolved:
            return f"resolved {self.severity}"
        if self.suppressed is not None:
            return f"held back: {self.suppressed}"
        return ""


def _check(name: str, value: float, low: float, inclusive: bool = True) -> None:
    ok = value >= low if inclusive else value > low
    if not (ok and not math.isnan(value)):
        relation = "at least" if inclusive else "greater than"
        raise ValueError(f"{name} must be {relation} {low:g}, got {value!r}")


class AlertPolicy:
    """Severity, hysteresis, dedup and repeat, resolve and inhibition; see the module doc."""

    def __init__(
        self,
        warning_factor: float = 1.0,
        critical_factor: float = 2.0,
        clear_factor: float = 0.8,
        for_events: int = 1,
        repeat_interval_s: float = 300.0,
        resolve_after_s: float = 5.0,
        inhibit: bool = True,
        inhibit_silence_s: float = 300.0,
    ) -> None:
        _check("warning_factor", warning_factor, 0.0, inclusive=False)
        if not critical_factor >= warning_factor:
            raise ValueError(
                f"critical_factor must be at least warning_factor ({warning_factor:g}), "
                f"got {critical_factor!r}"
            )
        _check("clear_factor", clear_factor, 0.0)
        if not clear_factor < warning_factor:
            raise ValueError(
                f"clear_factor must be below warning_factor ({warning_factor:g}), "
                f"got {clear_factor!r}"
            )
        if isinstance(for_events, bool) or not isinstance(for_events, int) or for_events < 1:
            raise ValueError(f"for_events must be an integer of at least 1, got {for_events!r}")
        _check("repeat_interval_s", repeat_interval_s, 0.0)
        _check("resolve_after_s", resolve_after_s, 0.0)
        _check("inhibit_silence_s", inhibit_silence_s, 0.0)
        self.warning_factor = warning_factor
        self.critical_factor = critical_factor
        self.clear_factor = clear_factor
        self.for_events = for_events
        self.repeat_interval_s = repeat_interval_s
        self.resolve_after_s = resolve_after_s
        self.inhibit = inhibit
        self.inhibit_silence_s = inhibit_silence_s
        self._quiet = Decision(math.nan)  # shared by quiet decisions at the same threshold

    def params(self) -> dict[str, object]:
        return {
            "warning_factor": self.warning_factor,
            "critical_factor": self.critical_factor,
            "clear_factor": self.clear_factor,
            "for_events": self.for_events,
            "repeat_interval_s": self.repeat_interval_s,
            "resolve_after_s": self.resolve_after_s,
            "inhibit": self.inhibit,
            "inhibit_silence_s": self.inhibit_silence_s,
        }

    def penalize(
        self,
        state: PolicyState,
        now: float,
        threshold_factor: float,
        mute_s: float,
        duration_s: float,
    ) -> None:
        """Feedback: from event time ``now``, multiply the entity's threshold by
        ``threshold_factor`` for ``duration_s`` and hold back its firing notifications for
        ``mute_s``. Replaces the entity's previous penalty."""
        _check("threshold_factor", threshold_factor, 1.0)
        _check("mute_s", mute_s, 0.0)
        _check("duration_s", duration_s, 0.0)
        if math.isinf(threshold_factor):
            raise ValueError(f"threshold_factor must be finite, got {threshold_factor!r}")
        state.penalty_factor = threshold_factor
        state.penalty_until = now + duration_s
        state.mute_until = now + mute_s

    def evaluate(
        self,
        state: PolicyState,
        score: float,
        threshold: float,
        event_time: float,
        kind: str = "event",
    ) -> Decision:
        """Decide for one event of ``kind``, scored ``score`` against ``threshold``; updates
        ``state``."""
        if event_time < state.penalty_until:
            threshold *= state.penalty_factor
        episode = state.episodes.get(kind)
        severity: Severity | None = None
        if score >= threshold * self.warning_factor:
            severity = "critical" if score >= threshold * self.critical_factor else "warning"
            run = state.runs[kind] = state.runs.get(kind, 0) + 1
        else:
            run = 0
            if state.runs.get(kind):
                state.runs[kind] = 0
        if episode is None:
            if severity is None:  # the usual case: quiet, nothing to decide
                quiet = self._quiet
                if quiet.threshold != threshold:
                    quiet = self._quiet = Decision(threshold)
                return quiet
            if run < self.for_events:
                return Decision(threshold, suppressed="for")
            episode = state.episodes[kind] = Episode(event_time, severity)
        else:
            episode.last_at = event_time
            if score < threshold * self.clear_factor:
                if episode.below_since is None:
                    episode.below_since = event_time
                if event_time - episode.below_since >= self.resolve_after_s:
                    del state.episodes[kind]
                    if episode.notified is None:  # nothing was sent: nothing to resolve
                        return Decision(threshold)
                    return Decision(threshold, None, episode.severity, episode, resolved=True)
                return Decision(threshold)
            episode.below_since = None
            if severity is None:
                return Decision(threshold)
            if _RANK[severity] > _RANK[episode.severity]:
                episode.severity = severity
        notification: Notification
        if episode.notified is None:
            notification = "new"
        elif _RANK[episode.severity] > _RANK[episode.notified]:
            notification = "escalated"
        elif event_time - episode.notified_at >= self.repeat_interval_s:
            notification = "repeat"
        else:
            return Decision(threshold, suppressed="repeat_interval")
        if event_time < state.mute_until:
            return Decision(threshold, suppressed="feedback_mute")
        if (
            self.inhibit
            and episode.severity == "warning"
            and self._critical_elsewhere(state, kind, event_time)
        ):
            return Decision(threshold, suppressed="inhibited")
        episode.notified = episode.severity
        episode.notified_at = event_time
        return Decision(threshold, notification, episode.severity, episode)

    def _critical_elsewhere(self, state: PolicyState, kind: str, event_time: float) -> bool:
        """Another kind has an open critical episode that is not silent (``0`` = never)."""
        silence = self.inhibit_silence_s
        return any(
            k != kind
            and e.severity == "critical"
            and (not silence or event_time - e.last_at < silence)
            for k, e in state.episodes.items()
        )
