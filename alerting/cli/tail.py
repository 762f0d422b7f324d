"""``alerting tail``: print alerts as they arrive, filtered by entity, severity and type."""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from alerting.errors import ConfigError
from alerting.settings import ENV_PREFIX, Settings
from alerting.silences import SEVERITIES
from alerting.wiring import check_login, login_watch

if TYPE_CHECKING:
    from consumers.subscriber import AlertFilter


def add_arguments(p: argparse.ArgumentParser) -> None:
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
    add_filter_arguments(p)


def add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """``--entity``, ``--severity`` and ``--type`` of ``alerting tail``."""
    from consumers.subscriber import TYPES

    parser.add_argument(
        "--entity",
        type=_regex,
        metavar="REGEX",
        help="only entities this regular expression matches (anywhere; anchor with ^…$)",
    )
    parser.add_argument(
        "--severity",
        type=_choices(SEVERITIES),
        action="append",
        metavar="warning|critical",
        help="only these severities (repeatable or comma-separated); a resolved alert has "
        "its episode's highest",
    )
    parser.add_argument(
        "--type",
        type=_choices(TYPES),
        action="append",
        metavar="firing|resolved|drift",
        help="only these alert types (repeatable or comma-separated)",
    )


def _choices(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        values = [v.strip().lower() for v in text.split(",") if v.strip()]
        wrong = [v for v in values if v not in allowed]
        if wrong or not values:
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected one or more of {', '.join(allowed)} (comma-separated)"
            )
        return values

    return parse


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression: {exc}") from None


def alert_filter(args: argparse.Namespace) -> AlertFilter:
    """The filter the :func:`add_filter_arguments` flags give (absent flags: no criterion)."""
    from consumers.subscriber import AlertFilter

    def flat(values: list[list[str]] | None) -> frozenset[str] | None:
        return frozenset(v for group in values for v in group) if values else None

    return AlertFilter(
        getattr(args, "entity", None),
        flat(getattr(args, "severity", None)),
        flat(getattr(args, "type", None)),
    )


def command(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.subscriber import tail

    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            "tail needs a cluster to read from: set kafka.bootstrap_servers "
            f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS), e.g. the address `alerting broker` prints"
        )
    check_login(settings)
    refused = threading.Event()
    with login_watch(settings, on_refused=refused.set):
        return tail(
            settings,
            alert_filter(args),
            as_json=args.json,
            from_beginning=args.from_beginning,
            max_alerts=args.max,
            timeout_s=args.timeout,
            color=args.color,
            should_stop=refused.is_set,
        )
