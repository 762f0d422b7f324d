"""The README's commands, settings and samples are real: parsed, validated and decoded here."""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import get_args, get_origin

import pytest

from alerting.alerts import FIRING, Alert, SourcePosition
from alerting.cli import build_parser
from alerting.events import decode
from alerting.settings import Settings, load_settings

README = (Path(__file__).parents[3] / "README.md").read_text()


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


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The subcommands of ``parser`` by name (empty when it has none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _command_table() -> list[str]:
    """The usages in the first column of the README's command table, one per command."""
    table = README[README.index("| command | what it does |") :].split("\n\n", 1)[0]
    usages = []
    for row in table.splitlines()[2:]:
        first = row.split(" | ", 1)[0]
        usages += re.findall(r"`(alerting [^`]+)`", first)
    return usages


def test_every_cli_subcommand_is_documented() -> None:
    documented = {usage.split()[1] for usage in _command_table()}
    assert set(_subcommands(build_parser())) == documented


def test_every_flag_in_the_command_table_is_one_of_its_command() -> None:
    for usage in _command_table():
        parser = build_parser()
        for word in usage.split()[1:]:
            parser = _subcommands(parser).get(word, parser)
        known = {option for action in parser._actions for option in action.option_strings}
        for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", usage):
            assert flag in known, f"{usage}: {flag}"


class _Producer:
    """The records a command sends, acknowledged at once (no broker)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, key: bytes, value: bytes) -> _Producer:
        self.sent.append((topic, key, value))
        return self

    def get(self, timeout: float) -> None:
        return None

    def close(self, timeout: float) -> None:
        return None


def test_the_silence_and_feedback_commands_run_up_to_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The README's ``silence`` and ``feedback`` commands, run with a fake producer: the
    records they would write are valid, and say what the flags say. Writing to and
    reading from a real cluster is what tests/integration/test_silences_feedback.py does."""
    import alerting.cli.control
    import consumers.control.commands
    import consumers.kafka_python
    from alerting.feedback import VERDICT_ALIASES, Feedback, parse_feedback
    from alerting.silences import SilenceSet, parse_duration

    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", "broker.invalid:9092")
    monkeypatch.setenv("ALERTING__TOPICS__CREATE", "false")
    settings = load_settings()
    producer = _Producer()
    monkeypatch.setattr(consumers.kafka_python, "producer_for", lambda *_, **__: producer)
    topic = SilenceSet()
    monkeypatch.setattr(consumers.control.commands, "read_silences", lambda *_, **__: topic)
    now = 1_767_623_400.0
    commands = [argv for argv in _alerting_commands() if argv[0] in ("silence", "feedback")]
    assert {tuple(argv[:2]) for argv in commands if argv[0] == "silence"} == {
        ("silence", action) for action in ("add", "list", "expire")
    }
    assert any(argv[0] == "feedback" for argv in commands)
    added: list[str] = []
    for argv in commands:
        if argv[:2] == ["silence", "expire"]:
            assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", argv[2]), argv
            argv = [*argv[:2], added[0]]  # the README's id stands for one `silence add` printed
        args = build_parser().parse_args(argv)
        out = io.StringIO()
        before = len(producer.sent)
        if argv[0] == "silence":
            assert alerting.cli.control.silence(settings, args, out, clock=lambda: now) == 0
        else:
            assert alerting.cli.control.feedback(settings, args, out) == 0
        sent = producer.sent[before:]
        if argv[:2] == ["silence", "add"]:
            ((where, key, value),) = sent
            assert where == settings.topics.silences and out.getvalue() == f"{key.decode()}\n"
            topic.apply(key, value)
            silence = topic.get(key.decode())
            assert silence is not None and silence.entity == args.entity
            assert (silence.severity, silence.comment) == (args.severity, args.comment)
            assert silence.ends_at - silence.starts_at == parse_duration(args.duration)
            assert args.author is None or silence.author == args.author
            added.append(key.decode())
        elif argv[:2] == ["silence", "list"]:
            assert not sent and all(silence_id in out.getvalue() for silence_id in added)
        elif argv[:2] == ["silence", "expire"]:
            ((where, key, value),) = sent
            assert (where, key.decode()) == (settings.topics.silences, added[0])
            topic.apply(key, value)
            expired = topic.get(added[0])
            assert expired is not None and expired.state(now) == "expired"
        else:
            ((where, key, value),) = sent
            assert where == settings.topics.feedback and key.decode() == args.alert_id
            assert parse_feedback(value) == Feedback(
                args.alert_id, VERDICT_ALIASES[args.verdict], args.note
            )
    assert len(added) == 2


def test_settings_in_the_table_exist() -> None:
    names = re.findall(r"^\| `([a-z_]+\.[a-z_*]+)`", README, flags=re.M)
    assert len(names) >= 10
    for dotted in names:
        section, key = dotted.split(".")
        declared = Settings.model_fields[section].annotation
        if get_origin(declared) is list:  # [[inputs]]: a list of blocks of one section type
            (declared,) = get_args(declared)
        fields = declared.model_fields  # type: ignore[union-attr]
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
    from alerting.wiring import build_processor
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
    from alerting.policy import PolicyState
    from alerting.wiring import build_processor

    section = README[README.index("Worked example, default settings") :]
    rows = re.findall(r"^\| (\d+) \| ([\d.]+) \| ([a-z_: ]*?) ?\|$", section, flags=re.M)
    assert len(rows) == 11
    policy = build_processor(load_settings()).policy
    state = PolicyState()
    for t, score, label in rows:
        decision = policy.evaluate(state, float(score), 6.0, float(t), "trade")
        assert decision.label == label.strip(), (t, score)


def test_your_own_topics_blocks_load_and_map_their_records(tmp_path: Path) -> None:
    """Each worked example of "Your own topics": its [[inputs]] block loads as settings
    and maps the record shown above it to an event."""
    from alerting.wiring import select_input

    section = README[README.index("## Your own topics") :].split("\n## ", 1)[0]
    pairs = re.findall(r"```json\n(.*?)```\s*```text\n(\[\[inputs\]\].*?)```", section, re.S)
    assert len(pairs) == 3
    for record, block in pairs:
        path = tmp_path / "alerting.toml"
        path.write_text(block)
        settings = load_settings(path)
        _, mapping = select_input(settings, None)
        assert mapping is not None
        event = mapping.decode(record.strip().encode())
        assert event.kind == mapping.kind and event.entity in record
