"""``alerting config`` (the effective settings) and ``alerting broker`` (the embedded broker
in the foreground)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from alerting.errors import AlertingError
from alerting.settings import ENV_PREFIX, Settings
from alerting.wiring import StopSignals


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="as JSON")


def config_command(settings: Settings, args: argparse.Namespace) -> int:
    return show_config(settings, as_json=args.json)


def show_config(settings: Settings, as_json: bool) -> int:
    """Print the settings, secrets masked: JSON, or TOML usable as a ``--config`` file."""
    data = settings.masked()
    if as_json:
        print(json.dumps(data, indent=2, sort_keys=True))
        return 0
    # valid TOML, usable as a --config file; unset values are shown commented out
    inputs = data.pop("inputs", [])
    for section, values in data.items():
        print(f"[{section}]")
        for key, value in values.items():
            env = f"{ENV_PREFIX}{section.upper()}__{key.upper()}"
            line = f"# {key} = (unset)" if value is None else f"{key} = {json.dumps(value)}"
            print(f"{line:44} # {env}")
        print()
    _print_inputs(inputs)
    return 0


def _print_inputs(inputs: list[dict[str, Any]]) -> None:
    """The ``[[inputs]]`` blocks as TOML arrays of tables (``ALERTING__INPUTS`` is JSON)."""
    if not inputs:
        print(f"# [[inputs]]: none, the native schema on topics.events   # {ENV_PREFIX}INPUTS")
        return
    for spec in inputs:
        print(f"[[inputs]]{'':34} # {ENV_PREFIX}INPUTS (a JSON list)")
        fields = spec.get("fields") or {}
        for key, value in spec.items():
            if key != "fields":
                print(f"{key} = {json.dumps(value)}")
        if fields:
            print("[inputs.fields]")
            for key, value in fields.items():
                print(f"{json.dumps(key)} = {json.dumps(value)}")
        print()


def add_broker_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, help="port to listen on (default: broker.port, 0 = free)")


def broker_command(settings: Settings, args: argparse.Namespace) -> int:
    return run_broker(settings, args.port)


def run_broker(settings: Settings, port: int | None) -> int:
    """The embedded broker until SIGINT/SIGTERM (``port`` None: ``broker.port``)."""
    from alerting.embedded_broker import EmbeddedBroker

    b = settings.broker
    port = port if port is not None else b.port
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
