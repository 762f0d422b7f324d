"""Settings: sources and their priority, rejection of unknown keys, masking, documentation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from alerting.errors import ConfigError
from alerting.settings import (
    CONFIG_ENV,
    ENV_PREFIX,
    DetectorSettings,
    KafkaSettings,
    Settings,
    load_settings,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ALERTING* variable from the machine running the tests leaks into them."""
    for name in list(os.environ):
        if name.startswith("ALERTING"):
            monkeypatch.delenv(name)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerting.toml"
    path.write_text(text)
    return path


def test_defaults() -> None:
    s = load_settings()
    assert s.kafka.bootstrap_servers is None
    assert s.kafka.security_protocol == "PLAINTEXT"
    assert s.kafka.session_timeout_ms == 6000
    assert (s.topics.events, s.topics.alerts, s.topics.dead_letters) == (
        "market.events",
        "market.alerts",
        "market.events.dlq",
    )
    assert s.service.group_id == "alerting"
    assert s.detector.name == "sad"
    assert s.detector.params == {}
    assert s.threshold.kind == "tail" and s.threshold.value is None
    assert (s.threshold.budget, s.threshold.level, s.threshold.grace) == (2.0, 0.95, 500)
    assert s.topics.changelog == "market.events.state"
    assert s.state.max_live_models == 100_000
    assert (s.policy.warning_factor, s.policy.critical_factor, s.policy.clear_factor) == (1, 2, 0.8)
    assert (s.policy.for_events, s.policy.repeat_after, s.policy.inhibit) == (1, 1000, True)
    assert (s.policy.resolve_after, s.policy.inhibit_silence) == (20, 100)
    assert s.metrics.port == 9464
    assert s.broker.port == 0


def test_env_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("ALERTING__SERVICE__MAX_BATCH_RECORDS", "17")
    monkeypatch.setenv("ALERTING__TOPICS__CREATE", "false")
    s = load_settings()
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert s.kafka.client_options()["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert s.service.max_batch_records == 17
    assert s.topics.create is False
    # the rest of the touched sections keeps its defaults
    assert s.kafka.client_id == "alerting"
    assert s.service.poll_timeout_ms == 200


def test_toml_file_as_argument(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        '[topics]\nevents = "file.events"\n\n[detector]\nwarmup = 10\nparams = {half_life = 64}\n',
    )
    s = load_settings(path)
    assert s.topics.events == "file.events"
    assert s.topics.alerts == "market.alerts"
    assert (s.detector.params, s.detector.warmup) == ({"half_life": 64}, 10)
    assert load_settings(str(path)).topics.events == "file.events"


def test_toml_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _toml(tmp_path, '[service]\ngroup_id = "from-file"\n')
    monkeypatch.setenv(CONFIG_ENV, str(path))
    assert load_settings().service.group_id == "from-file"


def test_argument_file_wins_over_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    by_env = _toml(tmp_path / "a", '[service]\ngroup_id = "env-file"\n')
    by_arg = _toml(tmp_path / "b", '[service]\ngroup_id = "arg-file"\n')
    monkeypatch.setenv(CONFIG_ENV, str(by_env))
    assert load_settings(by_arg).service.group_id == "arg-file"


def test_priority_code_over_env_over_file_over_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _toml(
        tmp_path,
        '[topics]\nevents = "file.events"\nalerts = "file.alerts"\n'
        'dead_letters = "file.dlq"\n\n[kafka]\nclient_id = "file-client"\n',
    )
    monkeypatch.setenv("ALERTING__TOPICS__ALERTS", "env.alerts")
    monkeypatch.setenv("ALERTING__TOPICS__DEAD_LETTERS", "env.dlq")
    s = load_settings(path, topics={"dead_letters": "code.dlq"})
    assert s.topics.dead_letters == "code.dlq"  # code > env > file
    assert s.topics.alerts == "env.alerts"  # env > file
    assert s.topics.events == "file.events"  # file > default
    assert s.topics.partitions == 4  # default, in a section every source touched
    assert s.kafka.client_id == "file-client"  # another section of the file is kept


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match=CONFIG_ENV) as info:
        load_settings(missing)
    assert str(missing) in str(info.value)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[kafka\nclient_id = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path)


