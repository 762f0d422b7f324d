"""``alerting forward``: the Alertmanager mapping, retries, dead letters and commit order.

The alerts topic is an in-memory source and HTTP a scripted fake (``Post``); waiting is
injected, so nothing sleeps. The real broker and a real Alertmanager are in
tests/integration/test_forwarding.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import http.server
import json
import logging
import os
import random
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, get_args, get_origin

import pytest
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from alerting.alerts import DRIFT, FIRING, RESOLVED
from alerting.cli import build_parser, main
from alerting.embedded_broker import free_port
from alerting.errors import ConfigError, DeliveryFailed
from alerting.metrics import Metrics
from alerting.retry import Backoff
from alerting.settings import SIGNATURE_HEADER, Settings, load_settings, redact_url
from consumers.forward.deadletters import DeadLetterLog
from consumers.forward.http import post_checked, urllib_post
from consumers.forward.loop import Forwarder
from consumers.forward.mapping import alertmanager_alerts
from consumers.forward.targets import (
    CLOUDEVENTS_JSON,
    AlertmanagerTarget,
    WebhookTarget,
    build_targets,
)

TOPIC = "market.alerts"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
AM_URL = "http://am.test:9093"
HOOK_URL = "http://hook.test/alerts"


def firing(
    entity: str = "AAPL",
    severity: str = "warning",
    notification: str = "new",
    time: str = "2026-01-05T11:00:10Z",
    started_at: str = "2026-01-05T11:00:00Z",
    id: str = "f1",
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id,
        "source": "urn:alerting:detector",
        "type": FIRING,
        "subject": entity,
        "time": time,
        "datacontenttype": "application/json",
        "severity": severity,
        "data": {
            "score": 9.25,
            "threshold": 6.0,
            "severity": severity,
            "detector": "zscore",
            "model_version": "zscore@abc",
            "event_kind": "trade",
            "summary": f"{entity} trade: log_return z=+9.2",
            "status": "firing",
            "notification": notification,
            "firing_id": "f1",
            "started_at": started_at,
        },
    }


def resolved(
    entity: str = "AAPL", time: str = "2026-01-05T11:02:00Z", severity: str = "critical"
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "r1",
        "source": "urn:alerting:detector",
        "type": RESOLVED,
        "subject": entity,
        "time": time,
        "datacontenttype": "application/json",
        "severity": severity,
        "data": {
            "score": 1.5,
            "threshold": 6.0,
            "severity": severity,
            "detector": "zscore",
            "model_version": "zscore@abc",
            "event_kind": "trade",
            "summary": f"{entity} back to normal",
            "status": "resolved",
            "firing_id": "f1",
            "started_at": "2026-01-05T11:00:00Z",
            "duration_s": 120.0,
        },
    }


def drift(entity: str = "AAPL") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "d1",
        "type": DRIFT,
        "subject": entity,
        "time": "2026-01-05T11:30:00Z",
        "severity": "warning",
        "data": {
            "detector": "zscore",
            "event_kind": "trade",
            "summary": f"{entity} drift (adwin): score",
            "drift": {"detector": "adwin", "action": "none", "signals": []},
        },
    }


# ---------------------------------------------------------------- the mapping


def test_a_new_firing_alert_maps_to_one_active_alertmanager_alert() -> None:
    (alert,) = alertmanager_alerts(firing(), NOW, firing_ttl_s=600)
    assert alert["labels"] == {
        "alertname": "Anomaly",
        "entity": "AAPL",
        "severity": "warning",
        "detector": "zscore",
        "event_kind": "trade",
    }
    notes = alert["annotations"]
    assert notes["summary"] == "AAPL trade: log_return z=+9.2"
    assert (notes["score"], notes["threshold"], notes["firing_id"]) == ("9.25", "6", "f1")
    assert notes["notification"] == "new" and notes["alert_id"] == "f1"
    assert alert["startsAt"] == "2026-01-05T11:00:00Z"  # the episode's start
    assert alert["endsAt"] == "2026-01-05T12:10:00Z"  # now + ttl


def test_an_escalation_fires_critical_and_resolves_the_warning_label_set() -> None:
    ce = firing(severity="critical", notification="escalated", time="2026-01-05T11:00:30Z")
    critical, warning = alertmanager_alerts(ce, NOW, firing_ttl_s=600)
    assert critical["labels"]["severity"] == "critical"
    assert critical["endsAt"] == "2026-01-05T12:10:00Z"
    assert warning["labels"] == {**critical["labels"], "severity": "warning"}
    assert warning["endsAt"] == "2026-01-05T11:00:30Z"


def test_a_resolved_alert_resolves_both_severities_at_the_resolve_time() -> None:
    alerts = alertmanager_alerts(resolved(), NOW)
    assert [a["labels"]["severity"] for a in alerts] == ["warning", "critical"]
    for a in alerts:
        assert a["labels"]["alertname"] == "Anomaly" and a["labels"]["entity"] == "AAPL"
        assert (a["startsAt"], a["endsAt"]) == ("2026-01-05T11:00:00Z", "2026-01-05T11:02:00Z")
        assert a["annotations"]["duration_s"] == "120"
        assert "notification" not in a["annotations"]


def test_times_after_now_are_clamped_so_a_resolve_is_never_in_the_future() -> None:
    alerts = alertmanager_alerts(resolved(time="2026-01-05T13:00:00Z"), NOW)
    assert {a["endsAt"] for a in alerts} == {"2026-01-05T12:00:00Z"}


def test_drift_is_a_warning_alert_named_drift_or_skipped() -> None:
    (alert,) = alertmanager_alerts(drift(), NOW, drift_ttl_s=60)
    assert alert["labels"]["alertname"] == "Drift"
    assert alert["labels"]["severity"] == "warning"
    assert alert["startsAt"] == "2026-01-05T11:30:00Z"
    assert alert["endsAt"] == "2026-01-05T12:01:00Z"
    assert alertmanager_alerts(drift(), NOW, drift=False) == []


def test_other_types_and_missing_fields_do_not_break_the_mapping() -> None:
    assert alertmanager_alerts({"type": "com.example.other"}, NOW) == []
    (alert,) = alertmanager_alerts({"type": FIRING, "subject": "X", "data": None}, NOW)
    assert alert["labels"] == {"alertname": "Anomaly", "entity": "X", "severity": "warning"}
    assert alert["startsAt"] == "2026-01-05T12:00:00Z"


# ---------------------------------------------------------------- fakes


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None


def records_of(events: Sequence[dict[str, Any] | bytes], partition: int = 0) -> list[Rec]:
    return [
        Rec(TOPIC, partition, i, e if isinstance(e, bytes) else json.dumps(e).encode())
        for i, e in enumerate(events)
    ]


@dataclass
class FakeSource:
    batches: list[list[Rec]]
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)
    keepalives: int = 0
    closed: bool = False
    #: called when the batches are all read (e.g. to stop a ``Forwarder.run``)
    on_empty: Callable[[], object] | None = None

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[Rec]:
        if not self.batches and self.on_empty is not None:
            self.on_empty()
        return self.batches.pop(0) if self.batches else []

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.commits.append(dict(offsets))

    def keepalive(self) -> None:
        self.keepalives += 1

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeHttp:
    """Answers POSTs from a script: an int is a status, an exception is raised; then 200."""

    script: list[int | Exception] = field(default_factory=list)
    requests: list[tuple[str, Any, dict[str, str]]] = field(default_factory=list)
    accepted: list[tuple[str, Any]] = field(default_factory=list)

    def __call__(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> tuple[int, str]:
        payload = json.loads(body)
        self.requests.append((url, payload, dict(headers)))
        answer = self.script.pop(0) if self.script else 200
        if isinstance(answer, Exception):
            raise answer
        if answer < 300:
            self.accepted.append((url, payload))
        return answer, "" if answer < 300 else "nope"


@dataclass
class Waits:
    """The injected wait: records each step; ``stop_after`` steps, it reports a stop."""

    steps: list[float] = field(default_factory=list)
    stop_after: int | None = None

    def __call__(self, seconds: float) -> bool:
        self.steps.append(seconds)
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def refused() -> urllib.error.URLError:
    return urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def forwarder(
    batches: list[list[Rec]],
    targets: Sequence[Any],
    tmp_path: Path,
    metrics: Metrics,
    waits: Waits | None = None,
) -> tuple[Forwarder, FakeSource]:
    source = FakeSource(batches)
    fwd = Forwarder(
        source,
        targets,
        DeadLetterLog(tmp_path / "dead.jsonl", clock=lambda: NOW.timestamp()),
        metrics,
        backoff=Backoff(0.5, 4.0),
        wait=waits if waits is not None else Waits(),
    )
    return fwd, source


def am(http: FakeHttp) -> AlertmanagerTarget:
    return AlertmanagerTarget(AM_URL, post=http, clock=lambda: NOW.timestamp())


def dead_letters(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "dead.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# ---------------------------------------------------------------- Alertmanager delivery


def test_a_batch_is_one_post_and_the_offsets_are_committed_after_it(
    tmp_path: Path, metrics: Metrics
) -> None:
    http = FakeHttp()
    fwd, source = forwarder(
        [records_of([firing(), resolved(), drift()])], [am(http)], tmp_path, metrics
    )
    assert fwd.run_once() == 3
    ((url, payload, headers),) = http.requests
    assert url == AM_URL + "/api/v2/alerts"
    assert headers["Content-Type"] == "application/json"
    assert [a["labels"]["alertname"] for a in payload] == ["Anomaly"] * 3 + ["Drift"]
    assert source.commits == [{(TOPIC, 0): 3}]
    for kind in ("firing", "resolved", "drift"):
        assert sample(metrics, "alerting_forward_sent_total", target="alertmanager", type=kind) == 1
    assert sample(metrics, "alerting_forward_up", target="alertmanager") == 1


def test_alertmanager_down_holds_the_batch_with_backoff_and_commits_once_it_is_back(
    tmp_path: Path, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    http = FakeHttp([refused(), refused(), 503, TimeoutError("timed out")])
    waits = Waits()
    fwd, source = forwarder([records_of([firing()])], [am(http)], tmp_path, metrics, waits)
    ups = []
    original = fwd._came_up

    def spy(target: Any, delivered: int) -> None:
        ups.append(sample(metrics, "alerting_forward_up", target="alertmanager"))
        original(target, delivered)

    fwd._came_up = spy  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="consumers.forward"):
        fwd.run_once()
    assert len(http.requests) == 5 and len(http.accepted) == 1
    assert source.commits == [{(TOPIC, 0): 1}]
    # 0.5 + 1 + 2 + 4 seconds, in steps of at most 1 s, staying in the group between steps
    assert sum(waits.steps) == 7.5 and max(waits.steps) <= 1.0
    assert source.keepalives == len(waits.steps)
    assert ups == [0.0]  # down until the accepted POST
    assert sample(metrics, "alerting_forward_up", target="alertmanager") == 1
    errors = {
        r: sample(metrics, "alerting_forward_errors_total", target="alertmanager", reason=r)
        for r in ("connection", "server_error", "timeout")
    }
    assert errors == {"connection": 2, "server_error": 1, "timeout": 1}
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 2, lines  # one when it went down, one when it came back
    assert "unreachable" in lines[0] and AM_URL in lines[0]
    assert caplog.records[0].levelno == logging.WARNING
    assert "is back after" in lines[1]
    assert dead_letters(tmp_path) == []


def test_stopping_while_alertmanager_is_down_commits_nothing_and_loses_nothing(
    tmp_path: Path, metrics: Metrics
) -> None:
    http = FakeHttp([refused()] * 100)
    fwd, source = forwarder(
        [records_of([firing()])], [am(http)], tmp_path, metrics, Waits(stop_after=6)
    )
    fwd.run_once()
    assert source.commits == [] and http.accepted == []
    assert dead_letters(tmp_path) == []
    assert sample(metrics, "alerting_forward_up", target="alertmanager") == 0


def test_an_alert_alertmanager_rejects_goes_to_the_dead_letters_and_the_rest_through(
    tmp_path: Path, metrics: Metrics
) -> None:
    # the batch is refused (400), then each alert is sent alone: the second is refused again
    http = FakeHttp([400, 200, 400, 200])
    events = [firing(entity="A"), firing(entity="B"), firing(entity="C")]
    fwd, source = forwarder([records_of(events)], [am(http)], tmp_path, metrics)
    fwd.run_once()
    delivered = [p[0]["labels"]["entity"] for _, p in http.accepted]
    assert delivered == ["A", "C"]
    (dead,) = dead_letters(tmp_path)
    assert (dead["target"], dead["reason"], dead["attempts"]) == ("alertmanager", "rejected", 1)
    assert dead["alert"]["subject"] == "B" and dead["offset"] == 1
    assert "HTTP 400" in dead["detail"]
    assert source.commits == [{(TOPIC, 0): 3}]
    assert (
        sample(
            metrics, "alerting_forward_dead_letters_total", target="alertmanager", reason="rejected"
        )
        == 1
    )


def test_an_unreadable_record_is_dead_lettered_and_committed(
    tmp_path: Path, metrics: Metrics
) -> None:
    http = FakeHttp()
    fwd, source = forwarder(
        [records_of([b"not json", firing(), b'{"no": "type"}'])], [am(http)], tmp_path, metrics
    )
    fwd.run_once()
    assert [d["reason"] for d in dead_letters(tmp_path)] == ["undecodable", "undecodable"]
    assert dead_letters(tmp_path)[0]["raw"] == "not json"
    assert len(http.accepted) == 1 and len(http.accepted[0][1]) == 1
    assert source.commits == [{(TOPIC, 0): 3}]


# ---------------------------------------------------------------- webhooks


def test_a_webhook_gets_each_cloudevent_as_its_body(tmp_path: Path, metrics: Metrics) -> None:
    http = FakeHttp()
    events = [firing(), resolved(), drift()]
    fwd, source = forwarder(
        [records_of(events)], [WebhookTarget(HOOK_URL, post=http)], tmp_path, metrics
    )
    fwd.run_once()
    assert [p for _, p, _ in http.requests] == events
    assert {h["Content-Type"] for _, _, h in http.requests} == {CLOUDEVENTS_JSON}
    assert source.commits == [{(TOPIC, 0): 3}]


def test_auth_headers_and_the_body_signature_go_with_every_request(
    tmp_path: Path, metrics: Metrics, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[str, bytes, dict[str, str]]] = []

    def post(
        url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> tuple[int, str]:
        sent.append((url, body, dict(headers)))
        return 200, ""

    for name in list(__import__("os").environ):
        if name.startswith("ALERTING"):
            monkeypatch.delenv(name)
    settings = load_settings(
        forward={
            "alertmanager_url": AM_URL,
            "webhook_url": HOOK_URL,
            "alertmanager_headers": {"Authorization": "Basic YWxlcnQ6cw=="},
            "webhook_headers": {"Authorization": "Bearer t0ken", "X-Team": "desk-7"},
            "webhook_secret": "s3cret",
        }
    )
    targets = build_targets(settings)
    for target in targets:
        target.post = post  # type: ignore[attr-defined]
    events = [firing(), resolved()]
    fwd, _ = forwarder([records_of(events)], targets, tmp_path, metrics)
    fwd.run_once()
    (am,) = [(b, h) for u, b, h in sent if u.startswith(AM_URL)]
    hooks = [(b, h) for u, b, h in sent if u == HOOK_URL]
    assert am[1] == {"Content-Type": "application/json", "Authorization": "Basic YWxlcnQ6cw=="}
    assert [json.loads(b) for b, _ in hooks] == events
    for body, headers in hooks:
        assert headers["Authorization"] == "Bearer t0ken" and headers["X-Team"] == "desk-7"
        assert headers["Content-Type"] == CLOUDEVENTS_JSON
        # what a receiver does: recompute over the raw body with the shared key
        want = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers[SIGNATURE_HEADER], want)
    assert SIGNATURE_HEADER not in am[1]  # Alertmanager's API takes no signature
    shown = json.dumps(settings.masked())  # `alerting config` never shows the secrets
    assert "t0ken" not in shown and "s3cret" not in shown and "YWxlcnQ6cw" not in shown


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Bad Name": "x"}, "not an HTTP header name"),
        ({"X-Ok": "a\r\nX-Injected: 1"}, "holds a line break"),
        ({"content-type": "text/plain"}, "set by the forwarder itself"),
        ({"X-Alerting-Signature-256": "sha256=forged"}, "set by the forwarder itself"),
    ],
)
def test_wrong_headers_are_refused_at_start_without_showing_the_value(
    headers: dict[str, str], why: str
) -> None:
    with pytest.raises(ConfigError, match=r"forward\.webhook_headers") as info:
        load_settings(forward={"webhook_headers": headers})
    assert why in str(info.value)
    assert "Injected" not in str(info.value) and "forged" not in str(info.value)


def test_a_webhook_failing_a_few_times_is_retried_until_it_accepts(
    tmp_path: Path, metrics: Metrics
) -> None:
    http = FakeHttp([503, refused()])
    waits = Waits()
    target = WebhookTarget(HOOK_URL, max_attempts=3, post=http)
    fwd, source = forwarder([records_of([firing()])], [target], tmp_path, metrics, waits)
    fwd.run_once()
    assert len(http.requests) == 3 and len(http.accepted) == 1
    assert sum(waits.steps) == 1.5
    assert dead_letters(tmp_path) == [] and source.commits == [{(TOPIC, 0): 1}]


def test_a_webhook_that_always_fails_dead_letters_each_alert_and_moves_on(
    tmp_path: Path, metrics: Metrics
) -> None:
    http = FakeHttp([503] * 3 + [refused()] * 3)
    target = WebhookTarget(HOOK_URL, max_attempts=3, post=http)
    fwd, source = forwarder(
        [records_of([firing(entity="A"), firing(entity="B")]), records_of([firing(entity="C")], 1)],
        [target],
        tmp_path,
        metrics,
    )
    fwd.run_once()
    fwd.run_once()
    dead = dead_letters(tmp_path)
    assert [(d["alert"]["subject"], d["reason"], d["attempts"]) for d in dead] == [
        ("A", "server_error", 3),
        ("B", "connection", 3),
    ]
    assert dead[0]["url"] == HOOK_URL and dead[0]["time"] == "2026-01-05T12:00:00Z"
    assert [a[1]["subject"] for a in http.accepted] == ["C"]
    assert source.commits == [{(TOPIC, 0): 2}, {(TOPIC, 1): 1}]
    assert (
        sample(
            metrics, "alerting_forward_dead_letters_total", target="webhook", reason="server_error"
        )
        == 1
    )
    assert sample(metrics, "alerting_forward_up", target="webhook") == 1


def test_both_targets_each_get_the_batch_before_the_commit(
    tmp_path: Path, metrics: Metrics
) -> None:
    am_http, hook_http = FakeHttp([refused()]), FakeHttp()
    targets = [am(am_http), WebhookTarget(HOOK_URL, post=hook_http)]
    fwd, source = forwarder([records_of([firing(), drift()])], targets, tmp_path, metrics)
    fwd.run_once()
    assert len(am_http.accepted) == 1 and len(hook_http.accepted) == 2
    assert source.commits == [{(TOPIC, 0): 2}]


# ---------------------------------------------------------------- never a lost alert


@pytest.mark.parametrize("seed", range(20))
def test_every_committed_alert_was_accepted_by_alertmanager(
    seed: int, tmp_path: Path, metrics: Metrics
) -> None:
    """Random outages, rejections and stops: the oracle replays the run and checks that
    each commit covers only alerts Alertmanager accepted (or that went to dead letters),
    and that after restarts every alert was delivered or dead-lettered."""
    rng = random.Random(seed)
    events = [firing(entity=f"E{i}", id=f"id{i}") for i in range(40)]
    bad = {i for i in range(40) if rng.random() < 0.1}
    for i in bad:
        events[i]["time"] = "not a time"  # our fake Alertmanager refuses these

    def alertmanager(
        url: str, body: bytes, headers: Mapping[str, str], timeout: float
    ) -> tuple[int, str]:
        if rng.random() < 0.4:
            raise refused()
        payload = json.loads(body)
        if any(a["annotations"]["alert_id"] in {f"id{i}" for i in bad} for a in payload):
            return 400, "bad"
        accepted.update(a["annotations"]["alert_id"] for a in payload)
        return 200, ""

    accepted: set[str] = set()
    committed = 0
    rounds = 0
    while committed < len(events) and rounds < 50:  # each round a process (re)start
        rounds += 1
        pending = records_of(events)[committed:]
        batches = []
        while pending:
            size = rng.randint(1, 7)
            batches.append(pending[:size])
            pending = pending[size:]
        waits = Waits(stop_after=rng.randint(1, 30))
        fwd, source = forwarder(batches, [am(FakeHttp())], tmp_path, metrics, waits)
        fwd.targets[0].post = alertmanager  # type: ignore[attr-defined]
        while source.batches and not (waits.stop_after and len(waits.steps) >= waits.stop_after):
            fwd.run_once()
        for commit in source.commits:
            committed = max(committed, commit[(TOPIC, 0)])
            dead = {d["offset"] for d in dead_letters(tmp_path)}
            for i in range(committed):
                assert f"id{i}" in accepted or i in dead, (seed, i)
    assert committed == len(events)
    dead = {d["offset"] for d in dead_letters(tmp_path)}
    assert dead == bad
    assert accepted == {f"id{i}" for i in range(40)} - {f"id{i}" for i in bad}


# ---------------------------------------------------------------- HTTP on the standard library


class _Scripted(http.server.BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        type(self).bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"answer %d" % status)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Scripted.statuses, _Scripted.bodies = [], []
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        finally:
            httpd.shutdown()
            thread.join()


def test_post_checked_classifies_answers_of_a_real_server(server: str) -> None:
    _Scripted.statuses = [200, 503, 429, 400]
    post_checked(urllib_post, server, b"{}", {"Content-Type": "application/json"}, 5)
    for reason, retryable in (("server_error", True), ("throttled", True), ("rejected", False)):
        with pytest.raises(DeliveryFailed) as info:
            post_checked(urllib_post, server, b"{}", {}, 5)
        assert (info.value.reason, info.value.retryable) == (reason, retryable)
    assert "HTTP 400 answer 400" in str(info.value)
    assert _Scripted.bodies == [b"{}"] * 4


def test_post_checked_says_connection_when_nothing_listens() -> None:
    with pytest.raises(DeliveryFailed) as info:
        post_checked(urllib_post, f"http://127.0.0.1:{free_port()}/", b"{}", {}, 2)
    assert info.value.reason == "connection" and info.value.retryable


# ---------------------------------------------------------------- redirects are never followed

LEAK = "leak"  # in every secret below: no output may hold it


class _OtherOrigin(http.server.BaseHTTPRequestHandler):
    """Where the redirects point: records every request that reaches it."""

    seen: ClassVar[list[tuple[str, str, dict[str, str]]]] = []

    def _record(self) -> None:
        type(self).seen.append((self.command, self.path, dict(self.headers)))
        self.send_response(200)
        self.end_headers()

    do_GET = do_POST = do_PUT = _record

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """The configured target: answers every POST with ``status`` to ``location``."""

    status: ClassVar[int] = 302
    location: ClassVar[str] = ""
    posts: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts.append(dict(self.headers))
        page = f'<a href="{self.location}">moved</a>'.encode()  # as servers do
        self.send_response(self.status)
        self.send_header("Location", self.location)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on a free local port; yields its origin."""
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join()


