"""``alerting replay --synthetic --output DIR``: the stream and its labels to files, no broker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import alerting.cli.replay
from alerting.cli import build_parser, main
from alerting.cli.replay import replay_plan
from alerting.events import Event
from producers import replay
from producers.files import InvalidRow, read_events
from producers.synthetic import ANOMALY_TYPES, SyntheticMarket, read_labels

ARGS = ["--count", "6000", "--seed", "3", "--symbols", "3", "--anomaly-rate", "0.01"]


@pytest.fixture(autouse=True)
def no_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the embedded broker nor a configured cluster may be touched."""
    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", raising=False)

    def refuse(*_: object) -> Iterator[None]:
        raise AssertionError("replay --output started or asked for a broker")

    monkeypatch.setattr(alerting.cli.replay, "kafka_cluster", refuse)


def test_the_files_read_back_as_the_generated_stream_and_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run" / "market"  # made when missing
    argv = ["replay", "--synthetic", "--output", str(out), "--anomalies", "all", *ARGS]
    assert main(argv) == 0
    assert "events.jsonl: done, 6,000/6,000" in capsys.readouterr().err  # the progress bar

    market = SyntheticMarket(symbols=3, seed=3, anomaly_rate=0.01, anomalies="all")
    stream = list(market.events(6000))
    expected_events = [event for event, _ in stream]
    expected_labels = sorted(
        (label for _, label in stream if label is not None), key=lambda label: label.index
    )
    assert {label.anomaly for label in expected_labels} == {a.name for a in ANOMALY_TYPES}

    # the file reader that `alerting replay FILE` uses, with replay's own defaults
    plan = replay_plan(build_parser().parse_args(["replay", str(out / "events.jsonl")]))
    skipped: list[InvalidRow] = []
    assert plan.file is not None
    assert list(replay._from_file(plan.file, plan.columns, skipped)) == expected_events
    assert skipped == []
    assert list(read_events(out / "events.jsonl")) == expected_events
    assert read_labels(out / "labels.jsonl") == expected_labels
    lines = (out / "labels.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == sorted(
        label.index for label in expected_labels
    )


def test_the_default_mix_writes_what_replay_would_publish(tmp_path: Path) -> None:
    labels_copy = tmp_path / "copy.jsonl"
    argv = ["replay", "--synthetic", "--output", str(tmp_path), "--no-progress", *ARGS]
    assert main([*argv, "--labels", str(labels_copy)]) == 0
    stream = list(SyntheticMarket(symbols=3, seed=3, anomaly_rate=0.01).events(6000))
    events: list[Event | InvalidRow] = [event for event, _ in stream]
    assert list(read_events(tmp_path / "events.jsonl")) == events
    labels = [label for _, label in stream if label is not None]
    assert read_labels(tmp_path / "labels.jsonl") == labels == read_labels(labels_copy)
    assert {label.anomaly for label in labels} == {"price_spike", "size_burst", "spread_blowout"}


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--count", "0"], "--count"),
        (["--anomalies", "price_spike,nope"], "--anomalies"),
        (["--anomalies", "flash_crash:x"], "NAME[:WEIGHT[:LOW-HIGH]]"),
        (["--intensity", "0"], "--intensity"),
        (["--intensity", "50", "--anomalies", "all"], "outside"),
    ],
)
def test_bad_output_arguments_fail_before_writing(
    tmp_path: Path, extra: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    assert main(["replay", "--synthetic", "--output", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err
    assert not out.exists()


def test_output_needs_the_synthetic_market(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = tmp_path / "in.jsonl"
    recording.write_text("")
    assert main(["replay", str(recording), "--output", str(tmp_path / "out")]) == 2
    assert "--synthetic" in capsys.readouterr().err


def test_an_unwritable_output_names_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["replay", "--synthetic", "--output", str(blocker), "--count", "10"]) == 2
    assert "--output" in capsys.readouterr().err


def test_the_help_lists_the_whole_catalogue() -> None:
    assert tuple(a.name for a in ANOMALY_TYPES) == alerting.cli.replay._ANOMALY_NAMES