def test_unknown_section_in_env_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING__KAFAK__BOOTSTRAP_SERVERS", "k:9092")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "ALERTING__KAFAK__BOOTSTRAP_SERVERS" in message
    assert "ALERTING__KAFKA" in message  # lists the valid sections


def test_unknown_key_in_env_section_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING__KAFKA__BOOTSTRAP_SERVER", "k:9092")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "ALERTING__KAFKA__BOOTSTRAP_SERVER" in str(info.value)
    assert "kafka.bootstrap_server" in str(info.value)


def test_unknown_key_in_toml_is_rejected(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[detector]\nwindwo = 10\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "detector.windwo" in message
    assert str(path) in message


def test_unknown_section_in_toml_is_rejected(tmp_path: Path) -> None:
    path = _toml(tmp_path, "[detectors]\nwindow = 10\n")
    with pytest.raises(ConfigError, match="detectors"):
        load_settings(path)


def test_unknown_key_in_code_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"policy\.cooldown"):
        load_settings(policy={"cooldown": 5})
    with pytest.raises(ConfigError, match=r"policy\.cooldown_s"):  # replaced by the lifecycle
        load_settings(policy={"cooldown_s": 5})


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        ({"clear_factor": 1.0}, r"policy\.clear_factor must be below policy\.warning_factor"),
        ({"warning_factor": 0.7}, r"policy\.clear_factor must be below"),
        ({"warning_factor": 2.5}, r"policy\.critical_factor must be at least"),
        ({"critical_factor": 0.9}, r"policy\.critical_factor"),
        ({"for_events": 0}, r"policy\.for_events \(env ALERTING__POLICY__FOR_EVENTS"),
        ({"repeat_after": -1}, r"policy\.repeat_after"),
        ({"resolve_after": -1}, r"policy\.resolve_after"),
        ({"inhibit_silence": -1}, r"policy\.inhibit_silence"),
        ({"warning_factor": 0}, r"policy\.warning_factor"),
    ],
)
def test_policy_settings_are_validated_and_named(policy: dict[str, float], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(policy=policy)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"policy": {"critical_factor": 0.9}},
            "setting policy (env ALERTING__POLICY): Value error, policy.critical_factor must "
            "be at least policy.warning_factor (1), got 0.9",
        ),
        (
            {"policy": {"warning_factor": 0.7}},
            "setting policy (env ALERTING__POLICY): Value error, policy.clear_factor must be "
            "below policy.warning_factor (0.7), got 0.8",
        ),
        (
            {"threshold": {"grace": 500, "half_life": 100}},
            "setting threshold (env ALERTING__THRESHOLD): Value error, threshold: half_life "
            "must be 0 or at least grace (500), got 100",
        ),
        (
            {"threshold": {"budget": 300.0, "level": 0.98}},
            "setting threshold (env ALERTING__THRESHOLD): Value error, threshold: level must "
            "leave more than the budget's tail above it: 1 - level = 0.02 <= alpha = 0.03",
        ),
        (
            {"threshold": {"kind": "quantile", "grace": 2000, "window": 1000}},
            "setting threshold (env ALERTING__THRESHOLD): Value error, threshold.grace must be "
            "at most threshold.window (1000), got 2000 (kind = quantile)",
        ),
        (
            {"threshold": {"kind": "quantile", "min_value": float("inf")}},
            "setting threshold (env ALERTING__THRESHOLD): Value error, threshold.min_value "
            "must be a finite number >= 0, got inf (kind = quantile)",
        ),
        (
            {"threshold": {"kind": "fixed", "value": float("inf")}},
            "setting threshold (env ALERTING__THRESHOLD): Value error, threshold.value must be "
            "a positive finite number, got inf (kind = fixed)",
        ),
        (
            {"drift": {"params": {"bogus": 1}}},
            "setting drift (env ALERTING__DRIFT): Value error, drift detector 'adwin': "
            "Adwin.__init__() got an unexpected keyword argument 'bogus'",
        ),
    ],
)
def test_the_units_check_their_settings_and_the_error_names_the_settings(
    overrides: dict[str, dict[str, object]], message: str
) -> None:
    # the unit's own message (tests/unit/alerting/test_policy.py, test_thresholds.py), its
    # parameters named as settings; the values shown since the policy's check moved there
    with pytest.raises(ConfigError) as info:
        load_settings(**overrides)
    assert str(info.value) == f"invalid settings: {message}"


