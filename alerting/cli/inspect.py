"""``alerting inspect``: the fields of a topic's (or a JSONL file's) records and the
``[[inputs]]`` block that would map them, guessed (:mod:`alerting.inspect`)."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from alerting.errors import AlertingError, ConfigError
from alerting.inspect import Inspector, render_block, render_table, suggest
from alerting.settings import ENV_PREFIX, Settings
from alerting.wiring import check_login, login_watch

DEFAULT_MAX = 500


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "target",
        metavar="TOPIC|FILE",
        help="a topic, or a JSONL file (.gz too): a path that exists or ends in .jsonl",
    )
    p.add_argument(
        "--max",
        type=_positive,
        default=DEFAULT_MAX,
        metavar="N",
        help=f"read N records (default {DEFAULT_MAX})",
    )
    p.add_argument(
        "--from-beginning",
        action="store_true",
        help="the first N records instead of the last N",
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive whole number")
    return value


def command(settings: Settings, args: argparse.Namespace) -> int:
    from consumers.inspect import file_samples, is_file, topic_samples

    target: str = args.target
    if is_file(target):
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"{target}: no such file")
        samples = file_samples(path, args.max, from_beginning=args.from_beginning)
        topic, topic_why = path.name.split(".", 1)[0], "the file's name: the records' topic?"
    else:
        if not settings.kafka.bootstrap_servers:
            raise ConfigError(
                "inspect needs a cluster to read from: set kafka.bootstrap_servers "
                f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS), e.g. the address `alerting broker` "
                "prints (or give a JSONL file)"
            )
        check_login(settings)
        refused = threading.Event()
        with login_watch(settings, on_refused=refused.set):
            found = topic_samples(
                settings,
                target,
                args.max,
                from_beginning=args.from_beginning,
                should_stop=refused.is_set,
            )
        if found is None:
            raise AlertingError(f"topic {target} not found (no partitions in the metadata)")
        samples, topic, topic_why = found, target, ""
    inspector = Inspector()
    for sample in samples:
        inspector.add(sample.value, sample.key, sample.timestamp_ms, sample.headers)
    inspection = inspector.report()
    print(render_table(inspection))
    if not inspection.objects:
        print(f"no JSON objects in {target}: nothing to guess from", file=sys.stderr)
        return 1
    print()
    print("# a suggested input: check the guesses, fill in what is missing")
    print(render_block(suggest(inspection, topic, topic_why)))
    return 0
