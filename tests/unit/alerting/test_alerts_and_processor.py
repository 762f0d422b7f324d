"""Alerts as CloudEvents, and the processor: warm-up, alerts, eviction, determinism."""

from __future__ import annotations

import json
import math
import random
import re
from collections import OrderedDict
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alerting.alerts import CE_SOURCE, FIRING, RESOLVED, Alert, SourcePosition, alert_id
from alerting.detectors import Detector, RollingZScore, model_version
from alerting.events import Event, Metric, Trade
from alerting.policy import AlertPolicy
from alerting.processor import Processor
from alerting.thresholds import FixedThreshold
from alerting.times import rfc3339

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")


def make_alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "type": FIRING,
        "entity": "AAPL",
        "time": datetime(2026, 1, 5, 14, 30, tzinfo=UTC),
        "score": 9.5,
        "threshold": 6.0,
        "severity": "warning",
        "detector": "zscore",
        "model_version": "zscore@abc",
        "features": {"log_return": 0.03},
        "contributions": {"log_return": 9.5},
        "summary": "AAPL trade: log_return z=+9.5",
        "source": SourcePosition("market.events", 2, 42),
    }
    fields.update(changes)
    return Alert(**fields)  # type: ignore[arg-type]


# -- alerts -------------------------------------------------------------------------------


def test_cloudevent_required_and_extension_attributes() -> None:
    ce = make_alert().to_cloudevent()
    for attribute in ("specversion", "id", "source", "type"):
        assert isinstance(ce[attribute], str)
        assert ce[attribute]
    assert ce["specversion"] == "1.0"
    assert ce["source"] == CE_SOURCE
    assert ce["type"] == FIRING
    assert ce["subject"] == "AAPL"
    assert ce["time"] == "2026-01-05T14:30:00Z"
    assert ce["datacontenttype"] == "application/json"
    assert ce["severity"] == "warning"
    # CloudEvents attribute names: lower-case letters and digits only
    assert all(re.fullmatch(r"[a-z0-9]{1,20}", name) for name in ce)


def test_cloudevent_data() -> None:
    data = make_alert().to_cloudevent()["data"]
    assert data["score"] == 9.5
    assert data["threshold"] == 6.0
    assert data["severity"] == "warning"
    assert data["detector"] == "zscore"
    assert data["model_version"] == "zscore@abc"
    assert data["features"] == {"log_return": 0.03}
    assert data["contributions"] == {"log_return": 9.5}
    assert data["source"] == {"topic": "market.events", "partition": 2, "offset": 42}


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 1, 5, 14, 30, tzinfo=UTC), "2026-01-05T14:30:00Z"),
        (datetime(2026, 1, 5, 14, 30, 0, 250000, tzinfo=UTC), "2026-01-05T14:30:00.250000Z"),
        (datetime(2026, 1, 5, 16, 30, tzinfo=timezone(timedelta(hours=2))), "2026-01-05T14:30:00Z"),
        (datetime(2026, 1, 5, 14, 30), "2026-01-05T14:30:00Z"),  # naive: UTC
    ],
)
def test_time_is_rfc3339_utc_with_z(moment: datetime, expected: str) -> None:
    assert rfc3339(moment) == expected
    ce_time = make_alert(time=moment).to_cloudevent()["time"]
    assert ce_time == expected
    assert RFC3339_Z.match(ce_time)


def test_to_json_is_valid_structured_cloudevent() -> None:
    alert = make_alert()
    wire = alert.to_json()
    assert isinstance(wire, bytes)
    assert json.loads(wire) == alert.to_cloudevent()


def test_id_is_deterministic() -> None:
    assert make_alert().id == make_alert().id
    assert make_alert().id == alert_id(make_alert())
    assert re.fullmatch(r"[0-9a-f]{32}", make_alert().id)
    # what was measured does not change which input triggered it
    assert make_alert(score=50.0, summary="other").id == make_alert().id


