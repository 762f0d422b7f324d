"""A real Prometheus scrapes the service: every dashboard query and recording rule has data.

Grafana cannot run here, so this is how the dashboard is tested: ``alerting run`` on the
test's topics with a synthetic market replayed into them in real time, the ``prometheus``
binary (Debian package ``prometheus``, installed by ``make test``) with the shipped
deploy/prometheus/prometheus.yml (scrape and evaluation every second, the target pointed
at the service) and rules, then every query of the dashboard, with Grafana's variables
filled in, and every recording rule through the HTTP API.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kafkastack import Stack, metrics_port, stop

from alerting.detectors import DEFAULT_DETECTOR
from alerting.embedded_broker import free_port

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = shutil.which("prometheus")
JOB = "alerting"
# what Grafana would use at a 1 s scrape interval over a short time range: a few scrapes
RATE_INTERVAL = "10s"


def api(port: int, path: str, **params: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def prometheus_config(workdir: Path, target: str) -> Path:
    """The shipped config, scraping and evaluating every second, pointed at ``target``."""
    text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    for pattern, replacement in (
        (r"(?m)^(\s+scrape_interval:) 15s$", r"\1 1s"),
        (r"(?m)^(\s+evaluation_interval:) 15s$", r"\1 1s"),
        (
            r"dns_sd_configs:\n\s+- names: \[\"alerting\"\]\n\s+type: A\n\s+port: 9464",
            f'static_configs:\n      - targets: ["{target}"]',
        ),
    ):
        text, n = re.subn(pattern, replacement, text)
        assert n == 1, f"deploy/prometheus/prometheus.yml changed shape: {pattern}"
    shutil.copytree(DEPLOY / "prometheus" / "rules", workdir / "rules")  # relative paths
    config = workdir / "prometheus.yml"
    config.write_text(text)
    return config


def dashboard_queries(instance: str) -> list[tuple[str, str]]:
    board = json.loads((DEPLOY / "grafana" / "dashboards" / "alerting.json").read_text())
    panels: list[dict[str, Any]] = []
    for panel in board["panels"]:
        panels.extend(panel.get("panels", []) if panel["type"] == "row" else [panel])
    out = []
    for panel in panels:
        for target in panel["targets"]:
            expr = (
                target["expr"]
                .replace("$__rate_interval", RATE_INTERVAL)
                .replace("$instance", re.escape(instance).replace("\\", "\\\\"))
                .replace("$job", JOB)
            )
            assert "$" not in expr, f"unsubstituted variable in {expr}"
            out.append((f"{panel['title']} / {target['refId']}", expr))
    return out


# recording rules that must be above 0 in this run, not merely present
POSITIVE = {
    "alerting:events_consumed:rate1m",
    "alerting:events_processed:rate1m",
    "alerting:events_invalid:rate1m",
    "alerting:alerts:rate1m",
    "alerting:snapshots:rate1m",
    "alerting:end_to_end_latency_seconds:p99_5m",
    "alerting:batch_processing_seconds:p99_5m",
    "alerting:commit_seconds:p99_5m",
}


def missing(port: int, queries: list[tuple[str, str]]) -> list[str]:
    """The queries with no finite value (no series, or only NaN), with what they gave."""
    out = []
    for name, expr in queries:
        result = api(port, "query", query=expr)["result"]
        values = [float(sample["value"][1]) for sample in result]
        finite = [v for v in values if math.isfinite(v)]
        if not finite or (expr in POSITIVE and max(finite) <= 0):
            out.append(f"{name}: {expr} -> {values}")
    return out


@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: `make system-deps`")
def test_dashboard_and_recording_rules_have_data_in_a_real_prometheus(
    stack: Stack, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    started = time.monotonic()
    stack.create_topics()
    service = stack.start("run")
    replay = stack.start(
        "replay",
        "--synthetic",
        "--count",
        "0",
        "--start-now",
        "--anomaly-rate",
        "0.02",
        "--events-per-second",
        "300",
        "--no-progress",
        log_name="replay",
    )
    prometheus: subprocess.Popen[bytes] | None = None
    producer = stack.producer()
    try:
        stack.wait_for(lambda: metrics_port(stack.log()) is not None, 30, "the metrics port")
        port = metrics_port(stack.log())
        instance = f"127.0.0.1:{port}"
        config = prometheus_config(tmp_path, instance)
        check = subprocess.run(
            ["promtool", "check", "config", str(config)], capture_output=True, text=True
        )
        assert check.returncode == 0, check.stdout + check.stderr

        prom_port = free_port()
        with open(tmp_path / "prometheus.log", "wb") as log:
            prometheus = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def prom_log() -> str:
            return (tmp_path / "prometheus.log").read_text()[-3000:]

        stack.wait_for(lambda: ready(prom_port), 20, "prometheus ready")

        # the template variables' queries: label_values(alerting_build_info, job),
        # label_values(alerting_build_info{job=~"$job"}, detector) and
        # label_values(alerting_build_info{job=~"$job", detector=~"$detector"}, instance)
        detector = DEFAULT_DETECTOR

        def variables_resolve() -> bool:
            jobs = api(prom_port, "label/job/values", **{"match[]": "alerting_build_info"})
            detectors = api(
                prom_port,
                "label/detector/values",
                **{"match[]": f'alerting_build_info{{job=~"{JOB}"}}'},
            )
            instances = api(
                prom_port,
                "label/instance/values",
                **{"match[]": f'alerting_build_info{{job=~"{JOB}", detector=~"{detector}"}}'},
            )
            return JOB in jobs and detector in detectors and instance in instances

        stack.wait_for(variables_resolve, 20, "the dashboard's job and instance variables")

        rules = api(prom_port, "rules")["groups"]
        recording = [r for g in rules for r in g["rules"] if r["type"] == "recording"]
        alerting = [r for g in rules for r in g["rules"] if r["type"] == "alerting"]
        queries = dashboard_queries(instance) + [(r["name"], r["name"]) for r in recording]
        assert len(recording) >= 20 and len(alerting) >= 6
        assert {r["name"] for r in recording} >= POSITIVE

        # until every query has data: a few scrapes, rules evaluated, alerts and dead
        # letters seen (a few invalid records each round keep the invalid rates up)
        deadline = time.monotonic() + 40
        failing = ["not queried yet"]
        while failing and time.monotonic() < deadline:
            for _ in range(3):
                producer.send(stack.events, b"not json at all")
            producer.flush()
            time.sleep(1)
            failing = missing(prom_port, queries)
        assert not failing, (
            "queries without data:\n"
            + "\n".join(failing)
            + f"\n--- service\n{stack.log()[-2000:]}\n--- prometheus\n{prom_log()}"
        )
        waited = time.monotonic() - started

        rules = api(prom_port, "rules")["groups"]
        every_rule = [r for g in rules for r in g["rules"]]
        unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in every_rule]
        unhealthy = [u for u in unhealthy if u[1] != "ok"]
        assert not unhealthy, unhealthy
        shipped = re.findall(
            r"(?m)^\s+- alert: (\w+)$", (DEPLOY / "prometheus" / "rules" / "alerts.yml").read_text()
        )
        assert sorted(r["name"] for r in every_rule if r["type"] == "alerting") == sorted(shipped)
        targets = api(prom_port, "targets")["activeTargets"]
        assert [(t["labels"]["job"], t["health"]) for t in targets] == [(JOB, "up")], targets
        assert waited < 60, f"{waited:.0f}s until every query had data"
    finally:
        producer.close()
        try:
            if prometheus is not None:
                prometheus.terminate()
                try:
                    assert prometheus.wait(timeout=15) == 0, prom_log()
                except subprocess.TimeoutExpired:
                    prometheus.kill()
                    prometheus.wait()
                    raise
        finally:
            stop(replay)
            assert stop(service) == 0, stack.log()
