"""The alert policy: turns scores into few alerts with a lifecycle, on event time.

The threshold comes from the entity's :mod:`alerting.thresholds` object; the policy
decides, per entity and event kind, when an *episode* starts (hysteresis, ``for_events``),
which notifications it sends (``new``, ``repeat`` after ``repeat_after``, ``escalated``
at once when the severity rises), what it holds back (counted by reason), and when the
episode is over (``resolved`` after ``resolve_after`` below the clear level). There are
no timers: everything is decided when an event of the entity and kind arrives.

Durations are in the entity's own **cadence**: ``repeat_after``, ``resolve_after`` and
``inhibit_silence`` count typical inter-arrival times of the entity and event kind (the
``cadence`` passed to :meth:`AlertPolicy.evaluate`, in event-time seconds; the processor
learns it per entity and kind with :meth:`AlertPolicy.observe`, a running median of the
gaps). So one set of defaults means the same for millisecond trades and five-minute
metrics: "resolved after 20 ordinary events' worth of time below the clear level".

Levels, for a threshold ``T`` (times an active feedback penalty, see :meth:`penalize`):

* breaching: ``score ≥ T × warning_factor``; severity ``critical`` from ``T × critical_factor``
* an episode opens after ``for_events`` breaching events in a row (of that kind), and stays
  open while scores are above ``T × clear_factor``; once they have been below it for
  ``resolve_after`` typical gaps of event time, it is resolved
* one notification per episode, except a repeat (only on a breaching event, at least
  ``repeat_after`` typical gaps after the previous notification; never with 0) and an
  escalation (at once, when a
  breaching event raises the episode's severity); the severity of a notification is the
  episode's highest so far, so it never goes down within an episode
* held back, and counted by reason: ``for`` (not enough breaching events in a row yet),
  ``repeat_interval``, ``feedback_mute`` (the entity is muted by feedback), ``inhibited``
  (a warning while another kind of the same entity has an open critical episode, and
  that kind has sent an event within ``inhibit_silence`` of its typical gaps: a feed that
  went silent mid-episode does not hold back the others for good); a
  notification held back is sent at the next breaching event that is not held back, as
  ``new`` if the episode has sent nothing yet
* a resolved notification is sent only for an episode that sent a firing one

>>> policy = AlertPolicy(warning_factor=1.0, critical_factor=2.0, clear_factor=0.8,
...                      repeat_after=300.0, resolve_after=30.0)
>>> state = PolicyState()
>>> [policy.evaluate(state, score, 6.0, t, cadence=1.0).label for score, t in
...  [(7.0, 100.0), (8.0, 101.0), (13.0, 102.0), (5.0, 110.0), (4.0, 120.0), (4.0, 150.0)]]
['new warning', 'held back: repeat_interval', 'escalated critical', '', '', 'resolved critical']
>>> [round(policy.observe(state, "metric", t), 3) for t in (0.0, 300.0, 600.0, 900.0)]
[0.0, 300.0, 300.0, 300.0]
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Final, Literal

from alerting.errors import PlainError
from alerting.params import Parameterised
from alerting.plain import integer, mapping, number, optional_number, sequence, text

Severity = Literal["warning", "critical"]
Notification = Literal["new", "repeat", "escalated"]

_RANK: Final = {"warning": 1, "critical": 2}

#: how far one gap moves the running median of a kind's gaps, in log units (5 %)
CADENCE_STEP: Final = 0.05

#: suppression reasons (``alerting_alerts_suppressed_total{reason}``)
REASONS: Final = ("for", "repeat_interval", "inhibited", "feedback_mute")


class Episode:
    """One open episode of an entity and event kind."""

    __slots__ = (
        "below_since",
        "cadence",
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
        self.cadence = 1.0  # the kind's typical gap at that event (seconds)
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
        if "cadence" not in slots:
            self.cadence = 1.0


class PolicyState:
    """Per-entity policy memory: breaching runs, open episodes and the cadence per event
    kind, and the feedback penalty (bounded: a few entries per event kind)."""

    __slots__ = ("cadence", "episodes", "mute_until", "penalty_factor", "penalty_until", "runs")

    def __init__(self) -> None:
        self.runs: dict[str, int] = {}  # kind -> breaching events in a row
        self.episodes: dict[str, Episode] = {}  # kind -> open episode
        # kind -> [time of the latest event, log of the typical gap, gaps seen]
        self.cadence: dict[str, list[float]] = {}
        self.penalty_factor = 1.0
        self.penalty_until = -math.inf
        self.mute_until = -math.inf

    def dump(self) -> dict[str, Any]:
        """Plain data (:mod:`alerting.plain`)."""
        return {
            "runs": self.runs,
            "episodes": {
                kind: {name: getattr(e, name) for name in Episode.__slots__}
                for kind, e in self.episodes.items()
            },
            "cadence": self.cadence,
            "penalty": [self.penalty_factor, self.penalty_until, self.mute_until],
        }

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data (checked: :class:`~alerting.errors.PlainError`)."""
        d = mapping(data, "policy")
        self.runs = {
            text(k, "policy.runs", 40): integer(v, f"policy.runs.{k}")
            for k, v in mapping(d.get("runs"), "policy.runs", 16).items()
        }
        self.cadence = {
            text(k, "policy.cadence", 40): [
                number(x, f"policy.cadence.{k}") for x in sequence(v, f"policy.cadence.{k}", 3)
            ]
            for k, v in mapping(d.get("cadence"), "policy.cadence", 16).items()
        }
        self.episodes = {}
        for kind, fields in mapping(d.get("episodes"), "policy.episodes", 16).items():
            where = f"policy.episodes.{kind}"
            f = mapping(fields, where)
            severity = f.get("severity")
            notified = f.get("notified")
            if severity not in _RANK or (notified is not None and notified not in _RANK):
                raise PlainError(f"{where}: unknown severity")
            episode = Episode(number(f.get("started_at"), where), severity)
            episode.last_at = number(f.get("last_at"), where)
            episode.cadence = number(f.get("cadence"), where)
            episode.notified = notified
            episode.notified_at = number(f.get("notified_at"), where)
            episode.below_since = optional_number(f.get("below_since"), where)
            episode.firing_id = text(f.get("firing_id"), where, 64)
            self.episodes[text(kind, "policy.episodes", 40)] = episode
        factor, until, mute = sequence(d.get("penalty"), "policy.penalty", 3)
        self.penalty_factor = number(factor, "policy.penalty")
        self.penalty_until = number(until, "policy.penalty")
        self.mute_until = number(mute, "policy.penalty")


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


