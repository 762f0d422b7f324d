"""Declared inputs on the real broker: the three shapes of issue 14, each published to a
topic of its name and read by ``alerting run`` through its ``[[inputs]]`` block. Alerts
carry the mapped entity and event time, a record missing a mapped field is dead-lettered
with the path, and the block ``alerting inspect`` suggests runs as it is and alerts."""

from __future__ import annotations

import json
import random
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafkastack import Stack, alerts_json, stop

from producers import dead_letters

pytestmark = pytest.mark.kafka

ORDINARY = 300  # records before the anomaly, over two entities
START = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Shape:
    """A foreign shape: its block, how a record is made, and which field to drop."""

    block: dict[str, Any]  # the [[inputs]] block, topic apart
    make: Callable[[str, float, float, datetime], dict[str, Any]]  # entity, price, size, time
    entities: tuple[str, str]
    drop: tuple[str, ...]  # the path of a mapped field, dropped from one record
    missing: str  # the path the dead letter names


def _desk(sym: str, price: float, size: float, at: datetime) -> dict[str, Any]:
    return {"sym": sym, "px": round(price, 2), "qty": round(size), "ts": int(at.timestamp() * 1000)}


def _exchange(sym: str, price: float, size: float, at: datetime) -> dict[str, Any]:
    micros = int(at.timestamp()) * 1_000_000 + at.microsecond
    data = {"s": sym, "p": f"{price:.2f}", "q": f"{size / 1000:.3f}", "T": micros}
    return {"e": "trade", "data": data}


def _metrics(host: str, cpu: float, mem: float, at: datetime) -> dict[str, Any]:
    return {
        "host": host,
        "metrics": {"cpu": round(cpu / 1000, 4), "mem": round(mem / 1000, 4)},
        "@timestamp": at.isoformat().replace("+00:00", "Z"),
    }


SHAPES: dict[str, Shape] = {
    "desk.trades": Shape(
        {
            "kind": "trade",
            "entity": "sym",
            "time": "ts",
            "fields": {"price": "px", "size": "qty"},
        },
        _desk,
        ("AAPL", "MSFT"),
        ("px",),
        "px",
    ),
    "exchange.trades": Shape(
        {
            "kind": "trade",
            "entity": "data.s",
            "time": "data.T",
            "time_unit": "us",
            "fields": {"price": "data.p", "size": "data.q"},
        },
        _exchange,
        ("BTCUSDT", "ETHUSDT"),
        ("data", "p"),
        "data.p",
    ),
    "host.metrics": Shape(
        {
            "kind": "metric",
            "entity": "host",
            "time": ".@timestamp",
            "time_unit": "rfc3339",
            "fields": {"values": "metrics.*"},
        },
        _metrics,
        ("web-1", "web-2"),
        ("metrics",),
        "metrics",
    ),
}


def records(shape: Shape, seed: int = 3) -> Iterator[tuple[bytes, bytes]]:
    """(key, value): ordinary records of two entities a second apart, one more record
    missing a mapped field, an obvious anomaly of the first entity, a few ordinary ones."""
    rng = random.Random(seed)
    for i in range(ORDINARY + 10):
        name = shape.entities[i % 2]
        price = 100.0 + rng.gauss(0, 0.1)
        size = 500.0 + rng.gauss(0, 5)
        if i == ORDINARY:
            name, price, size = shape.entities[0], 400.0, 5000.0
        record = shape.make(name, price, size, START + timedelta(seconds=i))
        if i == ORDINARY // 2:  # an extra record, missing a mapped field: dead-lettered
            broken: Any = json.loads(json.dumps(record))
            under = broken
            for step in shape.drop[:-1]:
                under = under[step]
            del under[shape.drop[-1]]
            yield name.encode(), json.dumps(broken).encode()
        yield name.encode(), json.dumps(record).encode()


SERVICE_ENV = {  # small, fast, deterministic: alerts on the anomaly and nothing else
    "ALERTING__DETECTOR__NAME": "zscore",
    "ALERTING__DETECTOR__PARAMS": '{"window": 64, "min_history": 4}',
    "ALERTING__DETECTOR__WARMUP": "15",
    "ALERTING__THRESHOLD__KIND": "fixed",
    "ALERTING__THRESHOLD__VALUE": "8",
    "ALERTING__DRIFT__ENABLED": "false",
    "ALERTING__SERVICE__COMMIT_INTERVAL_S": "0.2",
}


