"""Create the service's topics if they are missing."""

from __future__ import annotations

import logging

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from alerting.errors import BrokerError
from alerting.settings import Settings

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, names: list[str] | None = None) -> None:
    """Create ``names`` (default: events, alerts and dead letters) unless they exist."""
    t = settings.topics
    wanted = names or [t.events, t.alerts, t.dead_letters]
    try:
        admin = KafkaAdminClient(**settings.kafka.client_options())
    except KafkaError as exc:
        raise BrokerError(
            f"no broker answers at {settings.kafka.bootstrap_servers} ({exc}); check "
            "kafka.bootstrap_servers (ALERTING__KAFKA__BOOTSTRAP_SERVERS)"
        ) from None
    try:
        existing = set(admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if not missing:
            return
        try:
            admin.create_topics(
                [NewTopic(name, t.partitions, t.replication_factor) for name in missing]
            )
            log.info("created topics %s", ", ".join(missing))
        except TopicAlreadyExistsError:
            pass  # another process won the race
    finally:
        admin.close()
