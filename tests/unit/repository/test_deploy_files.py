"""deploy/: Prometheus config and rules pass promtool, the dashboard queries only real names.

promtool comes with the Debian package ``prometheus`` (``make system-deps``, which
``make test`` runs first); these tests skip only where it is missing. The dashboard's
queries are run against a real Prometheus in tests/integration/test_prometheus.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from alerting.metrics import Metrics

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "alerting.json"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: `make system-deps` (Debian package prometheus)"
)

# a sample name of each metric type, from its family name
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
_PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
FILTER = 'job=~"$job", instance=~"$instance"'


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )


@cache
def exported_names() -> frozenset[str]:
    """Every series name the service can export, read through the registry."""
    names: set[str] = set()
    for family in Metrics(CollectorRegistry()).registry.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return frozenset(names)


def parse_rules(path: Path) -> list[dict[str, str]]:
    """``record``/``alert`` and ``expr`` of each rule of a rules file.

    A small reader for the plain block YAML the rules files use (no YAML library in the
    dev dependencies); :func:`test_promtool_check_rules` checks it finds as many rules
    as promtool does.
    """
    rules: list[dict[str, str]] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        start = re.match(r"^\s*- (record|alert):\s*(\S+)\s*$", line)
        if start:
            rules.append({"kind": start.group(1), "name": start.group(2)})
        expr = re.match(r"^(\s*)expr:\s*(.*)$", line)
        if expr and rules:
            indent, value = len(expr.group(1)), expr.group(2).strip()
            if value in ("|", ">", "|-", ">-"):
                block = []
                while i + 1 < len(lines) and (
                    not lines[i + 1].strip()
                    or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent
                ):
                    i += 1
                    block.append(lines[i].strip())
                value = " ".join(part for part in block if part)
            rules[-1]["expr"] = value.strip("'\"") if value[:1] in "'\"" else value
        i += 1
    return rules


def recording_rule_names() -> set[str]:
    return {r["name"] for r in parse_rules(RULES / "recording.yml") if r["kind"] == "record"}


def metric_names(expr: str) -> list[str]:
    """The metric (and recording rule) names a PromQL expression selects, in order.

    >>> metric_names('sum by (job) (rate(a_total{x="y"}[5m])) / on (job) b or vector(0)')
    ['a_total', 'b']
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings may hold anything
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )  # label lists
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\b", " ", text)
    names = re.findall(r"(?<![\w.:$])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()", text)
    return [n for n in names if n.lower() not in _PROMQL_WORDS and not re.fullmatch(r"\d", n)]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def query_panels() -> list[dict[str, Any]]:
    """Panels that query (rows only group them), including those inside collapsed rows."""
    out = []
    for panel in dashboard()["panels"]:
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def dashboard_exprs() -> list[str]:
    return [t["expr"] for p in query_panels() for t in p["targets"]]


# --- promtool -----------------------------------------------------------------------


@needs_promtool
def test_promtool_check_config_resolves_the_rule_files() -> None:
    run = promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS: 2 rule files found" in run.stdout, run.stdout
    for name in ("recording.yml", "alerts.yml"):
        assert f"rules/{name}" in run.stdout


@needs_promtool
@pytest.mark.parametrize("name", ["recording.yml", "alerts.yml"])
def test_promtool_check_rules(name: str) -> None:
    run = promtool("check", "rules", str(RULES / name))
    assert run.returncode == 0, run.stdout + run.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", run.stdout)
    assert found, run.stdout
    assert int(found.group(1)) == len(parse_rules(RULES / name)), "parse_rules missed a rule"


@needs_promtool
def test_promtool_test_rules() -> None:
    tests = sorted(str(p) for p in (RULES / "tests").glob("*.yml"))
    assert tests
    run = promtool("test", "rules", *tests)
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_alert_rule_is_unit_tested_firing_and_not_firing() -> None:
    text = (RULES / "tests" / "alerts_test.yml").read_text()
    cases = re.findall(
        r"alertname:\s*(\w+)\s*,?\s*\n?\s*exp_alerts:\s*(\[\])?",
        text,
    )
    quiet = {name for name, empty in cases if empty}
    firing = {name for name, empty in cases if not empty}
    alerts = {r["name"] for r in parse_rules(RULES / "alerts.yml") if r["kind"] == "alert"}
    assert alerts
    assert alerts - firing == set(), "alerts with no firing test"
    assert alerts - quiet == set(), "alerts with no test that they stay quiet"


