"""Retention on a real broker: entities idle past state.retention_s of event time are
tombstoned in the changelog, the stored-entities gauge falls, and a restart restores only
the live ones."""

from __future__ import annotations

import time

import pytest
from kafkastack import Stack, metrics_port, scrape, stop

from alerting.events import Metric, encode

pytestmark = pytest.mark.kafka

ENTITIES = 150
DAY = 86400.0


def _sample(stack: Stack, log_name: str, name: str) -> float | None:
    port = metrics_port(stack.log(log_name))
    if port is None:
        return None
    for line in scrape(port).splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def _produce(stack: Stack, prefix: str, start: float) -> None:
    producer = stack.producer()
    try:
        for i in range(ENTITIES):
            entity = f"{prefix}-{i}"
            for k in range(3):
                event = Metric(entity=entity, values={"load": 1.0 + k}, time=start + i + k)
                producer.send(stack.events, key=entity.encode(), value=encode(event))
        producer.flush()
    finally:
        producer.close()


def test_idle_entities_are_tombstoned_and_a_restart_restores_only_the_live_ones(
    stack: Stack,
) -> None:
    stack.create_topics()
    changelog = f"{stack.events}.state"
    env = {
        "ALERTING__TOPICS__CHANGELOG": changelog,
        "ALERTING__STATE__RETENTION_S": str(7 * DAY),
        "ALERTING__DETECTOR__NAME": "zscore",
    }
    now = time.time()
    first = stack.start("run", log_name="first", **env)
    try:
        _produce(stack, "old", now - 30 * DAY)  # a month ago
        stack.wait_for(lambda: sum(stack.committed().values()) == 3 * ENTITIES, 60, "old events")
        stack.wait_for(
            lambda: _sample(stack, "first", "alerting_entities_stored") == ENTITIES,
            30,
            "every old entity stored",
        )
        _produce(stack, "new", now - DAY)  # 29 days later in event time, on every partition
        stack.wait_for(lambda: sum(stack.committed().values()) == 6 * ENTITIES, 60, "new events")
        stack.wait_for(
            lambda: _sample(stack, "first", "alerting_entities_expired_total") == ENTITIES,
            30,
            "the old entities expired",
        )
        assert _sample(stack, "first", "alerting_entities_stored") == ENTITIES  # fell to the new
    finally:
        assert stop(first) == 0, stack.log("first")

    records = stack.read_all(changelog)
    tombstones = {r.key.decode() for r in records if r.value is None}
    assert tombstones == {f"old-{i}" for i in range(ENTITIES)}
    last: dict[str, bytes | None] = {}
    for r in records:
        last[r.key.decode()] = r.value
    live = {key for key, value in last.items() if value is not None}
    assert live == {f"new-{i}" for i in range(ENTITIES)}  # what compaction leaves

    # a new process restores from the changelog; one more event makes it checkpoint
    second = stack.start("run", log_name="second", **env)
    try:
        stack.wait_for(lambda: "entity states" in stack.log("second"), 60, "the restore")
        producer = stack.producer()
        try:
            probe = Metric(entity="old-0", values={"load": 1.0}, time=now - DAY + 1000)
            producer.send(stack.events, key=b"old-0", value=encode(probe))
            producer.flush()
        finally:
            producer.close()
        stack.wait_for(
            lambda: _sample(stack, "second", "alerting_entities_stored") == ENTITIES + 1,
            60,
            "the live entities and the returning one stored",
        )
        assert _sample(stack, "second", "alerting_entities_expired_total") == 0
    finally:
        assert stop(second) == 0, stack.log("second")
    back = [r for r in stack.read_all(changelog) if r.key == b"old-0"]
    assert back[-1].value is not None  # it came back fresh and was snapshotted again