def test_every_policy_setting_reaches_the_policy() -> None:
    from alerting.wiring import build_processor

    values = {"warning_factor": 1.5, "critical_factor": 2.5, "clear_factor": 0.5,
              "for_events": 3, "repeat_after": 42.0, "resolve_after": 7.0,
              "inhibit": False, "inhibit_silence": 33.0}  # fmt: skip
    processor = build_processor(load_settings(policy=values))
    assert processor.policy.params() == values


def test_wrong_type_names_the_setting_and_its_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING__SERVICE__MAX_BATCH_RECORDS", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "service.max_batch_records" in message
    assert "ALERTING__SERVICE__MAX_BATCH_RECORDS" in message
    assert "lots" in message


def test_out_of_range_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_settings(metrics={"port": 70000})


def test_heartbeat_must_be_under_a_third_of_the_session() -> None:
    with pytest.raises(ConfigError, match="heartbeat_interval_ms"):
        load_settings(kafka={"session_timeout_ms": 6000, "heartbeat_interval_ms": 2001})
    ok = load_settings(kafka={"session_timeout_ms": 6000, "heartbeat_interval_ms": 2000})
    assert ok.kafka.heartbeat_interval_ms == 2000


def test_sasl_requires_a_mechanism() -> None:
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        load_settings(kafka={"security_protocol": "SASL_SSL"})
    ok = load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"})
    assert ok.kafka.sasl_mechanism == "PLAIN"


def test_detector_name_and_params_are_checked_at_start() -> None:
    with pytest.raises(ConfigError, match=r"setting detector .*unknown detector 'nope'"):
        load_settings(detector={"name": "nope"})
    with pytest.raises(ConfigError, match=r"setting detector .*window"):
        load_settings(detector={"name": "zscore", "params": {"window": 1}})
    with pytest.raises(ConfigError, match=r"setting detector .*bogus"):
        load_settings(detector={"name": "zscore", "params": {"bogus": 1}})
    ok = load_settings(detector={"name": "zscore", "params": {"window": 16}})
    assert ok.detector.params == {"window": 16}


def _secure(tmp_path: Path) -> Settings:
    return load_settings(
        kafka={
            "bootstrap_servers": "broker:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "svc-alerting",
            "sasl_password": "hunter2-sasl",
            "ssl_cafile": str(tmp_path / "ca.pem"),
            "ssl_certfile": str(tmp_path / "client.pem"),
            "ssl_keyfile": str(tmp_path / "client.key"),
            "ssl_password": "hunter2-key",
        }
    )


def test_secrets_are_masked(tmp_path: Path) -> None:
    s = _secure(tmp_path)
    masked = s.masked()
    assert masked["kafka"]["sasl_password"] == "**********"
    assert masked["kafka"]["ssl_password"] == "**********"
    assert masked["kafka"]["sasl_username"] == "svc-alerting"
    text = str(masked)
    assert "hunter2" not in text
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s)


