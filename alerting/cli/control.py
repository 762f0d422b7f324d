"""``alerting silence`` (add, list, expire) and ``alerting feedback``: the control topics."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TextIO

from alerting.feedback import VERDICT_ALIASES
from alerting.settings import Settings
from alerting.wiring import check_login


def add_silence_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="silence_action", required=True, metavar="ACTION")
    p = sub.add_parser("add", help="silence the alerts of matching entities for a while")
    p.add_argument(
        "--entity",
        required=True,
        metavar="PATTERN",
        help="anchored regular expression on the entity (a plain name matches exactly it)",
    )
    p.add_argument("--severity", help="only alerts of this severity (warning, critical)")
    p.add_argument("--duration", required=True, metavar="D", help="how long: e.g. 90s, 30m, 2h, 1d")
    p.add_argument("--comment", required=True, help="why (shown by `alerting silence list`)")
    p.add_argument("--author", help="who (default: the current user)")
    p = sub.add_parser("list", help="the silences in force (active or pending)")
    p.add_argument("--all", action="store_true", help="expired ones too")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p = sub.add_parser("expire", help="end a silence now")
    p.add_argument("id", metavar="ID", help="the silence id (`alerting silence list`)")


def add_feedback_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("alert_id", metavar="ALERT_ID", help="the alert's CloudEvent id")
    parser.add_argument(
        "--verdict",
        required=True,
        choices=sorted(VERDICT_ALIASES),
        help="tp (true_positive) or fp (false_positive)",
    )
    parser.add_argument("--note", help="free text kept with the verdict")


def silence_command(settings: Settings, args: argparse.Namespace) -> int:
    if settings.kafka.bootstrap_servers:
        check_login(settings)
    return silence(settings, args)


def silence(
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``silence add|list|expire`` once the login is checked."""
    from consumers.control.commands import add_silence, expire_silence, list_silences

    if args.silence_action == "add":
        return add_silence(
            settings,
            args.entity,
            args.severity,
            args.duration,
            args.comment,
            args.author,
            out=out,
            clock=clock,
        )
    if args.silence_action == "list":
        return list_silences(settings, show_all=args.all, as_json=args.json, out=out, clock=clock)
    return expire_silence(settings, args.id, out=out, clock=clock)


def feedback_command(settings: Settings, args: argparse.Namespace) -> int:
    if settings.kafka.bootstrap_servers:
        check_login(settings)
    return feedback(settings, args)


def feedback(settings: Settings, args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    """``feedback`` once the login is checked."""
    from consumers.control.commands import send_feedback

    return send_feedback(settings, args.alert_id, args.verdict, args.note, out=out)
