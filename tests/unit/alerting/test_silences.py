"""Silences: matchers, durations, records, expiry, and which alerts the gate lets through."""

from __future__ import annotations

import json
import logging
import random
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from alerting.alerts import DRIFT, FIRING, RESOLVED, Alert, SourcePosition
from alerting.errors import InvalidSilence
from alerting.metrics import Metrics
from alerting.silences import (
    MAX_PATTERN_CHARS,
    Silence,
    SilenceGate,
    SilenceSet,
    compile_pattern,
    new_silence,
    parse_duration,
)

NOW = 1_764_000_000.0


def silence(entity: str = "AAPL", severity: str | None = None, **kw: float) -> Silence:
    return new_silence(
        entity, severity, kw.get("duration_s", 3600.0), "maintenance", "ops", kw.get("now", NOW)
    )


# -- durations and matchers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90.0), ("30m", 1800.0), ("2h", 7200.0), ("1d", 86400.0), (" 1.5h ", 5400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "1w", "-5m", "0s", "h", "2 hours", "1h30m"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match=r"90s, 30m, 2h, 1d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("pattern", "entity", "expected"),
    [
        ("AAPL", "AAPL", True),
        ("AAPL", "AAPL2", False),  # anchored: a plain name matches exactly
        ("AAPL", "XAAPL", False),
        ("AAPL|MSFT", "MSFT", True),
        ("AAPL|MSFT", "MSFTX", False),
        ("BTC-.*", "BTC-USD", True),
        ("BTC-.*", "ETH-BTC-USD", False),
        (".*", "anything", True),
        ("cpu\\.[0-9]+", "cpu.12", True),
        ("cpu\\.[0-9]+", "cpu.x", False),
    ],
)
def test_entity_matcher_is_an_anchored_regex(pattern: str, entity: str, expected: bool) -> None:
    assert silence(pattern).matches(entity, "warning") is expected
    # the oracle: Alertmanager's =~ anchors the expression as ^(?:...)$
    assert (compile_pattern(f"^(?:{pattern})$").search(entity) is not None) is expected


@pytest.mark.parametrize("pattern", ["AAPL(", "[", "*x", ""])
def test_invalid_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="entity pattern"):
        silence(pattern)


# -- pattern safety: a linear-time engine, a length cap ----------------------------------

#: patterns that backtrack exponentially (or worse) in Python's re: a long run of ``char``
#: never matches, and with ``end`` after it, it does
BACKTRACKING = [
    ("(a|a)*b", "a", "b"),
    ("(x+x+)+y", "x", "y"),
    ("(a+)+b", "a", "b"),
    ("(a*)*b", "a", "b"),
    ("([a-z]+)*[0-9]", "a", "7"),
    ("(.*a){12}b", "a", "b"),
]


@pytest.mark.parametrize(("pattern", "char", "end"), BACKTRACKING)
def test_backtracking_patterns_are_compiled_by_the_linear_engine(
    pattern: str, char: str, end: str
) -> None:
    s = silence(pattern)
    assert type(s.regex).__module__.split(".")[0] == "re2", type(s.regex)
    assert not isinstance(s.regex, re.Pattern)
    # entities of the schema's longest, 200 characters, match as Alertmanager says
    assert s.matches(char * 200, "warning") is False
    assert s.matches(char * 199 + end, "warning") is True


