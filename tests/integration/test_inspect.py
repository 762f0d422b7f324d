"""``alerting inspect TOPIC`` on the real broker: the three shapes of issue 14 published to
their own topics, read from the beginning and from the end, and the block it suggests."""

from __future__ import annotations

import json
import random
import tomllib
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafkastack import Stack


def desk(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "sym": rng.choice(["AAPL", "MSFT", "NVDA"]),
        "px": round(100 + 100 * rng.random(), 2),
        "qty": rng.randint(1, 1000),
        "ts": 1733300000123 + 17 * i,
    }


def exchange(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "e": "trade",
        "data": {
            "s": rng.choice(["BTCUSDT", "ETHUSDT"]),
            "p": f"{43000 + 100 * rng.random():.2f}",
            "q": f"{rng.random():.3f}",
            "T": 1733300000123456 + 1000 * i,
        },
    }


def metrics(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "host": f"web-{rng.randint(1, 8)}",
        "metrics": {"cpu": rng.random(), "mem": rng.random()},
        "@timestamp": f"2026-12-04T10:{i // 60 % 60:02d}:{i % 60:02d}Z",
    }


EXPECTED = {
    "desk": (desk, "sym", "ts", "ms", {"price": "px", "size": "qty"}),
    "exchange": (exchange, "data.s", "data.T", "us", {"price": "data.p", "size": "data.q"}),
    "metrics": (metrics, "host", ".@timestamp", "rfc3339", {"values": "metrics.*"}),
}


def test_inspect_suggests_the_mapping_of_each_shape(stack: Stack) -> None:
    topics = {name: f"{name}-{stack.group}" for name in EXPECTED}
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap)
    try:
        admin.create_topics([NewTopic(t, stack.partitions, 1) for t in topics.values()])
    finally:
        admin.close()
    producer = stack.producer()
    rng = random.Random(5)
    for name, (shape, *_) in EXPECTED.items():
        for i in range(200):
            producer.send(
                topics[name], key=b"%d" % (i % 7), value=json.dumps(shape(rng, i)).encode()
            )
    producer.send(topics["desk"], value=b"not json")  # the newest desk record
    producer.flush(30)
    producer.close()

    for name, (_, entity, time, unit, fields) in EXPECTED.items():
        for start in (["--from-beginning"], []):
            run = stack.cli("inspect", topics[name], "--max", "50", *start, timeout=90)
            assert run.returncode == 0, run.stderr
            head = run.stdout.splitlines()[0]
            assert head.startswith("5"), head  # 50 records, or 52 of 4 partitions
            block = tomllib.loads(run.stdout[run.stdout.index("[[inputs]]") :])["inputs"][0]
            assert block == {
                "topic": topics[name],
                "kind": "metric" if name == "metrics" else "trade",
                "entity": entity,
                "time": time,
                "time_unit": unit,
                "fields": fields,
            }, run.stdout
            if name == "desk" and not start:
                assert "1 not JSON" in head and "keys: 49 of 50 records" in run.stdout
