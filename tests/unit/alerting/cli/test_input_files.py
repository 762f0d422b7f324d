"""``replay FILE --input TOPIC`` and ``evaluate FILE --input TOPIC``: a JSON Lines
recording of a declared input's own shape, read through that input's mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import consumers.kafka_python
from alerting.cli import main
from tests.unit.alerting.cli.test_evaluate_cli import _series, evaluate, results

METRICS = """
[[inputs]]
topic = "host.metrics"
kind = "metric"
entity = "host"
time = ".@timestamp"
[inputs.fields]
values = "metrics.*"

[[inputs]]
topic = "keyed.trades"
kind = "trade"
entity = "@key"
time = "ts"
[inputs.fields]
price = "px"
size = "qty"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "alerting.toml"
    path.write_text(METRICS)
    return path


def test_evaluate_input_scores_the_foreign_shape_as_its_columns(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _series()
    csv = tmp_path / "cpu.csv"
    csv.write_text(
        "timestamp,value,is_bad\n"
        + "".join(f"{t.isoformat()},{v},{'yes' if f else ''}\n" for t, v, f in rows)
    )
    lines = [
        {"host": "cpu", "metrics": {"value": v}, "@timestamp": t.isoformat(), "is_bad": f}
        for t, v, f in rows
    ]
    lines.insert(10, {"host": "cpu", "@timestamp": rows[10][0].isoformat()})  # no metrics
    jsonl = tmp_path / "host.metrics.jsonl"
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))

    assert (
        evaluate(csv, "--key", "cpu", "--label-column", "is_bad", "--output", tmp_path / "c") == 0
    )
    code = main(
        [
            "--config",
            str(config),
            "evaluate",
            str(jsonl),
            "--input",
            "host.metrics",
            "--label-column",
            "is_bad",
            "--output",
            str(tmp_path / "j"),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    by_columns, by_input = results(tmp_path / "c"), results(tmp_path / "j")
    assert by_input["data"]["invalid_rows"] == 1
    assert by_input["data"]["events"] == by_columns["data"]["events"] == len(rows)
    assert by_input["runs"][0]["overall"] == by_columns["runs"][0]["overall"]
    assert by_input["runs"][0]["overall"]["window"]["detected"] == 1


def test_a_mapping_that_reads_the_record_key_is_refused_for_files(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "trades.jsonl"
    data.write_text('{"px": 1, "qty": 1, "ts": 1733300000123, "label": 0}\n')
    argv = ["--config", str(config), "evaluate", str(data), "--input", "keyed.trades"]
    assert main([*argv, "--label-column", "label"]) == 2
    err = capsys.readouterr().err
    assert "--input keyed.trades: input keyed.trades maps entity from @key" in err
    assert main(["--config", str(config), "replay", str(data), "--input", "keyed.trades"]) == 2
    assert "maps entity from @key" in capsys.readouterr().err
    assert main(["--config", str(config), "replay", str(data), "--input", "nope"]) == 2
    assert "no such input" in capsys.readouterr().err


class _Sent:
    def add_errback(self, callback: Any) -> _Sent:
        return self


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> _Sent:
        self.sent.append((topic, key, value))
        return _Sent()

    def flush(self, timeout: float) -> None:
        return None

    def close(self, timeout: float) -> None:
        return None


def test_replay_input_publishes_each_line_as_it_is_keyed_by_the_mapped_entity(
    tmp_path: Path, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", "broker.invalid:9092")
    monkeypatch.setenv("ALERTING__TOPICS__CREATE", "false")
    monkeypatch.setattr("alerting.wiring.check_login", lambda settings: True)
    producer = _Producer()
    monkeypatch.setattr(consumers.kafka_python, "producer_for", lambda *_, **__: producer)
    lines = [
        '{"host": "web-7", "metrics": {"cpu": 0.71}, "@timestamp": "2026-12-04T10:00:00Z"}',
        '{"host": "web-7", "metrics": {"cpu": 0.7}}',
        '{"host":"web-8","metrics":{"cpu":"0.5"},"@timestamp":"2026-12-04T10:00:01Z"}',
    ]
    data = tmp_path / "metrics.jsonl"
    data.write_text("\n".join(lines) + "\n")
    argv = ["--config", str(config), "replay", str(data), "--input", "host.metrics", "--fast"]
    assert main([*argv, "--no-progress"]) == 0
    assert producer.sent == [
        ("host.metrics", b"web-7", lines[0].encode()),
        ("host.metrics", b"web-8", lines[2].encode()),
    ]
