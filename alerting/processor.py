"""The processor: ``process(event) -> outcome`` (its decision and alerts), synchronous, no I/O.

For each event: find the entity's state (live, brought back from the cold store, or
new from the template), compute its features, score them with the entity's detector,
decide against the entity's threshold and the alert policy, and *then* learn from the
event (unless protection holds back a flagged point). The same code path serves the
live service, back-tests and the tests; it does not know which detector it runs.

Events whose source position is already included in a restored snapshot (read again
after a crash between the snapshot and the offset commit) are skipped, so nothing is
learned twice and decisions stay identical to an uninterrupted run.

>>> from alerting.detectors import RollingZScore
>>> from alerting.policy import AlertPolicy
>>> from alerting.thresholds import FixedThreshold
>>> from alerting.events import Metric
>>> proc = Processor(RollingZScore(window=32), AlertPolicy(), FixedThreshold(6.0), warmup=10)
>>> alerts = [a for i in range(40)
...           for a in proc.process(Metric(entity="cpu", values={"load": 1.0 + (i % 3) * 0.01},
...                                        time=i)).alerts]
>>> alerts
[]
>>> outcome = proc.process(Metric(entity="cpu", values={"load": 9.0}, time=41),
...                        with_threshold=True)
>>> [a.severity for a in outcome.alerts], outcome.breached, outcome.threshold
(['critical'], True, 6.0)
>>> proc.drain().processed
Counter({'metric': 41})
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any, NamedTuple

from alerting.alerts import DRIFT, FIRING, RESOLVED, Alert, SourcePosition
from alerting.detectors import Detector, FeatureScorer, explain, model_version
from alerting.drift import Challenger, Drift, DriftMonitor
from alerting.events import Event, Trade
from alerting.explain import explain as explain_features
from alerting.features import extract
from alerting.policy import AlertPolicy, Decision
from alerting.state import ColdStore, EntityState, EntityStore, SnapshotCodec, config_hash
from alerting.thresholds import FeatureTails, TailThreshold, Threshold
from alerting.times import rfc3339_seconds

__all__ = ["EntityState", "Outcome", "Processor", "ProcessorStats", "summarize"]


class _Verdict(NamedTuple):
    """What an alert shows of a decision, on the detector's scale."""

    score: float
    threshold: float
    #: the score's tail probability against the entity's scores (calibrated decisions)
    tail_probability: float | None
    #: the feature whose tail decided (per-feature calibrated decisions)
    feature: str | None = None


class Outcome:
    """What :meth:`Processor.process` decided for one event.

    ``score`` and ``ratio`` are NaN for an event that was not decided (in warm-up, or
    skipped as already in the restored snapshot); ``threshold``, when asked for, is the
    entity's threshold on the detector's scale as the event met it (+inf before the
    threshold has one; NaN if skipped or not asked for).
    """

    __slots__ = ("alerts", "ratio", "score", "threshold")

    def __init__(
        self, alerts: tuple[Alert, ...], score: float, threshold: float, ratio: float
    ) -> None:
        #: the CloudEvents the event caused, in publishing order (usually none)
        self.alerts = alerts
        #: the detector's score
        self.score = score
        self.threshold = threshold
        #: score ÷ threshold on the decision's scale (a calibrated decision: surprises)
        self.ratio = ratio

    @property
    def decided(self) -> bool:
        """The event was judged against the threshold (past warm-up, not skipped)."""
        return self.ratio == self.ratio

    @property
    def breached(self) -> bool:
        """The score reached the threshold (the policy may still not have alerted)."""
        return self.ratio >= 1.0

    def __repr__(self) -> str:
        return (
            f"Outcome(alerts={self.alerts!r}, score={self.score!r}, "
            f"threshold={self.threshold!r}, ratio={self.ratio!r})"
        )


class ProcessorStats:
    """What the processor counted since the last :meth:`Processor.drain`: the service
    adds it to its metrics once per batch (:meth:`alerting.metrics.Metrics.count`); the
    back-test drains it too, so that nothing grows with the file.

    ``evictions`` and ``refused`` are the entity store's, filled in by the drain.
    """

    __slots__ = (
        "challengers",
        "drifts",
        "evictions",
        "processed",
        "refused",
        "resets",
        "score_ratios",
        "skipped",
        "suppressed",
    )

    def __init__(self) -> None:
        #: valid events scored and learned, by kind
        self.processed: Counter[str] = Counter()
        #: breaching scores the policy held back, by reason
        self.suppressed: Counter[str] = Counter()
        #: events already included in the snapshot their entity was restored from
        self.skipped = 0
        #: drifts by (drift detector, signal: score or a feature)
        self.drifts: Counter[tuple[str, str]] = Counter()
        #: entities reset after a drift
        self.resets = 0
        #: challengers by outcome: started, promoted, discarded
        self.challengers: Counter[str] = Counter()
        #: score ÷ threshold of each decided event
        self.score_ratios: list[float] = []
        #: live entities moved out to bound memory
        self.evictions = 0
        #: changelog records and snapshots refused, by reason
        self.refused: Counter[str] = Counter()


