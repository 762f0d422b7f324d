"""``alerting inspect``: a file offline, a topic only with a cluster configured."""

from __future__ import annotations

import gzip
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from alerting.cli import main
from consumers import inspect as reading
from consumers.inspect import Sample

LINES = [
    {"sym": "AAPL", "px": 191.2, "qty": 100, "ts": 1733300000123},
    {"sym": "MSFT", "px": 411.5, "qty": 7, "ts": 1733300000456},
    {"sym": "AAPL", "px": 191.3, "ts": 1733300000789},
]


def block(out: str) -> dict[str, Any]:
    text = out[out.index("[[inputs]]") :]
    parsed: dict[str, Any] = tomllib.loads(text)["inputs"][0]
    return parsed


def test_a_jsonl_file_is_inspected_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", raising=False)
    path = tmp_path / "desk.trades.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(json.dumps(x).encode() + b"\n" for x in LINES)))
    assert main(["inspect", str(path), "--max", "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("3 records: 3 JSON objects\n")
    assert "qty   number  67 %" in out
    assert block(out) == {
        "topic": "desk",
        "kind": "trade",
        "entity": "sym",
        "time": "ts",
        "time_unit": "ms",
        "fields": {"price": "px", "size": "qty"},
    }


def test_an_empty_file_says_there_is_nothing_to_guess_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert main(["inspect", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("0 records") and "nothing to guess from" in captured.err


def test_a_missing_file_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "nowhere.jsonl"]) == 2
    assert "nowhere.jsonl: no such file" in capsys.readouterr().err


def test_a_topic_needs_the_bootstrap_servers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", raising=False)
    assert main(["inspect", "desk.trades"]) == 2
    err = capsys.readouterr().err
    assert "kafka.bootstrap_servers" in err and "ALERTING__KAFKA__BOOTSTRAP_SERVERS" in err


@pytest.mark.parametrize("argv", [["--max", "0"], ["--max", "x"]])
def test_max_must_be_positive(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["inspect", "t", *argv])
    assert "positive whole number" in capsys.readouterr().err


def test_a_topic_is_read_through_the_reader_and_its_name_is_the_topic(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setattr("alerting.cli.inspect.check_login", lambda settings: True)
    asked: list[tuple[str, int, bool]] = []

    def topic_samples(
        settings: Any, topic: str, n: int, from_beginning: bool, **_: Any
    ) -> list[Sample] | None:
        asked.append((topic, n, from_beginning))
        if topic == "missing":
            return None
        return [Sample(json.dumps(x).encode(), b"k", 1) for x in LINES] + [Sample(b"oops")]

    monkeypatch.setattr(reading, "topic_samples", topic_samples)
    assert main(["inspect", "desk.trades", "--max", "50", "--from-beginning"]) == 0
    out = capsys.readouterr().out
    assert "1 not JSON" in out and "not JSON objects, e.g.: oops" in out
    assert "keys: 3 of 4 records, e.g. k\n" in out
    assert block(out)["topic"] == "desk.trades" and block(out)["entity"] == "sym"
    assert main(["inspect", "missing"]) == 1
    assert "topic missing not found" in capsys.readouterr().err
    assert asked == [("desk.trades", 50, True), ("missing", 500, False)]
