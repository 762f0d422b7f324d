"""The snapshot-signing key: required on a configured cluster, never shown, made for the
embedded broker."""

from __future__ import annotations

import json

import pytest

from alerting.cli import main
from alerting.errors import ConfigError
from alerting.settings import load_settings
from alerting.wiring import _with_bootstrap

SECRET = "s3cret-signing-key-never-shown"


@pytest.fixture(autouse=True)
def configured_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALERTING__STATE__SIGNING_KEY", "ALERTING__STATE__TRUST_CHANGELOG"):
        monkeypatch.delenv(name, raising=False)
    # nothing listens on port 1: a command that tried to connect would hang, then fail
    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")


def test_run_on_a_configured_cluster_without_a_key_fails_at_start_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "ALERTING__STATE__SIGNING_KEY" in err and "TRUST_CHANGELOG" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_short_key_is_refused_without_echoing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALERTING__STATE__SIGNING_KEY", "short-s3cret")
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "state.signing_key" in err and "16" in err
    assert "short-s3cret" not in err


def test_the_key_is_masked_in_alerting_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALERTING__STATE__SIGNING_KEY", SECRET)
    assert main(["config", "--json"]) == 0
    out = capsys.readouterr().out
    assert SECRET not in out
    assert json.loads(out)["state"]["signing_key"] == "**********"


def test_a_trusted_changelog_needs_no_key_and_a_key_is_used_as_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from alerting.wiring import build_processor, require_signing_key

    monkeypatch.setenv("ALERTING__STATE__TRUST_CHANGELOG", "true")
    require_signing_key(load_settings())  # no error
    monkeypatch.delenv("ALERTING__STATE__TRUST_CHANGELOG")
    with pytest.raises(ConfigError, match=r"state\.signing_key"):
        require_signing_key(load_settings())
    monkeypatch.setenv("ALERTING__STATE__SIGNING_KEY", SECRET)
    settings = load_settings()
    require_signing_key(settings)
    assert build_processor(settings).codec().key == SECRET.encode()


def test_the_embedded_broker_gets_a_random_key_of_its_own_unless_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Broker:
        bootstrap_servers = "127.0.0.1:9"

    monkeypatch.delenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS")
    settings = load_settings()
    first = _with_bootstrap(settings, Broker())  # type: ignore[arg-type]
    second = _with_bootstrap(settings, Broker())  # type: ignore[arg-type]
    keys = [s.state.signing_key for s in (first, second)]
    assert all(k is not None and len(k.get_secret_value()) >= 32 for k in keys)
    assert keys[0] != keys[1]
    monkeypatch.setenv("ALERTING__STATE__SIGNING_KEY", SECRET)
    given = _with_bootstrap(load_settings(), Broker())  # type: ignore[arg-type]
    assert given.state.signing_key is not None
    assert given.state.signing_key.get_secret_value() == SECRET
