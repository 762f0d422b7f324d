"""A refused SASL login, from the wire: one line naming the ``kafka.sasl_*`` settings.

tansu has no SASL (it answers a PLAIN handshake with UNSUPPORTED_SASL_MECHANISM), so a
real tansu runs behind :class:`sasl_proxy.SaslProxy`, which does the SASL/PLAIN part of
the Kafka protocol and relays logged-in connections; tansu advertises the proxy's
address, so the clients' connections to its node go through the proxy too.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafkastack import Broker, Stack, stop
from sasl_proxy import SaslProxy

from alerting.embedded_broker import accepts_connections, find_binary, free_port

pytestmark = pytest.mark.kafka

USER, PASSWORD = "svc-alerting", "right-horse-battery-staple"
WRONG = "wrong-password-do-not-print"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslProxy]:
    port = free_port()
    sasl = SaslProxy(("127.0.0.1", port), USER, PASSWORD)
    log = open(tmp_path_factory.mktemp("tansu") / "tansu.log", "ab")  # noqa: SIM115
    url, advertised = f"tcp://127.0.0.1:{port}", f"tcp://{sasl.bootstrap_servers}"
    broker = subprocess.Popen(
        [
            str(find_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            advertised,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not accepts_connections("127.0.0.1", port):
            assert broker.poll() is None and time.monotonic() < deadline, "tansu did not start"
            time.sleep(0.02)
        with sasl:
            yield sasl
    finally:
        broker.terminate()
        broker.wait(timeout=10)
        log.close()


@pytest.fixture
def sasl_stack(proxy: SaslProxy, tmp_path: Path) -> Stack:
    tag = uuid.uuid4().hex[:8]
    proxy.password = PASSWORD  # a test before may have rotated it
    return Stack(
        Broker(proxy.bootstrap_servers, "sasl-proxy"),
        events=f"events-{tag}",
        alerts=f"alerts-{tag}",
        dead_letters=f"dlq-{tag}",
        group=f"group-{tag}",
        workdir=tmp_path,
    )


def sasl_env(password: str) -> dict[str, str]:
    return {
        "ALERTING__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ALERTING__KAFKA__SASL_MECHANISM": "PLAIN",
        "ALERTING__KAFKA__SASL_USERNAME": USER,
        "ALERTING__KAFKA__SASL_PASSWORD": password,
    }


def assert_refused_in_one_line(err: str) -> None:
    assert "Traceback" not in err, err
    assert WRONG not in err and PASSWORD not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert "refused the SASL PLAIN login" in line, err
    for name in ("kafka.sasl_username", "kafka.sasl_password", "kafka.sasl_mechanism"):
        assert name in line, err
    assert "ALERTING__KAFKA__SASL_PASSWORD" in line, err


COMMANDS = {
    "run": ["run"],
    "replay": ["replay", "--synthetic", "--count", "100", "--fast", "--no-progress"],
    "tail": ["tail", "--timeout", "20"],
    "forward": ["forward", "--webhook", "http://127.0.0.1:9/hook"],
    "silence": ["silence", "list"],
    "feedback": ["feedback", "some-alert-id", "--verdict", "fp"],
    "demo": ["demo", "--duration", "20"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_wrong_password_stops_every_command_at_start_in_one_line(
    sasl_stack: Stack, proxy: SaslProxy, command: str
) -> None:
    refusals = proxy.refusals
    started = time.monotonic()
    result = sasl_stack.cli(*COMMANDS[command], timeout=60, **sasl_env(WRONG))
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 30, "the clients' 30 s bootstrap timeout, not the probe"
    assert_refused_in_one_line(result.stderr)
    assert result.stderr.startswith(f"alerting {command}: "), result.stderr
    assert proxy.refusals > refusals, "the refusal came from the proxy, over the wire"


def test_the_right_password_replays_runs_and_tails(sasl_stack: Stack, proxy: SaslProxy) -> None:
    env = sasl_env(PASSWORD)
    replay = sasl_stack.cli(
        "replay",
        *("--synthetic", "--count", "6000", "--seed", "5", "--fast", "--no-progress"),
        timeout=120,
        **env,
    )
    assert replay.returncode == 0, replay.stderr
    service = sasl_stack.start("run", **env)
    try:
        tail = sasl_stack.cli(
            "tail",
            "--from-beginning",
            "--json",
            "--max",
            "2",
            "--timeout",
            "90",
            timeout=120,
            **env,
        )
    finally:
        assert stop(service) == 0, sasl_stack.log()
    assert tail.returncode == 0, tail.stderr + sasl_stack.log()
    assert len(tail.stdout.splitlines()) == 2, tail.stdout
    assert proxy.logins > 0
    assert PASSWORD not in sasl_stack.log() + tail.stderr + replay.stderr


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_credentials_refused_during_the_run_stop_the_service_with_the_same_error(
    sasl_stack: Stack, proxy: SaslProxy, client: str
) -> None:
    if client == "confluent":
        pytest.importorskip("confluent_kafka")
    service = sasl_stack.start("run", ALERTING__KAFKA__CLIENT=client, **sasl_env(PASSWORD))
    try:
        # after the restore: a restore in progress would wait for the broker for ever (the
        # changelog reader has no deadline and does not see the stop; left as it is here)
        sasl_stack.wait_for(
            lambda: "entity states" in sasl_stack.log(), 60, "the service's restore"
        )
        proxy.refuse_from_now()  # the password is rotated: every reconnect is refused
        code = service.wait(timeout=60)
    finally:
        if service.poll() is None:
            stop(service)
    log = sasl_stack.log()
    assert code == 2, log
    assert "Traceback" not in log and PASSWORD not in log, log
    last = log.strip().splitlines()[-1]
    assert last.startswith("alerting run: the brokers at"), log
    assert "refused the SASL PLAIN login" in last and "kafka.sasl_password" in last, log


@pytest.mark.parametrize(
    "command",
    [
        ["tail", "--timeout", "60"],
        ["forward", "--webhook", "http://127.0.0.1:9/hook"],
    ],
    ids=lambda c: c[0],
)
def test_credentials_refused_while_tail_or_forward_runs_stop_them_with_the_same_error(
    sasl_stack: Stack, proxy: SaslProxy, command: list[str]
) -> None:
    logins = proxy.logins
    name = command[0]
    process = sasl_stack.start(*command, log_name=name, **sasl_env(PASSWORD))
    try:
        # the start check's login and at least one of the client's
        sasl_stack.wait_for(lambda: proxy.logins >= logins + 2, 60, f"{name} logged in")
        proxy.refuse_from_now()
        code = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            stop(process)
    log = sasl_stack.log(name)
    assert code == 2, log
    assert "Traceback" not in log and PASSWORD not in log, log
    last = log.strip().splitlines()[-1]
    assert last.startswith(f"alerting {name}: the brokers at"), log
    assert "refused the SASL PLAIN login" in last and "kafka.sasl_password" in last, log
