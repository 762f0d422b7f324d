"""``alerting tail``: how the alert lifecycle is printed, and the filters."""

from __future__ import annotations

import argparse
import io
import itertools
import json
import random
import re
from collections.abc import Callable
from typing import Any

import pytest

from alerting.alerts import DRIFT, FIRING, RESOLVED
from alerting.cli import build_parser
from alerting.cli.tail import alert_filter
from alerting.settings import load_settings
from consumers.subscriber import AlertFilter, format_alert, format_duration, render, tail
from tests.unit.fakes import FakeKafkaConsumer

RED, YELLOW, GREEN, CYAN, RESET = "\033[1;31m", "\033[33m", "\033[32m", "\033[36m", "\033[0m"


def alert(
    type: str = FIRING,
    entity: str = "AAPL",
    severity: str = "warning",
    **data: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "score": 9.25,
        "threshold": 6.0,
        "severity": severity,
        "summary": f"{entity}: something odd",
    }
    body.update(data)
    return {
        "type": type,
        "subject": entity,
        "time": "2026-01-05T10:00:00Z",
        "severity": severity,
        "data": body,
    }


# ---------------------------------------------------------------- formatting


@pytest.mark.parametrize("notification", ["new", "repeat", "escalated"])
def test_firing_shows_severity_notification_entity_figures_and_summary(notification: str) -> None:
    line = format_alert(alert(severity="critical", notification=notification))
    assert line.startswith("2026-01-05T10:00:00Z  CRITICAL ")
    assert f" {notification} " in line
    assert " AAPL " in line and "score 9.2 ≥ 6" in line
    assert line.endswith("AAPL: something odd")


def test_resolved_shows_the_duration_and_the_episode_severity() -> None:
    line = format_alert(alert(RESOLVED, severity="critical", score=1.0, duration_s=185.0))
    assert "RESOLVED after 3m05s" in line
    assert "critical, score 1.0 < 6" in line
    assert line.endswith("AAPL: something odd")


def test_drift_is_labelled_drift_with_the_signal_before_and_after() -> None:
    signals = [{"signal": "score", "before": 0.812, "after": 2.15}, {"signal": "x"}]
    ce = alert(DRIFT, summary="AAPL drift (adwin): score", drift={"signals": signals})
    line = format_alert(ce)
    assert "  DRIFT    " in line and line.endswith("AAPL drift (adwin): score")
    assert "score 0.812 → 2.15" in line
    assert "≥" not in line
    assert "→" not in format_alert(alert(DRIFT))  # no signals: no figures


def test_fields_line_up_whatever_the_type() -> None:
    lines = [
        format_alert(alert(notification="new")),
        format_alert(alert(RESOLVED, duration_s=4.0, score=1.0)),
        format_alert(alert(DRIFT)),
    ]
    starts = {line.index("AAPL") for line in lines}
    assert len(starts) == 1, lines


@pytest.mark.parametrize(
    ("ce", "colour"),
    [
        (alert(severity="critical"), RED),
        (alert(severity="warning"), YELLOW),
        (alert(RESOLVED, severity="critical", duration_s=1.0), GREEN),
        (alert(DRIFT), CYAN),
    ],
)
def test_colour_per_severity_and_type(ce: dict[str, Any], colour: str) -> None:
    line = format_alert(ce, color=True)
    assert colour in line and RESET in line
    assert format_alert(ce, color=False) == line.replace(colour, "").replace(RESET, "")


def test_old_alerts_without_lifecycle_fields_still_print() -> None:
    ce = alert()
    del ce["data"]["severity"]
    line = format_alert(ce)
    assert "WARNING" in line and "score 9.2 ≥ 6" in line
    assert "?" not in format_alert(alert(RESOLVED))


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.0, 9.0, 59.6, 60, 3599, 3600, 86400)] == [
        "0s",
        "9s",
        "1m00s",
        "1m00s",
        "59m59s",
        "1h00m",
        "1d00h",
    ]


# ---------------------------------------------------------------- filters


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["tail", *argv])


def test_types_and_severities_are_repeatable_or_comma_separated() -> None:
    f = alert_filter(parse("--type", "firing,resolved", "--type", "drift"))
    assert f.types == frozenset({"firing", "resolved", "drift"})
    f = alert_filter(parse("--severity", "critical"))
    assert f.severities == frozenset({"critical"}) and f.types is None and f.entity is None
    assert not alert_filter(parse()).active