def test_secrets_from_env_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERTING__KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("ALERTING__KAFKA__SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("ALERTING__KAFKA__SASL_PASSWORD", "env-secret-value")
    s = load_settings()
    assert s.kafka.sasl_password is not None
    assert s.kafka.sasl_password.get_secret_value() == "env-secret-value"
    assert "env-secret-value" not in str(s.masked())


def test_masked_is_plain_data_of_every_section() -> None:
    masked = load_settings().masked()
    assert set(masked) == set(Settings.model_fields)
    assert masked["topics"]["events"] == "market.events"


def test_client_options_pass_security_through(tmp_path: Path) -> None:
    options = _secure(tmp_path).kafka.client_options()
    assert options["bootstrap_servers"] == ["broker:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "svc-alerting"
    assert options["sasl_plain_password"] == "hunter2-sasl"
    assert options["ssl_cafile"] == str(tmp_path / "ca.pem")
    assert options["ssl_certfile"] == str(tmp_path / "client.pem")
    assert options["ssl_keyfile"] == str(tmp_path / "client.key")
    assert options["ssl_password"] == "hunter2-key"


def test_client_options_omit_unset_security() -> None:
    options = KafkaSettings(bootstrap_servers="k:9092").client_options()
    assert options["security_protocol"] == "PLAINTEXT"
    for name in (
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "ssl_cafile",
        "ssl_password",
    ):
        assert name not in options


def test_sections_validate_on_their_own() -> None:
    with pytest.raises(ValueError, match="window"):
        DetectorSettings(name="zscore", params={"window": 1})


def _sections() -> list[tuple[str, type[BaseModel]]]:
    out = []
    for name, info in Settings.model_fields.items():
        section = info.annotation
        if get_origin(section) is list:  # [[inputs]]: a list of blocks of one section type
            (section,) = get_args(section)
        assert isinstance(section, type)
        assert issubclass(section, BaseModel), name
        out.append((name, section))
    return out


def test_every_section_is_documented() -> None:
    sections = _sections()
    assert len(sections) >= 7
    for name, section in sections:
        field = Settings.model_fields[name]
        documented = field.description or (section.__doc__ or "").strip()
        assert documented, f"section {name} has neither a description nor a docstring"


@pytest.mark.parametrize(("section_name", "section"), _sections())
def test_every_setting_has_a_description(section_name: str, section: type[BaseModel]) -> None:
    assert section.model_fields, section_name
    for name, info in section.model_fields.items():
        description = (info.description or "").strip()
        assert description, f"{section_name}.{name} ({ENV_PREFIX}{section_name.upper()}__"
        f"{name.upper()}) has no description"


def test_config_error_does_not_echo_a_secret(tmp_path: Path) -> None:
    # an unquoted numeric password in TOML is a wrong type; the error must not print it
    path = _toml(
        tmp_path,
        '[kafka]\nsecurity_protocol = "SASL_SSL"\nsasl_mechanism = "PLAIN"\n'
        "sasl_password = 98765432\n",
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert "kafka.sasl_password" in message
    assert "98765432" not in message


@pytest.mark.parametrize(
    ("threshold", "named"),
    [
        ({"value": 5.0}, "threshold.value"),  # the default kind is tail: it would be ignored
        ({"kind": "quantile", "value": 5.0}, "threshold.value"),
        ({"kind": "tail", "min_value": 1.0}, "threshold.min_value"),
        ({"kind": "tail", "budget": 0.0}, "budget"),
        ({"kind": "tail", "grace": 500, "half_life": 100}, "half_life"),
        ({"kind": "tail", "budget": 600.0}, "budget"),
    ],
)
def test_threshold_settings_that_would_be_ignored_or_cannot_work_fail_at_start(
    threshold: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(threshold=threshold)


def test_the_old_policy_durations_in_seconds_are_refused_by_name() -> None:
    for old in ("repeat_interval_s", "resolve_after_s", "inhibit_silence_s"):
        with pytest.raises(ConfigError, match=old):
            load_settings(policy={old: 5.0})


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_oauthbearer_is_refused_until_there_is_a_token_provider(client: str) -> None:
    if client == "confluent":
        pytest.importorskip("confluent_kafka")
    with pytest.raises(ConfigError) as info:
        load_settings(
            kafka={
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "OAUTHBEARER",
                "client": client,
            }
        )
    message = str(info.value)
    assert "kafka.sasl_mechanism" in message and "not supported yet" in message
    assert "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512" in message
    for mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
        ok = load_settings(kafka={"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism})
        assert ok.kafka.sasl_mechanism == mechanism


# [[inputs]]: declared input topics, checked at start

_DESK = {
    "topic": "desk.trades",
    "kind": "trade",
    "entity": "sym",
    "time": "ts",
    "fields": {"price": "px", "size": "qty"},
}


def _desk(**changes: object) -> dict[str, object]:
    return {**_DESK, **changes}


def test_no_inputs_by_default() -> None:
    assert load_settings().inputs == []


def test_inputs_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        '[[inputs]]\ntopic = "desk.trades"\nkind = "trade"\nentity = "sym"\ntime = "ts"\n'
        '[inputs.fields]\nprice = "px"\nsize = "qty"\nvenue = "=XNAS"\n'
        '[[inputs]]\ntopic = "metrics"\nkind = "metric"\nentity = "host"\n'
        'time = ".@timestamp"\n[inputs.fields]\nvalues = "metrics.*"\n'
    )
    s = load_settings(path)
    assert [i.topic for i in s.inputs] == ["desk.trades", "metrics"]
    assert s.inputs[0].fields["venue"] == "=XNAS" and s.inputs[0].time_unit == "auto"
    assert s.inputs[1].fields == {"values": "metrics.*"}


def test_inputs_from_env_json(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    monkeypatch.setenv("ALERTING__INPUTS", json.dumps([_DESK]))
    s = load_settings()
    assert s.inputs[0].topic == "desk.trades" and s.inputs[0].fields["price"] == "px"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            _desk(fields={"price": "px..x", "size": "qty"}),
            "setting inputs[0].fields.price (input desk.trades): bad path 'px..x': empty segment",
        ),
        (
            _desk(fields={"size": "qty"}),
            "setting inputs[0].fields.price (input desk.trades): required for kind trade",
        ),
        (
            _desk(fields={"price": "px", "size": "qty", "bid": "b"}),
            "setting inputs[0].fields.bid (input desk.trades): unknown field for kind trade",
        ),
        (_desk(entity="a[x]"), "setting inputs[0].entity (input desk.trades): bad path"),
        (_desk(entity="{a}:{"), "setting inputs[0].entity (input desk.trades): bad template"),
        (_desk(time="t[-1]"), "setting inputs[0].time (input desk.trades): bad path"),
        (_desk(time="@nope"), "setting inputs[0].time (input desk.trades): unknown source"),
        (
            _desk(fields={"price": "@timestamp", "size": "qty"}),
            "setting inputs[0].fields.price (input desk.trades): @timestamp is only",
        ),
        (
            _desk(kind="metric", fields={"values": "metrics"}),
            "setting inputs[0].fields.values (input desk.trades): a list of paths, or a prefix",
        ),
        (
            _desk(kind="metric", fields={"values": []}),
            "setting inputs[0].fields.values (input desk.trades): an empty list",
        ),
        (
            _desk(kind="metric", fields={"values": ["a.cpu", "b.cpu"]}),
            "setting inputs[0].fields.values (input desk.trades): 'a.cpu' and 'b.cpu'",
        ),
        (_desk(kind="trad"), "setting inputs[0].kind (env ALERTING__INPUTS): Input should be"),
        (_desk(time_unit="h"), "setting inputs[0].time_unit (env ALERTING__INPUTS)"),
        ({"topic": "desk.trades", "kind": "trade", "time": "ts"}, "inputs[0].entity (input "),
        (_desk(extra=1), "setting inputs[0].extra"),
        (_desk(topic=""), "setting inputs[0].topic"),
    ],
)
def test_a_mapping_that_cannot_work_fails_at_start(spec: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(inputs=[spec])
    assert message in str(caught.value)


def test_an_input_error_names_its_index() -> None:
    with pytest.raises(ConfigError, match=r"inputs\[1\]\.fields\.size \(input b\)"):
        load_settings(inputs=[_desk(topic="a"), _desk(topic="b", fields={"price": "p"})])


def test_duplicate_input_topics_are_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"inputs\[1\]\.topic \(input desk\.trades\).*inputs\[0\]"
    ):
        load_settings(inputs=[_DESK, _DESK])


def test_config_prints_inputs_as_toml_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alerting.cli.admin import show_config

    inputs = [
        _desk(entity="{venue}:{sym}", fields={"price": "px", "size": "qty", "venue": "=XNAS"}),
        {
            "topic": "metrics",
            "kind": "metric",
            "entity": "host",
            "time": ".@timestamp",
            "time_unit": "rfc3339",
            "fields": {"values": ["metrics.cpu", "metrics.mem"]},
        },
    ]
    settings = load_settings(inputs=inputs)
    show_config(settings, as_json=False)
    path = tmp_path / "printed.toml"
    path.write_text(capsys.readouterr().out)
    again = load_settings(path)
    assert again.inputs == settings.inputs
    assert again.model_dump() == settings.model_dump()


def test_config_without_inputs_still_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from alerting.cli.admin import show_config

    show_config(load_settings(), as_json=False)
    path = tmp_path / "printed.toml"
    path.write_text(capsys.readouterr().out)
    assert load_settings(path).inputs == []
