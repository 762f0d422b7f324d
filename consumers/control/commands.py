"""The control-topic writes and reads of ``alerting silence`` and ``alerting feedback``.

Each command checks its flags (a :class:`ConfigError` naming the flag), then needs the
cluster the service uses: a new silence, an expired one or a verdict is one record
published to its control topic; ``silence list`` reads the silences topic in full.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from alerting.errors import BrokerError, ConfigError, InvalidSilence
from alerting.feedback import VERDICT_ALIASES, Feedback
from alerting.settings import ENV_PREFIX, Settings
from alerting.silences import SEVERITIES, SilenceSet, new_silence, parse_duration
from consumers.control.reader import TopicReader, _where


def _need_cluster(settings: Settings, what: str) -> None:
    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            f"{what} needs the cluster the service uses: set kafka.bootstrap_servers "
            f"({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS)"
        )


def _publish(settings: Settings, topic: str, key: bytes, value: bytes) -> None:
    from consumers.kafka_python import producer_for

    try:
        producer = producer_for(settings)
    except Exception as exc:
        raise BrokerError(
            f"no broker answers at {settings.kafka.bootstrap_servers} ({exc}); check "
            f"kafka.bootstrap_servers ({ENV_PREFIX}KAFKA__BOOTSTRAP_SERVERS)"
        ) from None
    try:
        producer.send(topic, key=key, value=value).get(timeout=settings.kafka.delivery_timeout_s)
    except Exception as exc:
        raise BrokerError(f"writing to {topic} failed: {exc}") from None
    finally:
        producer.close(timeout=5)


def read_silences(settings: Settings, timeout_s: float = 30.0) -> SilenceSet:
    """Every silence in the control topic (empty if the topic does not exist)."""
    silences = SilenceSet()

    def apply(record: Any) -> None:
        try:
            silences.apply(record.key, record.value)
        except InvalidSilence as exc:
            print(f"skipped silence record {_where(record)}: {exc.detail}", file=sys.stderr)

    reader = TopicReader(settings, settings.topics.silences, apply, wait_topic_s=5.0, restart=False)
    reader.start()
    reader.ready.wait(timeout_s)
    reader.stop()
    if reader.error is not None:
        raise BrokerError(f"reading {settings.topics.silences} failed: {reader.error}")
    return silences


def _ensure(settings: Settings, topic: str) -> None:
    if settings.topics.create:
        from producers.topics import ensure_topics

        ensure_topics(settings, [topic])


def add_silence(
    settings: Settings,
    entity: str,
    severity: str | None,
    duration: str,
    comment: str,
    author: str | None = None,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``alerting silence add``: publish a new silence and print its id.

    ``author`` None: the current user.
    """
    topic = settings.topics.silences
    if severity is not None and severity not in SEVERITIES:
        raise ConfigError(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    try:
        duration_s = parse_duration(duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from None
    if not comment.strip():
        raise ConfigError("--comment must not be empty: say why the alerts are silenced")
    try:
        silence = new_silence(
            entity,
            severity,
            duration_s,
            comment,
            author or os.environ.get("USER") or getpass.getuser(),
            now=clock(),
        )
    except ValueError as exc:
        raise ConfigError(f"--entity: {exc}") from None
    _need_cluster(settings, "silence add")
    _ensure(settings, topic)
    _publish(settings, topic, silence.id.encode(), silence.to_json())
    print(silence.id, file=out)
    return 0


def list_silences(
    settings: Settings,
    show_all: bool = False,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``alerting silence list``: the silences in force (``show_all``: expired ones too)."""
    _need_cluster(settings, "silence list")
    silences = read_silences(settings)
    now = clock()
    shown = [s for s in silences.all() if show_all or s.state(now) != "expired"]
    if as_json:
        for s in shown:
            out.write(json.dumps({**s.to_dict(), "state": s.state(now)}) + "\n")
        return 0
    if not shown:
        print(
            "no silences" + ("" if show_all else " in force (--all shows expired ones)"),
            file=out,
        )
        return 0
    print(
        f"{'ID':36}  {'STATE':8} {'ENDS':20} {'SEVERITY':8} {'ENTITY':16} AUTHOR: COMMENT",
        file=out,
    )
    for s in shown:
        ends = datetime.fromtimestamp(s.ends_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{s.id:36}  {s.state(now):8} {ends:20} {s.severity or '*':8} {s.entity:16} "
            f"{s.author}: {s.comment}",
            file=out,
        )
    return 0


def expire_silence(
    settings: Settings,
    silence_id: str,
    out: TextIO = sys.stdout,
    clock: Callable[[], float] = time.time,
) -> int:
    """``alerting silence expire ID``: end a silence now."""
    topic = settings.topics.silences
    _need_cluster(settings, "silence expire")
    silences = read_silences(settings)
    now = clock()
    found = silences.get(silence_id)
    if found is None:
        raise ConfigError(
            f"no silence with id {silence_id} in {topic}; `alerting silence list --all` lists them"
        )
    if found.state(now) == "expired":
        print(f"silence {found.id} had already expired", file=out)
        return 0
    _publish(settings, topic, found.id.encode(), found.expired(now).to_json())
    print(f"expired {found.id}", file=out)
    return 0


def send_feedback(
    settings: Settings, alert_id: str, verdict: str, note: str | None, out: TextIO = sys.stdout
) -> int:
    """``alerting feedback ALERT_ID --verdict tp|fp [--note TEXT]``."""
    decided = VERDICT_ALIASES.get(verdict)
    if decided is None:
        raise ConfigError(f"--verdict must be tp or fp, got {verdict!r}")
    if not alert_id.strip():
        raise ConfigError("ALERT_ID must not be empty: the `id` of the alert's CloudEvent")
    feedback = Feedback(alert_id.strip(), decided, note)
    _need_cluster(settings, "feedback")
    _ensure(settings, settings.topics.feedback)
    _publish(settings, settings.topics.feedback, feedback.alert_id.encode(), feedback.to_json())
    print(f"{decided} on {feedback.alert_id} sent to {settings.topics.feedback}", file=out)
    return 0
