"""Create the service's topics if they are missing."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from alerting.errors import BrokerError
from alerting.settings import Settings

log = logging.getLogger(__name__)

# compacted, and room for snapshots of large models (the producer allows as much)
_CHANGELOG_CONFIG = {"cleanup.policy": "compact", "max.message.bytes": str(16 * 1024 * 1024)}
# the silences control topic: the last record per silence id is the silence
_SILENCES_CONFIG = {"cleanup.policy": "compact"}


def ensure_topics(settings: Settings, names: list[str] | None = None) -> None:
    """Create missing topics (default: events, alerts, dead letters, changelog, and the
    silences (compacted) and feedback control topics, one partition each).

    The changelog is compacted and co-partitioned with the events topic (same partition
    count, so partition N's state lives in changelog partition N); a mismatch is an error.
    """
    t = settings.topics
    wanted = names or [t.events, t.alerts, t.dead_letters, t.changelog, t.silences, t.feedback]
    control = {t.silences: _SILENCES_CONFIG, t.feedback: {}}
    try:
        admin = KafkaAdminClient(**settings.kafka.client_options())
    except KafkaError as exc:
        raise BrokerError(
            f"no broker answers at {settings.kafka.bootstrap_servers} ({exc}); check "
            "kafka.bootstrap_servers (ALERTING__KAFKA__BOOTSTRAP_SERVERS)"
        ) from None
    try:
        existing = set(admin.list_topics())
        partitions = _partitions(admin, t.events) if t.events in existing else t.partitions
        missing = [name for name in wanted if name not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            1
                            if name in control
                            else partitions
                            if name == t.changelog
                            else t.partitions,
                            t.replication_factor,
                            topic_configs=control.get(name)
                            or (_CHANGELOG_CONFIG if name == t.changelog else {}),
                        )
                        for name in missing
                    ]
                )
                log.info("created topics %s", ", ".join(missing))
            except TopicAlreadyExistsError:
                pass  # another process won the race
        if t.changelog in wanted:
            events, changelog = _partitions(admin, t.events), _partitions(admin, t.changelog)
            if events != changelog:
                raise BrokerError(
                    f"the changelog {t.changelog} has {changelog} partitions but the events "
                    f"topic {t.events} has {events}: they must be co-partitioned; recreate "
                    "the changelog or set topics.changelog (ALERTING__TOPICS__CHANGELOG)"
                )
    finally:
        admin.close()


def _partitions(admin: KafkaAdminClient, topic: str) -> int:
    (described,) = admin.describe_topics([topic])
    return len(described["partitions"])
