"""One process, one declared input: ``--input`` picks it, its settings are derived in one
place (the topic, the group, the changelog), and the block ``alerting inspect`` suggests
for each shape of issue 14 loads as settings and maps the records it was suggested from."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerting.errors import ConfigError
from alerting.events import Metric, Trade
from alerting.inspect import Inspector, render_block, suggest
from alerting.settings import Settings, load_settings
from alerting.wiring import select_input
from tests.unit.alerting.test_inspect import SHAPES, generated

TWO = """
[service]
group_id = "desk"

[topics]
changelog = "explicit.state"

[[inputs]]
topic = "desk.trades"
kind = "trade"
entity = "sym"
time = "ts"
[inputs.fields]
price = "px"
size = "qty"

[[inputs]]
topic = "host.metrics"
kind = "metric"
entity = "host"
time = ".@timestamp"
[inputs.fields]
values = "metrics.*"
"""


def settings_of(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "alerting.toml"
    path.write_text(text)
    return load_settings(path)


def test_no_inputs_leave_the_settings_as_they_are() -> None:
    settings = Settings()
    assert select_input(settings, None) == (settings, None)


def test_input_without_inputs_declared_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--input desk.trades: no \[\[inputs\]\] are declared"):
        select_input(Settings(), "desk.trades")


def test_several_inputs_need_input(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, TWO)
    with pytest.raises(ConfigError, match=r"--input TOPIC") as raised:
        select_input(settings, None)
    assert "desk.trades, host.metrics" in str(raised.value)


def test_an_unknown_input_is_refused_listing_the_inputs(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, TWO)
    with pytest.raises(ConfigError, match=r"--input nope: no such input.*, host.metrics"):
        select_input(settings, "nope")


def test_the_input_gets_its_topic_group_and_changelog(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, TWO)
    derived, mapping = select_input(settings, "host.metrics")
    assert mapping is not None and mapping.topic == "host.metrics" and mapping.kind == "metric"
    assert derived.topics.events == "host.metrics"
    assert derived.topics.changelog == "host.metrics.state"
    assert derived.service.group_id == "desk.host.metrics"
    # everything else as the settings say; the original is untouched
    assert derived.topics.alerts == settings.topics.alerts
    assert derived.topics.dead_letters == settings.topics.dead_letters
    assert derived.detector == settings.detector
    assert settings.topics.events == "market.events"
    assert settings.service.group_id == "desk"


def test_the_only_input_is_read_without_input(tmp_path: Path) -> None:
    one = TWO.split('[[inputs]]\ntopic = "host.metrics"')[0]
    derived, mapping = select_input(settings_of(tmp_path, one), None)
    assert mapping is not None and mapping.topic == "desk.trades"
    assert derived.service.group_id == "desk.desk.trades"
    event = mapping.decode(b'{"sym": "AAPL", "px": 191.2, "qty": 100, "ts": 1733300000123}')
    assert isinstance(event, Trade) and event.symbol == "AAPL"


def test_run_accepts_input(tmp_path: Path) -> None:
    from alerting.cli import build_parser

    args = build_parser().parse_args(["run", "--input", "desk.trades"])
    assert args.input == "desk.trades"
    assert build_parser().parse_args(["run"]).input is None


@pytest.mark.parametrize("topic", list(SHAPES))
def test_the_suggested_block_loads_and_maps_its_records(tmp_path: Path, topic: str) -> None:
    shape, expected = SHAPES[topic]
    objects = generated(shape, n=200, seed=11)
    inspector = Inspector()
    for i, obj in enumerate(objects):
        inspector.add(json.dumps(obj).encode(), timestamp_ms=1_733_300_000_000 + i)
    block = render_block(suggest(inspector.report(), topic))
    settings = settings_of(tmp_path, block)
    _, mapping = select_input(settings, topic)
    assert mapping is not None and mapping.kind == expected["kind"]
    for obj in random.Random(1).sample(objects, 20):
        event = mapping.decode(json.dumps(obj).encode())
        if topic == "desk.trades":
            assert isinstance(event, Trade)
            assert (event.symbol, event.price, event.size) == (obj["sym"], obj["px"], obj["qty"])
            assert event.time == datetime.fromtimestamp(obj["ts"] / 1000, UTC)
        elif topic == "exchange.trades":
            data = obj["data"]
            assert isinstance(event, Trade)
            assert (event.symbol, event.price) == (data["s"], float(data["p"]))
            assert event.size == float(data["q"])
            assert event.time == datetime.fromtimestamp(data["T"] / 1_000_000, UTC)
        else:
            assert isinstance(event, Metric)
            assert event.entity == obj["host"]
            assert event.values == obj["metrics"]
            assert event.time == datetime.fromisoformat(obj["@timestamp"])
