"""The processor: ``process(event) -> alerts``, synchronous, no I/O.

For each event: find (or lazily create) the entity's state, compute its features,
score them with the entity's detector, *then* learn from them, and let the policy
decide whether the score becomes an alert. The same code path serves the live
service, back-tests and the tests; it does not know which detector it runs.

Per-entity state is bounded: at most ``max_entities`` are kept, the least recently
seen is evicted first (and counted).

>>> from alerting.detectors import RollingZScore
>>> from alerting.policy import CooldownPolicy
>>> from alerting.events import Metric
>>> proc = Processor(RollingZScore(window=32), CooldownPolicy(threshold=6.0), warmup=10)
>>> alerts = [a for i in range(40)
...           for a in proc.process(Metric(entity="cpu", values={"load": 1.0 + (i % 3) * 0.01},
...                                        time=i))]
>>> alerts
[]
>>> [a.severity for a in proc.process(Metric(entity="cpu", values={"load": 9.0}, time=41))]
['critical']
"""

from __future__ import annotations

from collections import Counter, OrderedDict

from alerting.alerts import FIRING, Alert, SourcePosition
from alerting.detectors import Detector, model_version
from alerting.events import Event, Trade
from alerting.features import FeatureState, extract
from alerting.policy import CooldownPolicy, PolicyState


class EntityState:
    """Everything the service remembers about one entity."""

    __slots__ = ("features", "model", "policy", "seen")

    def __init__(self, model: Detector) -> None:
        self.model = model
        self.features = FeatureState()
        self.policy = PolicyState()
        self.seen = 0


class Processor:
    """Features → per-entity detector (score, then learn) → policy → alerts."""

    def __init__(
        self,
        template: Detector,
        policy: CooldownPolicy,
        warmup: int = 50,
        max_entities: int = 100_000,
    ) -> None:
        if warmup < 0:
            raise ValueError(f"warmup must not be negative, got {warmup}")
        if max_entities < 1:
            raise ValueError(f"max_entities must be at least 1, got {max_entities}")
        self.template = template
        self.policy = policy
        self.warmup = warmup
        self.max_entities = max_entities
        self.model_version = model_version(template)
        self._entities: OrderedDict[str, EntityState] = OrderedDict()
        self.warming_up = 0
        # counters since the last drain, flushed to metrics once per batch
        self.processed: Counter[str] = Counter()
        self.suppressed: Counter[str] = Counter()
        self.evictions = 0
        #: event time of the newest event processed so far (seconds since the epoch)
        self.newest_timestamp = 0.0

    @property
    def live_models(self) -> int:
        return len(self._entities)

    def _state(self, entity: str) -> EntityState:
        entities = self._entities
        state = entities.get(entity)
        if state is not None:
            entities.move_to_end(entity)
            return state
        if len(entities) >= self.max_entities:
            _, evicted = entities.popitem(last=False)
            self.evictions += 1
            if evicted.seen < self.warmup:
                self.warming_up -= 1
        state = entities[entity] = EntityState(self.template.clone())
        if self.warmup > 0:
            self.warming_up += 1
        return state

    def process(self, event: Event, source: SourcePosition | None = None) -> list[Alert]:
        """Score, learn and decide for one event; the alerts it causes (usually none)."""
        state = self._state(event.entity)
        timestamp = event.timestamp
        if timestamp > self.newest_timestamp:
            self.newest_timestamp = timestamp
        x = extract(event, state.features, timestamp)
        model = state.model
        score = model.score_one(x)
        state.seen += 1
        self.processed[event.kind] += 1
        if state.seen <= self.warmup:
            model.learn_one(x)
            if state.seen == self.warmup:
                self.warming_up -= 1
            return []
        before = state.policy.suppressed
        severity = self.policy.evaluate(state.policy, score, timestamp)
        if severity is None:
            model.learn_one(x)
            if state.policy.suppressed != before:
                self.suppressed["cooldown"] += 1
            return []
        # explain against the state the score was computed on, i.e. before learning x
        contributions = model.explain_one(x)
        model.learn_one(x)
        return [
            Alert(
                type=FIRING,
                entity=event.entity,
                time=event.time,
                score=score,
                threshold=self.policy.threshold,
                severity=severity,
                detector=model.name,
                model_version=self.model_version,
                features=x,
                contributions=contributions,
                summary=summarize(event, x, contributions, severity, score),
                source=source,
                kind=event.kind,
            )
        ]


def summarize(
    event: Event,
    features: dict[str, float],
    contributions: dict[str, float],
    severity: str,
    score: float,
) -> str:
    """One line a person can read in a notification."""
    top = sorted(contributions.items(), key=lambda kv: -abs(kv[1]))[:3]
    reasons = ", ".join(f"{name} {features[name]:+.4g} ({z:+.1f}σ)" for name, z in top)
    what = f"trade {event.size:g} @ {event.price:g}" if isinstance(event, Trade) else event.kind
    return f"{event.entity} {what}: {reasons or f'score {score:.2f}'} [{severity}]"