_NONE: tuple[Alert, ...] = ()
_NAN = math.nan


class Processor:
    """Features → per-entity detector (score) → threshold → policy → learn → alerts."""

    def __init__(
        self,
        template: Detector,
        policy: AlertPolicy,
        threshold: Threshold,
        warmup: int = 50,
        max_entities: int = 100_000,
        idle_ttl_s: float | None = None,
        cold: ColdStore | None = None,
        protect: bool = False,
        protect_max_consecutive: int = 20,
        drift: DriftMonitor | None = None,
        drift_action: str = "none",
        challenger_events: int = 500,
        publish_drift: bool = True,
        snapshot_key: bytes | None = None,
        trust_pickles: bool = False,
    ) -> None:
        if warmup < 0:
            raise ValueError(f"warmup must not be negative, got {warmup}")
        if max_entities < 1:
            raise ValueError(f"max_entities must be at least 1, got {max_entities}")
        if protect_max_consecutive < 0:
            raise ValueError(
                f"protect_max_consecutive must not be negative, got {protect_max_consecutive}"
            )
        if drift_action not in ("none", "reset", "challenger"):
            raise ValueError(
                f"drift_action must be 'none', 'reset' or 'challenger', got {drift_action!r}"
            )
        if challenger_events < 1:
            raise ValueError(f"challenger_events must be at least 1, got {challenger_events}")
        self.challenger_events = challenger_events
        #: HMAC-SHA256 key of snapshots (state.signing_key), and whether an unsigned
        #: pickled snapshot may be read (state.trust_changelog)
        self.snapshot_key = snapshot_key
        self.trust_pickles = trust_pickles
        #: drift CloudEvents go out with the alerts (else drifts are counted and acted on)
        self.publish_drift = publish_drift
        self.template = template
        self.drift = drift
        self.drift_action = drift_action
        self.policy = policy
        self.threshold = threshold
        self.warmup = warmup
        self.protect = protect
        self.protect_max_consecutive = protect_max_consecutive
        self.model_version = model_version(template)
        self.store = EntityStore(
            self.new_state, self.codec(), max_live=max_entities, idle_ttl_s=idle_ttl_s, cold=cold
        )
        self.store.on_enter = self._entered
        self.store.on_leave = self._left
        self.warming_up = 0
        #: the counts since the last :meth:`drain`
        self.stats = ProcessorStats()
        #: event time of the newest event processed so far (seconds since the epoch)
        self.newest_timestamp = 0.0
        #: the threshold is a calibrated one (a tail probability against a budget)
        self.calibrated = isinstance(threshold, TailThreshold | FeatureTails)
        #: each feature is calibrated on its own (the detector scores features)
        self.per_feature = isinstance(threshold, FeatureTails)
        if self.per_feature and not isinstance(template, FeatureScorer):
            raise ValueError(
                f"a per-feature calibrated threshold needs a detector that scores features; "
                f"{template.name!r} does not (use TailThreshold)"
            )
        #: the surprise (-log10 of the tail probability) at which a calibrated score breaches
        self.surprise_level = (
            -math.log10(threshold.alpha)
            if isinstance(threshold, TailThreshold | FeatureTails)
            else math.nan
        )

    def config(self) -> dict[str, Any]:
        """What decisions depend on; snapshots from another configuration are refused."""
        return {
            "detector": self.template.name,
            "params": self.template.params(),
            "threshold": [type(self.threshold).__name__, self.threshold.params()],
            "warmup": self.warmup,
            "drift": None if self.drift is None else self.drift.params(),
            "drift_action": [self.drift_action, self.challenger_events],
            "features": 4,  # bump when alerting.features changes what it computes
            "policy_state": 4,  # bump when PolicyState / EntityState.stats change layout
        }

    def codec(self) -> SnapshotCodec:
        return SnapshotCodec(
            detector=self.template.name,
            config_hash=config_hash(self.config()),
            factory=self.new_state,
            fresh_model=self.template.clone,
            key=self.snapshot_key,
            trust_pickles=self.trust_pickles,
        )

    def new_state(self) -> EntityState:
        drift = None if self.drift is None else self.drift.clone()
        return EntityState(self.template.clone(), self.threshold.clone(), drift)

    def _entered(self, state: EntityState) -> None:
        if state.seen < self.warmup:
            self.warming_up += 1

    def _left(self, state: EntityState) -> None:
        if state.seen < self.warmup:
            self.warming_up -= 1

    def threshold_stats(self, sample: int = 1000) -> tuple[float, float, float] | None:
        """(min, median, max) of the current thresholds of up to ``sample`` live entities."""
        values = []
        for _, state in self.store:
            value = state.threshold.value()
            if value != float("inf"):
                values.append(value)
            if len(values) >= sample:
                break
        if not values:
            return None
        values.sort()
        return values[0], values[len(values) // 2], values[-1]

    def drain(self) -> ProcessorStats:
        """The counts since the last drain, the store's with them; counting starts again
        from zero."""
        drained, self.stats = self.stats, ProcessorStats()
        drained.evictions, drained.refused = self.store.drain()
        return drained

    def end_batch(self) -> None:
        """Per-batch housekeeping: move out entities idle past the TTL (event time)."""
        self.store.expire(self.newest_timestamp)

    def process(
        self, event: Event, source: SourcePosition | None = None, *, with_threshold: bool = False
    ) -> Outcome:
        """Score, decide and learn for one event; what it decided, with the alerts it
        causes (usually none). The outcome's threshold is read only ``with_threshold``
        (else NaN): a per-feature threshold takes microseconds to compute, as long as the
        rest of the event's work, and only the back-test's charts show it."""
        timestamp = event.timestamp
        if timestamp > self.newest_timestamp:
            self.newest_timestamp = timestamp
        state = self.store.get(event.entity, source.partition if source else -1, timestamp)
        if source is not None:
            if source.partition == state.partition and source.offset < state.next_offset:
                self.stats.skipped += 1  # already in the snapshot it was restored from
                return Outcome(_NONE, _NAN, _NAN, _NAN)
            state.partition = source.partition
            state.next_offset = source.offset + 1
        if timestamp > state.last_seen:
            state.last_seen = timestamp
        x = extract(event, state.features, timestamp)
        model = state.model
        scores: dict[str, float] | None = None
        if self.per_feature:
            scores = model.score_features(x)  # type: ignore[attr-defined]
            score = max(scores.values(), default=0.0)
        else:
            score = model.score_one(x)
        state.seen += 1
        kind = event.kind
        stats = self.stats
        stats.processed[kind] += 1
        cadence = self.policy.observe(state.policy, kind, timestamp)
        calibrator = state.threshold
        # on the detector's scale, before this event is learned
        shown = calibrator.value() if with_threshold else _NAN
        if state.seen <= self.warmup:
            model.learn_one(x)
            state.stats.update(x)
            if state.seen == self.warmup:
                self.warming_up -= 1
            return Outcome(_NONE, _NAN, shown, _NAN)

        signal: float | None
        if self.calibrated:
            # the decision is on the score's tail probability: its surprise, -log10 p,
            # against the budget's; the policy's levels are multiples of that
            level = self.surprise_level
            if scores is not None:
                decided = calibrator.judge(scores)
                judging = calibrator.deciding is not None
            else:
                decided = calibrator.surprise(score)
                judging = calibrator.calibrated
            # no drift signal before the decision judges: the grace's zeros would make
            # every entity's first judged events look like a drift
            signal = min(decided, level) if judging else None
        else:
            threshold = shown if with_threshold else calibrator.value()
            decided, level = score, threshold
            signal = min(score, threshold)
        # the drift signal is clipped at the threshold: anomalies are alerts, drift is a
        # lasting change of the ordinary scores (one huge score would move ADWIN's mean)
        drifted = (
            state.drift.update(signal, x, timestamp)
            if state.drift is not None and signal is not None
            else None
        )
        flagged = decided >= level
        ratio = decided / level if level > 0 else 0.0
        stats.score_ratios.append(ratio)
        decision = self.policy.evaluate(state.policy, decided, level, timestamp, kind, cadence)
        if decision.suppressed is not None:
            stats.suppressed[decision.suppressed] += 1
        firing = resolved = None
        if decision.notification is not None or decision.resolved:
            verdict = self._verdict(calibrator, score, scores, decided, decision.threshold)
            # explain against the state the score was computed on, i.e. before learning x
            if decision.notification is not None:
                firing = self._firing(event, state, model, decision, verdict, x, source)
            if decision.resolved:
                resolved = self._resolved(event, decision, verdict, x, source)
        if scores is not None:
            calibrator.learn(scores)
        else:
            calibrator.update(score)
        state.stats.update(x)
        if flagged and self.protect and state.consecutive_flags < self.protect_max_consecutive:
            state.consecutive_flags += 1  # protected: a lasting change is learned after a while
        else:
            state.consecutive_flags = state.consecutive_flags + 1 if flagged else 0
            model.learn_one(x)
        if state.challenger is not None:
            self._challenge(state, x, flagged, calibrator, level)
        alerts = _NONE
        if drifted:
            drift = self._drifted(event, state, drifted, x, source)
            if self.publish_drift:
                alerts = (drift,)
        if resolved is not None:
            alerts += (resolved,)
        if firing is not None:
            alerts += (firing,)
        return Outcome(alerts, score, shown, ratio)

    def _verdict(
        self,
        calibrator: Threshold,
        score: float,
        scores: dict[str, float] | None,
        decided: float,
        level: float,
    ) -> _Verdict:
        """The score and threshold an alert shows, on the detector's scale: for a calibrated
        decision, the score with the tail probability of the level in force (a feedback
        penalty raises it), and the event's tail probability; per feature, the deciding
        feature's score and threshold, and its name."""
        if isinstance(calibrator, FeatureTails) and scores is not None:
            feature = calibrator.deciding
            shown = scores.get(feature, score) if feature is not None else score
            return _Verdict(shown, calibrator.shown(level), 10.0**-decided, feature)
        if isinstance(calibrator, TailThreshold):
            return _Verdict(score, calibrator.quantile(10.0**-level), 10.0**-decided)
        return _Verdict(score, level, None)

    def _firing(
        self,
        event: Event,
        state: EntityState,
        model: Detector,
        decision: Decision,
        verdict: _Verdict,
        x: dict[str, float],
        source: SourcePosition | None,
    ) -> Alert:
        """The firing CloudEvent of the notification ``decision`` sends, explained against
        ``state`` and ``model`` as they scored ``x``."""
        episode, notification, severity = decision.episode, decision.notification, decision.severity
        assert episode is not None and notification is not None and severity is not None
        contributions = explain(model, x)
        explanation = explain_features(
            state.stats,
            x,
            contributions,
            event.entity,
            event.kind,
            severity,
            getattr(model, "score_unit", ""),
        )
        details: dict[str, Any] = {
            "status": "firing",
            "notification": notification,
            "firing_id": episode.firing_id,
            "started_at": rfc3339_seconds(episode.started_at),
            "explanation": explanation,
        }
        if verdict.tail_probability is not None:
            details["tail_probability"] = verdict.tail_probability
        if verdict.feature is not None:
            details["decided_by"] = verdict.feature
        alert = self._alert(
            FIRING,
            event,
            x,
            source,
            verdict.score,
            verdict.threshold,
            severity,
            model.name,
            summarize(event, explanation["summary"]),
            details,
            contributions,
        )
        if notification == "new":
            episode.firing_id = details["firing_id"] = alert.id
        return alert

    def _resolved(
        self,
        event: Event,
        decision: Decision,
        verdict: _Verdict,
        x: dict[str, float],
        source: SourcePosition | None,
    ) -> Alert:
        """The resolved CloudEvent of the episode this event closed."""
        episode = decision.episode
        assert episode is not None and decision.severity is not None
        duration = round(event.timestamp - episode.started_at, 6)  # event times are in µs
        started = rfc3339_seconds(episode.started_at)
        return self._alert(
            RESOLVED,
            event,
            x,
            source,
            verdict.score,
            verdict.threshold,
            decision.severity,
            self.template.name,
            f"{event.entity} {event.kind} back to normal after {duration:.3g}s "
            f"(since {started}, {decision.severity}) [resolved]",
            {
                "status": "resolved",
                "firing_id": episode.firing_id,
                "started_at": started,
                "duration_s": duration,
            },
        )

    def _alert(
        self,
        type: str,
        event: Event,
        x: dict[str, float],
        source: SourcePosition | None,
        score: float,
        threshold: float,
        severity: str,
        detector: str,
        summary: str,
        details: dict[str, Any],
        contributions: dict[str, float] | None = None,
    ) -> Alert:
        """The CloudEvent of ``type`` about ``event`` (its entity, time and kind, the
        features ``x``, the source position), from this processor's model version."""
        return Alert(
            type=type,
            entity=event.entity,
            time=event.time,
            score=score,
            threshold=threshold,
            severity=severity,
            detector=detector,
            model_version=self.model_version,
            features=x,
            contributions={} if contributions is None else contributions,
            summary=summary,
            source=source,
            kind=event.kind,
            details=details,
        )

    def apply_penalty(
        self, entity: str, threshold_factor: float, mute_s: float, duration_s: float
    ) -> bool:
        """Feedback on an entity: multiply its threshold by ``threshold_factor`` (≥ 1) for
        ``duration_s`` of its event time, and hold back its firing alerts for ``mute_s``
        (counted as suppressed, reason ``feedback_mute``), both from the newest event time
        of the entity. Replaces its previous penalty; kept in its snapshot. False if the
        entity was never seen. Call from the consume-loop thread."""
        state = self.store.find(entity)
        if state is None:
            return False
        self.policy.penalize(state.policy, state.last_seen, threshold_factor, mute_s, duration_s)
        return True

    def _challenge(
        self,
        state: EntityState,
        x: dict[str, float],
        live_flagged: bool,
        calibrator: Threshold,
        level: float,
    ) -> None:
        """Score and train the challenger, judged as the live model is (by the entity's
        calibrated decision, or its threshold); promote or discard it once compared
        enough."""
        challenger = state.challenger
        model = challenger.model
        if isinstance(calibrator, FeatureTails):
            flagged = calibrator.judge(model.score_features(x)) >= level
        elif isinstance(calibrator, TailThreshold):
            flagged = calibrator.surprise(model.score_one(x)) >= level
        else:
            flagged = model.score_one(x) >= level
        if challenger.learned >= self.warmup:
            challenger.compared += 1
            challenger.live_flags += live_flagged
            challenger.challenger_flags += flagged
        challenger.model.learn_one(x)
        challenger.learned += 1
        if challenger.compared >= self.challenger_events:
            if challenger.challenger_flags < challenger.live_flags:
                state.model = challenger.model
                self.stats.challengers["promoted"] += 1
            else:
                self.stats.challengers["discarded"] += 1
            state.challenger = None

    def _drifted(
        self,
        event: Event,
        state: EntityState,
        drifts: list[Drift],
        x: dict[str, float],
        source: SourcePosition | None,
    ) -> Alert:
        """The drift CloudEvent; with ``drift_action = "reset"`` the entity starts over."""
        assert state.drift is not None
        detector = state.drift.detector
        for drift in drifts:
            self.stats.drifts[(detector, drift.kind)] += 1
        first = drifts[0]
        what = ", ".join(f"{d.signal} mean {d.before:.4g} → {d.after:.4g}" for d in drifts[:3])
        reset = self.drift_action == "reset"
        if reset:
            state.model = self.template.clone()
            state.threshold = self.threshold.clone()
            state.seen = 0
            state.consecutive_flags = 0
            self.warming_up += 1
            self.stats.resets += 1
        elif self.drift_action == "challenger" and state.challenger is None:
            state.challenger = Challenger(self.template.clone())
            self.stats.challengers["started"] += 1
        return self._alert(
            DRIFT,
            event,
            x,
            source,
            first.after,
            first.before,
            "warning",
            state.model.name,
            f"{event.entity} drift ({detector}): {what}"
            + ("; model reset, back through warm-up" if reset else ""),
            {
                "drift": {
                    "detector": detector,
                    "action": self.drift_action,
                    "signals": [
                        {"signal": d.signal, "before": d.before, "after": d.after} for d in drifts
                    ],
                }
            },
        )


def summarize(event: Event, explained: str) -> str:
    """One line a person can read in a notification: the event, then its explanation's
    summary (``AAPL trade 100 @ 191.2: price +3.4% vs band ±0.2%, ... [critical]``)."""
    prefix = f"{event.entity} {event.kind} "
    reasons = explained[len(prefix) :] if explained.startswith(prefix) else explained
    what = f"trade {event.size:g} @ {event.price:g}" if isinstance(event, Trade) else event.kind
    return f"{event.entity} {what}: {reasons}"
