"""The processor's alert lifecycle: firing and resolved CloudEvents, explanations, and
feedback penalties (``Processor.apply_penalty``), as the alert contract describes them."""

from __future__ import annotations

import json
import math
import random
import re
from datetime import UTC, datetime

import pytest

from alerting.alerts import FIRING, RESOLVED, Alert, SourcePosition
from alerting.detectors import RollingZScore
from alerting.events import Metric, Quote, Trade
from alerting.explain import FeatureStats
from alerting.policy import AlertPolicy
from alerting.processor import Processor
from alerting.state import SnapshotCodec, config_hash
from alerting.thresholds import FixedThreshold

TOPIC = "market.events"
KEY = b"a test signing key, 32 bytes ok"  # the stubs have no plain form: signed pickles


class Stub:
    """Scores the value of ``v``; explains it as its own contribution when asked."""

    name = "stub"
    score_unit = "σ"

    def __init__(self, explains: bool = True) -> None:
        self.explains = explains

    def score_one(self, x: dict[str, float]) -> float:
        return abs(x.get("v", 0.0))

    def learn_one(self, x: dict[str, float]) -> None:
        pass

    def clone(self) -> Stub:
        return Stub(self.explains)

    def params(self) -> dict[str, object]:
        return {"explains": self.explains}


class ExplainingStub(Stub):
    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        return {"v": x.get("v", 0.0), "w": 0.0}

    def clone(self) -> ExplainingStub:
        return ExplainingStub()


def processor(policy: AlertPolicy | None = None, template: Stub | None = None) -> Processor:
    return Processor(
        template if template is not None else ExplainingStub(),
        policy or AlertPolicy(repeat_after=60.0, resolve_after=10.0),
        FixedThreshold(6.0),
        warmup=0,
        snapshot_key=KEY,
    )


def feed(proc: Processor, entity: str, steps: list[tuple[float, float]]) -> list[Alert]:
    """(v, event time) steps of one entity; each event at its own source offset."""
    out: list[Alert] = []
    for v, t in steps:
        offset = int(t * 1000)
        event = Metric(entity=entity, values={"v": v, "w": 1.0}, time=t)
        out += proc.process(event, SourcePosition(TOPIC, 0, offset)).alerts
    return out


def data(alert: Alert) -> dict[str, object]:
    ce = json.loads(alert.to_json())
    assert ce["severity"] == alert.severity
    return ce["data"]  # type: ignore[no-any-return]


CALM = [(0.5 + 0.1 * (i % 3), float(i)) for i in range(30)]


def test_an_episode_sends_new_escalated_repeat_and_resolved_with_one_firing_id() -> None:
    proc = processor()
    assert feed(proc, "cpu", CALM) == []
    alerts = feed(
        proc,
        "cpu",
        [(7.0, 30.0), (8.0, 31.0), (13.0, 32.0), (7.0, 50.0), (7.0, 100.0), (1.0, 101.0),
         (5.0, 108.0), (1.0, 109.0), (1.0, 121.0)],
    )  # fmt: skip
    kinds = [(a.type, data(a)["status"], data(a).get("notification"), a.severity) for a in alerts]
    # the cadence learned from CALM is 1 s; the long gaps since move it up 5 % each (1.1 s)
    assert kinds == [
        (FIRING, "firing", "new", "warning"),
        (FIRING, "firing", "escalated", "critical"),
        (FIRING, "firing", "repeat", "critical"),  # 60 gaps (66 s) after the escalation
        (RESOLVED, "resolved", None, "critical"),  # 10 gaps below 4.8 (108 restarts the run)
    ]
    first = alerts[0]
    for alert in alerts:
        assert data(alert)["firing_id"] == first.id
        assert data(alert)["started_at"] == "1970-01-01T00:00:30Z"
        assert data(alert)["event_kind"] == "metric"
    assert len({a.id for a in alerts}) == len(alerts)
    resolved = data(alerts[-1])
    assert resolved["duration_s"] == 121.0 - 30.0
    assert resolved["score"] == 1.0 and resolved["threshold"] == 6.0
    assert alerts[-1].time == datetime.fromtimestamp(121.0, UTC)
    assert "back to normal" in resolved["summary"]  # type: ignore[operator]
    for key in ("explanation", "notification", "contributions"):
        assert not resolved.get(key), key
    assert proc.stats.suppressed == {"repeat_interval": 2}  # at 31 and 50