@pytest.mark.parametrize(
    "change",
    [
        {"source": SourcePosition("market.events", 2, 43)},
        {"source": SourcePosition("market.events", 3, 42)},
        {"source": SourcePosition("other.events", 2, 42)},
        {"entity": "MSFT"},
        {"model_version": "zscore@def"},
        {"type": RESOLVED},
    ],
)
def test_id_changes_with_input_position_entity_model_and_type(change: dict[str, object]) -> None:
    assert make_alert(**change).id != make_alert().id


def test_id_without_source_uses_the_event_time() -> None:
    a = make_alert(source=None)
    assert a.id == make_alert(source=None).id
    assert a.id != make_alert(source=None, time=datetime(2026, 1, 5, 14, 31, tzinfo=UTC)).id
    assert "source" not in a.to_cloudevent()["data"]


def test_explicit_id_is_kept() -> None:
    assert make_alert(id="given").id == "given"
    assert replace(make_alert(), id="").id == make_alert().id


# -- processor ----------------------------------------------------------------------------


def load_events(
    entity: str, n: int, start: float = 0.0, rng: random.Random | None = None
) -> list[Metric]:
    rng = rng or random.Random(entity)
    return [
        Metric(entity=entity, values={"load": 1.0 + rng.gauss(0, 0.01)}, time=start + i)
        for i in range(n)
    ]


def zscore_processor(warmup: int = 10, **kwargs: int) -> Processor:
    return Processor(
        RollingZScore(window=32, min_history=4),
        AlertPolicy(critical_factor=2.0, repeat_after=0.0, resolve_after=0.0, inhibit=False),
        FixedThreshold(6.0),
        warmup=warmup,
        **kwargs,
    )


def test_no_alert_during_warm_up_even_on_a_spike() -> None:
    proc = zscore_processor(warmup=10)
    for i, event in enumerate(load_events("cpu", 9)):
        assert proc.process(event).alerts == (), i
    # 10th event: still warming up, however anomalous
    assert proc.process(Metric(entity="cpu", values={"load": 1e6}, time=9)).alerts == ()
    assert proc.warming_up == 0
    alerts = proc.process(Metric(entity="cpu", values={"load": 1e7}, time=10)).alerts
    assert len(alerts) == 1


def test_the_outcome_says_what_the_event_decided() -> None:
    proc = zscore_processor(warmup=3)
    events = load_events("cpu", 3)
    for event in events:
        warming = proc.process(event, with_threshold=True)
        assert (warming.decided, warming.breached, warming.alerts) == (False, False, ())
        assert math.isnan(warming.score) and warming.threshold == 6.0
    calm = proc.process(load_events("cpu", 1, start=3)[0])
    assert calm.decided and not calm.breached and calm.alerts == ()
    assert calm.ratio == pytest.approx(calm.score / 6.0)
    assert math.isnan(calm.threshold)  # not asked for
    assert proc.stats.score_ratios == [calm.ratio]
    spike = proc.process(Metric(entity="cpu", values={"load": 1e6}, time=4), with_threshold=True)
    assert spike.breached and spike.threshold == 6.0 and spike.score >= 6.0
    assert [a.type for a in spike.alerts] == [FIRING]


def test_a_skipped_event_decides_nothing() -> None:
    first = zscore_processor(warmup=2)
    for i, event in enumerate(load_events("cpu", 4)):
        first.process(event, SourcePosition("market.events", 0, i))
    second = zscore_processor(warmup=2)
    for entity, partition, blob in first.store.snapshots():
        second.store.restore(entity, partition, blob)
    again = second.process(load_events("cpu", 1, start=3)[0], SourcePosition("market.events", 0, 3))
    assert again.alerts == () and not again.decided
    assert second.stats.skipped == 1 and second.drain().skipped == 1
    assert second.stats.skipped == 0