class AlertPolicy(Parameterised):
    """Severity, hysteresis, dedup and repeat, resolve and inhibition; see the module doc."""

    def __init__(
        self,
        warning_factor: float = 1.0,
        critical_factor: float = 2.0,
        clear_factor: float = 0.8,
        for_events: int = 1,
        repeat_after: float = 1000.0,
        resolve_after: float = 20.0,
        inhibit: bool = True,
        inhibit_silence: float = 100.0,
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
        _check("repeat_after", repeat_after, 0.0)
        _check("resolve_after", resolve_after, 0.0)
        _check("inhibit_silence", inhibit_silence, 0.0)
        self.warning_factor = warning_factor
        self.critical_factor = critical_factor
        self.clear_factor = clear_factor
        self.for_events = for_events
        self.repeat_after = repeat_after
        self.resolve_after = resolve_after
        self.inhibit = inhibit
        self.inhibit_silence = inhibit_silence
        self._quiet = Decision(math.nan)  # shared by quiet decisions at the same threshold

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

    def observe(self, state: PolicyState, kind: str, event_time: float) -> float:
        """Learn the cadence of ``kind`` from an event at ``event_time``; the typical gap
        (event-time seconds, 0.0 until a first gap) to pass to :meth:`evaluate`.

        A running median of the gaps between events (a frugal estimate in log space: each
        gap moves it :data:`CADENCE_STEP` up or down), so bursts and pauses barely move
        it; late or simultaneous events are no gap.
        """
        memory = state.cadence.get(kind)
        if memory is None:
            state.cadence[kind] = [event_time, 0.0, 0.0]
            return 0.0
        last, log_gap, gaps = memory
        if event_time > last:
            gap = math.log(event_time - last)
            if not gaps:
                log_gap = gap
            elif gap > log_gap:
                log_gap = min(log_gap + CADENCE_STEP, gap)
            elif gap < log_gap:
                log_gap = max(log_gap - CADENCE_STEP, gap)
            memory[0], memory[1], memory[2] = event_time, log_gap, gaps + 1.0
            return math.exp(log_gap)
        return math.exp(log_gap) if gaps else 0.0

    def evaluate(
        self,
        state: PolicyState,
        score: float,
        threshold: float,
        event_time: float,
        kind: str = "event",
        cadence: float = 1.0,
    ) -> Decision:
        """Decide for one event of ``kind``, scored ``score`` against ``threshold``, with
        the kind's typical gap ``cadence`` (seconds; durations are multiples of it; a kind
        with no gap yet, 0, counts as 1 s); updates ``state``."""
        if not cadence > 0.0:
            cadence = 1.0
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
            episode.cadence = cadence
        else:
            episode.last_at = event_time
            episode.cadence = cadence
            if score < threshold * self.clear_factor:
                if episode.below_since is None:
                    episode.below_since = event_time
                if event_time - episode.below_since >= self.resolve_after * cadence:
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
        elif self.repeat_after and event_time - episode.notified_at >= self.repeat_after * cadence:
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
        silence = self.inhibit_silence
        return any(
            k != kind
            and e.severity == "critical"
            and (not silence or event_time - e.last_at < silence * e.cadence)
            for k, e in state.episodes.items()
        )
