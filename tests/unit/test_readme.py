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
    for command in ("demo", "run", "replay", "evaluate", "tail", "broker", "config", "forward"):
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


def _real_firing_and_resolved() -> tuple[dict[str, object], dict[str, object]]:
    """A firing alert and the resolved one of its episode, from the processor as built."""
    from alerting.alerts import RESOLVED
    from alerting.cli import build_processor
    from producers.synthetic import SyntheticMarket

    processor = build_processor(load_settings())
    fired: dict[str, Alert] = {}
    for i, (event, _) in enumerate(SyntheticMarket(symbols=5, seed=7).events(20_000)):
        for alert in processor.process(event, SourcePosition("market.events", 0, i)).alerts:
            if alert.type == FIRING:
                fired[alert.id] = alert
            elif alert.type == RESOLVED and alert.details:
                first = fired[alert.details["firing_id"]]
                return first.to_cloudevent(), alert.to_cloudevent()
    raise AssertionError("no episode resolved on the synthetic market")


def test_alert_samples_have_the_shape_the_service_publishes() -> None:
    from alerting.alerts import RESOLVED

    samples = [json.loads(b) for b in _blocks("json") if "specversion" in b]
    assert [s["type"] for s in samples] == [FIRING, RESOLVED]
    firing, resolved = _real_firing_and_resolved()
    for sample, real in zip(samples, (firing, resolved), strict=True):
        assert set(sample) == set(real)
        assert set(sample["data"]) == set(real["data"])  # type: ignore[arg-type]
    explanation = samples[0]["data"]["explanation"]
    assert set(explanation) == set(firing["data"]["explanation"])  # type: ignore[index]
    assert samples[1]["data"]["firing_id"] == samples[0]["id"]


def test_the_worked_policy_example_is_what_the_policy_does() -> None:
    from alerting.cli import build_processor
    from alerting.policy import PolicyState

    section = README[README.index("Worked example, default settings") :]
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([a-z_: ]*?) ?\|$", section, flags=re.M)
    assert len(rows) == 11
    policy = build_processor(load_settings()).policy
    state = PolicyState()
    for t, score, label in rows:
        decision = policy.evaluate(state, float(score), 6.0, float(t), "trade")
        assert decision.label == label.strip(), (t, score)