def test_drain_hands_over_the_counts_and_the_stores() -> None:
    proc = zscore_processor(warmup=1, max_entities=1)
    proc.process(load_events("a", 1)[0])
    proc.process(load_events("b", 1)[0])  # moves a out
    drained = proc.drain()
    assert drained.processed == {"metric": 2} and drained.evictions == 1
    assert proc.stats.processed == {} and proc.store.evictions == 0
    again = proc.drain()
    assert (again.processed, again.evictions, again.refused) == ({}, 0, {})


def test_warming_up_counts_down_as_entities_pass_warm_up() -> None:
    proc = zscore_processor(warmup=3)
    assert proc.warming_up == 0
    proc.process(load_events("a", 1)[0])
    proc.process(load_events("b", 1)[0])
    assert proc.warming_up == 2
    for event in load_events("a", 3, start=1)[:2]:
        proc.process(event)
    assert proc.warming_up == 1  # a has seen 3
    for event in load_events("b", 5, start=1):
        proc.process(event)
    assert proc.warming_up == 0
    assert proc.store.live == 2


def spike_run(proc: Processor, entity: str = "cpu") -> tuple[Alert, ...]:
    alerts: list[Alert] = []
    for i, event in enumerate(load_events(entity, 40)):
        alerts += proc.process(event, SourcePosition("market.events", 1, i)).alerts
    assert alerts == []
    spike = Metric(entity=entity, values={"load": 5.0}, time=40.5)
    return proc.process(spike, SourcePosition("market.events", 1, 40)).alerts


def test_alert_on_a_spike_after_warm_up() -> None:
    proc = zscore_processor(warmup=10)
    alerts = spike_run(proc)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert.type == FIRING
    assert alert.entity == "cpu"
    assert alert.kind == "metric"
    assert alert.severity == "critical"
    assert alert.score >= 12.0
    assert alert.threshold == 6.0
    assert alert.detector == "zscore"
    assert alert.model_version == model_version(proc.template)
    assert alert.time == datetime(1970, 1, 1, 0, 0, 40, 500000, tzinfo=UTC)
    assert alert.source == SourcePosition("market.events", 1, 40)
    assert alert.features["load"] == 5.0
    assert "load.diff" in alert.features
    top = max(alert.contributions, key=lambda name: abs(alert.contributions[name]))
    assert "cpu" in alert.summary
    assert top in alert.summary
    assert "critical" in alert.summary
    ce = alert.to_cloudevent()
    assert ce["data"]["source"] == {"topic": "market.events", "partition": 1, "offset": 40}


def test_alert_explanation_matches_the_score_it_explains() -> None:
    # the explanation must describe the state the score was computed against (before learning
    # the event), so the largest contribution is the score itself
    proc = zscore_processor(warmup=10)
    alert = spike_run(proc)[0]
    top = max(abs(z) for z in alert.contributions.values())
    assert top == pytest.approx(alert.score, rel=1e-9)


def test_warning_below_critical_factor() -> None:
    proc = Processor(
        RollingZScore(window=32, min_history=4),
        AlertPolicy(critical_factor=1e6),
        FixedThreshold(6.0),
        warmup=10,
    )
    assert [a.severity for a in spike_run(proc)] == ["warning"]


def test_trade_summary_names_price_and_size() -> None:
    proc = zscore_processor(warmup=5)
    rng = random.Random(1)
    price = 100.0
    for i in range(40):
        price *= 1 + rng.gauss(0, 1e-4)
        assert proc.process(Trade(symbol="AAPL", price=price, size=100, time=i)).alerts == ()
    alerts = proc.process(Trade(symbol="AAPL", price=price * 1.2, size=100, time=40)).alerts
    assert len(alerts) == 1
    assert alerts[0].kind == "trade"
    assert alerts[0].summary.startswith("AAPL trade 100 @ ")
    # the price move in words, against the usual range of the entity's returns
    assert re.search(r": price \+\d+(\.\d+)?% vs band ±[\d.e-]+%", alerts[0].summary)
    assert alerts[0].to_cloudevent()["data"]["explanation"]["top"][0] == "log_return"