def test_firing_alert_explanation_against_the_running_statistics() -> None:
    proc = processor()
    feed(proc, "cpu", CALM)
    stats = FeatureStats()
    for v, _ in CALM:
        stats.update({"v": v, "w": 1.0})
    expected, band = stats.usual("v")  # type: ignore[misc]
    (alert,) = feed(proc, "cpu", [(13.0, 30.0)])
    explanation = data(alert)["explanation"]
    assert isinstance(explanation, dict)
    assert explanation["top"] == ["v", "w"]  # the detector's contributions, largest first
    v = explanation["features"]["v"]
    assert v["value"] == 13.0
    assert v["expected"] == pytest.approx(expected, rel=1e-12)  # before learning this event
    assert v["band"] == pytest.approx(band, rel=1e-12)
    assert v["deviation"] == pytest.approx((13.0 - expected) / band, rel=1e-12)
    assert 0.4 < expected < 0.8 and 0.1 < band < 0.5
    # w is constant: the band is a tiny floor, never zero (deviation stays finite)
    assert explanation["features"]["w"]["deviation"] == 0.0
    assert explanation["summary"] == "cpu metric v 13 vs usual 0.6 ± 0.245 (+13σ) [critical]"
    assert alert.summary == "cpu metric: v 13 vs usual 0.6 ± 0.245 (+13σ) [critical]"
    # the statistics learn the event after it is explained
    assert proc.store.find("cpu").stats.stats["v"][0] == len(CALM) + 1  # type: ignore[union-attr]


def test_without_contributions_the_top_features_are_the_largest_deviations() -> None:
    proc = processor(template=Stub())
    rng = random.Random(2)
    for i in range(30):
        jitter = rng.uniform(-0.3, 0.3)
        x = {"v": 0.5 + 0.1 * (i % 3), "a": 10.0 + (i % 2) + jitter, "b": 5.0 + (i % 2) + jitter}
        proc.process(Metric(entity="m", values=x, time=i))
    (alert,) = proc.process(
        Metric(entity="m", values={"v": 7.0, "a": 10.5, "b": 9.0}, time=30)
    ).alerts
    explanation = data(alert)["explanation"]
    assert isinstance(explanation, dict)
    features = explanation["features"]
    by_deviation = sorted(features, key=lambda name: -abs(features[name]["deviation"]))
    assert explanation["top"] == by_deviation[:3]
    assert "v" in explanation["top"]
    assert abs(features["a"]["deviation"]) < 1 < abs(features["b"]["deviation"])
    assert alert.contributions == {}
    assert alert.summary.startswith("m metric: v 7 vs usual ")
    assert ", b 9: " in alert.summary  # outside its usual range (here: its variability)
    assert ", a " not in alert.summary  # inside it


def test_trade_and_quote_explanations_read_as_price_size_and_spread() -> None:
    proc = Processor(RollingZScore(window=64, min_history=8), AlertPolicy(), FixedThreshold(6.0),
                     warmup=20)  # fmt: skip
    rng = random.Random(3)
    price = 100.0
    for i in range(200):
        price *= math.exp(rng.gauss(0, 2e-4))
        size = float(max(1, round(100 * math.exp(rng.gauss(0, 0.5)))))
        proc.process(Trade(symbol="X", price=price, size=size, side="buy", time=i))
        proc.process(Quote(symbol="X", bid=price - 0.01, ask=price + 0.01, bid_size=5,
                           ask_size=5, time=i + 0.5))  # fmt: skip
    (trade,) = proc.process(
        Trade(symbol="X", price=price * 1.03, size=100, side="buy", time=200)
    ).alerts
    assert trade.summary.startswith("X trade 100 @ ")
    assert "price +3% vs band ±" in trade.summary
    assert "[critical]" in trade.summary
    # ordinary trades for resolve_after (20 of their 1 s gaps) below the clear level resolve
    # the episode
    after = [
        a
        for i in range(201, 225)
        for a in proc.process(Trade(symbol="X", price=price, size=100, side="buy", time=i)).alerts
    ]
    assert [(a.type, data(a)["firing_id"]) for a in after] == [(RESOLVED, trade.id)]
    (burst,) = proc.process(
        Trade(symbol="X", price=price, size=30_000, side="buy", time=225)
    ).alerts
    assert re.search(r": size 2\d\dx usual \(band ×/÷ [\d.]+\)", burst.summary)
    assert data(burst)["notification"] == "new"
    (quote,) = proc.process(Quote(symbol="X", bid=price - 0.5, ask=price + 0.5, bid_size=5,
                                  ask_size=5, time=225.5)).alerts  # fmt: skip
    assert "spread 100 bps vs usual 2 ± " in quote.summary
    # trades and quotes are separate episodes: the quote is new, not a repeat of the trade
    assert data(quote)["notification"] == "new"


def test_apply_penalty_raises_the_threshold_for_event_time() -> None:
    proc = processor(AlertPolicy(resolve_after=0.0, repeat_after=0.0))
    assert proc.apply_penalty("cpu", 2.0, 0.0, 60.0) is False  # never seen
    assert proc.store.live == 0  # and not created
    feed(proc, "cpu", CALM)  # last seen at 29
    assert proc.apply_penalty("cpu", 2.0, mute_s=0.0, duration_s=60.0) is True
    assert feed(proc, "cpu", [(11.0, 30.0)]) == []  # under 6 × 2
    (alert,) = feed(proc, "cpu", [(13.0, 31.0)])
    assert (alert.threshold, alert.severity) == (12.0, "warning")  # critical from 24
    feed(proc, "cpu", [(1.0, 32.0)])
    (alert,) = feed(proc, "cpu", [(11.0, 89.0)])  # 29 + 60: the penalty is over
    assert (alert.threshold, alert.severity) == (6.0, "warning")
    assert proc.stats.suppressed == {}