def test_backtracking_patterns_match_a_long_entity_in_linear_time() -> None:
    """Each pattern against 10,000 of its character, in a child process with a timeout: a
    backtracking engine would not finish (``(a|a)*b`` doubles its time per character)."""
    script = textwrap.dedent(
        f"""
        import time
        from alerting.silences import new_silence
        for pattern, char, _end in {BACKTRACKING!r}:
            s = new_silence(pattern, None, 60.0, "c", "me", now=0.0)
            start = time.perf_counter()
            assert not s.matches(char * 10_000, "warning")
            print(pattern, time.perf_counter() - start)
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        pytest.fail("matching a 10,000-character entity did not finish within 30 s")
    assert done.returncode == 0, done.stderr
    seconds = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in done.stdout.splitlines()
    }
    assert set(seconds) == {p for p, _, _ in BACKTRACKING}
    assert all(t < 1.0 for t in seconds.values()), seconds


@pytest.mark.parametrize(
    ("pattern", "detail"),
    [
        ("(a)\\1", "(RE2 syntax, as Alertmanager's): invalid escape sequence"),  # backreference
        ("AAPL(?=X)", "(RE2 syntax, as Alertmanager's): invalid perl operator"),  # look-ahead
        ("(?<!X)AAPL", "(RE2 syntax, as Alertmanager's): invalid perl operator"),  # look-behind
        ("AAPL\\Z", "(RE2 syntax, as Alertmanager's): invalid escape"),  # Python's \Z, not Go's
        ("a{1001}", "(RE2 syntax, as Alertmanager's): invalid repetition size"),
        ("A\ud800", "is not valid Unicode text"),
    ],
)
def test_what_the_linear_engine_cannot_run_is_refused(pattern: str, detail: str) -> None:
    with pytest.raises(ValueError, match=r"^entity pattern ") as caught:
        silence(pattern)
    assert detail in str(caught.value)


def test_patterns_keep_alertmanager_semantics() -> None:
    """RE2 is the syntax of Go's regexp, so a pattern means what Alertmanager makes of it."""
    assert silence("cpu\\d+").matches("cpu12", "warning")
    assert not silence("cpu\\d+").matches("cpu\u0663", "warning")  # \d is ASCII, as in Go
    assert silence("(?i)aapl").matches("AAPL", "warning")
    assert silence("\\pL+-USD").matches("ÉTH-USD", "warning")
    assert silence("(?P<base>BTC)-.*").matches("BTC-EUR", "warning")
    assert not silence("BTC").matches("BTC\n", "warning")  # anchored at the very end
    # an entity no schema lets through (a lone surrogate) is matched, never raises
    assert silence("A.B").matches("A\ud800B", "warning")


def test_a_pattern_over_the_length_cap_is_refused_naming_the_cap() -> None:
    assert MAX_PATTERN_CHARS == 1000
    assert silence("A" * MAX_PATTERN_CHARS).matches("A" * MAX_PATTERN_CHARS, "warning")
    with pytest.raises(ValueError, match="1001 characters long, over the cap of 1000") as caught:
        silence("A" * (MAX_PATTERN_CHARS + 1))
    assert len(str(caught.value)) < 200  # the pattern is not echoed whole


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (
            "A" * 5000,
            "--entity: entity pattern 'AAAAAAAAAAAAAAAAAAAA'… is 5000 characters long, "
            "over the cap of 1000 characters",
        ),
        ("AAPL(?=X)", "--entity: entity pattern 'AAPL(?=X)' is not a valid regular expression"),
        ("(a)\\1", "invalid escape sequence"),
    ],
)
def test_silence_add_refuses_an_unsafe_pattern_with_one_line(
    pattern: str,
    message: str,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """capfd, not capsys: RE2 itself must not write to stderr either."""
    from alerting.cli import main

    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", raising=False)
    argv = ["silence", "add", "--entity", pattern, "--duration", "1h", "--comment", "why"]
    assert main(argv) == 2
    err = capfd.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and len(err) < 300, err


def test_topic_records_with_unsafe_patterns_are_refused_counted_and_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record written by anyone: its pattern is checked before it is compiled, by RE2
    only; the refused ones are counted, the others apply."""
    from consumers.control.hook import AlertControl
    from tests.unit.fakes import raw_record

    metrics = Metrics(CollectorRegistry())
    control = AlertControl(metrics, clock=lambda: NOW + 1)
    good, redos = silence("AAPL"), silence("(a|a)*b")
    refused = [
        new_silence("X", None, 60, "c", "me", NOW, silence_id=f"bad-{i}").to_dict()
        for i in range(3)
    ]
    refused[0]["entity"] = "A" * 100_000
    refused[1]["entity"] = "(a)\\1"
    refused[2]["entity"] = "A\ud800"

    def never(*_args: object, **_kw: object) -> None:
        raise AssertionError("Python's re compiled a silence pattern")

    monkeypatch.setattr(re, "compile", never)
    with caplog.at_level(logging.INFO, logger="consumers.control"):
        control.on_silence_record(raw_record(good.to_json(), 0, key=good.id.encode()))
        for offset, data in enumerate(refused, start=1):
            control.on_silence_record(
                raw_record(json.dumps(data).encode(), offset, key=data["id"].encode())
            )
        control.on_silence_record(raw_record(redos.to_json(), 4, key=redos.id.encode()))
    monkeypatch.undo()
    value = metrics.registry.get_sample_value(
        "alerting_control_records_invalid_total", {"reason": "invalid"}
    )
    assert value == 3
    assert {s.id for s in control.silences.all()} == {good.id, redos.id}
    assert "over the cap of 1000 characters" in caplog.text
    assert "invalid escape sequence" in caplog.text and "not valid Unicode" in caplog.text
    assert control.silences.matching("AAPL", "warning", NOW + 1) == [good]
    assert control.silences.matching("a" * 10_000, "warning", NOW + 1) == []


def test_severity_matcher() -> None:
    s = silence("AAPL", "critical")
    assert s.matches("AAPL", "critical")
    assert not s.matches("AAPL", "warning")
    assert silence("AAPL").matches("AAPL", "warning")
    with pytest.raises(ValueError, match="severity must be one of warning, critical"):
        silence("AAPL", "info")


def test_new_silence_validates() -> None:
    with pytest.raises(ValueError, match="duration must be positive"):
        silence(duration_s=0)
    with pytest.raises(ValueError, match="comment must not be empty"):
        new_silence("A", None, 60, "  ", "me", NOW)


# -- activity and expiry (wall clock) -----------------------------------------------------


def test_active_from_start_until_end() -> None:
    s = silence(duration_s=60)
    assert [s.state(t) for t in (NOW - 1, NOW, NOW + 59.9, NOW + 60)] == [
        "pending",
        "active",
        "active",
        "expired",
    ]
    assert [s.active(t) for t in (NOW - 1, NOW, NOW + 59.9, NOW + 60)] == [
        False,
        True,
        True,
        False,
    ]


def test_expire_ends_it_now_and_keeps_the_rest() -> None:
    s = silence(duration_s=3600)
    ended = s.expired(NOW + 10)
    assert ended.ends_at == NOW + 10 and not ended.active(NOW + 10)
    assert (ended.id, ended.entity, ended.comment, ended.created_at) == (
        s.id,
        s.entity,
        s.comment,
        s.created_at,
    )
    assert ended.expired(NOW + 20) is ended  # already over: unchanged


# -- records --------------------------------------------------------------------------------


def test_record_round_trip_has_the_documented_fields() -> None:
    s = silence("BTC-.*", "warning")
    data = json.loads(s.to_json())
    assert set(data) == {
        "id",
        "entity",
        "severity",
        "starts_at",
        "ends_at",
        "comment",
        "author",
        "created_at",
    }
    assert data["starts_at"].endswith("Z")
    assert Silence.from_json(s.to_json()) == s


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        (b"not json", "invalid", "not JSON"),
        (b"[1, 2]", "invalid", "not a JSON object"),
        (b'{"id": "x", "entity": "A"}', "invalid", "missing ends_at, starts_at"),
        (
            b'{"id": "x", "entity": "A(", "starts_at": "2026-01-01T00:00:00Z",'
            b' "ends_at": "2026-01-02T00:00:00Z"}',
            "invalid",
            "regular expression",
        ),
        (
            b'{"id": "x", "entity": "A", "starts_at": "yesterday",'
            b' "ends_at": "2026-01-02T00:00:00Z"}',
            "invalid",
            "RFC 3339",
        ),
        (
            b'{"id": "x", "entity": "A", "starts_at": "2026-01-02T00:00:00Z",'
            b' "ends_at": "2026-01-01T00:00:00Z"}',
            "invalid",
            "must not be before",
        ),
        (
            b'{"id": "other", "entity": "A", "starts_at": "2026-01-01T00:00:00Z",'
            b' "ends_at": "2026-01-02T00:00:00Z"}',
            "key_mismatch",
            "differs",
        ),
    ],
)
def test_malformed_records_are_refused_with_a_reason(
    value: bytes, reason: str, detail: str
) -> None:
    silences = SilenceSet()
    with pytest.raises(InvalidSilence, match=detail) as caught:
        silences.apply(b"x", value)
    assert caught.value.reason == reason
    assert silences.all() == []


def test_last_record_per_id_wins_and_a_tombstone_deletes() -> None:
    silences = SilenceSet()
    s = silence(duration_s=3600)
    silences.apply(s.id.encode(), s.to_json())
    assert silences.matching("AAPL", "warning", NOW + 5) == [s]
    silences.apply(s.id.encode(), s.expired(NOW + 10).to_json())
    assert silences.matching("AAPL", "warning", NOW + 11) == []
    assert silences.active_count(NOW + 11) == 0 and len(silences.all()) == 1
    silences.apply(s.id.encode(), None)
    assert silences.all() == []
    with pytest.raises(InvalidSilence) as caught:
        silences.apply(None, s.to_json())
    assert caught.value.reason == "no_key"


# -- the gate -------------------------------------------------------------------------------


def alert(
    kind: str,
    entity: str,
    offset: int,
    severity: str = "warning",
    notification: str | None = None,
    firing_id: str | None = None,
) -> Alert:
    details = {}
    if notification is not None:
        details["notification"] = notification
    if firing_id is not None:
        details["firing_id"] = firing_id
    return Alert(
        type=kind,
        entity=entity,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        score=9.0,
        threshold=6.0,
        severity=severity,
        detector="zscore",
        model_version="v",
        features={},
        contributions={},
        summary="",
        source=SourcePosition("events", 0, offset),
        details=details or None,
    )


def gate_with(*silences: Silence, clock: float = NOW + 1, remember: int = 1000) -> SilenceGate:
    silence_set = SilenceSet()
    for s in silences:
        silence_set.apply(s.id.encode(), s.to_json())
    return SilenceGate(silence_set, clock=lambda: clock, max_remembered=remember)


def test_matching_alerts_are_held_and_counted_by_severity() -> None:
    gate = gate_with(silence("AAPL"), silence("MSFT", "critical"))
    admitted = [
        gate.admit(alert(FIRING, "AAPL", 1, "warning")),
        gate.admit(alert(FIRING, "AAPL", 2, "critical")),
        gate.admit(alert(FIRING, "MSFT", 3, "warning")),
        gate.admit(alert(FIRING, "MSFT", 4, "critical")),
        gate.admit(alert(FIRING, "GOOG", 5, "critical")),
    ]
    assert admitted == [False, False, True, False, True]
    assert dict(gate.silenced) == {"warning": 1, "critical": 2}


def test_drift_events_are_silenced_too() -> None:
    gate = gate_with(silence("AAPL"))
    assert not gate.admit(alert(DRIFT, "AAPL", 1))
    assert gate.admit(alert(DRIFT, "MSFT", 2))


def test_an_expired_or_pending_silence_holds_nothing() -> None:
    expired = silence(duration_s=60, now=NOW - 120)
    pending = silence(now=NOW + 3600)
    gate = gate_with(expired, pending)
    assert gate.admit(alert(FIRING, "AAPL", 1))


def test_resolved_follows_whether_its_episode_was_notified() -> None:
    s = silence("AAPL", duration_s=60)
    gate = gate_with(s)
    new = alert(FIRING, "AAPL", 1, notification="new")
    assert not gate.admit(new, now=NOW + 1)
    # resolved while the silence is over: still held, its firing was never sent
    assert not gate.admit(alert(RESOLVED, "AAPL", 9, firing_id=new.id), now=NOW + 120)
    assert gate.remembered == 0
    # an episode notified before the silence is resolved even under the silence
    other = alert(FIRING, "AAPL", 20, notification="new")
    assert gate.admit(other, now=NOW - 10)
    assert not gate.admit(
        alert(FIRING, "AAPL", 21, notification="repeat", firing_id=other.id), now=NOW + 1
    )
    assert gate.admit(alert(RESOLVED, "AAPL", 22, firing_id=other.id), now=NOW + 2)


def test_a_repeat_after_the_silence_ends_is_sent_and_then_resolved() -> None:
    gate = gate_with(silence("AAPL", duration_s=60))
    new = alert(FIRING, "AAPL", 1, notification="new")
    assert not gate.admit(new, now=NOW + 1)
    assert gate.admit(
        alert(FIRING, "AAPL", 2, notification="repeat", firing_id=new.id), now=NOW + 61
    )
    assert gate.admit(alert(RESOLVED, "AAPL", 3, firing_id=new.id), now=NOW + 62)


def test_remembered_episodes_are_bounded() -> None:
    gate = gate_with(silence(".*"), remember=3)
    news = [alert(FIRING, f"E{i}", i, notification="new") for i in range(5)]
    assert not any(gate.admit(a) for a in news)
    assert gate.remembered == 3
    # the two oldest are forgotten: their resolves go out (harmless), the others do not
    resolved = [
        gate.admit(alert(RESOLVED, a.entity, 100 + i, firing_id=a.id)) for i, a in enumerate(news)
    ]
    assert resolved == [True, True, False, False, False]


def test_gate_matches_a_brute_force_reference_on_random_streams() -> None:
    """Random episodes under silences switching on and off: every resolved is sent exactly
    when some firing notification of its episode was sent, and every non-resolved alert is
    sent exactly when no active silence matches it."""
    rng = random.Random(5)
    for _trial in range(30):
        entities = ["A", "B", "C"]
        silences = [
            new_silence(
                rng.choice(["A", "B", "A|C", ".*"]),
                rng.choice([None, "warning", "critical"]),
                rng.uniform(5, 40),
                "t",
                "t",
                now=rng.uniform(0, 100),
            )
            for _ in range(rng.randint(0, 3))
        ]
        silence_set = SilenceSet()
        for s in silences:
            silence_set.apply(s.id.encode(), s.to_json())
        gate = SilenceGate(silence_set, clock=lambda: 0.0)
        open_episode: dict[str, str] = {}
        sent_episodes: set[str] = set()
        offset = 0
        for step in range(200):
            now = step * 0.6
            entity = rng.choice(entities)
            severity = rng.choice(["warning", "critical"])
            offset += 1
            if entity in open_episode and rng.random() < 0.3:
                episode = open_episode.pop(entity)
                a = alert(RESOLVED, entity, offset, severity, firing_id=episode)
                assert gate.admit(a, now) is (episode in sent_episodes)
                continue
            if entity in open_episode:
                a = alert(
                    FIRING,
                    entity,
                    offset,
                    severity,
                    notification=rng.choice(["repeat", "escalated"]),
                    firing_id=open_episode[entity],
                )
            else:
                a = alert(FIRING, entity, offset, severity, notification="new")
                open_episode[entity] = a.id
            held = any(s.active(now) and s.matches(entity, severity) for s in silences)
            assert gate.admit(a, now) is (not held)
            if not held:
                sent_episodes.add(open_episode[entity])


# -- the command line (no broker needed to refuse bad input) ---------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--entity", "AAPL(", "--duration", "1h"], "--entity: entity pattern 'AAPL('"),
        (["--entity", "AAPL", "--duration", "90"], "--duration: duration '90'"),
        (["--entity", "AAPL", "--duration", "1h", "--severity", "info"], "--severity must be"),
        (["--entity", "AAPL", "--duration", "1h", "--comment", " "], "--comment must not"),
        (["--entity", "AAPL", "--duration", "1h"], "kafka.bootstrap_servers"),
    ],
)
def test_silence_add_refuses_bad_input_with_one_line_and_status_2(
    argv: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alerting.cli import main

    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", raising=False)
    if "--comment" not in argv:
        argv = [*argv, "--comment", "why"]
    assert main(["silence", "add", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_list_and_feedback_need_a_cluster(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alerting.cli import main

    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", raising=False)
    assert main(["silence", "list"]) == 2
    assert main(["feedback", "abc", "--verdict", "fp"]) == 2
    err = capsys.readouterr().err
    assert err.count("kafka.bootstrap_servers") == 2, err
    with pytest.raises(SystemExit) as exited:
        main(["feedback", "abc", "--verdict", "maybe"])
    assert exited.value.code == 2


# -- the control-topic readers: failures counted, logged rate-limited, restarted ---------


class FakeControlConsumer:
    """The part of a kafka-python consumer a TopicReader uses; ``script`` is what each
    poll does: a list of record values to deliver, or an exception to raise."""

    def __init__(self, script: list[object], crash_on_assign: bool = False) -> None:
        self.script = list(script)
        self.crash_on_assign = crash_on_assign
        self.offset = 0
        self.closed = False

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def assign(self, tps: object) -> None:
        if self.crash_on_assign:
            raise ValueError("the client is in a bad state")

    def seek_to_beginning(self, *tps: object) -> None:
        pass

    def poll(self, timeout_ms: int = 0, max_records: int = 0) -> dict[object, list[object]]:
        from tests.unit.fakes import raw_record

        if not self.script:
            time.sleep(0.005)
            return {}
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        assert isinstance(step, list)
        records = [raw_record(v, self.offset + i, topic="silences") for i, v in enumerate(step)]
        self.offset += len(records)
        return {"tp": records}

    def highwater(self, tp: object) -> int:
        return self.offset

    def position(self, tp: object) -> int:
        return self.offset

    def close(self) -> None:
        self.closed = True


def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def reader_for(
    metrics: Metrics,
    consumers: list[object],
    handle: Callable[[object], None] | None = None,
    **kw: object,
) -> tuple[Any, list[bytes | None]]:
    from alerting.settings import load_settings
    from consumers.control.reader import TopicReader

    seen: list[bytes | None] = []

    def make() -> object:
        step = consumers.pop(0) if len(consumers) > 1 else consumers[0]
        if isinstance(step, BaseException):
            raise step
        return step

    reader = TopicReader(
        load_settings(),
        "silences",
        handle or (lambda record: seen.append(record.value)),  # type: ignore[attr-defined]
        name="silences",
        metrics=metrics,
        consumer=make,
        first_backoff_s=0.01,
        max_backoff_s=0.04,
        poll_retry_s=0.001,
        **kw,  # type: ignore[arg-type]
    )
    return reader, seen


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_reader_that_dies_is_restarted_with_backoff_and_the_loop_never_sees_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    broken = FakeControlConsumer([[b"one"]], crash_on_assign=True)
    healthy = FakeControlConsumer([[b"two"], [b"three"]])
    reader, seen = reader_for(metrics, [ConnectionError("no broker"), broken, healthy])
    assert sample(metrics, "alerting_control_reader_up", reader="silences") == 0
    with caplog.at_level(logging.WARNING, logger="consumers.control"):
        reader.start()
        until(lambda: seen == [b"two", b"three"])
        until(lambda: sample(metrics, "alerting_control_reader_up", reader="silences") == 1)
        assert reader.is_alive() and reader.restarts == 2 and broken.closed
        reader.stop()
    assert sample(metrics, "alerting_control_reader_up", reader="silences") == 0
    failures = "alerting_control_reader_failures_total"
    assert sample(metrics, failures, reader="silences", reason="connect") == 1
    assert sample(metrics, failures, reader="silences", reason="crashed") == 1
    assert sample(metrics, failures, reader="silences", reason="poll") == 0
    text = caplog.text
    assert "connect" in text and "no broker" in text
    assert "crashed" in text and "bad state" in text and "restarting in" in text


def test_each_failed_poll_is_counted_and_the_same_failure_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    flaky = FakeControlConsumer([ConnectionError("timed out")] * 5 + [[b"after"]])
    reader, seen = reader_for(metrics, [flaky])
    with caplog.at_level(logging.WARNING, logger="consumers.control"):
        reader.start()
        until(lambda: seen == [b"after"])
        reader.stop()
    failures = "alerting_control_reader_failures_total"
    assert sample(metrics, failures, reader="silences", reason="poll") == 5
    logged = [r for r in caplog.records if "timed out" in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "reading silences again after 5 failed polls" in caplog.text


def test_distinct_failures_are_each_logged_and_repeats_counted_in_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from consumers.control.reader import FailureLog

    now = [0.0]
    counted: list[str] = []
    failures = FailureLog("reader of s", counted.append, every_s=60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="consumers.control"):
        failures.failed("poll", ConnectionError("a"))
        failures.failed("poll", ConnectionError("b"))  # same reason and type: only counted
        failures.failed("poll", TimeoutError("c"))  # another failure: logged
        failures.failed("record", ValueError("d"))
        now[0] = 61.0
        failures.failed("poll", ConnectionError("e"))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4, messages
    assert "'a'" in messages[0] and "'c'" in messages[1] and "'d'" in messages[2]
    assert "'e'" in messages[3] and "and 1 more like it" in messages[3]
    assert counted == ["poll", "poll", "poll", "record", "poll"]


def test_a_record_whose_handling_raises_is_counted_logged_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    handled: list[bytes | None] = []

    def handle(record: Any) -> None:
        if record.value == b"bad":
            raise KeyError("bug")
        handled.append(record.value)

    consumer = FakeControlConsumer([[b"bad", b"ok", b"bad", b"bad"], [b"last"]])
    reader, _ = reader_for(metrics, [consumer], handle=handle)
    with caplog.at_level(logging.WARNING, logger="consumers.control"):
        reader.start()
        until(lambda: handled == [b"ok", b"last"])
        reader.stop()
    failures = "alerting_control_reader_failures_total"
    assert sample(metrics, failures, reader="silences", reason="record") == 3
    assert len([r for r in caplog.records if "bug" in r.getMessage()]) == 1
    assert reader.restarts == 0


def test_a_reader_thread_that_ends_is_replaced_from_the_consume_loop() -> None:
    from consumers.control.hook import AlertControl

    metrics = Metrics(CollectorRegistry())
    control = AlertControl(metrics)
    consumer = FakeControlConsumer([[b"x"]])
    reader, seen = reader_for(metrics, [consumer])

    reader._follow = lambda: None  # type: ignore[method-assign]  # it returns: the thread ends
    control.readers.append(reader)
    reader.start()
    reader.join(5)
    now = [100.0]
    control._supervise(clock=lambda: now[0])  # found gone: a new one after the backoff
    assert control.readers[0] is reader
    control._supervise(clock=lambda: now[0] + 0.005)
    assert control.readers[0] is reader  # not yet
    now[0] += 0.02
    control._supervise(clock=lambda: now[0])
    fresh = control.readers[0]
    assert fresh is not reader and fresh.restarts == 1
    until(lambda: seen == [b"x"])
    assert fresh.is_alive()
    failures = "alerting_control_reader_failures_total"
    assert sample(metrics, failures, reader="silences", reason="crashed") == 1
    control.stop()
    assert not fresh.is_alive()


def test_the_cli_reader_is_not_restarted_and_reports_its_error() -> None:
    metrics = Metrics(CollectorRegistry())
    reader, _ = reader_for(metrics, [ConnectionError("refused")], restart=False)
    reader.start()
    assert reader.ready.wait(5)
    reader.join(5)
    assert not reader.is_alive() and isinstance(reader.error, ConnectionError)
