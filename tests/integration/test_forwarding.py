"""``alerting forward`` on the real broker, to a real Alertmanager and to local webhooks;
``alerting tail``'s filters on the same kind of alerts.

Alertmanager is the Debian package ``prometheus-alertmanager`` (installed by
``make system-deps``), started by each test on a free port with a minimal config and
its own storage directory, and killed at the end. The webhooks are ``http.server``s in
a thread of the test. Alerts are CloudEvents as the service publishes them (the
lifecycle fields of the alert contract), written to the test's alerts topic.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from kafkastack import Stack, metrics_port, scrape, stop

from alerting.alerts import DRIFT, FIRING, RESOLVED, Alert, SourcePosition
from alerting.embedded_broker import free_port
from alerting.times import rfc3339

pytestmark = pytest.mark.kafka

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
needs_alertmanager = pytest.mark.skipif(
    ALERTMANAGER is None, reason="prometheus-alertmanager missing: `make system-deps`"
)
AM_CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


# ---------------------------------------------------------------- helpers


def cloudevent(
    type: str, entity: str, started: datetime, at: datetime, severity: str = "critical", n: int = 0
) -> dict[str, Any]:
    lifecycle: dict[str, Any] = {
        "status": "firing" if type == FIRING else "resolved",
        "firing_id": f"first-{entity}",
        "started_at": rfc3339(started),
    }
    if type == FIRING:
        lifecycle["notification"] = "new"
        lifecycle["explanation"] = {"summary": "log_return far out", "top": ["log_return"]}
    else:
        lifecycle["duration_s"] = (at - started).total_seconds()
    return Alert(
        type=type,
        entity=entity,
        time=at,
        score=12.5 if type == FIRING else 1.25,
        threshold=6.0,
        severity=severity,
        detector="zscore",
        model_version="zscore@test",
        features={"log_return": 0.03},
        contributions={"log_return": 12.5},
        summary=f"{entity} trade: log_return +12.5σ [{severity}]",
        source=SourcePosition("events", 0, n),
        details=lifecycle,
    ).to_cloudevent()


def publish(stack: Stack, *events: dict[str, Any]) -> None:
    producer = stack.producer()
    try:
        for ce in events:
            producer.send(stack.alerts, key=ce["subject"].encode(), value=json.dumps(ce).encode())
        producer.flush()
    finally:
        producer.close()


def committed(stack: Stack, group: str) -> dict[int, int]:
    return stack.committed(stack.alerts, group)


class Forward:
    """An ``alerting forward`` process on the test's topics, with its own group."""

    def __init__(self, stack: Stack, tmp_path: Path, *flags: str, **env: str) -> None:
        self.stack = stack
        self.group = f"fwd-{stack.group}"
        self.dead_letters = tmp_path / "dead-letters.jsonl"
        self.process = stack.start(
            "forward",
            *flags,
            "--dead-letters",
            str(self.dead_letters),
            log_name="forward",
            ALERTING__FORWARD__GROUP_ID=self.group,
            ALERTING__FORWARD__BACKOFF_S="0.2",
            ALERTING__FORWARD__MAX_BACKOFF_S="1",
            **env,
        )

    def log(self) -> str:
        return self.stack.log("forward")

    def all_committed(self) -> bool:
        ends = self.stack.log_end(self.stack.alerts)
        return bool(ends) and committed(self.stack, self.group) == ends

    def metric(self, name: str, **labels: str) -> float | None:
        port = metrics_port(self.log())
        assert port is not None, self.log()
        want = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
        for line in scrape(port).splitlines():
            if line.startswith(want + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def dead(self) -> list[dict[str, Any]]:
        if not self.dead_letters.exists():
            return []
        return [json.loads(line) for line in self.dead_letters.read_text().splitlines()]

    def stop(self) -> None:
        assert stop(self.process) == 0, self.log()


class Alertmanager:
    def __init__(self, workdir: Path, port: int) -> None:
        self.port = port
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Alertmanager:
        assert ALERTMANAGER is not None
        config = self.workdir / "alertmanager.yml"
        config.write_text(AM_CONFIG)
        with open(self.workdir / "alertmanager.log", "ab") as log:
            self.process = subprocess.Popen(
                [
                    ALERTMANAGER,
                    f"--config.file={config}",
                    f"--storage.path={self.workdir / 'am-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",  # no HA gossip port
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while not self.ready():
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, "alertmanager not ready: " + self.log()
            time.sleep(0.2)
        return self

    def ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/-/ready"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def log(self) -> str:
        path = self.workdir / "alertmanager.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def alerts(self, **filters: str) -> list[dict[str, Any]]:
        """Active (unresolved) alerts; Alertmanager leaves resolved ones out."""
        query = urllib.parse.urlencode(
            [("filter", f'{k}="{v}"') for k, v in filters.items()], doseq=True
        )
        url = f"http://127.0.0.1:{self.port}/api/v2/alerts" + (f"?{query}" if query else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            result: list[dict[str, Any]] = json.loads(response.read())
        return result

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    am = Alertmanager(tmp_path, free_port())
    try:
        yield am
    finally:
        am.kill()


class Hook(http.server.BaseHTTPRequestHandler):
    """Fails the first ``fail_first`` requests (``always_fail``: all) with 503."""

    fail_first: ClassVar[int] = 0
    always_fail: ClassVar[bool] = False
    received: ClassVar[list[tuple[int, str, dict[str, Any]]]] = []
    raw: ClassVar[list[tuple[bytes, dict[str, str]]]] = []  # body and headers as received
    lock: ClassVar[threading.Lock] = threading.Lock()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers["Content-Length"]))
        body = json.loads(raw)
        cls = type(self)
        with cls.lock:
            failing = cls.always_fail or len(cls.received) < cls.fail_first
            status = 503 if failing else 200
            cls.received.append((status, self.headers["Content-Type"], body))
            cls.raw.append((raw, dict(self.headers.items())))
        self.send_response(status)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[Callable[[int, bool], str]]:
    servers: list[http.server.ThreadingHTTPServer] = []
    threads: list[threading.Thread] = []

    def start(fail_first: int = 0, always_fail: bool = False) -> str:
        Hook.fail_first, Hook.always_fail, Hook.received = fail_first, always_fail, []
        Hook.raw = []
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return f"http://127.0.0.1:{server.server_address[1]}/alerts"

    try:
        yield start
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            thread.join()
            server.server_close()


# ---------------------------------------------------------------- Alertmanager


@needs_alertmanager
def test_firing_then_resolved_in_a_real_alertmanager(
    stack: Stack, tmp_path: Path, alertmanager: Alertmanager
) -> None:
    alertmanager.start()
    stack.create_topics()
    now = datetime.now(UTC).replace(microsecond=0)
    started = now - timedelta(seconds=30)
    publish(stack, cloudevent(FIRING, "AAPL", started, started, n=1))
    forward = Forward(stack, tmp_path, "--alertmanager", f"http://127.0.0.1:{alertmanager.port}")
    try:
        stack.wait_for(lambda: alertmanager.alerts(entity="AAPL"), 40, "the alert in Alertmanager")
        (alert,) = alertmanager.alerts(entity="AAPL")
        assert alert["labels"] == {
            "alertname": "Anomaly",
            "entity": "AAPL",
            "severity": "critical",
            "detector": "zscore",
            "event_kind": "trade",
        }
        notes = alert["annotations"]
        assert notes["summary"] == "AAPL trade: log_return +12.5σ [critical]"
        assert (notes["score"], notes["threshold"], notes["firing_id"]) == (
            "12.5",
            "6",
            "first-AAPL",
        )
        assert alert["status"]["state"] == "active"
        assert datetime.fromisoformat(alert["startsAt"]) == started
        assert datetime.fromisoformat(alert["endsAt"]) > now + timedelta(minutes=30)
        stack.wait_for(forward.all_committed, 20, "the firing alert's offset committed")

        publish(stack, cloudevent(RESOLVED, "AAPL", started, now, n=2))
        stack.wait_for(
            lambda: not alertmanager.alerts(entity="AAPL"), 30, "the alert resolved in Alertmanager"
        )
        stack.wait_for(forward.all_committed, 20, "the resolved alert's offset committed")
        assert (
            forward.metric("alerting_forward_sent_total", target="alertmanager", type="firing") == 1
        )
        assert (
            forward.metric("alerting_forward_sent_total", target="alertmanager", type="resolved")
            == 1
        )
        assert forward.metric("alerting_forward_up", target="alertmanager") == 1
        assert forward.dead() == []
    finally:
        forward.stop()
    assert "Traceback" not in forward.log()


@needs_alertmanager
def test_alertmanager_down_at_start_then_up_delivers_everything(
    stack: Stack, tmp_path: Path, alertmanager: Alertmanager
) -> None:
    stack.create_topics()
    now = datetime.now(UTC).replace(microsecond=0)
    entities = ["A", "B", "C", "D", "E"]
    publish(stack, *[cloudevent(FIRING, e, now, now, "warning", i) for i, e in enumerate(entities)])
    # a short max.poll.interval: holding the batch longer than that must not cost the
    # forwarder its place in the group (it polls with its partitions paused meanwhile)
    forward = Forward(
        stack,
        tmp_path,
        "--alertmanager",
        f"http://127.0.0.1:{alertmanager.port}",
        ALERTING__KAFKA__MAX_POLL_INTERVAL_MS="2000",
    )
    try:
        stack.wait_for(lambda: "is unreachable" in forward.log(), 40, "the forwarder to say so")
        time.sleep(5)  # several retries while it is down, more than max.poll.interval
        assert forward.process.poll() is None, forward.log()
        assert committed(stack, forward.group) == {}, "committed while Alertmanager was down"
        assert forward.metric("alerting_forward_up", target="alertmanager") == 0
        errors = forward.metric(
            "alerting_forward_errors_total", target="alertmanager", reason="connection"
        )
        assert errors is not None and errors >= 3

        alertmanager.start()
        stack.wait_for(
            lambda: len(alertmanager.alerts()) == len(entities), 30, "every alert delivered"
        )
        assert sorted(a["labels"]["entity"] for a in alertmanager.alerts()) == entities
        stack.wait_for(forward.all_committed, 20, "offsets committed once delivered")
        assert forward.metric("alerting_forward_up", target="alertmanager") == 1
    finally:
        forward.stop()
    log = forward.log()
    assert log.count("is unreachable") == 1, log
    assert log.count("is back after") == 1, log
    assert "commit failed" not in log, log
    assert "Traceback" not in log


# ---------------------------------------------------------------- webhooks


def test_webhook_failing_at_first_gets_every_alert_after_retries(
    stack: Stack, tmp_path: Path, webhook: Callable[[int, bool], str]
) -> None:
    url = webhook(3, False)
    stack.partitions = 1  # one partition: alerts reach the hook in the order published
    stack.create_topics()
    now = datetime.now(UTC).replace(microsecond=0)
    events = [cloudevent(FIRING, f"E{i}", now, now, n=i) for i in range(3)]
    publish(stack, *events)
    forward = Forward(stack, tmp_path, "--webhook", url)
    try:
        stack.wait_for(
            lambda: sum(s == 200 for s, _, _ in Hook.received) == 3, 40, "three accepted POSTs"
        )
        stack.wait_for(forward.all_committed, 20, "offsets committed")
    finally:
        forward.stop()
    assert [s for s, _, _ in Hook.received] == [503, 503, 503, 200, 200, 200]
    assert [b for s, _, b in Hook.received if s == 200] == events  # the CloudEvents, as published
    assert {t for _, t, _ in Hook.received} == {"application/cloudevents+json"}
    assert forward.dead() == []


def test_webhook_gets_its_auth_header_and_a_signature_it_can_check(
    stack: Stack, tmp_path: Path, webhook: Callable[[int, bool], str]
) -> None:
    url = webhook(0, False)
    stack.partitions = 1
    stack.create_topics()
    now = datetime.now(UTC).replace(microsecond=0)
    events = [cloudevent(FIRING, "S", now, now, n=0), cloudevent(RESOLVED, "S", now, now, n=1)]
    publish(stack, *events)
    forward = Forward(
        stack,
        tmp_path,
        "--webhook",
        url,
        ALERTING__FORWARD__WEBHOOK_HEADERS='{"Authorization": "Bearer t0ken"}',
        ALERTING__FORWARD__WEBHOOK_SECRET="s3cret",
    )
    try:
        stack.wait_for(lambda: len(Hook.raw) == 2, 40, "two POSTs")
        stack.wait_for(forward.all_committed, 20, "offsets committed")
    finally:
        forward.stop()
    assert [json.loads(body) for body, _ in Hook.raw] == events
    for body, headers in Hook.raw:
        assert headers["Authorization"] == "Bearer t0ken"
        want = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Alerting-Signature-256"], want)
    assert "t0ken" not in forward.log() and "s3cret" not in forward.log()


def test_webhook_always_failing_dead_letters_and_goes_on(
    stack: Stack, tmp_path: Path, webhook: Callable[[int, bool], str]
) -> None:
    url = webhook(0, True)
    stack.partitions = 1
    stack.create_topics()
    now = datetime.now(UTC).replace(microsecond=0)
    publish(stack, cloudevent(FIRING, "X", now, now, n=0), cloudevent(FIRING, "Y", now, now, n=1))
    forward = Forward(stack, tmp_path, "--webhook", url, ALERTING__FORWARD__MAX_ATTEMPTS="2")
    try:
        stack.wait_for(lambda: len(forward.dead()) == 2, 40, "two dead letters")
        stack.wait_for(forward.all_committed, 20, "offsets committed after the dead letters")
        publish(stack, cloudevent(RESOLVED, "X", now, now + timedelta(seconds=5), n=2))
        stack.wait_for(lambda: len(forward.dead()) == 3, 30, "the next alert handled too")
        stack.wait_for(forward.all_committed, 20, "its offset committed")
        dead = forward.metric(
            "alerting_forward_dead_letters_total", target="webhook", reason="server_error"
        )
        assert dead == 3
        assert forward.process.poll() is None
    finally:
        forward.stop()
    letters = forward.dead()
    assert [(d["alert"]["subject"], d["alert"]["type"]) for d in letters] == [
        ("X", FIRING),
        ("Y", FIRING),
        ("X", RESOLVED),
    ]
    for d in letters:
        assert (d["target"], d["url"], d["reason"], d["attempts"]) == (
            "webhook",
            url,
            "server_error",
            2,
        )
        assert d["topic"] == stack.alerts and "HTTP 503" in d["detail"]
    assert len(Hook.received) == 6


# ---------------------------------------------------------------- alerting tail


def test_tail_filters_by_type_severity_and_entity(stack: Stack) -> None:
    stack.create_topics()
    start = datetime(2026, 1, 5, 10, tzinfo=UTC)
    end = start + timedelta(seconds=185)
    drift = cloudevent(FIRING, "MSFT", start, start, "warning", 9)
    drift["type"] = DRIFT
    publish(
        stack,
        cloudevent(FIRING, "AAPL", start, start, "warning", 1),
        cloudevent(FIRING, "AMZN", start, start, "critical", 2),
        cloudevent(RESOLVED, "AAPL", start, end, "critical", 3),
        drift,
    )
    every = stack.cli("tail", "--from-beginning", "--max", "4", "--timeout", "30")
    assert every.returncode == 0, every.stderr
    lines = every.stdout.splitlines()
    assert [line.split()[1] for line in lines if "AAPL" in line] == ["WARNING", "RESOLVED"]
    assert "RESOLVED after 3m05s" in every.stdout and "DRIFT" in every.stdout

    resolved = stack.cli(
        "tail", "--from-beginning", "--type", "resolved,drift", "--json", "--max", "2",
        "--timeout", "30",
    )  # fmt: skip
    assert resolved.returncode == 0, resolved.stderr
    types = sorted(json.loads(line)["type"] for line in resolved.stdout.splitlines())
    assert types == sorted([RESOLVED, DRIFT])

    critical_a = stack.cli(
        "tail", "--from-beginning", "--severity", "critical", "--entity", "^A", "--type",
        "firing", "--max", "2", "--timeout", "5",
    )  # fmt: skip
    assert critical_a.returncode == 1  # only one alert matches: --max 2 not reached
    (line,) = critical_a.stdout.splitlines()
    assert "CRITICAL" in line and "AMZN" in line


# ---------------------------------------------------------------- end to end


@needs_alertmanager
def test_the_service_alerts_reach_alertmanager_in_their_final_state(
    stack: Stack, tmp_path: Path, alertmanager: Alertmanager
) -> None:
    """Synthetic market → `alerting run` → alerts topic → `alerting forward` → Alertmanager.

    What Alertmanager shows as active is what the lifecycle on the topic says: per entity
    and event kind, the label set of the last firing notification unless a resolved one
    came after it, and a Drift alert for each drifted entity and kind.
    """
    alertmanager.start()
    stack.create_topics()
    replay = stack.cli(
        "replay", "--synthetic", "--count", "8000", "--seed", "11", "--anomaly-rate", "0.004",
        "--fast", "--no-progress",
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    service = stack.start("run")
    forward = Forward(stack, tmp_path, "--alertmanager", f"http://127.0.0.1:{alertmanager.port}")
    try:
        ends = stack.log_end(stack.events)
        stack.wait_for(lambda: stack.committed() == ends, 90, "all events processed")
        stack.wait_for(forward.all_committed, 60, "every alert forwarded")
    finally:
        assert stop(service) == 0, stack.log()
        forward.stop()

    events = [json.loads(r.value) for r in stack.read_all(stack.alerts)]
    kinds = {e["type"] for e in events}
    assert FIRING in kinds and RESOLVED in kinds, kinds
    last: dict[tuple[str, str], dict[str, Any]] = {}
    drifted = set()
    for ce in events:  # in offset order per partition, and an entity stays on its partition
        key = (ce["subject"], ce["data"]["event_kind"])
        if ce["type"] == DRIFT:
            drifted.add(key)
        else:
            last[key] = ce
    expected = {
        ("Anomaly", entity, kind, ce["severity"])
        for (entity, kind), ce in last.items()
        if ce["type"] == FIRING
    } | {("Drift", entity, kind, "warning") for entity, kind in drifted}
    active = {
        (a["labels"]["alertname"], a["labels"]["entity"], a["labels"]["event_kind"],
         a["labels"]["severity"])
        for a in alertmanager.alerts()
    }  # fmt: skip
    assert active == expected
    assert any(ce["type"] == RESOLVED for ce in last.values()), "no episode was resolved"