def block_toml(topic: str, block: dict[str, Any]) -> str:
    """An [[inputs]] block as a person writes it in the settings file."""
    lines = ["[[inputs]]", f"topic = {json.dumps(topic)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in block.items() if k != "fields"]
    lines.append("[inputs.fields]")
    lines += [f"{k} = {json.dumps(v)}" for k, v in block["fields"].items()]
    return "\n".join(lines) + "\n"


def publish(stack: Stack, topics: list[tuple[str, Shape]]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    try:
        admin.create_topics([NewTopic(t, stack.partitions, 1) for t, _ in topics])
    finally:
        admin.close()
    producer = stack.producer()
    for topic, shape in topics:
        for key, value in records(shape):
            producer.send(topic, key=key, value=value)
    producer.flush(30)
    producer.close()


def run_input(stack: Stack, config: Path, topic: str, *flags: str) -> None:
    """``alerting run`` on ``topic``'s input until every record of it is committed."""
    ends = stack.log_end(topic)
    assert sum(ends.values()) == ORDINARY + 11
    service = stack.start("--config", str(config), "run", *flags, **SERVICE_ENV)
    try:
        stack.wait_for(
            lambda: stack.committed(topic, f"{stack.group}.{topic}") == ends,
            60,
            f"every record of {topic} committed",
        )
    finally:
        assert stop(service) == 0, stack.log()


def check_alerts(stack: Stack, topic: str, shape: Shape) -> None:
    published = [a for a in alerts_json(stack.read_all(stack.alerts)) if topic in json.dumps(a)]
    firing = [a for a in published if a["type"] == "io.alerting.anomaly.firing"]
    assert [(a["subject"], a["time"]) for a in firing] == [
        (shape.entities[0], "2026-12-04T10:05:00Z")
    ], stack.log()
    assert firing[0]["data"]["source"]["topic"] == topic
    assert firing[0]["data"]["event_kind"] == shape.block["kind"]


def check_dead_letter(stack: Stack, topic: str, shape: Shape) -> None:
    letters = [
        r
        for r in stack.read_all(stack.dead_letters)
        if dict(r.headers).get(dead_letters.SOURCE_TOPIC) == topic.encode()
    ]
    assert len(letters) == 1, stack.log()
    headers = dict(letters[0].headers)
    assert headers[dead_letters.REASON] == b"missing_field"
    assert headers[dead_letters.DETAIL].decode() == (
        f"missing field {shape.missing} in input {topic}"
    )


@pytest.mark.parametrize("name", list(SHAPES))
def test_a_declared_input_alerts_on_its_own_topic(stack: Stack, tmp_path: Path, name: str) -> None:
    shape = SHAPES[name]
    topic = f"{name}.{stack.group}"
    publish(stack, [(topic, shape)])
    config = tmp_path / "alerting.toml"
    config.write_text(block_toml(topic, shape.block))
    run_input(stack, config, topic)
    check_alerts(stack, topic, shape)
    check_dead_letter(stack, topic, shape)
    # the input's own group and changelog, next to the settings' ones
    assert stack.committed(topic) == {}
    log = stack.log()
    assert (
        f"consuming {topic} (input, kind {shape.block['kind']}) as group {stack.group}.{topic}"
        in log
    )
    assert stack.read_all(f"{topic}.state", idle_s=0.5), "no snapshot in the input's changelog"


def test_the_blocks_inspect_suggests_run_as_they_are(stack: Stack, tmp_path: Path) -> None:
    topics = [(f"{name}.{stack.group}", shape) for name, shape in SHAPES.items()]
    publish(stack, topics)
    blocks = []
    for topic, shape in topics:
        inspected = stack.cli("inspect", topic, "--from-beginning", timeout=60)
        assert inspected.returncode == 0, inspected.stderr
        text = inspected.stdout[inspected.stdout.index("[[inputs]]") :]
        (block,) = tomllib.loads(text)["inputs"]
        assert {k: v for k, v in block.items() if k not in ("topic", "time_unit")} == {
            k: v for k, v in shape.block.items() if k != "time_unit"
        }, inspected.stdout
        blocks.append(text)
    config = tmp_path / "suggested.toml"
    config.write_text("\n".join(blocks))  # the three suggestions, pasted as they are
    refused = stack.cli("--config", str(config), "run", timeout=60)
    assert refused.returncode == 2
    assert "pick it with --input TOPIC" in refused.stderr
    for topic, shape in topics:
        run_input(stack, config, topic, "--input", topic)
        check_alerts(stack, topic, shape)
        check_dead_letter(stack, topic, shape)


def test_a_recording_replayed_with_input_alerts_as_the_live_topic(
    stack: Stack, tmp_path: Path
) -> None:
    name = "exchange.trades"
    shape = SHAPES[name]
    topic = f"{name}.{stack.group}"
    config = tmp_path / "alerting.toml"
    config.write_text(block_toml(topic, shape.block))
    recording = tmp_path / "exchange.jsonl"
    recording.write_bytes(b"".join(value + b"\n" for _, value in records(shape)))
    replay = stack.cli(
        "--config",
        str(config),
        "replay",
        str(recording),
        "--input",
        topic,
        "--fast",
        "--no-progress",
    )
    assert replay.returncode == 0, replay.stderr
    assert "line 151 skipped (missing_field): missing field data.p in input" in replay.stderr
    published = stack.read_all(topic)
    assert len(published) == ORDINARY + 10  # the refused line is not published
    first = published[0]
    assert first.key.decode() in shape.entities and b'"data"' in first.value
    ends = stack.log_end(topic)
    service = stack.start("--config", str(config), "run", **SERVICE_ENV)
    try:
        stack.wait_for(
            lambda: stack.committed(topic, f"{stack.group}.{topic}") == ends, 60, "committed"
        )
    finally:
        assert stop(service) == 0, stack.log()
    check_alerts(stack, topic, shape)
