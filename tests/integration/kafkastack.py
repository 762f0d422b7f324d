"""Helpers for integration tests: per-test topics on the session broker, CLI processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from alerting.embedded_broker import EmbeddedBroker


@dataclass
class Broker:
    bootstrap_servers: str
    kind: str
    embedded: EmbeddedBroker | None = None


@dataclass
class Stack:
    """Per-test topic and group names on the session broker, and helpers."""

    broker: Broker
    events: str
    alerts: str
    dead_letters: str
    group: str
    partitions: int = 4
    workdir: Path = field(default_factory=Path)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap_servers

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING")}
        env.update(
            {
                "ALERTING__KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
                "ALERTING__TOPICS__EVENTS": self.events,
                "ALERTING__TOPICS__ALERTS": self.alerts,
                "ALERTING__TOPICS__DEAD_LETTERS": self.dead_letters,
                "ALERTING__TOPICS__PARTITIONS": str(self.partitions),
                "ALERTING__SERVICE__GROUP_ID": self.group,
                "ALERTING__METRICS__PORT": "0",
                # the service refuses a configured cluster without a snapshot-signing key
                "ALERTING__STATE__SIGNING_KEY": "integration-tests-signing-key",
                # not the working directory: a test's forwarder must not write into the repo
                "ALERTING__FORWARD__DEAD_LETTER_PATH": str(
                    self.workdir / "forward-dead-letters.jsonl"
                ),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(extra)
        return env

    def cli(self, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "alerting.cli", *args],
            env=self.env(**env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, log_name: str = "service", **env: str) -> subprocess.Popen[str]:
        with open(self.workdir / f"{log_name}.log", "a") as log:  # the child keeps its copy
            return subprocess.Popen(
                [sys.executable, "-m", "alerting.cli", *args],
                env=self.env(**env),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )

    def log(self, name: str = "service") -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def create_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            existing = set(admin.list_topics())
            wanted = [t for t in (self.events, self.alerts, self.dead_letters) if t not in existing]
            if wanted:
                admin.create_topics([NewTopic(t, self.partitions, 1) for t in wanted])
        finally:
            admin.close()

    def producer(self) -> KafkaProducer:
        return KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=5)

    def read_all(self, topic: str, idle_s: float = 2.0, timeout_s: float = 30.0) -> list[Any]:
        """Every record of ``topic`` (manual assignment, no group), up to the high watermark."""
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        try:
            parts = None
            deadline = time.monotonic() + timeout_s
            while not parts and time.monotonic() < deadline:
                parts = consumer.partitions_for_topic(topic)
                if not parts:
                    time.sleep(0.2)
            if not parts:
                return []
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            last_new = time.monotonic()
            while time.monotonic() - last_new < idle_s and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=200)
                for records in batch.values():
                    out.extend(records)
                    last_new = time.monotonic()
                if (
                    all(
                        consumer.highwater(tp) is not None
                        and consumer.position(tp) >= (consumer.highwater(tp) or 0)
                        for tp in tps
                    )
                    and time.monotonic() - last_new > 0.3
                ):
                    break
            return out
        finally:
            consumer.close()

    def log_end(self, topic: str) -> dict[int, int]:
        """High watermark per partition, from fetch responses (tansu's ListOffsets is off)."""
        records = self.read_all(topic, idle_s=0.5)
        ends: dict[int, int] = {}
        for r in records:
            ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
        return ends

    def committed(self, topic: str | None = None, group: str | None = None) -> dict[int, int]:
        """Committed offsets per partition of ``topic`` (default: events) for ``group``."""
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group or self.group,
            enable_auto_commit=False,
        )
        try:
            out = {}
            for p in range(self.partitions):
                offset = consumer.committed(TopicPartition(topic or self.events, p))
                if offset is not None:
                    out[p] = offset
            return out
        finally:
            consumer.close()

    def wait_for(self, check: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def metrics_port(log_text: str) -> int | None:
    marker = "metrics at http://127.0.0.1:"
    idx = log_text.find(marker)
    if idx < 0:
        return None
    return int(log_text[idx + len(marker) :].split("/", 1)[0])


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def alerts_json(records: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]
