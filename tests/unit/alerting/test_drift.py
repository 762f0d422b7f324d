"""Drift per entity: detection delay on a known change point, silence on stationary data,
rate limiting, drift CloudEvents and the reset action."""

from __future__ import annotations

import itertools
import pickle
import random

import pytest
from prometheus_client import CollectorRegistry

from alerting.alerts import DRIFT, FIRING
from alerting.detectors import RollingZScore
from alerting.drift import DriftMonitor
from alerting.events import Metric
from alerting.metrics import Metrics
from alerting.policy import AlertPolicy
from alerting.processor import Processor
from alerting.thresholds import FixedThreshold
from consumers.runner import LoopConfig, Service
from tests.unit.fakes import FakePort

CHANGE = 2000
LENGTH = 4000


def first_drift(monitor: DriftMonitor, stream: list[float]) -> int | None:
    for i, value in enumerate(stream):
        if monitor.update(value, {}, event_time=float(i)):
            return i
    return None


@pytest.mark.parametrize("seed", range(30))
def test_adwin_reports_a_2_sigma_shift_within_50_events(seed: int) -> None:
    rng = random.Random(seed)
    stream = [rng.gauss(0, 1) + (2.0 if i >= CHANGE else 0.0) for i in range(LENGTH)]
    found = first_drift(DriftMonitor("adwin", features=False, min_interval_s=0), stream)
    assert found is not None and CHANGE <= found <= CHANGE + 50, found


@pytest.mark.parametrize("seed", range(30))
def test_adwin_is_silent_on_a_stationary_stream_of_the_same_length(seed: int) -> None:
    rng = random.Random(1000 + seed)
    stream = [rng.gauss(0, 1) for _ in range(LENGTH)]
    assert first_drift(DriftMonitor("adwin", features=False), stream) is None


@pytest.mark.parametrize("detector", ["page_hinkley", "kswin"])
def test_the_other_detectors_find_a_large_shift(detector: str) -> None:
    rng = random.Random(7)
    stream = [rng.gauss(0, 1) + (6.0 if i >= CHANGE else 0.0) for i in range(LENGTH)]
    # KSWIN tests every event: at its default alpha (0.005) it reports stationary noise
    params: dict[str, object] = {"seed": 1, "alpha": 1e-5} if detector == "kswin" else {}
    found = first_drift(DriftMonitor(detector, params, features=False, min_interval_s=0), stream)
    assert found is not None and CHANGE <= found <= CHANGE + 200, found


def test_features_are_watched_each_as_its_own_signal() -> None:
    monitor = DriftMonitor("adwin", min_interval_s=0)
    rng = random.Random(3)
    signals = set()
    for i in range(3000):
        x = {"flat": rng.gauss(0, 1), "shifts": rng.gauss(0, 1) + (4 if i >= 1500 else 0)}
        for drift in monitor.update(rng.gauss(0, 1), x, event_time=float(i)):
            signals.add((drift.signal, drift.kind))
            assert drift.before == pytest.approx(0.0, abs=1.0)
            assert drift.after == pytest.approx(4.0, abs=1.5)
    assert signals == {("shifts", "feature")}