def test_alert_rules_have_for_severity_and_annotations() -> None:
    text = (RULES / "alerts.yml").read_text()
    blocks = re.split(r"\n\s*- alert: ", text)[1:]
    assert len(blocks) == len(parse_rules(RULES / "alerts.yml"))
    for block in blocks:
        name = block.split()[0]
        assert re.search(r"\n\s+for: \d+[smh]\b", block), name
        assert re.search(r"\n\s+severity: (critical|warning)\b", block), name
        assert re.search(r"\n\s+summary: ", block), name
        assert re.search(r"\n\s+description: ", block), name


@pytest.mark.parametrize("name", ["recording.yml", "alerts.yml"])
def test_rules_query_only_exported_metrics(name: str) -> None:
    known = exported_names() | recording_rule_names()
    for rule in parse_rules(RULES / name):
        used = metric_names(rule["expr"])
        assert used, rule
        assert set(used) <= known, f"{rule['name']}: unknown {set(used) - known}"


def test_recording_rules_keep_job_and_instance() -> None:
    for rule in parse_rules(RULES / "recording.yml"):
        for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", rule["expr"]):
            labels = {label.strip() for label in group.split(",")}
            assert {"job", "instance"} <= labels, rule["name"]
        assert "without" not in rule["expr"], rule["name"]
        assert rule["name"].startswith("alerting:"), rule["name"]


# --- Grafana ------------------------------------------------------------------------


def test_metric_names_reader() -> None:
    assert metric_names(
        'histogram_quantile(0.99, sum by (job, le) (rate(x_bucket{a=~"b{c}"}[$__rate_interval])))'
    ) == ["x_bucket"]
    assert metric_names('time() - max by (i) (last_seconds{j="1"}) > bool 1e3') == ["last_seconds"]
    assert metric_names('a:b:rate1m{x="y"} / on (job, instance) group_left c') == [
        "a:b:rate1m",
        "c",
    ]


def test_dashboard_queries_only_exported_metrics_and_recording_rules() -> None:
    known = exported_names() | recording_rule_names()
    exprs = dashboard_exprs()
    assert len(exprs) >= 20
    for expr in exprs:
        used = metric_names(expr)
        assert used, expr
        assert set(used) <= known, f"unknown {set(used) - known} in {expr}"


def test_every_dashboard_selector_is_filtered_by_job_and_instance() -> None:
    for expr in dashboard_exprs():
        filtered = re.findall(r"[a-zA-Z_:][\w:]*\{" + re.escape(FILTER) + r"\}", expr)
        assert len(filtered) == len(metric_names(expr)), expr


def test_every_exported_metric_is_on_the_dashboard() -> None:
    rules = {r["name"]: r["expr"] for r in parse_rules(RULES / "recording.yml")}
    used = set()
    for expr in dashboard_exprs():
        for name in metric_names(expr):
            used.update(metric_names(rules[name]) if name in rules else [name])
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            used.update(re.findall(r"label_values\(([\w:]+)", variable["definition"]))
    families = {f.name for f in Metrics(CollectorRegistry()).registry.collect()}
    shown = {f for f in families if any(name.startswith(f) for name in used)}
    assert families - shown == set(), "metrics the dashboard does not show"