def test_apply_penalty_mutes_firing_alerts_and_counts_them() -> None:
    proc = processor(AlertPolicy(resolve_after=0.0, repeat_after=0.0))
    feed(proc, "cpu", CALM)
    feed(proc, "db", CALM)
    assert proc.apply_penalty("cpu", 1.0, mute_s=5.0, duration_s=0.0)
    assert feed(proc, "cpu", [(7.0, 30.0), (13.0, 33.0)]) == []
    assert [a.entity for a in feed(proc, "db", [(7.0, 30.0)])] == ["db"]  # others are not muted
    assert proc.stats.suppressed == {"feedback_mute": 2}
    (alert,) = feed(proc, "cpu", [(13.0, 34.0)])  # 29 + 5: the mute is over
    # the episode started while muted; its first notification is "new"
    assert data(alert)["notification"] == "new"
    assert data(alert)["started_at"] == "1970-01-01T00:00:30Z"


def test_apply_penalty_validates_and_survives_eviction_and_snapshots() -> None:
    proc = Processor(ExplainingStub(), AlertPolicy(resolve_after=0.0), FixedThreshold(6.0),
                     warmup=0, max_entities=1, snapshot_key=KEY)  # fmt: skip
    feed(proc, "cpu", CALM)
    feed(proc, "db", CALM)  # moves cpu out to the cold store
    with pytest.raises(ValueError, match="threshold_factor"):
        proc.apply_penalty("cpu", 0.5, 0.0, 10.0)
    assert proc.apply_penalty("cpu", 3.0, 0.0, 100.0)  # brought back from cold
    assert proc.store.find("cpu").policy.penalty_factor == 3.0  # type: ignore[union-attr]
    snapshots = {entity: blob for entity, _, blob in proc.store.snapshots()}
    assert "cpu" in snapshots  # marked changed: the penalty reaches the changelog
    restored = Processor(ExplainingStub(), AlertPolicy(resolve_after=0.0), FixedThreshold(6.0),
                         warmup=0, snapshot_key=KEY)  # fmt: skip
    assert restored.store.restore("cpu", 0, snapshots["cpu"])
    assert feed(restored, "cpu", [(13.0, 30.0)]) == []  # 13 < 6 × 3
    assert [a.threshold for a in feed(restored, "cpu", [(19.0, 31.0)])] == [18.0]


def test_open_episodes_survive_a_snapshot_and_resolve_after_restore() -> None:
    proc = processor()
    feed(proc, "cpu", CALM)
    (fired,) = feed(proc, "cpu", [(13.0, 30.0)])
    blob = {entity: b for entity, _, b in proc.store.snapshots()}["cpu"]
    restored = processor()
    assert restored.store.restore("cpu", 0, blob)
    assert feed(restored, "cpu", [(13.0, 31.0)]) == []  # same episode: no second firing
    # 10 gaps of the restored cadence (1 s, and 5 % more after the 10 s gap)
    (resolved,) = feed(restored, "cpu", [(1.0, 32.0), (1.0, 43.0)])
    assert resolved.type == RESOLVED
    assert data(resolved)["firing_id"] == fired.id


def test_snapshots_from_before_the_policy_state_marker_are_refused() -> None:
    proc = processor()
    feed(proc, "cpu", CALM)
    old_config = {k: v for k, v in proc.config().items() if k != "policy_state"}
    old = SnapshotCodec(detector="stub", config_hash=config_hash(old_config), key=KEY)
    state = proc.store.find("cpu")
    assert state is not None
    fresh = processor()
    assert fresh.store.restore("cpu", 0, old.encode(state)) is False
    assert fresh.store.refused == {"config_mismatch": 1}
    assert fresh.store.restore("cpu", 0, proc.codec().encode(state)) is True


def test_policy_parameters_do_not_invalidate_snapshots() -> None:
    # changing how alerts are sent must not throw away what the models learned
    a = processor(AlertPolicy(repeat_after=1.0))
    b = processor(AlertPolicy(repeat_after=999.0, clear_factor=0.1))
    assert a.codec().config_hash == b.codec().config_hash


def test_feature_statistics_are_bounded_and_winsorised() -> None:
    stats = FeatureStats()
    for i in range(500):
        stats.update({f"f{i}": 1.0, "x": float(i % 2)})
    assert len(stats.stats) == 64
    before = stats.usual("x")
    stats.update({"x": 1e9})
    after = stats.usual("x")
    assert before is not None and after is not None
    assert after[0] - before[0] <= 0.02 * before[1] + 1e-12  # moved by at most alpha × band
    with pytest.raises(ValueError, match="alpha"):
        FeatureStats(alpha=1.0)


def test_a_constant_feature_that_moves_gets_a_usual_range() -> None:
    # its band is 0, so winsorising at the band would hold it at the old value for good
    stats = FeatureStats()
    for i in range(300):
        stats.update({"venue_count": 1.0 if i < 100 else 2.0})
    stats.update({"venue_count": float("inf")})  # not a value: skipped, not learned
    usual = stats.usual("venue_count")
    assert usual is not None
    assert usual[0] == pytest.approx(2.0, abs=0.05)