def test_at_most_one_report_per_min_interval_of_event_time() -> None:
    monitor = DriftMonitor("adwin", features=False, min_interval_s=100.0)
    rng = random.Random(5)
    reports = []
    for i in range(6000):
        level = 5.0 * (i // 1000)  # a new level every 1,000 events (one per second)
        if monitor.update(rng.gauss(level, 1), {}, event_time=i / 10):
            reports.append(i / 10)
    assert len(reports) >= 2
    assert all(b - a >= 100.0 for a, b in itertools.pairwise(reports))


def test_pickled_monitor_continues_identically() -> None:
    rng = random.Random(9)
    stream = [rng.gauss(0, 1) + (3 if i >= 700 else 0) for i in range(1500)]
    monitor = DriftMonitor("adwin", min_interval_s=0, features=False)
    for i, value in enumerate(stream[:500]):
        monitor.update(value, {}, float(i))
    copy = pickle.loads(pickle.dumps(monitor))
    for i, value in enumerate(stream[500:], start=500):
        assert monitor.update(value, {}, float(i)) == copy.update(value, {}, float(i))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"detector": "nope"}, "detector"),
        ({"params": {"bogus": 1}}, "bogus"),
        ({"min_interval_s": -1.0}, "min_interval_s"),
        ({"max_signals": 0}, "max_signals"),
    ],
)
def test_errors_name_the_parameter(kwargs: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        DriftMonitor(**kwargs)  # type: ignore[arg-type]


def processor(action: str) -> Processor:
    return Processor(
        RollingZScore(window=64, min_history=8),
        AlertPolicy(repeat_after=0.0, resolve_after=0.0, inhibit=False),
        FixedThreshold(1e9),  # no anomaly alerts: only drift
        warmup=20,
        drift=DriftMonitor("adwin", features=True, min_interval_s=0),
        drift_action=action,
    )


def level_shift(entity: str, n: int = 1200, at: int = 600) -> list[Metric]:
    rng = random.Random(entity)
    return [
        Metric(entity=entity, values={"load": rng.gauss(10.0 if i >= at else 1.0, 0.5)}, time=i)
        for i in range(n)
    ]


def test_a_level_shift_gives_a_drift_cloudevent() -> None:
    proc = processor("none")
    alerts = [a for e in level_shift("db-1") for a in proc.process(e).alerts]
    drifts = [a for a in alerts if a.type == DRIFT]
    assert drifts and not [a for a in alerts if a.type == FIRING]
    event = drifts[0].to_cloudevent()
    assert event["type"] == DRIFT and event["subject"] == "db-1"
    data = event["data"]["drift"]
    assert data["detector"] == "adwin" and data["action"] == "none"
    # the value's own signal reports the shift (its derived features may drift too)
    loads = [
        s
        for d in drifts
        for s in d.to_cloudevent()["data"]["drift"]["signals"]
        if s["signal"] == "load"
    ]
    assert loads and loads[0]["before"] < 3 < 8 < loads[0]["after"]
    assert "drift (adwin)" in drifts[0].summary
    assert sum(proc.stats.drifts.values()) >= 1 and proc.stats.resets == 0


def test_reset_action_sends_the_entity_back_through_warm_up() -> None:
    proc = processor("reset")
    seen_after_drift = None
    for event in level_shift("db-2"):
        alerts = proc.process(event).alerts
        if any(a.type == DRIFT for a in alerts) and seen_after_drift is None:
            (state,) = [s for e, s in proc.store if e == "db-2"]
            seen_after_drift = state.seen
            assert proc.warming_up == 1
    assert seen_after_drift == 0
    assert proc.stats.resets >= 1


def test_drift_metrics_are_flushed_per_batch() -> None:
    port = FakePort()
    for event in level_shift("db-3"):
        port.add_event(event)
    metrics = Metrics(CollectorRegistry())
    service = Service(port, processor("reset"), metrics, LoopConfig("alerts", "dlq"))
    while service.run_once():
        pass
    detections = sum(
        metrics.registry.get_sample_value(
            "alerting_drift_detections_total", {"detector": "adwin", "signal": signal}
        )
        or 0.0
        for signal in ("score", "feature")
    )
    assert detections >= 1
    assert (metrics.registry.get_sample_value("alerting_models_reset_total") or 0) >= 1
    assert any(
        m.topic == "alerts" and b'"io.alerting.drift"' in (m.value or b"") for m in port.published
    )


def challenger_processor(template: object, challenger_events: int = 300) -> Processor:
    return Processor(
        template,  # type: ignore[arg-type]
        AlertPolicy(repeat_after=0.0, resolve_after=0.0, inhibit=False),
        FixedThreshold(4.0),
        warmup=20,
        drift=DriftMonitor("adwin", features=True, min_interval_s=0),
        drift_action="challenger",
        challenger_events=challenger_events,
    )


def test_a_challenger_that_learned_the_new_regime_is_promoted() -> None:
    from alerting.detectors.river_models import StandardAbsoluteDeviationDetector

    # sad never forgets: after a level shift the live model keeps flagging the new level,
    # a challenger started at the drift learns it and flags less
    proc = challenger_processor(StandardAbsoluteDeviationDetector(grace_period=10))
    live_before = None
    for event in level_shift("db-4", n=2000, at=600):
        proc.process(event)
        (state,) = [s for e, s in proc.store if e == "db-4"]
        if state.challenger is not None and live_before is None:
            live_before = state.model
    assert proc.stats.challengers["started"] >= 1
    assert proc.stats.challengers["promoted"] >= 1
    assert state.model is not live_before  # the challenger's model is now the live one


def test_a_challenger_no_better_than_the_live_model_is_discarded() -> None:
    # the rolling z-score adapts within its window: after the shift both flag as little
    proc = challenger_processor(RollingZScore(window=32, min_history=8))
    for event in level_shift("db-5", n=2500, at=600):
        proc.process(event)
    assert proc.stats.challengers["started"] >= 1
    assert proc.stats.challengers["discarded"] >= 1 and proc.stats.challengers["promoted"] == 0


def test_challenger_state_survives_a_snapshot() -> None:
    from alerting.detectors.river_models import StandardAbsoluteDeviationDetector

    proc = challenger_processor(StandardAbsoluteDeviationDetector(grace_period=10))
    events = level_shift("db-6", n=1400, at=600)
    for event in events[:900]:
        proc.process(event)
    (state,) = [s for e, s in proc.store if e == "db-6"]
    assert state.challenger is not None
    copy = proc.store.codec.decode(proc.store.codec.encode(state))
    assert copy.challenger is not None
    assert copy.challenger.learned == state.challenger.learned
    assert copy.challenger.model.score_one({"load": 9.0}) == state.challenger.model.score_one(
        {"load": 9.0}
    )


def _adwin_stream(rng: random.Random, n: int) -> list[float]:
    """Piecewise-stationary values: shifts of mean and spread, spikes, plateaus."""
    out: list[float] = []
    mean, spread = 0.0, 1.0
    while len(out) < n:
        if rng.random() < 0.3:
            mean += rng.choice((-1, 1)) * rng.uniform(0.2, 4.0)
            spread = rng.uniform(0.05, 3.0)
        run = rng.randint(50, 900)
        if rng.random() < 0.1:
            out.extend([mean] * run)  # a flat line: zero variance
        else:
            out.extend(rng.gauss(mean, spread) for _ in range(run))
    return out[:n]


@pytest.mark.parametrize("seed", range(12))
def test_the_plain_adwin_reports_the_drifts_rivers_adwin_reports(seed: int) -> None:
    # oracle: River's ADWIN on the same stream, with random parameters
    from river.drift import ADWIN

    from alerting.adwin import Adwin

    rng = random.Random(seed)
    params = {
        "delta": rng.choice((0.002, 0.01, 0.2, 1e-5)),
        "clock": rng.choice((1, 8, 32)),
        "max_buckets": rng.choice((2, 5, 9)),
        "min_window_length": rng.choice((1, 5, 20)),
        "grace_period": rng.choice((0, 10, 100)),
    }
    ours, theirs = Adwin(**params), ADWIN(**params)
    stream = _adwin_stream(rng, 6000)
    found_ours, found_theirs = [], []
    for i, x in enumerate(stream):
        theirs.update(x)
        if ours.update(x):
            found_ours.append(i)
        if theirs.drift_detected:
            found_theirs.append(i)
        if i % 97 == 0:
            assert ours.width == theirs.width, (i, params)
            assert ours.estimation == pytest.approx(theirs.estimation, rel=1e-9, abs=1e-12)
    assert found_ours == found_theirs, params
    assert found_ours, "the stream must drift for the comparison to mean much"
    assert ours.n_detections == len(found_theirs)


@pytest.mark.parametrize("seed", range(6))
def test_a_plain_adwin_dumped_and_loaded_mid_stream_goes_on_alike(seed: int) -> None:
    import json

    from alerting.adwin import Adwin

    rng = random.Random(100 + seed)
    stream = _adwin_stream(rng, 5000)
    cut = rng.randint(100, 4000)
    whole, first = Adwin(), Adwin()
    for x in stream[:cut]:
        whole.update(x)
        first.update(x)
    second = Adwin()
    second.load(json.loads(json.dumps(first.dump())))  # through JSON, as a snapshot goes
    rest_whole = [whole.update(x) for x in stream[cut:]]
    rest_loaded = [second.update(x) for x in stream[cut:]]
    assert rest_loaded == rest_whole
    assert second.dump() == whole.dump()
