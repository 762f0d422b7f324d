"""Silences and feedback on a real broker, through the command line and `alerting run`."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaProducer
from kafkastack import Stack, alerts_json, metrics_port, scrape, stop
from prometheus_client.parser import text_string_to_metric_families

from alerting.alerts import FIRING, RESOLVED
from alerting.events import Event, Metric, encode

pytestmark = pytest.mark.kafka

START = 1_700_000_000.0

# small, fast, deterministic: alerts exactly on the spikes
SERVICE_ENV = {
    "ALERTING__DETECTOR__NAME": "zscore",
    "ALERTING__DETECTOR__PARAMS": '{"window": 16, "min_history": 4}',
    "ALERTING__DETECTOR__WARMUP": "15",
    "ALERTING__THRESHOLD__KIND": "fixed",
    "ALERTING__THRESHOLD__VALUE": "6",
    "ALERTING__DRIFT__ENABLED": "false",
    "ALERTING__POLICY__RESOLVE_AFTER": "5",
    "ALERTING__SERVICE__COMMIT_INTERVAL_S": "0.2",
}


def episode(entity: str, start: float) -> list[Event]:
    """Calm, one spike (a critical firing alert), then calm long enough to resolve it."""
    rng = random.Random(f"{entity}{start}")
    calm = [
        Metric(entity=entity, values={"load": 1.0 + rng.gauss(0, 0.01)}, time=start + i)
        for i in range(40)
    ]
    spike = Metric(entity=entity, values={"load": 50.0}, time=start + 20)
    return [*calm[:20], spike, *calm[21:]]


def send(
    producer: KafkaProducer, topic: str, events: list[Event], partition: int | None = None
) -> None:
    for event in events:
        producer.send(topic, key=event.entity.encode(), value=encode(event), partition=partition)
    producer.flush()


def sample(port: int, name: str, **labels: str) -> float:
    """One sample of the service's exposition (0 if absent)."""
    for family in text_string_to_metric_families(scrape(port)):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return float(s.value)
    return 0.0


def sent(stack: Stack) -> list[tuple[str, str]]:
    return [(a["subject"], a["type"]) for a in alerts_json(stack.read_all(stack.alerts, idle_s=1))]


@pytest.fixture
def services(stack: Stack) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        assert stop(process) == 0


def start_service(
    stack: Stack, started: list[subprocess.Popen[str]], name: str = "service", **env: str
) -> int:
    process = stack.start("run", log_name=name, **{**SERVICE_ENV, **env})
    started.append(process)
    stack.wait_for(lambda: metrics_port(stack.log(name)) is not None, 30, f"{name} metrics")
    port = metrics_port(stack.log(name))
    assert port is not None
    return port


def all_committed(stack: Stack) -> bool:
    ends = stack.log_end(stack.events)
    return bool(ends) and stack.committed() == ends


