"""``alerting``: the command line, and the one composition root.

Settings are built once here and passed into factories; the Kafka adapters are
imported inside each command, so ``alerting --help`` and ``alerting config`` need no
broker and the core never imports a Kafka client.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from pydantic import SecretStr

from alerting import __version__
from alerting.errors import AlertingError, ConfigError
from alerting.settings import ENV_PREFIX, Settings, load_settings

if TYPE_CHECKING:
    from alerting.embedded_broker import EmbeddedBroker
    from alerting.metrics import Metrics
    from alerting.processor import Processor
    from alerting.state import ColdStore
    from consumers.port import Port

log = logging.getLogger("alerting")

EXIT_CONFIG = 2
#: events per symbol the demo publishes at once before it paces the market in real time
DEMO_BACKFILL = 6000
EXIT_INTERRUPTED = 130


# ---------------------------------------------------------------- shared plumbing


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every failed reconnect; our loop logs one clear line instead
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)


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


def _serve_metrics(settings: Settings, metrics: Metrics) -> None:
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


# ---------------------------------------------------------------- commands


def cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    data = settings.masked()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    # valid TOML, usable as a --config file; unset values are shown commented out
    for section, values in data.items():
        print(f"[{section}]")
        for key, value in values.items():
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            line = f"# {key} = (unset)" if value is None else f"{key} = {json.dumps(value)}"
            print(f"{line:44} # {env}")
        print()
    return 0


def cmd_broker(settings: Settings, args: argparse.Namespace) -> int:
    from alerting.embedded_broker import EmbeddedBroker

    b = settings.broker
    port = args.port if args.port is not None else b.port
    stop = StopSignals().install()
    with EmbeddedBroker(port, b.binary, b.startup_timeout_s) as broker:
        print(f"embedded broker (tansu) ready at {broker.bootstrap_servers}", flush=True)
        print(
            f"  export {ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS={broker.bootstrap_servers}", flush=True
        )
        while not stop.event.wait(0.5):
            if broker.process is None or broker.process.poll() is not None:
                raise AlertingError("the embedded broker exited unexpectedly")
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    import tempfile

    from alerting.metrics import Metrics
    from alerting.state import SqliteColdStore, estimate_model_bytes
    from consumers.control import build_control
    from consumers.health import BrokerWatchdog, require_broker
    from consumers.runner import LoopConfig, Service
    from producers.topics import ensure_topics

    metrics = Metrics()
    with contextlib.ExitStack() as stack, kafka_cluster(settings) as s:
        require_signing_key(s)
        state_dir = s.state.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        cold = SqliteColdStore(state_dir / f"{s.service.group_id}.sqlite")
        stack.callback(cold.close)
        processor = build_processor(s, cold=cold)
        metrics.running(processor.template.name, processor.model_version)
        model_bytes = estimate_model_bytes(processor.new_state)
        require_broker(s.kafka)  # one line naming the setting, not the clients' traceback
        if s.topics.create:
            ensure_topics(s)
        _serve_metrics(s, metrics)
        port: Port
        # a refused login (the probe's or the client's) stops the service with a ConfigError
        watchdog = BrokerWatchdog(s.kafka, on_change=metrics.broker_up.set)
        if s.kafka.client == "confluent":
            from consumers.confluent import ConfluentPort

            port = ConfluentPort(s, metrics, on_refused=watchdog.refuse)
        else:
            from consumers.kafka_python import KafkaPort

            port = KafkaPort(s, metrics)
        control = build_control(s, metrics).start(s)  # silences read before the first batch
        service = Service(
            port,
            processor,
            metrics,
            LoopConfig(
                alerts_topic=s.topics.alerts,
                dead_letter_topic=s.topics.dead_letters,
                max_batch_records=s.service.max_batch_records,
                poll_timeout_ms=s.service.poll_timeout_ms,
                delivery_timeout_s=s.kafka.delivery_timeout_s,
                retry_backoff_s=s.service.retry_backoff_s,
                changelog_topic=s.topics.changelog,
                commit_interval_s=s.service.commit_interval_s,
                max_event_bytes=s.service.max_event_bytes,
                max_time_ahead_s=s.service.max_time_ahead_s,
                max_refused_attempts=s.service.max_refused_attempts,
            ),
            model_bytes=model_bytes,
            control=control,
        )
        StopSignals(on_stop=service.stop.set).install()
        watchdog.on_refused = lambda _: service.stop.set()
        if watchdog.refused is not None:  # refused while the port was set up
            service.stop.set()
        watchdog.start()
        log.info(
            "consuming %s as group %s from %s (client %s) with detector %s; alerts to %s",
            s.topics.events,
            s.service.group_id,
            s.kafka.bootstrap_servers,
            s.kafka.client,
            processor.model_version,
            s.topics.alerts,
        )
        try:
            service.run()
        finally:
            watchdog.stop()
            control.stop()
        if watchdog.refused is not None:
            raise watchdog.refused
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from producers.replay import replay_command

    if args.output is not None:  # --output writes files: no broker to start
        return replay_command(settings, args)
    with kafka_cluster(settings) as s:
        return replay_command(s, args)


def cmd_evaluate(settings: Settings, args: argparse.Namespace) -> int:
    from alerting.backtest import evaluate_command

    return evaluate_command(settings, args)  # offline: no broker, no Kafka client


def cmd_tail(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.subscriber import tail_command

    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            "tail needs a cluster to read from: set kafka.bootstrap_servers "
            f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS), e.g. the address `alerting broker` prints"
        )
    check_login(settings)
    refused = threading.Event()
    with login_watch(settings, on_refused=refused.set):
        return tail_command(settings, args, should_stop=refused.is_set)


def cmd_forward(settings: Settings, args: argparse.Namespace) -> int:
    from alerting.metrics import Metrics
    from consumers.forward import Forwarder, build_targets, forward_command

    overrides = {
        "alertmanager_url": args.alertmanager,
        "webhook_url": args.webhook,
        "dead_letter_path": args.dead_letters,
    }
    update = {k: v for k, v in overrides.items() if v is not None}
    if update:
        merged = {**settings.forward.model_dump(), **update}
        settings = load_settings(args.config, forward=merged)
    build_targets(settings)  # no target or a wrong URL: a ConfigError before anything starts
    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            "forward needs a cluster to read from: set kafka.bootstrap_servers "
            f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS), e.g. the address `alerting broker` prints"
        )
    check_login(settings)
    metrics = Metrics()
    _serve_metrics(settings, metrics)
    stops: list[Callable[[], None]] = []

    def install(forwarder: Forwarder) -> None:
        stops.append(forwarder.stop.set)
        StopSignals(on_stop=forwarder.stop.set).install()

    def stop_forwarding() -> None:
        for stop in stops:
            stop()

    with login_watch(settings, on_refused=stop_forwarding):
        return forward_command(settings, metrics, install)


def cmd_silence(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.control import silence_command

    if settings.kafka.bootstrap_servers:
        check_login(settings)
    return silence_command(settings, args)


def cmd_feedback(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.control import feedback_command

    if settings.kafka.bootstrap_servers:
        check_login(settings)
    return feedback_command(settings, args)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.subscriber import tail_command
    from producers.topics import ensure_topics

    stop = StopSignals().install()
    children: list[subprocess.Popen[bytes]] = []
    with kafka_cluster(settings) as s:
        ensure_topics(s)
        key = s.state.signing_key or ephemeral_key()
        env = {
            **os.environ,
            f"{ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS": s.kafka.bootstrap_servers or "",
            f"{ENV_PREFIX}STATE__SIGNING_KEY": key.get_secret_value(),
        }
        me = [sys.executable, "-m", "alerting.cli", "--log-level", args.log_level]
        if args.config:
            me += ["--config", str(args.config)]
        names = ["service", "replay"]
        try:
            children.append(subprocess.Popen([*me, "run"], env=env))
            replay = [
                *me,
                "replay",
                "--synthetic",
                "--count",
                "0",
                "--no-progress",
                "--start-now",
                "--symbols",
                str(args.symbols),
                "--seed",
                str(args.seed),
                "--events-per-second",
                str(args.events_per_second),
                # a recent history first, so that the entities' calibrated thresholds are
                # past their grace when the live part starts
                "--backfill",
                str(DEMO_BACKFILL * args.symbols),
            ]
            if args.labels:
                replay += ["--labels", str(args.labels)]
            children.append(subprocess.Popen(replay, env=env))
            m = s.metrics
            print(
                f"demo: broker {s.kafka.bootstrap_servers}, metrics "
                + (f"http://{m.host}:{m.port}/metrics" if m.enabled else "off")
                + f", {args.symbols} symbols at {args.events_per_second:g} events/s. "
                + (
                    "Ctrl+C to stop."
                    if not args.duration
                    else f"Stopping after {args.duration:g}s."
                ),
                file=sys.stderr,
                flush=True,
            )
            deadline = time.monotonic() + args.duration if args.duration else None

            def should_stop() -> bool:
                if stop.event.is_set():
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return True
                for name, child in zip(names, children, strict=True):
                    if child.poll() is not None:
                        log.error("demo: the %s exited with status %s", name, child.returncode)
                        return True
                return False

            tail_args = argparse.Namespace(
                json=args.json, from_beginning=True, max=None, timeout=None, color=None
            )
            tail_command(s, tail_args, should_stop=should_stop)
        finally:
            _stop_children(children)
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 1 if failed and not stop.event.is_set() else 0


def _stop_children(children: Sequence[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


# ---------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alerting",
        description="Streaming anomaly alerting: Kafka events in, per-entity online models, "
        "CloudEvents alerts out.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--config", type=Path, help="TOML settings file (or ALERTING_CONFIG)")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="everything at once: broker, service, synthetic market, alerts printed live"
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop by itself after S seconds (default: until Ctrl+C)",
    )
    p.add_argument("--symbols", type=int, default=5, help="synthetic symbols (default 5)")
    p.add_argument("--seed", type=int, default=7, help="synthetic market seed (default 7)")
    p.add_argument(
        "--events-per-second", type=float, default=200.0, help="synthetic event rate (default 200)"
    )
    p.add_argument("--labels", type=Path, help="write the injected anomalies to this JSONL file")
    p.add_argument("--json", action="store_true", help="print alerts as JSON lines")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="the detector service (long-running)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "replay", help="publish a synthetic market or a recorded file to the events topic"
    )
    from producers.replay import add_replay_arguments

    add_replay_arguments(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "evaluate", help="score detectors on a labelled stream (offline back-test, no broker)"
    )
    from alerting.backtest import add_evaluate_arguments

    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("tail", help="print alerts as they arrive")
    p.add_argument("--json", action="store_true", help="one CloudEvent JSON object per line")
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the oldest alert instead of new ones",
    )
    p.add_argument("--max", type=int, metavar="N", help="exit after N alerts")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="exit after S seconds (status 1 if --max was not reached)",
    )
    p.add_argument(
        "--color",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="colour the output (default: when writing to a terminal)",
    )
    from consumers.subscriber import add_filter_arguments

    add_filter_arguments(p)
    p.set_defaults(func=cmd_tail)

    p = sub.add_parser(
        "forward", help="deliver alerts to Alertmanager and/or a webhook (at-least-once)"
    )
    p.add_argument("--alertmanager", metavar="URL", help="Alertmanager base URL (API v2)")
    p.add_argument("--webhook", metavar="URL", help="POST each alert as a CloudEvent here")
    p.add_argument(
        "--dead-letters", type=Path, metavar="FILE", help="JSON Lines log of undeliverable alerts"
    )
    p.set_defaults(func=cmd_forward)

    from consumers.control import add_feedback_arguments, add_silence_arguments

    p = sub.add_parser("silence", help="silence alerts of matching entities (add, list, expire)")
    add_silence_arguments(p)
    p.set_defaults(func=cmd_silence)
    p = sub.add_parser("feedback", help="post a verdict on an alert (true or false positive)")
    add_feedback_arguments(p)
    p.set_defaults(func=cmd_feedback)

    p = sub.add_parser(
        "broker", help="the embedded Kafka-protocol broker (tansu) in the foreground"
    )
    p.add_argument("--port", type=int, help="port to listen on (default: broker.port, 0 = free)")
    p.set_defaults(func=cmd_broker)

    p = sub.add_parser("config", help="print the effective settings (secrets masked)")
    p.add_argument("--json", action="store_true", help="as JSON")
    p.set_defaults(func=cmd_config)
    return parser


def _explain(settings: Settings | None, exc: Exception) -> Exception | None:
    """A Kafka client's error that escaped a command as a one-line error, when a fresh probe
    says what it is (a refused login, no broker); None otherwise (a bug: its traceback)."""
    if settings is None or isinstance(exc, AlertingError):
        return None
    from consumers.health import explain

    return explain(settings.kafka, exc)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.log_level)
    settings: Settings | None = None
    try:
        try:
            settings = load_settings(args.config)
            result: int = args.func(settings, args)
            return result
        except Exception as exc:
            explained = _explain(settings, exc)
            if explained is None:
                raise
            raise explained from None
    except ConfigError as exc:
        print(f"alerting {args.command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except AlertingError as exc:
        print(f"alerting {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