def test_dashboard_structure() -> None:
    board = dashboard()
    assert board["uid"] and board["title"]
    assert 36 <= board["schemaVersion"] <= 41
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert {"datasource", "job", "detector", "instance"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["job"]["definition"] == "label_values(alerting_build_info, job)"
    assert "$job" in variables["instance"]["definition"]
    assert "$detector" in variables["instance"]["definition"]
    assert variables["detector"]["definition"] == (
        'label_values(alerting_build_info{job=~"$job"}, detector)'
    )
    for name in ("job", "detector", "instance"):
        assert variables[name]["query"]["query"] == variables[name]["definition"]
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"

    ids = [p["id"] for p in board["panels"]] + [
        p["id"] for row in board["panels"] for p in row.get("panels", [])
    ]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    cells: set[tuple[int, int]] = set()
    for panel in query_panels() + [p for p in board["panels"] if p["type"] == "row"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        xs, ys = range(pos["x"], pos["x"] + pos["w"]), range(pos["y"], pos["y"] + pos["h"])
        mine = {(x, y) for x in xs for y in ys}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine

    for panel in query_panels():
        title = panel.get("title")
        assert title, panel
        assert panel["type"] in ("timeseries", "stat", "gauge", "bargauge", "table"), title
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel["targets"], title
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), title
        for target in panel["targets"]:
            assert target["expr"].strip(), title
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]


def test_dashboard_covers_the_issue_topics() -> None:
    text = " ".join(dashboard_exprs())
    for needle in (
        "events_consumed",
        "events_processed",
        "events_invalid",
        "end_to_end_latency_seconds:p50",
        "end_to_end_latency_seconds:p95",
        "end_to_end_latency_seconds:p99",
        "batch_processing_seconds:p99",
        "commit_seconds:p99",
        "snapshot_seconds:p99",
        "alerting_consumer_lag_records",
        "alerting:alerts:rate1m",
        "alerts_suppressed",
        "alerting_live_models",
        "alerting_entities_warming_up",
        "model_evictions",
        "alerting_model_memory_bytes",
        "alerting_restore_remaining_records",
        "alerting_broker_up",
        "alerting:snapshots:rate1m",
    ):
        assert needle in text, needle


def test_grafana_provisioning_points_at_the_dashboard_and_datasource() -> None:
    datasource = (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    assert re.search(r"^\s+type: prometheus$", datasource, re.M)
    default = dashboard()["templating"]["list"][0]["current"]["value"]
    assert re.search(rf"^\s+uid: {re.escape(default)}$", datasource, re.M)
    assert re.search(r"^\s+url: http://prometheus:9090$", datasource, re.M)
    providers = (GRAFANA / "provisioning" / "dashboards" / "alerting.yml").read_text()
    assert re.search(r"^apiVersion: 1$", providers, re.M)
    assert re.search(r"^\s+path: /var/lib/grafana/dashboards$", providers, re.M)


# --- the service's exposition -------------------------------------------------------


def exposition_with_samples() -> str:
    """The exposition of a registry in which every metric, labelled or not, has a sample."""
    metrics = Metrics(CollectorRegistry())
    for metric in vars(metrics).values():
        if not isinstance(metric, Counter | Gauge | Histogram):
            continue
        labelnames = getattr(metric, "_labelnames", ())
        child = metric.labels(*(f"x{i}" for i in range(len(labelnames)))) if labelnames else metric
        if isinstance(child, Counter):
            child.inc(3)
        elif isinstance(child, Gauge):
            child.set(2)
        else:
            child.observe(0.02)
    return generate_latest(metrics.registry).decode()


def test_every_exported_metric_has_help_and_the_conventions() -> None:
    families = list(text_string_to_metric_families(exposition_with_samples()))
    registered = Metrics(CollectorRegistry()).registry.collect()
    expected = {f.name + ("_info" if f.type == "info" else "") for f in registered}
    assert expected <= {f.name for f in families}
    for family in families:
        assert family.documentation.strip(), f"{family.name} has no HELP text"
        assert family.name.startswith("alerting_"), family.name
        assert family.samples, family.name
        if family.type == "counter":
            assert any(s.name.endswith("_total") for s in family.samples), family.name
        for sample in family.samples:
            assert not {"entity", "symbol", "key"} & set(sample.labels), sample


@needs_promtool
def test_promtool_check_metrics_passes_on_a_real_exposition() -> None:
    run = promtool("check", "metrics", stdin=exposition_with_samples())
    assert run.returncode == 0, run.stdout + run.stderr
    assert not run.stdout.strip() and not run.stderr.strip(), run.stdout + run.stderr
