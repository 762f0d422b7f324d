"""Feedback on alerts: verdicts from subscribers, precision, and penalties for noisy entities.

Subscribers post ``{"alert_id": ..., "verdict": "true_positive" | "false_positive",
"note": ...}`` to the feedback topic. The service looks each id up in the bounded
:class:`AlertIndex` of alerts it published (id → entity, detector, severity, kind) and
counts the verdict. When one entity collects ``false_positives`` false positives within
``window_s`` seconds (wall clock: when the verdicts arrive), :class:`FeedbackPolicy`
returns a :class:`Penalty`: a raised threshold or a mute, for ``penalty_s`` seconds of
the entity's event time, applied by the consume loop through ``Processor.apply_penalty``.

>>> policy = FeedbackPolicy(false_positives=2, window_s=60, action="mute", penalty_s=600)
>>> policy.record("AAPL", "false_positive", now=0.0) is None
True
>>> policy.record("AAPL", "false_positive", now=30.0)
Penalty(entity='AAPL', action='mute', threshold_factor=1.0, mute_s=600.0, duration_s=600.0)
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from alerting.errors import InvalidFeedback
from alerting.metrics import Metrics

log = logging.getLogger(__name__)

TRUE_POSITIVE: Final = "true_positive"
FALSE_POSITIVE: Final = "false_positive"
VERDICTS: Final = (TRUE_POSITIVE, FALSE_POSITIVE)
#: what the command line accepts for each verdict
VERDICT_ALIASES: Final = {
    "tp": TRUE_POSITIVE,
    "fp": FALSE_POSITIVE,
    TRUE_POSITIVE: TRUE_POSITIVE,
    FALSE_POSITIVE: FALSE_POSITIVE,
}
ACTIONS: Final = ("raise", "mute")
MAX_NOTE_CHARS: Final = 2000


@dataclass(frozen=True, slots=True)
class Feedback:
    """One verdict on one alert."""

    alert_id: str
    verdict: str
    note: str | None = None

    def to_json(self) -> bytes:
        data: dict[str, Any] = {"alert_id": self.alert_id, "verdict": self.verdict}
        if self.note:
            data["note"] = self.note
        return json.dumps(data, separators=(",", ":")).encode()


def parse_feedback(value: bytes | None) -> Feedback:
    """Decode a feedback message; :class:`InvalidFeedback` with reason ``not_json``,
    ``schema`` or ``verdict`` otherwise.

    >>> parse_feedback(b'{"alert_id": "a1", "verdict": "false_positive"}').verdict
    'false_positive'
    >>> try:
    ...     parse_feedback(b'{"alert_id": "a1", "verdict": "maybe"}')
    ... except InvalidFeedback as exc:
    ...     print(exc.reason)
    verdict
    """
    if value is None:
        raise InvalidFeedback("not_json", "empty message (tombstone)")
    try:
        data = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidFeedback("not_json", str(exc)) from None
    if not isinstance(data, dict):
        raise InvalidFeedback("schema", f"expected a JSON object, got {type(data).__name__}")
    alert_id = data.get("alert_id")
    if not isinstance(alert_id, str) or not alert_id:
        raise InvalidFeedback("schema", f"alert_id must be a non-empty string, got {alert_id!r}")
    verdict = data.get("verdict")
    if verdict not in VERDICTS:
        raise InvalidFeedback(
            "verdict", f"verdict must be true_positive or false_positive, got {verdict!r}"
        )
    note = data.get("note")
    if note is not None and not isinstance(note, str):
        raise InvalidFeedback("schema", f"note must be a string, got {note!r}")
    return Feedback(alert_id, str(verdict), note[:MAX_NOTE_CHARS] if note else None)


@dataclass(frozen=True, slots=True)
class AlertInfo:
    """What feedback needs to know about a published alert."""

    entity: str
    detector: str
    severity: str
    kind: str  # the CloudEvent type's last word: firing, resolved, drift


class AlertIndex:
    """The last ``max_size`` alerts published by this process, by id; thread-safe.

    >>> index = AlertIndex(max_size=2)
    >>> for n in range(3):
    ...     index.add(f"id{n}", AlertInfo("AAPL", "zscore", "warning", "firing"))
    >>> index.get("id0") is None, index.get("id2").entity, len(index)
    (True, 'AAPL', 2)
    """

    def __init__(self, max_size: int = 100_000) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.max_size = max_size
        self._alerts: OrderedDict[str, AlertInfo] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, alert_id: str, info: AlertInfo) -> None:
        with self._lock:
            self._alerts[alert_id] = info
            self._alerts.move_to_end(alert_id)
            while len(self._alerts) > self.max_size:
                self._alerts.popitem(last=False)

    def get(self, alert_id: str) -> AlertInfo | None:
        with self._lock:
            return self._alerts.get(alert_id)

    def __len__(self) -> int:
        return len(self._alerts)


@dataclass(frozen=True, slots=True)
class Penalty:
    """What ``Processor.apply_penalty`` is asked to do for one entity."""

    entity: str
    action: str
    threshold_factor: float
    mute_s: float
    duration_s: float


class FeedbackPolicy:
    """Counts false positives per entity in a sliding window; decides penalties.

    Per-entity memory is bounded: at most ``false_positives`` times per entity and at
    most ``max_entities`` entities (least recently flagged forgotten first). After a
    penalty the entity's count starts again from zero.
    """

    def __init__(
        self,
        false_positives: int = 3,
        window_s: float = 3600.0,
        action: str = "raise",
        threshold_factor: float = 1.5,
        penalty_s: float = 3600.0,
        max_entities: int = 10_000,
    ) -> None:
        if false_positives < 1:
            raise ValueError(f"false_positives must be at least 1, got {false_positives}")
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        if action not in ACTIONS:
            raise ValueError(f"action must be 'raise' or 'mute', got {action!r}")
        if not threshold_factor >= 1:
            raise ValueError(f"threshold_factor must be at least 1, got {threshold_factor}")
        if not penalty_s > 0:
            raise ValueError(f"penalty_s must be positive, got {penalty_s}")
        if max_entities < 1:
            raise ValueError(f"max_entities must be at least 1, got {max_entities}")
        self.false_positives = false_positives
        self.window_s = window_s
        self.action = action
        self.threshold_factor = float(threshold_factor)
        self.penalty_s = float(penalty_s)
        self.max_entities = max_entities
        self._recent: OrderedDict[str, deque[float]] = OrderedDict()

    def record(self, entity: str, verdict: str, now: float) -> Penalty | None:
        """Note a verdict on an alert of ``entity`` at wall time ``now``; a penalty when
        this false positive is the ``false_positives``-th within ``window_s``."""
        if verdict != FALSE_POSITIVE:
            return None
        times = self._recent.get(entity)
        if times is None:
            times = self._recent[entity] = deque(maxlen=self.false_positives)
            while len(self._recent) > self.max_entities:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(entity)
        times.append(now)
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < self.false_positives:
            return None
        del self._recent[entity]
        if self.action == "mute":
            return Penalty(entity, "mute", 1.0, self.penalty_s, self.penalty_s)
        return Penalty(entity, "raise", self.threshold_factor, 0.0, self.penalty_s)

    def counting(self, entity: str, now: float) -> int:
        """False positives of ``entity`` within the window before ``now``."""
        return sum(1 for t in self._recent.get(entity, ()) if t > now - self.window_s)


class FeedbackHandler:
    """Turns feedback messages into counts, a precision gauge and queued penalties.

    Runs in the feedback reader's thread; the consume-loop thread takes the queued
    penalties with :meth:`take_penalties` (a deque: appends and pops are atomic).
    Never raises on a message: anything unusable is counted by reason and logged at
    most once per ``log_every_s`` per reason.
    """

    def __init__(
        self,
        index: AlertIndex,
        policy: FeedbackPolicy,
        metrics: Metrics,
        clock: Callable[[], float],
        log_every_s: float = 60.0,
    ) -> None:
        self.index = index
        self.policy = policy
        self.metrics = metrics
        self.clock = clock
        self.log_every_s = log_every_s
        self.verdicts: Counter[tuple[str, str, str]] = Counter()
        self._penalties: deque[Penalty] = deque()
        self._last_logged: dict[str, float] = {}
        self._unlogged: Counter[str] = Counter()

    def handle(self, value: bytes | None, where: str = "") -> Feedback | None:
        """Count one message; the feedback if it was usable."""
        try:
            feedback = parse_feedback(value)
        except InvalidFeedback as exc:
            self._invalid(exc.reason, f"feedback {where} skipped: {exc.detail}")
            return None
        info = self.index.get(feedback.alert_id)
        if info is None:
            self._invalid(
                "unknown_alert",
                f"feedback on alert {feedback.alert_id} ignored: this process did not publish "
                f"it (another instance did, or it is older than the last "
                f"{self.index.max_size} alerts: feedback.index_size)",
            )
            return None
        self.metrics.feedback.labels(
            detector=info.detector, severity=info.severity, verdict=feedback.verdict
        ).inc()
        self.verdicts[(info.detector, info.severity, feedback.verdict)] += 1
        tp = self.verdicts[(info.detector, info.severity, TRUE_POSITIVE)]
        fp = self.verdicts[(info.detector, info.severity, FALSE_POSITIVE)]
        self.metrics.feedback_precision.labels(detector=info.detector, severity=info.severity).set(
            tp / (tp + fp)
        )
        penalty = self.policy.record(info.entity, feedback.verdict, self.clock())
        if penalty is not None:
            log.info(
                "%s had %d false positives within %gs: queued a '%s' penalty",
                penalty.entity,
                self.policy.false_positives,
                self.policy.window_s,
                penalty.action,
            )
            self._penalties.append(penalty)
        return feedback

    def take_penalties(self) -> list[Penalty]:
        """The penalties queued since the last call (consume-loop thread)."""
        taken = []
        while self._penalties:
            taken.append(self._penalties.popleft())
        return taken

    def _invalid(self, reason: str, message: str) -> None:
        self.metrics.feedback_invalid.labels(reason=reason).inc()
        now = time.monotonic()
        last = self._last_logged.get(reason)
        if last is not None and now - last < self.log_every_s:
            self._unlogged[reason] += 1
            return
        self._last_logged[reason] = now
        more = self._unlogged.pop(reason, 0)
        log.warning(
            "%s%s (alerting_feedback_invalid_total{reason=%r})",
            message,
            f"; {more} more like it not logged" if more else "",
            reason,
        )
