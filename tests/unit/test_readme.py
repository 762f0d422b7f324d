"""The README's commands, settings and samples are real: parsed, validated and decoded here."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest

from alerting.alerts import FIRING, Alert, SourcePosition
from alerting.cli import build_parser
from alerting.events import decode
from alerting.settings import Settings, load_settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def _alerting_commands() -> list[list[str]]:
    commands = []
    for block in _blocks("sh"):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].split(" > ", 1)[0].strip()  # no comment/redirect
            if line.startswith("alerting "):
                commands.append(shlex.split(line)[1:])
    return commands


def test_the_two_commands_come_first() -> None:
    first = _blocks("sh")[0]
    assert first.splitlines()[0].startswith("make demo")
    assert first.splitlines()[1].startswith("make test")


@pytest.mark.parametrize("argv", _alerting_commands(), ids=" ".join)
def test_every_alerting_command_in_the_readme_parses(argv: list[str]) -> None:
    build_parser().parse_args(argv)  # exits (fails the test) on an unknown flag or command


def test_every_cli_subcommand_is_documented() -> None:
    for command in ("demo", "run", "replay", "tail", "broker", "config"):
        assert f"`alerting {command}" in README


def test_settings_in_the_table_exist() -> None:
    names = re.findall(r"^\| `([a-z_]+\.[a-z_*]+)`", README, flags=re.M)
    assert len(names) >= 10
    for dotted in names:
        section, key = dotted.split(".")
        fields = Settings.model_fields[section].annotation.model_fields  # type: ignore[union-attr]
        if key.endswith("*"):
            assert any(f.startswith(key[:-1]) for f in fields), dotted
        else:
            assert key in fields, dotted


def test_toml_example_is_a_valid_config(tmp_path: Path) -> None:
    (example,) = _blocks("toml")
    tomllib.loads(example)
    path = tmp_path / "alerting.toml"
    path.write_text(example)
    settings = load_settings(path)
    assert settings.threshold.value == 5.0
    assert settings.detector.params == {"window": 512}


def test_event_samples_decode() -> None:
    (block,) = [b for b in _blocks("json") if '"kind"' in b]
    kinds = [decode(line).kind for line in block.strip().splitlines()]
    assert kinds == ["trade", "quote", "metric"]


def test_alert_sample_has_the_shape_the_service_publishes() -> None:
    (sample,) = [json.loads(b) for b in _blocks("json") if "specversion" in b]
    from datetime import UTC, datetime

    real = Alert(
        type=FIRING,
        entity="X",
        time=datetime(2026, 1, 1, tzinfo=UTC),
        score=1.0,
        threshold=1.0,
        severity="warning",
        detector="zscore",
        model_version="m",
        features={},
        contributions={},
        summary="",
        source=SourcePosition("t", 0, 1),
        kind="trade",
    ).to_cloudevent()
    assert set(sample) == set(real)
    assert set(sample["data"]) == set(real["data"])
    assert sample["type"] == FIRING
