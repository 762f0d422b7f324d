"""The composition root's factories: the processor, the cluster, the Kafka port, signals.

Settings are built once by the CLI and passed in here; every factory imports the adapters
it needs inside the function, so building the parser or the settings needs no broker and
the core never imports a Kafka client. The commands (:mod:`alerting.cli`), the back-test,
the benchmarks and the tests build what the service runs from these.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import SecretStr

from alerting.errors import ConfigError
from alerting.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:
    from alerting.embedded_broker import EmbeddedBroker
    from alerting.mapping import InputMapping
    from alerting.metrics import Metrics
    from alerting.processor import Processor
    from alerting.state import ColdStore
    from consumers.port import Port

log = logging.getLogger("alerting")

EXIT_INTERRUPTED = 130


class StopSignals:
    """SIGINT/SIGTERM set ``event``; a second SIGINT exits at once."""

    def __init__(self, on_stop: Callable[[], None] | None = None) -> None:
        self.event = threading.Event()
        self.on_stop = on_stop

    def install(self) -> StopSignals:
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            print("\ninterrupted again: exiting now", file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)
        self.event.set()
        if self.on_stop is not None:
            self.on_stop()


@contextlib.contextmanager
def kafka_cluster(settings: Settings) -> Iterator[Settings]:
    """The configured cluster, or an embedded broker for the duration of the block."""
    if settings.kafka.bootstrap_servers:
        check_login(settings)
        yield settings
        return
    from alerting.embedded_broker import EmbeddedBroker

    b = settings.broker
    broker = EmbeddedBroker(b.port, b.binary, b.startup_timeout_s).start()
    log.info(
        "no kafka.bootstrap_servers set: started the embedded broker at %s",
        broker.bootstrap_servers,
    )
    try:
        yield _with_bootstrap(settings, broker)
    finally:
        broker.stop()


def _with_bootstrap(settings: Settings, broker: EmbeddedBroker) -> Settings:
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap_servers})
    update: dict[str, object] = {"kafka": kafka}
    if settings.state.signing_key is None:  # its changelog lives as long as this process
        update["state"] = settings.state.model_copy(update={"signing_key": ephemeral_key()})
    return settings.model_copy(update=update)


def check_login(settings: Settings) -> bool:
    """A refused SASL login is a :class:`ConfigError` at once (the clients would report it,
    after 30 s, as an unreachable broker); True if the cluster answers."""
    from consumers.health import check_login as probe_login

    return probe_login(settings.kafka)


@contextlib.contextmanager
def login_watch(settings: Settings, on_refused: Callable[[], None]) -> Iterator[None]:
    """Probe the login in the background while the block runs; if it is refused, call
    ``on_refused`` (which stops the command) and raise the :class:`ConfigError` after it."""
    from consumers.health import BrokerWatchdog

    watchdog = BrokerWatchdog(settings.kafka, on_refused=lambda _: on_refused()).start()
    try:
        yield
    finally:
        watchdog.stop()
    if watchdog.refused is not None:
        raise watchdog.refused


def ephemeral_key() -> SecretStr:
    """A random snapshot-signing key, for a changelog that dies with its process (the
    embedded broker keeps data in memory only)."""
    import secrets

    return SecretStr(secrets.token_hex(32))


def require_signing_key(settings: Settings) -> None:
    """On a configured cluster, snapshots must be signed or the changelog trusted."""
    s = settings.state
    if s.signing_key is None and not s.trust_changelog:
        raise ConfigError(
            "state.signing_key is not set: on a shared cluster anyone who can write the "
            f"changelog topic ({settings.topics.changelog}) could forge entity state; set "
            f"{ENV_PREFIX}STATE__SIGNING_KEY (a secret of at least 16 characters), or "
            f"{ENV_PREFIX}STATE__TRUST_CHANGELOG=true if nobody but the service can write it"
        )


def select_input(settings: Settings, topic: str | None) -> tuple[Settings, InputMapping | None]:
    """The settings one process runs with, and the mapping of the input it reads.

    With no ``[[inputs]]`` the settings are returned as they are (the native schema on
    ``topics.events``; ``topic`` must then be None). Otherwise the process reads one input:
    ``topic`` (``--input``), or the only one declared. Its copy of the settings reads that
    topic in the group ``<service.group_id>.<topic>`` with the changelog ``<topic>.state``,
    so processes of different inputs never share a group, a changelog or a cold store
    (named after the group), and co-partitioning and restore hold per input as they do for
    ``topics.events``. The mapping is compiled here, once.
    """
    from alerting.mapping import compile_input

    inputs = {spec.topic: spec for spec in settings.inputs}
    if not inputs:
        if topic is not None:
            raise ConfigError(
                f"--input {topic}: no [[inputs]] are declared; declare one in the settings "
                f"file or {ENV_PREFIX}INPUTS, or drop --input to read topics.events"
            )
        return settings, None
    names = ", ".join(inputs)
    if topic is None:
        if len(inputs) > 1:
            raise ConfigError(
                f"{len(inputs)} [[inputs]] are declared ({names}); one process reads one: "
                "pick it with --input TOPIC"
            )
        (topic,) = inputs
    spec = inputs.get(topic)
    if spec is None:
        raise ConfigError(f"--input {topic}: no such input; the [[inputs]] are: {names}")
    try:
        mapping = compile_input(spec)
    except ValueError as exc:  # load_settings checked it: only settings built in code get here
        raise ConfigError(f"setting inputs (input {topic}): {exc}") from None
    group = f"{settings.service.group_id}.{topic}"
    derived = settings.model_copy(
        update={
            "topics": settings.topics.model_copy(
                update={"events": topic, "changelog": f"{topic}.state"}
            ),
            "service": settings.service.model_copy(update={"group_id": group}),
        }
    )
    return derived, mapping


def build_processor(settings: Settings, cold: ColdStore | None = None) -> Processor:
    """The processor the settings describe (detector, threshold, policy, state bounds)."""
    from alerting.detectors import REGISTRY, FeatureScorer, build
    from alerting.drift import DriftMonitor
    from alerting.policy import AlertPolicy
    from alerting.processor import Processor
    from alerting.thresholds import (
        FeatureTails,
        FixedThreshold,
        QuantileThreshold,
        TailThreshold,
        Threshold,
    )

    d, t = settings.detector, settings.threshold
    try:
        template = build(d.name, d.params)
        # a throwaway clone learns one value: what a detector imports on first use (River
        # takes about 1.7 s) is paid here, at start, not inside the first batch's latency
        template.clone().learn_one({"warm-up": 0.0})
        threshold: Threshold
        if t.kind == "tail" and isinstance(template, FeatureScorer):
            threshold = FeatureTails(t.budget, t.level, t.grace, t.half_life)
        elif t.kind == "tail":
            threshold = TailThreshold(t.budget, t.level, t.grace, t.half_life)
        elif t.kind == "fixed":
            threshold = FixedThreshold(
                t.value if t.value is not None else REGISTRY[d.name].default_threshold
            )
        else:
            threshold = QuantileThreshold(
                q=t.quantile, window=t.window, grace=t.grace, min_value=t.min_value or 0.0
            )
        p = settings.policy
        policy = AlertPolicy(
            warning_factor=p.warning_factor,
            critical_factor=p.critical_factor,
            clear_factor=p.clear_factor,
            for_events=p.for_events,
            repeat_after=p.repeat_after,
            resolve_after=p.resolve_after,
            inhibit=p.inhibit,
            inhibit_silence=p.inhibit_silence,
        )
        dr = settings.drift
        drift = (
            DriftMonitor(dr.detector, dr.params, dr.features, dr.min_interval_s)
            if dr.enabled
            else None
        )
    except ValueError as exc:
        raise ConfigError(f"detector/threshold settings: {exc}") from None
    processor = Processor(
        template,
        policy,
        threshold,
        warmup=d.warmup,
        max_entities=settings.state.max_live_models,
        idle_ttl_s=settings.state.idle_ttl_s,
        cold=cold,
        protect=d.protect,
        protect_max_consecutive=d.protect_max_consecutive,
        drift=drift,
        drift_action=settings.drift.action,
        challenger_events=settings.drift.challenger_events,
        publish_drift=settings.drift.publish,
        snapshot_key=(
            settings.state.signing_key.get_secret_value().encode()
            if settings.state.signing_key is not None
            else None
        ),
        trust_pickles=settings.state.trust_changelog,
    )
    processor.store.retention_s = settings.state.retention_s or None  # 0: keep forever
    return processor


def serve_metrics(settings: Settings, metrics: Metrics) -> None:
    """Serve ``/metrics`` where the settings say (nothing if disabled); a taken port is a
    :class:`ConfigError` naming the setting."""
    m = settings.metrics
    if not m.enabled:
        return
    try:
        port = metrics.serve(m.host, m.port)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {m.host}:{m.port} ({exc.strerror}); set "
            f"metrics.port (ALERTING__METRICS__PORT) to a free port, or 0"
        ) from None
    log.info("metrics at http://%s:%d/metrics", m.host, port)


def build_port(
    settings: Settings, metrics: Metrics, on_refused: Callable[[ConfigError], None] | None = None
) -> Port:
    """The Kafka port of the client ``kafka.client`` names; ``on_refused`` hears a login the
    confluent client is refused (kafka-python's refusals reach the watchdog's probe)."""
    if settings.kafka.client == "confluent":
        from consumers.confluent import ConfluentPort

        return ConfluentPort(settings, metrics, on_refused=on_refused)
    from consumers.kafka_python import KafkaPort

    return KafkaPort(settings, metrics)
