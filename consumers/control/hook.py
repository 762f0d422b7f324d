"""What the consume loop calls: silences before publishing, feedback once per batch.

:meth:`AlertControl.admit` runs per alert before publishing (silences; the admitted ones
are indexed for feedback), and :meth:`AlertControl.end_batch` once per batch on the loop's
own thread (metrics, and the queued feedback penalties applied through
``Processor.apply_penalty``); it also starts a new thread for a reader whose thread is
gone. At start the service waits (up to ``READY_TIMEOUT_S``) until every silence has
been read once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from alerting.alerts import Alert
from alerting.errors import InvalidSilence
from alerting.feedback import AlertIndex, AlertInfo, FeedbackHandler, FeedbackPolicy
from alerting.metrics import Metrics
from alerting.settings import Settings
from alerting.silences import SilenceGate, SilenceSet
from consumers.control.reader import TopicReader, _where

if TYPE_CHECKING:
    from alerting.processor import Processor

log = logging.getLogger("consumers.control")  # one logger for the package's log lines

READY_TIMEOUT_S = 15.0


class AlertControl:
    """Silences and feedback, as the consume loop sees them.

    ``admit`` runs on the loop's thread for every alert before it is published;
    ``end_batch`` once per batch on the same thread. The readers only touch the
    silence set (swapped atomically), the alert index (locked) and the penalty queue.
    """

    def __init__(
        self,
        metrics: Metrics,
        silences: SilenceSet | None = None,
        feedback: FeedbackHandler | None = None,
        clock: Callable[[], float] = time.time,
        max_remembered: int = 100_000,
    ) -> None:
        self.metrics = metrics
        self.clock = clock
        self.silences = silences if silences is not None else SilenceSet()
        self.gate = SilenceGate(self.silences, clock, max_remembered)
        self.feedback = feedback
        self.readers: list[TopicReader] = []
        #: readers whose thread is gone: name → (when a new one may start, its attempt)
        self._replace_at: dict[str, tuple[float, int]] = {}

    # -- silences control records (reader thread) --------------------------------------

    def on_silence_record(self, record: Any) -> None:
        try:
            self.silences.apply(record.key, record.value)
        except InvalidSilence as exc:
            self.metrics.control_invalid.labels(reason=exc.reason).inc()
            log.warning(
                "silence record %s skipped: %s (alerting_control_records_invalid_total)",
                _where(record),
                exc.detail,
            )
            return
        silence = self.silences.get(record.key.decode("utf-8", errors="replace"))
        if silence is not None:
            state = silence.state(self.clock())
            log.log(
                logging.DEBUG if state == "expired" else logging.INFO,
                "silence %s (%s) for entity =~ %s%s until %s",
                silence.id,
                state,
                silence.entity,
                f", severity {silence.severity}" if silence.severity else "",
                silence.to_dict()["ends_at"],
            )

    def on_feedback_record(self, record: Any) -> None:
        if self.feedback is not None:
            self.feedback.handle(record.value, _where(record))

    # -- the consume loop (its thread) --------------------------------------------------

    def admit(self, alert: Alert) -> bool:
        """True if ``alert`` is to be published (and remember it for feedback)."""
        if not self.gate.admit(alert):
            return False
        if self.feedback is not None:
            self.feedback.index.add(
                alert.id,
                AlertInfo(alert.entity, alert.detector, alert.severity, alert.type.rsplit(".")[-1]),
            )
        return True

    def end_batch(self, processor: Processor) -> None:
        """Flush counts; apply the feedback penalties queued since the last batch; start
        a new thread for a reader whose thread is gone."""
        self._supervise()
        m = self.metrics
        for severity, n in self.gate.silenced.items():
            m.alerts_silenced.labels(severity=severity).inc(n)
        self.gate.silenced.clear()
        m.silences_active.set(self.silences.active_count(self.clock()))
        if self.feedback is None:
            return
        for penalty in self.feedback.take_penalties():
            applied = processor.apply_penalty(
                penalty.entity, penalty.threshold_factor, penalty.mute_s, penalty.duration_s
            )
            if not applied:
                log.warning(
                    "feedback penalty for %s not applied: this process holds no state of it "
                    "(another instance owns its partition now)",
                    penalty.entity,
                )
                continue
            m.feedback_penalties.labels(action=penalty.action).inc()
            what = (
                f"threshold × {penalty.threshold_factor:g}"
                if penalty.action == "raise"
                else "firing alerts muted"
            )
            log.warning(
                "feedback penalty on %s: %s for %gs of event time (%d false positives "
                "within %gs; feedback.*)",
                penalty.entity,
                what,
                penalty.duration_s,
                self.feedback.policy.false_positives,
                self.feedback.policy.window_s,
            )

    def _supervise(self, clock: Callable[[], float] = time.monotonic) -> None:
        """A reader restarts itself after a failure; this covers its thread ending anyway
        (a bug, an exception that is no ``Exception``). Per batch: a liveness check each."""
        for i, reader in enumerate(self.readers):
            if reader.is_alive() or reader.ident is None or reader.stopping.is_set():
                continue  # running, never started, or stopped on purpose
            now = clock()
            due = self._replace_at.get(reader.reader)
            if due is None:  # just found gone
                self._replace_at[reader.reader] = (now + reader.backoff.delay(1), 1)
                reader.failures.failed(
                    "crashed",
                    RuntimeError("the reader thread ended"),
                    f"starting a new one in {reader.backoff.delay(1):g}s",
                )
                continue
            at, replaced = due
            if now < at:
                continue
            fresh = reader.again()
            self.readers[i] = fresh
            replaced += 1
            self._replace_at[reader.reader] = (now + reader.backoff.delay(replaced), replaced)
            fresh.start()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, settings: Settings, ready_timeout_s: float = READY_TIMEOUT_S) -> AlertControl:
        """Start the readers; wait until every silence has been read once."""
        silences = TopicReader(
            settings,
            settings.topics.silences,
            self.on_silence_record,
            name="silences",
            metrics=self.metrics,
        )
        self.readers.append(silences)
        silences.start()
        if self.feedback is not None:
            reader = TopicReader(
                settings,
                settings.topics.feedback,
                self.on_feedback_record,
                start_at="end",
                name="feedback",
                metrics=self.metrics,
            )
            self.readers.append(reader)
            reader.start()
        if silences.ready.wait(ready_timeout_s):
            log.info(
                "silences: %d active, read from %s",
                self.silences.active_count(self.clock()),
                settings.topics.silences,
            )
        else:
            log.warning(
                "silences not read within %gs from %s; starting anyway, they apply once read",
                ready_timeout_s,
                settings.topics.silences,
            )
        return self

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()


def build_control(
    settings: Settings, metrics: Metrics, clock: Callable[[], float] = time.time
) -> AlertControl:
    """The :class:`AlertControl` the settings describe (not started)."""
    f = settings.feedback
    feedback = None
    if f.enabled:
        policy = FeedbackPolicy(
            f.false_positives, f.window_s, f.action, f.threshold_factor, f.penalty_s
        )
        feedback = FeedbackHandler(AlertIndex(f.index_size), policy, metrics, clock)
    return AlertControl(metrics, feedback=feedback, clock=clock)