def test_silence_holds_matching_alerts_until_expired(
    stack: Stack, services: list[subprocess.Popen[str]]
) -> None:
    stack.create_topics()
    add = stack.cli(
        "silence", "add", "--entity", "AAPL", "--duration", "1h", "--comment", "maintenance",
        "--author", "ops",
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    silence_id = add.stdout.strip()
    listed = stack.cli("silence", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    (shown,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (shown["id"], shown["entity"], shown["state"], shown["author"]) == (
        silence_id,
        "AAPL",
        "active",
        "ops",
    )

    producer = stack.producer()
    producer.send(f"{stack.alerts}.silences", key=b"junk", value=b"not a silence")
    send(producer, stack.events, episode("AAPL", START) + episode("MSFT", START))
    port = start_service(stack, services)
    stack.wait_for(lambda: all_committed(stack), 60, "all events committed")
    assert sorted(sent(stack)) == [("MSFT", FIRING), ("MSFT", RESOLVED)]
    assert sample(port, "alerting_alerts_silenced_total", severity="critical") == 2
    assert sample(port, "alerting_control_records_invalid_total", reason="invalid") == 1
    assert "silence record" in stack.log() and "skipped: not JSON" in stack.log()
    assert sample(port, "alerting_silences_active") == 1

    expire = stack.cli("silence", "expire", silence_id)
    assert expire.returncode == 0, expire.stderr
    assert stack.cli("silence", "list").stdout.startswith("no silences")
    assert silence_id in stack.cli("silence", "list", "--all").stdout
    stack.wait_for(lambda: sample(port, "alerting_silences_active") == 0, 20, "the expiry")
    send(producer, stack.events, episode("AAPL", START + 100))
    producer.close()
    stack.wait_for(lambda: ("AAPL", RESOLVED) in sent(stack), 60, "AAPL's alerts after the expiry")
    assert sorted(sent(stack)) == [
        ("AAPL", FIRING),
        ("AAPL", RESOLVED),
        ("MSFT", FIRING),
        ("MSFT", RESOLVED),
    ]
    assert sample(port, "alerting_alerts_silenced_total", severity="critical") == 2


def test_expiring_an_unknown_silence_fails_with_one_line_and_status_2(stack: Stack) -> None:
    # (bad patterns, durations and severities are refused before connecting: unit tests)
    run = stack.cli("silence", "expire", "no-such-id")
    assert run.returncode == 2, run.stderr
    assert "no silence with id no-such-id" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_two_instances_both_obey_a_silence(
    stack: Stack, services: list[subprocess.Popen[str]]
) -> None:
    stack.create_topics()
    add = stack.cli("silence", "add", "--entity", "S.*", "--duration", "30m", "--comment", "c")
    assert add.returncode == 0, add.stderr
    ports = [start_service(stack, services, name) for name in ("one", "two")]
    stack.wait_for(
        lambda: [sample(p, "alerting_assigned_partitions") for p in ports] == [2, 2],
        60,
        "both instances with two partitions each",
    )
    producer = stack.producer()
    for partition in range(stack.partitions):  # a silenced and a free entity in each
        send(producer, stack.events, episode(f"S{partition}", START), partition)
        send(producer, stack.events, episode(f"T{partition}", START), partition)
    producer.close()
    stack.wait_for(lambda: all_committed(stack), 60, "all events committed")
    free = [(f"T{p}", kind) for p in range(stack.partitions) for kind in (FIRING, RESOLVED)]
    stack.wait_for(lambda: sorted(sent(stack)) == sorted(free), 20, "the free entities' alerts")
    silenced = [sample(p, "alerting_alerts_silenced_total", severity="critical") for p in ports]
    assert silenced == [4, 4]  # two silenced entities per instance: firing and resolved


@pytest.mark.parametrize("action", ["mute", "raise"])
def test_false_positives_penalize_an_entity_and_bad_feedback_does_not_hurt(
    stack: Stack, services: list[subprocess.Popen[str]], action: str
) -> None:
    stack.create_topics()
    port = start_service(
        stack,
        services,
        ALERTING__FEEDBACK__FALSE_POSITIVES="2",
        ALERTING__FEEDBACK__ACTION=action,
        ALERTING__FEEDBACK__THRESHOLD_FACTOR="1000000",
        ALERTING__FEEDBACK__PENALTY_S="100000",
    )
    producer = stack.producer()
    send(
        producer,
        stack.events,
        episode("AAPL", START) + episode("AAPL", START + 50) + episode("MSFT", START),
    )
    stack.wait_for(lambda: all_committed(stack), 60, "all events committed")
    firing = [a for a in alerts_json(stack.read_all(stack.alerts)) if a["type"] == FIRING]
    assert sorted(a["subject"] for a in firing) == ["AAPL", "AAPL", "MSFT"]

    # garbage, an unknown id and a true positive around the two false positives
    producer.send(f"{stack.alerts}.feedback", b"this is not json")
    producer.send(f"{stack.alerts}.feedback", b'{"alert_id": "x", "verdict": "maybe"}')
    producer.flush()
    unknown = stack.cli("feedback", "0" * 32, "--verdict", "fp")
    assert unknown.returncode == 0, unknown.stderr
    msft = next(a["id"] for a in firing if a["subject"] == "MSFT")
    assert stack.cli("feedback", msft, "--verdict", "tp", "--note", "real").returncode == 0
    for alert in (a for a in firing if a["subject"] == "AAPL"):
        run = stack.cli("feedback", alert["id"], "--verdict", "fp")
        assert run.returncode == 0, run.stderr
    stack.wait_for(
        lambda: sample(port, "alerting_feedback_penalties_total", action=action) == 1,
        30,
        "the penalty",
    )
    assert "feedback penalty on AAPL" in stack.log()
    assert sample(port, "alerting_feedback_invalid_total", reason="not_json") == 1
    assert sample(port, "alerting_feedback_invalid_total", reason="verdict") == 1
    assert sample(port, "alerting_feedback_invalid_total", reason="unknown_alert") == 1
    verdicts: dict[str, Any] = {"detector": "zscore", "severity": "critical"}
    assert sample(port, "alerting_feedback_total", verdict="false_positive", **verdicts) == 2
    assert sample(port, "alerting_feedback_total", verdict="true_positive", **verdicts) == 1
    assert sample(port, "alerting_feedback_precision", **verdicts) == pytest.approx(1 / 3)

    # the penalty holds AAPL's next spike back; MSFT still alerts
    send(producer, stack.events, episode("AAPL", START + 120) + episode("MSFT", START + 120))
    producer.close()
    stack.wait_for(lambda: all_committed(stack), 60, "the later events committed")
    stack.wait_for(
        lambda: sent(stack).count(("MSFT", FIRING)) == 2, 20, "MSFT's second firing alert"
    )
    assert sent(stack).count(("AAPL", FIRING)) == 2
    if action == "mute":
        assert sample(port, "alerting_alerts_suppressed_total", reason="feedback_mute") >= 1
    assert services[0].poll() is None, stack.log()
