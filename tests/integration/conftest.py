"""A real Kafka-protocol broker for the session, and a per-test :class:`Stack` on it.

The broker is chosen in this order: ``ALERTING__KAFKA__BOOTSTRAP_SERVERS`` from the
environment; else a testcontainers Kafka if a Docker engine answers; else the
embedded tansu broker. Each test gets its own topic and group names.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafkastack import Broker, Stack

from alerting.embedded_broker import EmbeddedBroker


def _docker_answers() -> bool:
    """True if a Docker engine answers ``/_ping`` (plain socket: no client left open)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX)
            address: Any = host[len("unix://") :]
        elif host.startswith("tcp://"):
            name, _, port = host[len("tcp://") :].partition(":")
            sock = socket.socket()
            address = (name, int(port or 2375))
        else:
            return False
        with sock:
            sock.settimeout(2)
            sock.connect(address)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return b"OK" in sock.recv(4096)
    except OSError:
        return False


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    configured = os.environ.get("ALERTING__KAFKA__BOOTSTRAP_SERVERS")
    if configured:
        yield Broker(configured, "configured")
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer() as kafka:
            yield Broker(kafka.get_bootstrap_server(), "testcontainers")
        return
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_file=log) as embedded:
        yield Broker(embedded.bootstrap_servers, "embedded", embedded)


@pytest.fixture
def stack(broker: Broker, tmp_path: Path) -> Stack:
    tag = uuid.uuid4().hex[:8]
    return Stack(
        broker,
        events=f"events-{tag}",
        alerts=f"alerts-{tag}",
        dead_letters=f"dlq-{tag}",
        group=f"group-{tag}",
        workdir=tmp_path,
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker(pytest.mark.kafka)
