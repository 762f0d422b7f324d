"""The whole loop on a real broker: synthetic replay in, alerts out, nothing left behind."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from kafkastack import Stack, alerts_json, metrics_port, scrape, stop

from producers.synthetic import read_labels

pytestmark = pytest.mark.kafka


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_synthetic_replay_alerts_on_injected_anomalies(stack: Stack, tmp_path: Path) -> None:
    labels_file = tmp_path / "labels.jsonl"
    stack.create_topics()
    replay = stack.cli(
        "replay",
        "--synthetic",
        "--count",
        "12000",
        "--seed",
        "11",
        "--anomaly-rate",
        "0.002",
        "--fast",
        "--no-progress",
        "--labels",
        str(labels_file),
    )
    assert replay.returncode == 0, replay.stderr
    labels = read_labels(labels_file)
    assert len(labels) >= 10

    # every breaching event notifies (as the old zero cooldown did); episodes still resolve
    service = stack.start(
        "run", ALERTING__POLICY__REPEAT_AFTER="1e-9", ALERTING__POLICY__RESOLVE_AFTER="0"
    )
    try:
        ends = stack.log_end(stack.events)
        assert sum(ends.values()) == 12000
        stack.wait_for(lambda: stack.committed() == ends, 90, "all events committed")
        port = metrics_port(stack.log())
        assert port is not None, stack.log()
        exposition = scrape(port)
    finally:
        assert stop(service) == 0, stack.log()

    assert "alerting_events_processed_total" in exposition
    processed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("alerting_events_processed_total{")
    )
    assert processed == 12000

    published = alerts_json(stack.read_all(stack.alerts))
    assert published, stack.log()
    for alert in published:
        assert alert["specversion"] == "1.0"
        assert alert["data"]["source"]["topic"] == stack.events
    alerts = [a for a in published if a["type"] == "io.alerting.anomaly.firing"]
    resolved = [a for a in published if a["type"] == "io.alerting.anomaly.resolved"]
    # the lifecycle end to end: each resolved alert ends an episode whose first firing
    # alert was published before it, for the same entity and event kind
    firing_by_id = {a["id"]: a for a in alerts}
    assert resolved, stack.log()
    for r in resolved:
        first = firing_by_id[r["data"]["firing_id"]]
        assert (first["subject"], first["data"]["event_kind"]) == (
            r["subject"],
            r["data"]["event_kind"],
        )
        assert _ts(r["data"]["started_at"]) <= _ts(first["time"]) <= _ts(r["time"])
        assert r["data"]["duration_s"] >= 0
    assert all(a["data"]["explanation"]["summary"] for a in alerts)

    # an alert belongs to an injected anomaly if it is on the labelled event or on the
    # same entity within the next second of event time (a spike's reversion trade)
    by_entity: dict[str, list[float]] = defaultdict(list)
    for label in labels:
        by_entity[label.entity].append(label.time.timestamp())
    hits = set()
    elsewhere = []
    for alert in alerts:
        t = _ts(alert["time"])
        match = [s for s in by_entity[alert["subject"]] if 0 <= t - s <= 1.0]
        if match:
            hits.add((alert["subject"], match[0]))
        else:
            elsewhere.append(alert)
    # the anomalies once the entities can decide: past their warm-up (50 events) and their
    # calibrated threshold's grace (500 scores), about 600 of each of the 5 symbols' events
    labelled = {(label.entity, label.time.timestamp()) for label in labels if label.index >= 3000}
    assert len(labelled) >= 8
    recall = len(hits & labelled) / len(labelled)
    assert recall >= 0.6, f"only {recall:.0%} of {len(labelled)} injected anomalies alerted"
    # few elsewhere: under one false alert per 1,000 events
    assert len(elsewhere) <= 12, json.dumps(elsewhere[:3], indent=1)
