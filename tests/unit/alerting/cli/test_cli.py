"""CLI errors that need no broker: they must fail at once, naming the flag or setting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from alerting.cli import main
from alerting.errors import ConfigError
from alerting.metrics import Metrics
from alerting.settings import KafkaSettings, load_settings


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


def test_run_without_a_broker_or_topic_creation_is_one_line_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALERTING__TOPICS__CREATE", "false")
    monkeypatch.setenv("ALERTING__STATE__SIGNING_KEY", "unit-tests-signing-key")
    monkeypatch.setenv("ALERTING__METRICS__PORT", "0")
    started = time.monotonic()
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("alerting run: no broker answers at 127.0.0.1:1"), err
    assert "kafka.bootstrap_servers" in err and "ALERTING__KAFKA__BOOTSTRAP_SERVERS" in err
    assert time.monotonic() - started < 20, "not the client's 30 s bootstrap timeout"


def test_a_kafka_client_error_escaping_a_command_becomes_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from kafka.errors import KafkaTimeoutError

    import consumers.control.commands

    def bootstrap_fails(*args: object, **kwargs: object) -> int:
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    monkeypatch.setattr(consumers.control.commands, "list_silences", bootstrap_fails)
    assert main(["silence", "list"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "no broker answers at 127.0.0.1:1" in err and "kafka.bootstrap_servers" in err
    assert "Unable to bootstrap" in err  # the client's own words, for the record


SASL = {
    "bootstrap_servers": "127.0.0.1:1",
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-512",
    "sasl_username": "svc",
    "sasl_password": "hunter2-sasl",
}


def test_a_refused_login_names_the_sasl_settings_and_never_the_password() -> None:
    from consumers.health import login_refused

    error = login_refused(
        KafkaSettings(**SASL), "Authentication failed for svc with password hunter2-sasl"
    )
    assert isinstance(error, ConfigError)
    message = str(error)
    assert "hunter2-sasl" not in message and "***" in message
    for name in ("sasl_username", "sasl_password", "sasl_mechanism"):
        assert f"kafka.{name}" in message and f"ALERTING__KAFKA__{name.upper()}" in message
    assert "SCRAM-SHA-512" in message and "'svc'" in message


def test_the_watchdog_reports_a_refused_login_as_down_once_and_stops_probing() -> None:
    from consumers.health import BrokerWatchdog

    metrics = Metrics()
    refusal = ConfigError("refused; check kafka.sasl_password")
    probes: list[int] = []
    refused: list[ConfigError] = []

    def check() -> bool:
        probes.append(1)
        raise refusal

    watchdog = BrokerWatchdog(
        KafkaSettings(**SASL),
        interval_s=0,
        on_change=metrics.broker_up.set,
        check=check,
        on_refused=refused.append,
    )
    assert metrics.registry.get_sample_value("alerting_broker_up") == 1
    watchdog._run()  # the thread's body, here on the test's thread: it returns by itself
    assert refused == [refusal] and watchdog.refused is refusal
    assert probes == [1], "no more probing once the login is refused"
    assert metrics.registry.get_sample_value("alerting_broker_up") == 0
    watchdog.refuse(ConfigError("again"))  # a client's refusal after the probe's: no repeat
    assert refused == [refusal]


def test_the_confluent_clients_refused_login_stops_the_service_with_the_same_error() -> None:
    kafka = pytest.importorskip("confluent_kafka")
    from consumers.confluent import ConfluentPort

    port = ConfluentPort.__new__(ConfluentPort)  # the error callback only: no clients
    port.settings = load_settings(kafka=SASL)
    refused: list[ConfigError] = []
    port.on_refused = refused.append
    port.client_error(kafka.KafkaError(kafka.KafkaError._TRANSPORT, "Connection refused"))
    assert refused == [], "a transport error is librdkafka's to retry"
    port.client_error(
        kafka.KafkaError(
            kafka.KafkaError._AUTHENTICATION,
            "SASL authentication error: Authentication failed: Invalid username or password "
            "(after 1ms in state AUTH_REQ)",
        )
    )
    (error,) = refused
    message = str(error)
    assert "refused the SASL SCRAM-SHA-512 login" in message and "Invalid username" in message
    assert "kafka.sasl_password" in message and "hunter2-sasl" not in message