@pytest.fixture
def redirect_pair() -> Iterator[tuple[str, str]]:
    """(the redirecting target's origin, the other origin), both real local servers."""
    _OtherOrigin.seen, _Redirecting.posts = [], []
    with serving(_OtherOrigin) as other, serving(_Redirecting) as target:
        yield target, other


LOCATIONS = [
    "{other}/steal?token=t0k3n-leak",
    "http://mallory:pw-leak@{hostport}/steal?sig=s1g-leak",
]


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_webhook_redirect_is_a_failure_dead_lettered_and_nothing_reaches_the_other_origin(
    status: int,
    location: str,
    redirect_pair: tuple[str, str],
    tmp_path: Path,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target_origin, other = redirect_pair
    _Redirecting.status = status
    _Redirecting.location = location.format(other=other, hostport=other.split("//")[1])
    hook = WebhookTarget(
        target_origin + "/hook",
        max_attempts=3,
        headers={"Authorization": "Bearer bearer-leak"},
        secret=b"key-leak",
    )
    fwd, source = forwarder([records_of([firing()])], [hook], tmp_path, metrics)
    with caplog.at_level(logging.DEBUG, logger="consumers.forward"):
        fwd.run_once()
    assert _OtherOrigin.seen == []  # no request, so neither the token nor the signature
    assert len(_Redirecting.posts) == 3  # its attempts, all to the configured origin
    assert sample(metrics, "alerting_forward_sent_total", target="webhook", type="firing") == 0
    errors = sample(metrics, "alerting_forward_errors_total", target="webhook", reason="redirected")
    assert errors == 3
    (dead,) = dead_letters(tmp_path)
    assert (dead["reason"], dead["attempts"], dead["alert"]["id"]) == ("redirected", 3, "f1")
    assert dead["detail"] == f"HTTP {status} redirect to {other} (not followed)"
    assert source.commits == [{(TOPIC, 0): 1}]  # dead-lettered, so the forwarder moves on
    assert LEAK not in (tmp_path / "dead.jsonl").read_text()
    assert LEAK not in caplog.text


@pytest.mark.parametrize("status", [302, 307])
def test_an_alertmanager_redirect_holds_the_batch_and_nothing_reaches_the_other_origin(
    status: int,
    redirect_pair: tuple[str, str],
    tmp_path: Path,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target_origin, other = redirect_pair
    _Redirecting.status = status
    _Redirecting.location = f"{other}/api/v2/alerts?token=t0k3n-leak"
    target = AlertmanagerTarget(
        target_origin, headers={"Authorization": "Basic basic-leak"}, clock=lambda: NOW.timestamp()
    )
    fwd, source = forwarder(
        [records_of([firing()])], [target], tmp_path, metrics, Waits(stop_after=4)
    )
    with caplog.at_level(logging.INFO, logger="consumers.forward"):
        fwd.run_once()
    assert _OtherOrigin.seen == []
    assert len(_Redirecting.posts) >= 2  # retried as long as it takes, like a 5xx
    assert sample(metrics, "alerting_forward_sent_total", target="alertmanager", type="firing") == 0
    assert source.commits == [] and dead_letters(tmp_path) == []  # held, not lost
    (line,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert f"redirected: HTTP {status} redirect to {other} (not followed)" in line
    assert LEAK not in caplog.text


# ---------------------------------------------------------------- secrets in URLs and messages


@pytest.fixture
def no_alerting_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALERTING"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:pass@hooks.test/alerts", "https://***@hooks.test/alerts"),
        ("https://tok@hooks.test:8443/a/b", "https://***@hooks.test:8443/a/b"),
        (
            "https://h.test/x?token=1&access_token=2&key=3&apikey=4&sig=5&signature=6"
            "&secret=7&password=8&team=desk",
            "https://h.test/x?token=***&access_token=***&key=***&apikey=***&sig=***"
            "&signature=***&secret=***&password=***&team=***",
        ),
        ("https://u:p@h.test/x?token=t#frag", "https://***@h.test/x?token=***#***"),
        ("https://h.test/x?bare-token", "https://h.test/x?***"),
        ("http://alertmanager:9093", "http://alertmanager:9093"),
        ("http://127.0.0.1:9/hook", "http://127.0.0.1:9/hook"),
        ("http://[::1", "***"),  # unreadable: nothing of it is known to be safe
    ],
)
def test_redact_url_hides_credentials_and_every_query_value(url: str, shown: str) -> None:
    assert redact_url(url) == shown
    assert redact_url(shown) == shown  # redacting twice changes nothing