def test_repeat_afteruppressions_are_counted() -> None:
    proc = Processor(
        RollingZScore(window=32, min_history=4),
        AlertPolicy(repeat_after=100.0, resolve_after=100.0),
        FixedThreshold(6.0),
        warmup=5,
    )
    for event in load_events("cpu", 20):
        proc.process(event)
    assert len(proc.process(Metric(entity="cpu", values={"load": 50.0}, time=20)).alerts) == 1
    assert proc.process(Metric(entity="cpu", values={"load": 500.0}, time=21)).alerts == ()
    assert proc.stats.suppressed == {"repeat_interval": 1}


def test_processed_counts_by_kind() -> None:
    proc = zscore_processor()
    proc.process(load_events("cpu", 1)[0])
    proc.process(Trade(symbol="A", price=1, size=1, time=0))
    proc.process(Trade(symbol="A", price=1, size=1, time=1))
    assert proc.stats.processed == {"metric": 1, "trade": 2}


@pytest.mark.parametrize(
    ("warmup", "max_entities", "seed"), [(3, 4, 0), (5, 10, 1), (0, 3, 2), (1, 1, 3), (8, 6, 4)]
)
def test_lru_eviction_against_brute_force(warmup: int, max_entities: int, seed: int) -> None:
    rng = random.Random(seed)
    proc = zscore_processor(warmup=warmup, max_entities=max_entities)
    reference: OrderedDict[str, int] = OrderedDict()  # live entity -> events seen, LRU first
    moved_out: dict[str, int] = {}  # evicted entities keep what they learned
    evictions = 0
    for i in range(1500):
        # a skewed key space: a few hot entities and a long tail
        entity = f"e{min(int(rng.expovariate(0.25)), 30)}"
        if entity in reference:
            reference.move_to_end(entity)
        else:
            if len(reference) >= max_entities:
                gone, seen = reference.popitem(last=False)
                moved_out[gone] = seen
                evictions += 1
            reference[entity] = moved_out.pop(entity, 0)
        reference[entity] += 1
        proc.process(Metric(entity=entity, values={"v": rng.random()}, time=i))
        assert proc.store.live == len(reference) <= max_entities
        assert proc.store.evictions == evictions
        assert proc.warming_up == sum(seen < warmup for seen in reference.values()), i
        assert [e for e, _ in proc.store] == list(reference)
        assert {e: st.seen for e, st in proc.store} == dict(reference)
    assert evictions > 0


def test_evicted_entity_comes_back_where_it_was() -> None:
    proc = zscore_processor(warmup=3, max_entities=1)
    for event in load_events("a", 5):
        proc.process(event)
    assert proc.warming_up == 0
    proc.process(load_events("b", 1)[0])  # moves a out
    assert proc.store.evictions == 1
    assert proc.warming_up == 1
    alerts = proc.process(Metric(entity="a", values={"load": 1e9}, time=100)).alerts  # a comes back
    assert proc.store.evictions == 2
    assert proc.warming_up == 0  # b moved out while warming up; a is past its warm-up
    assert proc.store.live == 1
    assert [alert.entity for alert in alerts] == ["a"]  # past warm-up: it remembered


class StubDetector:
    """Not a z-score: scores the value of ``v`` and records the calls it receives."""

    name = "stub"

    def __init__(
        self, scale: float = 1.0, log: list[tuple[str, int, dict[str, float]]] | None = None
    ) -> None:
        self.scale = scale
        self.log = log if log is not None else []
        self.learned = 0

    def score_one(self, x: dict[str, float]) -> float:
        self.log.append(("score", self.learned, dict(x)))
        return abs(x.get("v", 0.0)) * self.scale

    def learn_one(self, x: dict[str, float]) -> None:
        self.log.append(("learn", self.learned, dict(x)))
        self.learned += 1

    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        return {"v": x.get("v", 0.0) * self.scale}

    def clone(self) -> StubDetector:
        return StubDetector(self.scale, self.log)

    def params(self) -> dict[str, object]:
        return {"scale": self.scale}