@pytest.mark.parametrize(
    "argv",
    [["--type", "fired"], ["--severity", "info"], ["--type", ","], ["--entity", "(unclosed"]],
)
def test_wrong_filter_values_are_usage_errors(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse(*argv)
    assert info.value.code == 2
    assert argv[1] in capsys.readouterr().err


def test_filters_against_a_brute_force_reference() -> None:
    """Every combination of filters on random alerts, against a plain reading of the flags."""
    rng = random.Random(3)
    entities = ["AAPL", "AMZN", "MSFT", "db-1"]
    alerts = [
        alert(
            rng.choice([FIRING, RESOLVED, DRIFT]),
            rng.choice(entities),
            rng.choice(["warning", "critical"]),
        )
        for _ in range(200)
    ]
    type_options = [None, "firing", "resolved,drift", "drift"]
    severity_options = [None, "warning", "critical", "warning,critical"]
    entity_options = [None, "^A", "db", "MSFT$"]
    for types, severities, entity in itertools.product(
        type_options, severity_options, entity_options
    ):
        argv = []
        if types:
            argv += ["--type", types]
        if severities:
            argv += ["--severity", severities]
        if entity:
            argv += ["--entity", entity]
        f = alert_filter(parse(*argv))
        for ce in alerts:
            expected = (
                (types is None or ce["type"].rsplit(".", 1)[1] in types.split(","))
                and (severities is None or ce["severity"] in severities.split(","))
                and (entity is None or re.search(entity, ce["subject"]) is not None)
            )
            assert f.matches(ce) == expected, (argv, ce)


def test_render_applies_the_filter_to_text_and_json() -> None:
    wanted = alert_filter(parse("--type", "resolved"))
    firing_value = json.dumps(alert()).encode()
    resolved_value = json.dumps(alert(RESOLVED, duration_s=2.0)).encode()
    assert render(firing_value, 1, wanted, as_json=False, color=False) is None
    assert render(firing_value, 1, wanted, as_json=True, color=False) is None
    assert render(resolved_value, 2, wanted, as_json=True, color=False) == resolved_value.decode()
    text = render(resolved_value, 2, wanted, as_json=False, color=False)
    assert text is not None and "RESOLVED after 2s" in text


def test_an_unreadable_record_shows_only_without_filters() -> None:
    everything = AlertFilter()
    assert render(b"garbage", 7, everything, False, False) == "(unreadable alert at offset 7)"
    assert render(b"garbage", 7, everything, True, False) == "garbage"
    assert render(b"garbage", 7, alert_filter(parse("--type", "drift")), False, False) is None


def test_demo_tail_arguments_still_work_without_filters() -> None:
    # a Namespace without the filter flags (as the demo's tail once had) filters nothing
    demo_args = argparse.Namespace(
        json=False, from_beginning=True, max=None, timeout=None, color=None
    )
    assert not alert_filter(demo_args).active


# ---------------------------------------------------------------- reading


def tail_of(
    monkeypatch: pytest.MonkeyPatch, consumer: FakeKafkaConsumer
) -> Callable[..., tuple[int, list[str]]]:
    """``tail`` reading ``consumer`` with the filter and options of the ``alerting tail``
    flags ``argv``: its exit code and the lines it printed."""
    from consumers import kafka_python

    monkeypatch.setattr(kafka_python, "consumer_for", lambda settings, group_id: consumer)

    def run(*argv: str, should_stop: Callable[[], bool] | None = None) -> tuple[int, list[str]]:
        out = io.StringIO()
        args = parse(*argv)
        code = tail(
            load_settings(),
            alert_filter(args),
            as_json=args.json,
            from_beginning=args.from_beginning,
            max_alerts=args.max,
            timeout_s=args.timeout,
            color=args.color,
            should_stop=should_stop,
            out=out,
        )
        return code, out.getvalue().splitlines()

    return run


def values_of(*alerts: dict[str, Any]) -> list[bytes]:
    return [json.dumps(a).encode() for a in alerts]


def test_tail_prints_from_the_beginning_until_max(monkeypatch: pytest.MonkeyPatch) -> None:
    log = values_of(alert(entity="A"), alert(entity="B"), alert(entity="C"))
    consumer = FakeKafkaConsumer({0: log[:2], 1: log[2:]})
    code, lines = tail_of(monkeypatch, consumer)("--from-beginning", "--json", "--max", "2")
    assert code == 0 and lines == [v.decode() for v in log[:2]]
    assert consumer.closed


def test_tail_from_the_end_shows_only_new_alerts(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = FakeKafkaConsumer({0: values_of(alert(entity="OLD"))})
    asked = iter(range(10))

    def should_stop() -> bool:
        n = next(asked)
        if n == 1:  # after the first poll from the high watermark, an alert arrives
            consumer.log[0].extend(values_of(alert(entity="NEW")))
        return n >= 3

    code, lines = tail_of(monkeypatch, consumer)("--max", "5", should_stop=should_stop)
    assert code == 1  # fewer than --max
    assert len(lines) == 1 and " NEW " in lines[0]


def test_tail_stopped_before_the_topic_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    run = tail_of(monkeypatch, FakeKafkaConsumer({0: []}, metadata_after=10**6))
    assert run("--max", "1", should_stop=lambda: True) == (1, [])
    assert run(should_stop=lambda: True) == (0, [])


def test_ctrl_c_ends_the_reading_quietly_but_not_the_wait_for_the_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reading = FakeKafkaConsumer({0: values_of(alert())}, poll_errors=[KeyboardInterrupt()])
    assert tail_of(monkeypatch, reading)("--from-beginning") == (0, [])
    # from the end, the first poll looks for the high watermark: still starting up
    starting = FakeKafkaConsumer({0: values_of(alert())}, poll_errors=[KeyboardInterrupt()])
    with pytest.raises(KeyboardInterrupt):
        tail_of(monkeypatch, starting)()
    assert starting.closed
