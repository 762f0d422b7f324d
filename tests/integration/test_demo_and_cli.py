"""`alerting demo` from zero configuration, and the CLI's scriptable subcommands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from kafkastack import Stack, scrape, stop

from alerting.embedded_broker import accepts_connections, free_port


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def test_demo_shows_alerts_serves_metrics_and_leaves_nothing_running(tmp_path: Path) -> None:
    marker = f"ALERTING_DEMO_TEST={uuid.uuid4().hex}"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING")}
    env.update(
        {
            "ALERTING__METRICS__PORT": str(port),
            marker.split("=")[0]: marker.split("=")[1],
            "PYTHONUNBUFFERED": "1",
        }
    )
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "alerting.cli",
            "demo",
            "--duration",
            "25",
            "--json",
            "--labels",
            str(tmp_path / "labels.jsonl"),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    exposition = ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "alerting_events_processed_total{" not in exposition:
        time.sleep(1)
        try:
            exposition = scrape(port)
        except OSError:
            continue
    out, err = demo.communicate(timeout=90)
    assert demo.returncode == 0, err[-3000:]
    assert "alerting_events_processed_total{" in exposition, err[-3000:]
    alerts = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert alerts, f"no alerts in 25 s of demo:\n{err[-3000:]}"
    types = {a["type"] for a in alerts}
    assert "io.alerting.anomaly.firing" in types
    assert types <= {
        "io.alerting.anomaly.firing",
        "io.alerting.anomaly.resolved",
        "io.alerting.drift",
    }
    assert (tmp_path / "labels.jsonl").read_text().strip(), "the demo's replay writes labels"
    time.sleep(0.5)
    assert _processes_with(marker) == [], "demo left processes running"


def test_help_lists_every_subcommand_and_each_has_help() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "alerting.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("demo", "run", "replay", "tail", "broker", "config"):
        assert command in run.stdout
        sub = subprocess.run(
            [sys.executable, "-m", "alerting.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert sub.returncode == 0 and "usage: alerting " + command in sub.stdout


def test_config_json_masks_secrets_and_names_bad_settings() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING")}
    env.update({"ALERTING__KAFKA__SASL_PASSWORD": "hunter2", "ALERTING__METRICS__PORT": "9999"})
    run = subprocess.run(
        [sys.executable, "-m", "alerting.cli", "config", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(run.stdout)
    assert data["metrics"]["port"] == 9999
    assert data["topics"]["alerts"] == "market.alerts"
    assert data["kafka"]["sasl_password"] == "**********"
    assert "hunter2" not in run.stdout

    env["ALERTING__SERVICE__MAX_BATCH_RECORDS"] = "lots"
    bad = subprocess.run(
        [sys.executable, "-m", "alerting.cli", "run"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "service.max_batch_records" in bad.stderr
    assert "ALERTING__SERVICE__MAX_BATCH_RECORDS" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_tail_prints_alerts_as_json_and_honours_max_and_timeout(stack: Stack) -> None:
    stack.create_topics()
    replay = stack.cli(
        "replay", "--synthetic", "--count", "6000", "--seed", "5", "--fast", "--no-progress"
    )
    assert replay.returncode == 0, replay.stderr
    service = stack.start("run")
    try:
        tail = stack.cli("tail", "--from-beginning", "--json", "--max", "3", "--timeout", "60")
        readable = stack.cli("tail", "--from-beginning", "--max", "1", "--timeout", "60")
    finally:
        assert stop(service) == 0
    assert tail.returncode == 0, tail.stderr
    lines = tail.stdout.splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["specversion"] == "1.0" for line in lines)
    assert readable.returncode == 0 and readable.stdout.count("\n") == 1
    assert " ≥ " in readable.stdout  # the deciding feature's score against its threshold

    nothing = stack.cli("tail", "--max", "1", "--timeout", "2")
    assert nothing.returncode == 1  # --max not reached before --timeout


def test_replay_of_a_csv_file_publishes_metric_events_keyed_by_entity(
    stack: Stack, tmp_path: Path
) -> None:
    csv_file = tmp_path / "cpu.csv"
    rows = ["timestamp,value,load"]
    rows += [f"2026-01-05 10:{i // 60:02d}:{i % 60:02d},{0.5 + i % 3 * 0.1},{i}" for i in range(90)]
    rows.append("2026-01-05 11:00:00,not-a-number,oops")
    csv_file.write_text("\n".join(rows) + "\n")
    stack.create_topics()
    run = stack.cli("replay", str(csv_file), "--key", "host-1", "--fast", "--no-progress")
    assert run.returncode == 0, run.stderr
    assert "line 92 skipped" in run.stderr

    records = stack.read_all(stack.events)
    assert len(records) == 90
    assert {r.key for r in records} == {b"host-1"}
    first = min(records, key=lambda r: json.loads(r.value)["time"])
    event = json.loads(first.value)
    assert event["kind"] == "metric" and event["entity"] == "host-1"
    assert event["values"] == {"value": 0.5, "load": 0.0}
    assert event["time"].startswith("2026-01-05T10:00:00")

    no_key = stack.cli("replay", str(csv_file), "--fast", "--no-progress")
    assert no_key.returncode == 2 and "--key" in no_key.stderr


def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    marker = f"ALERTING_DEMO_TEST={uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING")}
    env.update({"ALERTING__METRICS__PORT": str(free_port()), "PYTHONUNBUFFERED": "1"})
    env[marker.split("=")[0]] = marker.split("=")[1]
    # a terminal's Ctrl+C signals the whole foreground process group: do the same
    demo = subprocess.Popen(
        [sys.executable, "-m", "alerting.cli", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(_processes_with(marker)) < 4:
            time.sleep(0.5)  # demo, broker, service, replay
        assert len(_processes_with(marker)) >= 4
        time.sleep(3)
        os.killpg(demo.pid, signal.SIGINT)
        _, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
    assert demo.returncode == 0, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    time.sleep(0.5)
    assert _processes_with(marker) == []


def test_broker_command_prints_its_address_once_it_accepts_connections() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING")}
    broker = subprocess.Popen(
        [sys.executable, "-m", "alerting.cli", "broker", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert broker.stdout is not None
        line = broker.stdout.readline()
        assert f"127.0.0.1:{port}" in line
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        assert admin.list_topics() == []
        admin.close()
    finally:
        status = stop(broker)
        broker.communicate()  # drain and close the pipes
    assert status == 0
    assert not accepts_connections("127.0.0.1", port)
