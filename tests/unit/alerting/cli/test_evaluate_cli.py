"""``alerting evaluate`` end to end: synthetic set, label column, windows JSON, report, errors."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alerting.cli import main
from alerting.detectors import DEFAULT_DETECTOR
from alerting.events import encode
from producers.files import InvalidRow
from producers.synthetic import SyntheticMarket, write_labels

PNG = b"\x89PNG\r\n\x1a\n"
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int]:
    """A small synthetic set: 3 symbols, 4 000 events, about 1 % anomalies."""
    folder = tmp_path_factory.mktemp("market")
    data, labels = folder / "events.jsonl", folder / "labels.jsonl"
    found = []
    with data.open("wb") as out:
        for event, label in SyntheticMarket(symbols=3, seed=7, anomaly_rate=0.01).events(4000):
            out.write(encode(event) + b"\n")
            if label is not None:
                found.append(label)
    write_labels(labels, found)
    return data, labels, len(found)


def evaluate(*argv: object) -> int:
    return main(["evaluate", *map(str, argv), "--no-progress"])


def results(folder: Path) -> dict[str, Any]:
    return dict(json.loads((folder / "results.json").read_text()))


def test_synthetic_set_compare_report_and_results(
    market: tuple[Path, Path, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels, count = market
    out = tmp_path / "out"
    code = evaluate(
        data, "--labels", labels, "--detectors", "zscore,sad", "--compare", "--output", out
    )
    assert code == 0
    printed = capsys.readouterr().out
    header, *rows, note = printed.strip().splitlines()
    assert header.split()[:4] == ["run", "precision", "recall", "F1"]
    assert [row.split()[0] for row in rows] == ["zscore", "sad"]
    assert "*" in printed and "best of the column" in note

    doc = results(out)
    assert [r["name"] for r in doc["runs"]] == ["zscore", "sad"]
    assert doc["data"]["events"] == 4000 and len(doc["data"]["sha256"]) == 64
    assert doc["labels"]["format"] == "synthetic" and doc["labels"]["windows"] == count
    assert set(doc["versions"]) == {"python", "river", "numpy", "alerting"}
    zscore = doc["runs"][0]
    assert (
        len(zscore["settings_sha256"]) == 64 and zscore["settings"]["detector"]["name"] == "zscore"
    )
    overall = zscore["overall"]
    # every label is one event of a known symbol, so every window holds exactly one event
    assert overall["window"]["windows"] == count and overall["window"]["empty"] == 0
    assert overall["event"]["tp"] + overall["event"]["fn"] == count
    assert sum(e["events"] for e in zscore["entities"].values()) == 4000
    # the synthetic spikes are big: the default detector catches some, at the first event
    assert overall["window"]["detected"] > 0 and overall["window"]["delay_events_max"] == 0
    assert 0 < overall["nab"]["standard"] <= 100
    assert doc["run"]["throughput"]["zscore"]["events_per_s"] > 0

    html = (out / "report.html").read_text()
    entities = sorted(zscore["entities"])
    assert len(entities) == 3
    for entity in entities:
        assert f">{entity}</h3>" in html
        assert (out / "charts" / f"{entity}.png").read_bytes().startswith(PNG)
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    assert len(images) == 3
    # the summary table carries the printed figures, the best in bold
    f1 = overall["event"]["f1"]
    assert f"{f1:.3f}</td>" in html
    assert f"{overall['window']['detected']}/{overall['window']['windows']}</td>" in html
    assert "class=best" in html


def test_two_runs_give_identical_figures(market: tuple[Path, Path, int], tmp_path: Path) -> None:
    data, labels, _ = market
    for name in ("a", "b"):
        argv = ["--labels", labels, "--detectors", "hst", "--seed", "3", "--max-charts", "0"]
        assert evaluate(data, *argv, "--output", tmp_path / name) == 0
    first, second = results(tmp_path / "a"), results(tmp_path / "b")
    # wall-clock facts live under "run" only; everything else is a function of the inputs
    assert first.pop("run")["throughput"]["hst"]["events"] == 4000
    second.pop("run")
    assert first == second
    run = first["runs"][0]
    assert run["seed"] == 3 and first["options"]["seed"] == 3
    assert run["settings"]["detector"]["params"] == {"seed": 3}
    assert not list((tmp_path / "a" / "charts").iterdir())  # --max-charts 0


def _series(n: int = 1200, spike: range = range(1000, 1003)) -> list[tuple[datetime, float, int]]:
    """A calm metric with a spike late enough for the default (calibrated) threshold, whose
    entity judges nothing in its first warm-up and grace events."""
    rng = random.Random(1)
    rows = []
    for i in range(n):
        value = 10.0 + rng.gauss(0, 0.1)
        if i in spike:
            value += 25.0
        rows.append((T0 + timedelta(minutes=i), value, int(i in spike)))
    return rows


def test_label_column_and_windows_json_agree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _series()
    labelled = tmp_path / "cpu.csv"
    labelled.write_text(
        "timestamp,value,is_bad\n"
        + "".join(f"{t.isoformat()},{v},{'yes' if f else ''}\n" for t, v, f in rows)
    )
    plain = tmp_path / "plain.csv"
    plain.write_text("timestamp,value\n" + "".join(f"{t.isoformat()},{v}\n" for t, v, _ in rows))
    windows = tmp_path / "windows.json"
    start, end = rows[1000][0], rows[1002][0]
    windows.write_text(json.dumps({"cpu": [[start.isoformat(), end.timestamp()]]}))

    by_flag = ["--key", "cpu", "--label-column", "is_bad", "--output", tmp_path / "c"]
    assert evaluate(labelled, *by_flag) == 0
    assert evaluate(plain, "--key", "cpu", "--labels", windows, "--output", tmp_path / "w") == 0
    by_column, by_json = results(tmp_path / "c"), results(tmp_path / "w")
    assert by_column["labels"]["format"] == "column" and by_json["labels"]["format"] == "windows"
    a, b = by_column["runs"][0]["overall"], by_json["runs"][0]["overall"]
    assert a == b
    assert a["window"] == {
        **a["window"],
        "windows": 1,
        "detected": 1,
        "delay_events_max": 0,
        "delay_s_max": 0.0,
    }
    assert a["event"]["tp"] >= 1 and a["event"]["tp"] + a["event"]["fn"] == 3
    assert a["alerts"]["per_hour"] == pytest.approx(a["alerts"]["firing"] / (1199 / 60), abs=1e-4)
    printed = capsys.readouterr().out
    assert "cpu" in printed and "overall" in printed  # the per-entity table without --compare
    # the label column is ground truth, never a feature: the model saw only "value"
    assert by_column["runs"][0]["model_version"] == by_json["runs"][0]["model_version"]


def test_several_settings_files_are_compared(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = _series()
    data = tmp_path / "cpu.csv"
    data.write_text(
        "timestamp,value,label\n" + "".join(f"{t.isoformat()},{v},{f}\n" for t, v, f in rows)
    )
    strict, loose = tmp_path / "strict.toml", tmp_path / "loose.toml"
    strict.write_text('[threshold]\nkind = "fixed"\nvalue = 1e6\n')
    loose.write_text('[threshold]\nkind = "fixed"\nvalue = 4.0\n')
    code = evaluate(
        data,
        "--key",
        "cpu",
        "--label-column",
        "label",
        "--config",
        strict,
        "--config",
        loose,
        "--compare",
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split("  ")[0].strip() for line in lines[1:3]]
    assert names == [f"{DEFAULT_DETECTOR} [strict]", f"{DEFAULT_DETECTOR} [loose]"]
    assert "0/1" in lines[1] and "1/1" in lines[2]


@pytest.mark.parametrize(
    ("setup", "argv", "message"),
    [
        ("labels", ["--labels", "{labels}", "--label-column", "label"], "not both"),
        ("none", [], "needs the truth"),
        ("bad_labels", ["--labels", "{bad}"], "line 1: not a label"),
        ("labels", ["--labels", "{labels}", "--detectors", "nope"], "unknown detector 'nope'"),
        ("labels", ["--labels", "{other}"], "no labelled entity"),
        ("labels", ["--label-column", "label"], "label 'maybe'"),
        ("labels", ["--labels", "{labels}", "--window-slack", "-1"], "--window-slack"),
        ("labels", ["--labels", "{labels}", "--key-column", "host"], "--key NAME or --key-column"),
    ],
)
def test_bad_input_exits_2_with_the_cause(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    argv: list[str],
    message: str,
) -> None:
    data = tmp_path / "cpu.csv"
    data.write_text(
        "timestamp,value,label\n2026-01-05T14:30:00Z,1.0,0\n2026-01-05T14:31:00Z,2.0,maybe\n"
    )
    files = {
        "labels": tmp_path / "w.json",
        "bad": tmp_path / "bad.jsonl",
        "other": tmp_path / "other.json",
    }
    files["labels"].write_text('{"cpu": [[0, 1]]}')
    files["bad"].write_text("{oops\n")
    files["other"].write_text('{"disk": [[0, 1]]}')
    args = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert evaluate(data, "--key", "cpu", *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("alerting evaluate: ") and message in err, err


def test_help_lists_the_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = capsys.readouterr().out
    for flag in ("--labels", "--label-column", "--detectors", "--compare", "--window-slack"):
        assert flag in text


def test_alerts_are_those_of_the_service_code_path(
    market: tuple[Path, Path, int], tmp_path: Path
) -> None:
    """Oracle: the same events through build_processor give the same FIRING alerts."""
    from collections import Counter

    from alerting.alerts import FIRING
    from alerting.settings import load_settings
    from alerting.wiring import build_processor
    from producers.files import read_events

    data, labels, _ = market
    assert evaluate(data, "--labels", labels, "--output", tmp_path, "--max-charts", "0") == 0
    processor = build_processor(load_settings())
    expected: Counter[str] = Counter()
    for event in read_events(data):
        assert not isinstance(event, InvalidRow)
        expected.update(a.entity for a in processor.process(event).alerts if a.type == FIRING)
    run = results(tmp_path)["runs"][0]
    assert run["detector"] == DEFAULT_DETECTOR
    got = {e: f["alerts"]["firing"] for e, f in run["entities"].items()}
    assert got == dict(expected) and sum(got.values()) > 0


def test_label_column_stays_aligned_past_invalid_and_blank_rows(tmp_path: Path) -> None:
    from alerting.evaluation import Window
    from producers.files import ColumnMapping
    from producers.replay import windows_from_column

    data = tmp_path / "m.csv"
    data.write_text(
        "timestamp,host,value,label\n"
        "60,a,1.0,0\n"
        "120,a,oops,1\n"  # no numeric value: an invalid row, its label ignored
        "\n"
        "180,b,2.0,true\n"
        '240,a,"3.0",1\n'
        "300,a,4.0,1\n"
        "360,a,5.0,no\n"
        "420,b,6.0,\n"
    )
    windows = windows_from_column(data, ColumnMapping(key="host", label="label"))
    assert windows == {"a": [Window(240.0, 300.0)], "b": [Window(180.0, 180.0)]}