SECRET_URLS = {
    "alertmanager_url": "https://am-user:am-pw-leak@am.test:9093/?token=am-t0k-leak",
    "webhook_url": "https://hook-user:hook-pw-leak@hooks.test/alerts?access_token=t0k-leak&team=x",
}
SHOWN_URLS = {
    "alertmanager_url": "https://***@am.test:9093/?token=***",
    "webhook_url": "https://***@hooks.test/alerts?access_token=***&team=***",
}


def _secret_fields() -> list[tuple[str, str, Any]]:
    """(section, field, declared type) of every setting whose type holds a SecretStr."""

    def holds(declared: Any) -> bool:
        return declared is SecretStr or any(holds(arg) for arg in get_args(declared))

    def model(declared: Any) -> Any:  # [[inputs]] is a list of sections
        return get_args(declared)[0] if get_origin(declared) is list else declared

    return [
        (section, name, field.annotation)
        for section, sfield in Settings.model_fields.items()
        for name, field in model(sfield.annotation).model_fields.items()
        if holds(field.annotation)
    ]


def _secret_value(declared: Any, value: Any) -> Any:
    """``value`` as the setting takes it: a dict of headers, or the value itself."""
    is_dict = any(get_origin(t) is dict for t in (declared, *get_args(declared)))
    return {"X-Canary": value} if is_dict else value


