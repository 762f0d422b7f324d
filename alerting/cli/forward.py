"""``alerting forward``: deliver alerts to Alertmanager and/or a webhook (at-least-once)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from alerting.errors import ConfigError
from alerting.settings import ENV_PREFIX, Settings, load_settings
from alerting.wiring import StopSignals, check_login, login_watch, serve_metrics

if TYPE_CHECKING:
    from consumers.forward.loop import Forwarder


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alertmanager", metavar="URL", help="Alertmanager base URL (API v2)")
    p.add_argument("--webhook", metavar="URL", help="POST each alert as a CloudEvent here")
    p.add_argument(
        "--dead-letters", type=Path, metavar="FILE", help="JSON Lines log of undeliverable alerts"
    )


def command(settings: Settings, args: argparse.Namespace) -> int:
    overrides = {
        "alertmanager_url": args.alertmanager,
        "webhook_url": args.webhook,
        "dead_letter_path": args.dead_letters,
    }
    update = {k: v for k, v in overrides.items() if v is not None}
    if update:
        merged = {**settings.forward.model_dump(), **update}
        settings = load_settings(args.config, forward=merged)
    return run_forwarder(settings)


def run_forwarder(settings: Settings) -> int:
    """Forward on the configured cluster until SIGINT/SIGTERM or a refused login."""
    from alerting.metrics import Metrics
    from consumers.forward.loop import forward
    from consumers.forward.targets import build_targets

    build_targets(settings)  # no target or a wrong URL: a ConfigError before anything starts
    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            "forward needs a cluster to read from: set kafka.bootstrap_servers "
            f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS), e.g. the address `alerting broker` prints"
        )
    check_login(settings)
    metrics = Metrics()
    serve_metrics(settings, metrics)
    stops: list[Callable[[], None]] = []

    def install(forwarder: Forwarder) -> None:
        stops.append(forwarder.stop.set)
        StopSignals(on_stop=forwarder.stop.set).install()

    def stop_forwarding() -> None:
        for stop in stops:
            stop()

    with login_watch(settings, on_refused=stop_forwarding):
        return forward(settings, metrics, install)
