"""``alerting``: the command line.

:func:`build_parser` gathers one module per command (or close group of commands): each
owns its ``add_arguments(parser)`` and its ``command(settings, args)``, which turns the
parsed flags into plain values and calls the adapter or core function that does the
work. The factories they share live in :mod:`alerting.wiring`; the Kafka adapters are
imported inside each command, so ``alerting --help`` and ``alerting config`` need no
broker.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from alerting import __version__
from alerting.cli import admin, control, demo, evaluate, forward, inspect, replay, run, tail
from alerting.errors import AlertingError, BrokerError, ConfigError, InvalidEvent
from alerting.settings import Settings, load_settings
from alerting.wiring import EXIT_INTERRUPTED

EXIT_CONFIG = 2


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kafka-python logs every failed reconnect; our loop logs one clear line instead
    logging.getLogger("kafka").setLevel(logging.DEBUG if level == "debug" else logging.CRITICAL)


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
    demo.add_arguments(p)
    p.set_defaults(func=demo.command)

    p = sub.add_parser("run", help="the detector service (long-running)")
    run.add_arguments(p)
    p.set_defaults(func=run.command)

    p = sub.add_parser(
        "replay", help="publish a synthetic market or a recorded file to the events topic"
    )
    replay.add_arguments(p)
    p.set_defaults(func=replay.command)

    p = sub.add_parser(
        "evaluate", help="score detectors on a labelled stream (offline back-test, no broker)"
    )
    evaluate.add_arguments(p)
    p.set_defaults(func=evaluate.command)

    p = sub.add_parser("tail", help="print alerts as they arrive")
    tail.add_arguments(p)
    p.set_defaults(func=tail.command)

    p = sub.add_parser(
        "inspect", help="the fields of a topic's or a file's records, and a suggested [[inputs]]"
    )
    inspect.add_arguments(p)
    p.set_defaults(func=inspect.command)

    p = sub.add_parser(
        "forward", help="deliver alerts to Alertmanager and/or a webhook (at-least-once)"
    )
    forward.add_arguments(p)
    p.set_defaults(func=forward.command)

    p = sub.add_parser("silence", help="silence alerts of matching entities (add, list, expire)")
    control.add_silence_arguments(p)
    p.set_defaults(func=control.silence_command)
    p = sub.add_parser("feedback", help="post a verdict on an alert (true or false positive)")
    control.add_feedback_arguments(p)
    p.set_defaults(func=control.feedback_command)

    p = sub.add_parser(
        "broker", help="the embedded Kafka-protocol broker (tansu) in the foreground"
    )
    admin.add_broker_arguments(p)
    p.set_defaults(func=admin.broker_command)

    p = sub.add_parser("config", help="print the effective settings (secrets masked)")
    admin.add_config_arguments(p)
    p.set_defaults(func=admin.config_command)
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
        if type(exc) is not AlertingError and not isinstance(exc, (BrokerError, InvalidEvent)):
            raise  # raised to be handled where it happens: escaping here, it is a bug
        print(f"alerting {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
