"""CLI errors that need no broker: they must fail at once, naming the flag or setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from alerting.cli import main


@pytest.fixture(autouse=True)
def unreachable_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on port 1: a command that tried to connect would hang, then fail
    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["replay", "--synthetic", "--symbols", "0"], "symbols"),
        (["replay", "--synthetic", "--anomaly-rate", "2"], "anomaly_rate"),
        (["replay", "--synthetic", "--speed", "0"], "--speed"),
        (["replay"], "--synthetic"),
        (["replay", "missing.csv"], "no such file"),
        (["replay", "--labels", "x.jsonl", "missing.csv"], "--synthetic"),
    ],
)
def test_bad_replay_arguments_fail_before_connecting(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err


def test_a_file_without_an_entity_key_names_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "cpu.csv"
    data.write_text("timestamp,value\n2026-01-05 10:00:00,1.0\n")
    assert main(["replay", str(data), "--fast"]) == 2
    err = capsys.readouterr().err
    assert "--key" in err and "--key-column" in err


def test_unknown_detector_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALERTING__DETECTOR__NAME", "nope")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "detector" in err and "nope" in err and "zscore" in err
