"""``alerting demo``: a broker, the service and a synthetic market at once, alerts printed
live."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from alerting.settings import ENV_PREFIX, Settings
from alerting.wiring import StopSignals, ephemeral_key, kafka_cluster

log = logging.getLogger("alerting")

#: events per symbol the demo publishes at once before it paces the market in real time
DEMO_BACKFILL = 6000


def add_arguments(p: argparse.ArgumentParser) -> None:
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


def command(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.subscriber import AlertFilter, tail
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

            tail(s, AlertFilter(), as_json=args.json, from_beginning=True, should_stop=should_stop)
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
