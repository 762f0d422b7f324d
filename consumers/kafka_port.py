"""The :class:`~consumers.port.Port` on kafka-python: one consumer in a group, one producer."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata

from alerting.metrics import Metrics
from alerting.settings import Settings
from consumers.port import DeliveryError, InputRecord, Outgoing

log = logging.getLogger(__name__)


def producer_for(settings: Settings, **extra: Any) -> KafkaProducer:
    k = settings.kafka
    return KafkaProducer(
        **k.client_options(),
        acks="all",
        linger_ms=k.producer_linger_ms,
        retries=5,
        max_in_flight_requests_per_connection=5,
        **extra,
    )


def consumer_for(settings: Settings, group_id: str | None, **extra: Any) -> KafkaConsumer:
    k = settings.kafka
    return KafkaConsumer(
        **k.client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.service.auto_offset_reset,
        session_timeout_ms=k.session_timeout_ms,
        heartbeat_interval_ms=k.heartbeat_interval_ms,
        max_poll_interval_ms=k.max_poll_interval_ms,
        fetch_max_wait_ms=k.fetch_max_wait_ms,
        **extra,
    )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        # the loop commits after every batch, so nothing is pending when poll() revokes
        if revoked:
            log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        self.metrics.rebalances.inc()
        self.metrics.assigned_partitions.set(len(assigned))
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))


class KafkaPort:
    """Consumes the events topic in the service's group; publishes with ``acks=all``."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.consumer = consumer_for(settings, settings.service.group_id)
        self.consumer.subscribe([settings.topics.events], listener=_Listener(metrics))
        self.producer = producer_for(settings)

    def poll(self, max_records: int, timeout_ms: int) -> Sequence[InputRecord]:
        batches = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        if not batches:
            return []
        if len(batches) == 1:
            return next(iter(batches.values()))
        records: list[InputRecord] = []
        for part in batches.values():
            records.extend(part)
        return records

    def publish(self, messages: Sequence[Outgoing], timeout_s: float) -> None:
        send = self.producer.send
        futures = [
            send(m.topic, key=m.key, value=m.value, headers=m.headers or None) for m in messages
        ]
        try:
            self.producer.flush(timeout=timeout_s)
        except Exception as exc:  # KafkaTimeoutError and friends: find what is missing below
            log.debug("flush failed: %s", exc)
        pending = [m for m, f in zip(messages, futures, strict=True) if not f.succeeded()]
        if pending:
            failed = next((f.exception for f in futures if f.failed()), None)
            raise DeliveryError(
                f"{len(pending)} of {len(messages)} not acknowledged: {failed}", pending
            )

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        self.consumer.commit(
            {
                TopicPartition(topic, partition): OffsetAndMetadata(offset, "", -1)
                for (topic, partition), offset in offsets.items()
            }
        )

    def lag(self) -> dict[int, int]:
        # highwater() is the fetch response's true high watermark; tansu's ListOffsets
        # (end_offsets) would answer the last batch's base offset + 1 instead
        out = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # position not known yet: no figure rather than a guess
                continue
            if position is not None:
                out[tp.partition] = max(int(high) - int(position), 0)
        return out

    def close(self) -> None:
        try:
            self.producer.flush(timeout=5)
        finally:
            self.producer.close(timeout=5)
            self.consumer.close(autocommit=False)