def test_secret_fields_are_found_by_their_type() -> None:
    found = {(section, name) for section, name, _ in _secret_fields()}
    assert {
        ("kafka", "sasl_password"),
        ("kafka", "ssl_password"),
        ("forward", "webhook_secret"),
        ("forward", "webhook_headers"),
        ("forward", "alertmanager_headers"),
    } <= found


@pytest.mark.parametrize("as_json", [False, True])
def test_alerting_config_masks_every_secret_by_type_and_redacts_the_urls(
    as_json: bool,
    no_alerting_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    canary = "canary-" + LEAK * 4  # long enough for any minimum length
    for section, name, declared in _secret_fields():
        value = _secret_value(declared, canary)
        text = json.dumps(value) if isinstance(value, dict) else value
        monkeypatch.setenv(f"ALERTING__{section.upper()}__{name.upper()}", text)
    for name, url in SECRET_URLS.items():
        monkeypatch.setenv(f"ALERTING__FORWARD__{name.upper()}", url)
    assert main(["config", "--json"] if as_json else ["config"]) == 0
    out = capsys.readouterr().out
    assert LEAK not in out and "t0k" not in out
    for shown in SHOWN_URLS.values():
        assert shown in out
    assert '"X-Canary": "**********"' in out  # a dict of secrets: each value masked
    masked = load_settings(forward=SECRET_URLS).masked()["forward"]
    assert {k: masked[k] for k in SHOWN_URLS} == SHOWN_URLS
    assert load_settings(forward=SECRET_URLS).forward.webhook_url == SECRET_URLS["webhook_url"]


@pytest.mark.parametrize(("section", "name", "declared"), _secret_fields())
def test_an_invalid_secret_is_never_echoed(
    section: str, name: str, declared: Any, no_alerting_env: None
) -> None:
    with pytest.raises(ConfigError, match=rf"setting {section}\.{name}") as info:
        load_settings(**{section: {name: _secret_value(declared, 987654321)}})
    assert "987654321" not in str(info.value)


def test_a_misspelt_secret_setting_is_named_but_not_echoed(no_alerting_env: None) -> None:
    with pytest.raises(ConfigError, match=r"forward\.webhook_secrte") as info:
        load_settings(forward={"webhook_secrte": "s3cret-" + LEAK})
    assert LEAK not in str(info.value)


@pytest.mark.parametrize(
    ("url", "why", "shown"),
    [
        ("ftp://u:pw-leak@h.test/x?token=t-leak", "pattern", "'ftp://***@h.test/x?token=***'"),
        (
            "https://u:pw-leak@h.test/a b?token=t-leak",
            "a space",
            "'https://***@h.test/a b?token=***'",
        ),
        ("https://:pw-leak@/x?token=t-leak", "no host", "'https://***@/x?token=***'"),
    ],
)
def test_a_wrong_url_is_shown_redacted(
    url: str, why: str, shown: str, no_alerting_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("webhook_url", "alertmanager_url"):
        with pytest.raises(ConfigError, match=rf"forward\.{name}") as info:
            load_settings(forward={name: url})
        assert why in str(info.value) and shown in str(info.value)
        assert LEAK not in str(info.value)
    assert main(["forward", "--webhook", url]) == 2  # the flag takes the same way
    err = capsys.readouterr().err
    assert "forward.webhook_url" in err and LEAK not in err


def test_urls_are_redacted_in_logs_and_dead_letters_and_credentials_go_as_basic_auth(
    tmp_path: Path, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    url = "https://hook-user:pw-leak@hooks.test/alerts?token=t0k3n-leak&team=desk"
    sent: list[tuple[str, dict[str, str]]] = []

    def echoing(
        url: str, body: bytes, headers: Mapping[str, str], timeout_s: float
    ) -> tuple[int, str]:
        sent.append((url, dict(headers)))
        return 503, f"no route for {url}"  # servers echo what they got

    hook = WebhookTarget(url, max_attempts=2, post=echoing)
    fwd, source = forwarder([records_of([firing()])], [hook], tmp_path, metrics)
    source.on_empty = fwd.stop.set
    with caplog.at_level(logging.DEBUG, logger="consumers.forward"):
        fwd.run()  # its first line names the targets too
    basic = "Basic " + base64.b64encode(b"hook-user:pw-leak").decode()
    for request_url, headers in sent:  # the receiver needs its token, credentials as a header
        assert request_url == "https://hooks.test/alerts?token=t0k3n-leak&team=desk"
        assert headers["Authorization"] == basic
    (dead,) = dead_letters(tmp_path)
    assert dead["url"] == "https://***@hooks.test/alerts?token=***&team=***"
    assert dead["detail"] == "HTTP 503 no route for https://hooks.test/alerts?token=***&team=***"
    assert LEAK not in (tmp_path / "dead.jsonl").read_text()
    assert "https://***@hooks.test/alerts?token=***" in caplog.text
    assert LEAK not in caplog.text


def test_the_alertmanager_api_path_goes_before_the_query_and_credentials_become_a_header() -> None:
    http = FakeHttp()
    target = AlertmanagerTarget(
        "http://am:pw@am.test:9093/prefix/?token=t", post=http, clock=lambda: NOW.timestamp()
    )
    target.send(Forwarder._item(r) for r in records_of([firing()]))  # type: ignore[arg-type]
    ((url, _, headers),) = http.requests
    assert url == "http://am.test:9093/prefix/api/v2/alerts?token=t"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"am:pw").decode()
    assert target.url == "http://***@am.test:9093/prefix/?token=***"
    with pytest.raises(ValueError, match="keep one of them"):
        WebhookTarget("https://u:p@h.test/", headers={"authorization": "Bearer x"})


@pytest.mark.parametrize(
    "error",
    [
        http.client.IncompleteRead(b"part"),
        http.client.InvalidURL("URL can't contain control characters. '/x?token=t0k3n-leak'"),
    ],
)
def test_http_client_errors_are_a_failed_delivery_without_the_urls_secrets(
    error: Exception,
) -> None:
    def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> Any:
        raise error

    with pytest.raises(DeliveryFailed) as info:
        post_checked(post, "https://h.test/x?token=t0k3n-leak", b"{}", {}, 1)
    assert info.value.reason == "connection" and info.value.retryable
    assert LEAK not in str(info.value)


# ---------------------------------------------------------------- settings and CLI


def test_forward_settings_defaults_and_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("ALERTING"):
            monkeypatch.delenv(name)
    f = load_settings().forward
    assert (f.group_id, f.max_attempts, f.drift) == ("alerting-forward", 5, "alert")
    with pytest.raises(ConfigError, match="--alertmanager URL"):
        build_targets(load_settings())
    monkeypatch.setenv("ALERTING__FORWARD__WEBHOOK_URL", HOOK_URL)
    monkeypatch.setenv("ALERTING__FORWARD__DRIFT", "skip")
    (target,) = build_targets(load_settings())
    assert isinstance(target, WebhookTarget) and target.drift is False
    monkeypatch.setenv("ALERTING__FORWARD__ALERTMANAGER_URL", "am:9093")
    with pytest.raises(ConfigError, match=r"forward\.alertmanager_url"):
        load_settings()


def test_constructors_name_the_wrong_parameter() -> None:
    with pytest.raises(ValueError, match="url"):
        AlertmanagerTarget("am:9093")
    with pytest.raises(ValueError, match="max_attempts"):
        WebhookTarget(HOOK_URL, max_attempts=0)
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(0)


def test_cli_forward_without_a_target_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("ALERTING"):
            monkeypatch.delenv(name)
    assert main(["forward"]) == 2
    assert "--alertmanager URL" in capsys.readouterr().err
    assert main(["forward", "--alertmanager", "localhost:9093"]) == 2
    assert "forward.alertmanager_url" in capsys.readouterr().err


def test_an_unwritable_dead_letter_log_is_refused_at_start(tmp_path: Path) -> None:
    from alerting.errors import AlertingError

    with pytest.raises(AlertingError, match="dead_letter_path"):
        DeadLetterLog(tmp_path / "missing" / "dead.jsonl").check()


# ---------------------------------------------------------------- deploy files

ROOT = Path(__file__).resolve().parents[4]


@pytest.mark.skipif(
    shutil.which("amtool") is None,
    reason="amtool missing: `make system-deps` (Debian package prometheus-alertmanager)",
)
def test_the_shipped_alertmanager_config_is_valid() -> None:
    config = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    done = subprocess.run(
        ["amtool", "check-config", str(config)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_forwards_to_its_alertmanager_service() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    forward, alertmanager = services["forward"], services["alertmanager"]
    args = build_parser().parse_args(forward["command"])
    url = urllib.parse.urlsplit(args.alertmanager)
    assert url.hostname == "alertmanager" and url.port == 9093
    assert any(str(p).endswith(":9093") for p in alertmanager["ports"])
    flags = dict(f.split("=", 1) for f in alertmanager["command"])
    config = flags["--config.file"]
    (volume,) = alertmanager["volumes"]
    source, target = volume.split(":")[:2]
    assert config.startswith(target + "/")
    assert (ROOT / source / config[len(target) + 1 :]).is_file()
    assert "alertmanager" in forward["depends_on"]