def test_processor_runs_any_detector() -> None:
    template = StubDetector(scale=2.0)
    assert isinstance(template, Detector)
    proc = Processor(template, AlertPolicy(resolve_after=0.0), FixedThreshold(6.0), warmup=2)
    values = [1.0, 1.0, 1.0, 3.5, 2.0, -7.0]
    alerts = [
        a
        for i, v in enumerate(values)
        for a in proc.process(Metric(entity="m", values={"v": v}, time=i)).alerts
    ]
    # 7 fires; 4 is below the clear level (0.8 × 6) and resolves at once; 14 fires anew
    assert [(a.type, a.score, a.severity) for a in alerts] == [
        (FIRING, 7.0, "warning"), (RESOLVED, 4.0, "warning"), (FIRING, 14.0, "critical")
    ]  # fmt: skip
    assert {a.detector for a in alerts} == {"stub"}
    assert alerts[0].model_version == model_version(template)
    assert alerts[0].model_version.startswith("stub@")
    assert alerts[2].contributions == {"v": -14.0}
    assert "m metric" in alerts[2].summary
    # every event is scored before it is learned, on a per-entity clone, never the template
    assert template.learned == 0
    kinds = [entry[0] for entry in template.log]
    assert kinds == ["score", "learn"] * len(values)
    assert all(entry[1] == i for i, entry in enumerate(template.log[::2]))


def test_detector_clones_are_per_entity() -> None:
    template = StubDetector()
    proc = Processor(template, AlertPolicy(), FixedThreshold(6.0), warmup=0)
    for i in range(3):
        proc.process(Metric(entity="x", values={"v": 0.0}, time=i))
    proc.process(Metric(entity="y", values={"v": 0.0}, time=3))
    # y's model is new: it had learned nothing when scoring its first event
    assert template.log[-2] == ("score", 0, {"v": 0.0})


def mixed_stream(seed: int) -> list[tuple[Event, SourcePosition]]:
    rng = random.Random(seed)
    out: list[tuple[Event, SourcePosition]] = []
    for i in range(600):
        entity = rng.choice(["a", "b", "c"])
        value = rng.gauss(0, 1) if rng.random() > 0.03 else rng.choice([40.0, -40.0])
        out.append(
            (
                Metric(entity=entity, values={"v": value}, time=i),
                SourcePosition("market.events", ord(entity) % 2, i),
            )
        )
    return out


def test_same_events_give_identical_alert_ids() -> None:
    stream = mixed_stream(5)
    runs = []
    for _ in range(2):
        proc = zscore_processor(warmup=20)
        runs.append(
            [(a.id, a.score, a.severity) for e, s in stream for a in proc.process(e, s).alerts]
        )
    assert len(runs[0]) >= 3
    assert runs[0] == runs[1]
    assert len({alert_id for alert_id, _, _ in runs[0]}) == len(runs[0])


def test_different_model_gives_different_alert_ids() -> None:
    stream = mixed_stream(5)
    proc = zscore_processor(warmup=20)
    first = [a for e, s in stream for a in proc.process(e, s).alerts]
    other = Processor(
        RollingZScore(window=31, min_history=4),
        AlertPolicy(repeat_after=0.0, resolve_after=0.0, inhibit=False),
        FixedThreshold(6.0),
        warmup=20,
    )
    second = [a for e, s in stream for a in other.process(e, s).alerts]
    assert first
    assert second
    assert not {a.id for a in first} & {a.id for a in second}


@pytest.mark.parametrize(
    ("kwargs", "parameter"), [({"warmup": -1}, "warmup"), ({"max_entities": 0}, "max_entities")]
)
def test_processor_errors_name_the_parameter(kwargs: dict[str, int], parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        zscore_processor(**kwargs)
