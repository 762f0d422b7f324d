"""The kafka-python helpers: follow() a topic without a group, read a changelog to its high
watermark, and the rebalance listener's translation to :class:`~consumers.rebalance.Rebalance`.

Against a real broker: tests/integration/test_demo_and_cli.py (``alerting tail``) and
tests/integration/test_state_recovery.py (the changelog restore).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from alerting.metrics import Metrics
from alerting.settings import load_settings
from consumers import kafka_python
from consumers.kafka_python import _Listener, follow, read_to_high_watermark
from consumers.rebalance import Rebalance
from tests.unit.fakes import FakeKafkaConsumer

TOPIC = "alerts"


def polls(n: int) -> Callable[[], bool]:
    """A stop() that says stop when asked the ``n + 1``-th time (once the topic exists,
    follow() asks it before each poll: ``n`` polls)."""
    asked = iter(range(n + 1))
    return lambda: next(asked) >= n


def values(batches: Iterator[Any]) -> list[list[bytes | None]]:
    return [[r.value for records in batch.values() for r in records] for batch in batches]


def test_follow_from_the_beginning_reads_every_partition_in_order() -> None:
    consumer = FakeKafkaConsumer({1: [b"c"], 0: [b"a", b"b"]}, metadata_after=2)
    waits: list[float] = []
    stop = polls(4)  # asked twice while the topic does not exist, then before each poll
    got = values(follow(consumer, TOPIC, "beginning", stop, pause=waits.append))
    assert waits == [0.2, 0.2]
    assert got == [[b"a", b"b", b"c"], []]
    assert consumer.calls[:5] == ["metadata"] * 3 + ["assign [0, 1]", "seek_to_beginning"]
    assert not consumer.closed  # the caller's to close


def test_follow_from_the_end_starts_at_the_true_high_watermark() -> None:
    consumer = FakeKafkaConsumer({0: [b"old", b"older", b"newest"]})
    batches = follow(consumer, TOPIC, "end", polls(2))
    assert values(batches) == [[], []]
    # ListOffsets said 2, the fetch said 3: the newest record is not shown again
    assert "seek_to_end" in consumer.calls and "seek 0 3" in consumer.calls
    consumer.log[0].append(b"new")
    assert values(follow(consumer, TOPIC, "end", polls(1), partitions={0})) == [[]]


def test_follow_given_partitions_reads_only_those_without_asking_the_metadata() -> None:
    consumer = FakeKafkaConsumer({0: [b"a"], 1: [b"b"], 2: [b"c"]})
    got = values(follow(consumer, TOPIC, "beginning", polls(1), partitions={2, 0}))
    assert got == [[b"a", b"c"]]
    assert "metadata" not in consumer.calls and "assign [0, 2]" in consumer.calls


def test_follow_stopped_before_the_topic_exists_yields_nothing() -> None:
    consumer = FakeKafkaConsumer({0: [b"a"]}, metadata_after=10**6)
    stopped = polls(3)  # here: three looks at the metadata
    assert values(follow(consumer, TOPIC, "beginning", stopped, pause=lambda s: None)) == []
    assert not any(call.startswith("assign") for call in consumer.calls)


def test_follow_rejects_an_unknown_start() -> None:
    with pytest.raises(ValueError, match="start_at must be one of beginning, end"):
        next(follow(FakeKafkaConsumer({0: []}), TOPIC, "latest", polls(1)))


def test_follow_hands_failed_polls_over_or_raises_them() -> None:
    failed: list[str] = []
    consumer = FakeKafkaConsumer({0: [b"a"]}, poll_errors=[ConnectionError("x"), TimeoutError("y")])
    batches = follow(
        consumer, TOPIC, "beginning", polls(3), poll_failed=lambda exc: failed.append(str(exc))
    )
    assert values(batches) == [[b"a"]]  # two failed polls, then one that answered
    assert failed == ["x", "y"]
    consumer = FakeKafkaConsumer({0: [b"a"]}, poll_errors=[ConnectionError("x")])
    with pytest.raises(ConnectionError):
        next(follow(consumer, TOPIC, "beginning", polls(3)))


def test_follow_says_when_it_started_and_once_when_it_caught_up() -> None:
    consumer = FakeKafkaConsumer({0: [b"a", b"b", b"c"], 1: [b"d"]})
    events: list[str] = []
    for batch in follow(
        consumer,
        TOPIC,
        "beginning",
        polls(4),
        max_records=2,
        started=lambda: events.append("started"),
        caught_up=lambda: events.append("caught up"),
    ):
        events.append(f"handled {sum(map(len, batch.values()))}")
    assert events == ["started", "handled 2", "handled 2", "caught up", "handled 0", "handled 0"]
    assert consumer.calls.index("seek_to_beginning") < consumer.calls.index("poll")


def test_read_to_high_watermark_counts_down_and_ends_at_each_partitions_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = FakeKafkaConsumer({0: [b"a", b"b"], 1: [b"c"], 2: [b"not read"]})
    made: list[dict[str, Any]] = []

    def consumer_for(settings: Any, group_id: str | None, **extra: Any) -> FakeKafkaConsumer:
        made.append({"group_id": group_id, **extra})
        return consumer

    monkeypatch.setattr(kafka_python, "consumer_for", consumer_for)
    read = list(read_to_high_watermark(load_settings(), "state", {1, 0}))
    assert read == [(1, 0, b"k", b"a"), (0, 0, b"k", b"b"), (0, 1, b"k", b"c")]
    assert made == [{"group_id": None, "auto_offset_reset": "earliest"}]
    assert consumer.calls.count("poll") == 1 and consumer.closed


def test_the_listener_hands_partition_numbers_to_the_rebalance(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics(CollectorRegistry())
    calls: list[tuple[str, set[int]]] = []
    rebalance = Rebalance(metrics)
    rebalance.to(lambda p: calls.append(("assigned", p)), lambda p: calls.append(("revoked", p)))
    listener = _Listener(rebalance)
    with caplog.at_level(logging.INFO, logger="consumers.rebalance"):
        listener.on_partitions_revoked([])  # nothing to revoke: not called
        listener.on_partitions_revoked([TopicPartition("e", 0), TopicPartition("e", 1)])
        listener.on_partitions_assigned([TopicPartition("e", 3), TopicPartition("e", 1)])
        listener.on_partitions_assigned([])  # counted, gauge to 0, the loop not called
    assert calls == [("revoked", {0, 1}), ("assigned", {1, 3})]
    assert metrics.registry.get_sample_value("alerting_rebalances_total") == 2
    assert metrics.registry.get_sample_value("alerting_assigned_partitions") == 0
    assert [r.getMessage() for r in caplog.records] == [
        "partitions revoked: [0, 1]",
        "partitions assigned: [1, 3]",
        "partitions assigned: []",
    ]
