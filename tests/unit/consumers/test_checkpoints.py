"""Checkpoints on the in-memory port: snapshots to the changelog between the acknowledged
alerts and the offset commit, rebalances, and crash recovery with the same alert ids."""

from __future__ import annotations

import json
import random
from collections.abc import Callable

import pytest

from alerting.detectors import RollingZScore
from alerting.errors import InvalidEvent
from alerting.events import Metric, decode
from alerting.metrics import Metrics
from alerting.policy import AlertPolicy
from alerting.processor import Processor
from alerting.records import Outgoing
from alerting.state import CLOCK_QUORUM, EntityState, SnapshotCodec
from alerting.thresholds import FixedThreshold
from consumers.runner import Service
from producers import dead_letters
from tests.unit.fakes import ALERTS, DEFAULT_TOPIC, DLQ, Crash, FakePort, FakeRecord, build_service

CHANGELOG = "test.state"
WARMUP = 5
START = 1_700_000_000.0
NEVER = 1e9  # a commit interval that never elapses: checkpoints only when called


def make_processor(
    max_entities: int = 1000, idle_ttl_s: float | None = None, window: int = 16
) -> Processor:
    return Processor(
        RollingZScore(window=window, min_history=4),
        AlertPolicy(critical_factor=2.0, repeat_after=2.0, resolve_after=2.0),
        FixedThreshold(6.0),
        warmup=WARMUP,
        max_entities=max_entities,
        idle_ttl_s=idle_ttl_s,
    )


def make_service(
    port: FakePort,
    processor: Processor | None = None,
    interval: float = 0.0,
    max_batch_records: int = 1000,
    changelog: str | None = CHANGELOG,
) -> tuple[Service, Metrics]:
    return build_service(
        port,
        processor if processor is not None else make_processor(),
        lambda: START,
        max_batch_records,
        changelog,
        interval,
    )


def value(metrics: Metrics, name: str, **labels: str) -> float:
    sample = metrics.registry.get_sample_value(name, labels)
    return 0.0 if sample is None else sample


def calm(entity: str, n: int, start: float = START) -> list[Metric]:
    rng = random.Random(entity)
    return [
        Metric(entity=entity, values={"load": 1.0 + rng.gauss(0, 0.01)}, time=start + i)
        for i in range(n)
    ]


def spike(entity: str, time: float) -> Metric:
    return Metric(entity=entity, values={"load": 50.0}, time=time)


def drain(service: Service, every: int = 0) -> int:
    """Run batches until the input is exhausted; with ``every``, checkpoint explicitly
    after every ``every`` batches. The number of batches that read records."""
    batches = 0
    while service.run_once():
        batches += 1
        if every and batches % every == 0:
            service.checkpoint()
    return batches


def header(message: Outgoing) -> dict[str, object]:
    return SnapshotCodec.read_header(message.value or b"")


def source_of(message: Outgoing) -> tuple[int, int]:
    """(partition, offset) of the input record an alert or dead letter came from."""
    if message.topic == ALERTS:
        source = json.loads(message.value or b"")["data"]["source"]
        return source["partition"], source["offset"]
    headers = dict(message.headers)
    return int(headers[dead_letters.SOURCE_PARTITION]), int(headers[dead_letters.SOURCE_OFFSET])


def entity_of(record: FakeRecord) -> str | None:
    """The entity a record updates, or None for one that is dead-lettered."""
    try:
        return decode(record.value).entity
    except InvalidEvent:
        return None


def stream_port(seed: int, n: int = 300, entities: int = 6, partitions: int = 2) -> FakePort:
    """Calm metrics of a few entities keyed to partitions, with spikes and some garbage."""
    rng = random.Random(seed)
    port = FakePort()
    t = START
    for _ in range(n):
        t += rng.expovariate(1.0) if rng.random() > 0.02 else rng.uniform(20, 60)
        i = rng.randrange(entities)
        partition = i % partitions
        if rng.random() < 0.03:
            port.add_raw(b"not json", key=f"m{i}".encode(), partition=partition)
            continue
        load = 1.0 + rng.gauss(0, 0.01) if rng.random() > 0.06 else rng.uniform(5, 50)
        port.add_event(Metric(entity=f"m{i}", values={"load": load}, time=t), partition=partition)
    return port


def seen_of(processor: Processor, entities: set[str]) -> dict[str, tuple[int, int]]:
    return {
        e: (s.seen, s.next_offset)
        for e in sorted(entities)
        for s in [processor.store.get(e, -1, 0.0)]
    }


# -- ordering -----------------------------------------------------------------------------


@pytest.mark.parametrize(("interval", "every"), [(0.0, 0), (NEVER, 3)])
@pytest.mark.parametrize("seed", [1, 2])
def test_each_checkpoint_orders_outputs_then_snapshots_then_commit(
    seed: int, interval: float, every: int
) -> None:
    port = stream_port(seed)
    processor = make_processor(max_entities=3, idle_ttl_s=10.0)  # evictions between checkpoints
    service, _ = make_service(port, processor, interval, max_batch_records=11)
    drain(service, every)
    service.checkpoint()
    assert port.published_to(ALERTS) and port.published_to(DLQ)
    entity = {(r.partition, r.offset): entity_of(r) for r in port.records}
    acknowledged: set[tuple[int, int]] = set()  # sources whose alerts/dead letters are out
    covered: dict[tuple[str, int], int] = {}
    segment: list[Outgoing] = []  # what was published since the previous commit
    checkpoints = 0
    for name, _, detail in port.history:
        if name == "publish":
            assert isinstance(detail, Outgoing)
            segment.append(detail)
            continue
        if name != "commit":
            continue
        assert isinstance(detail, dict)
        checkpoints += 1
        topics = [m.topic for m in segment]
        first = topics.index(CHANGELOG) if CHANGELOG in topics else len(topics)
        assert set(topics[first:]) <= {CHANGELOG}, "output published after the snapshots"
        acknowledged |= {source_of(m) for m in segment[:first]}
        snapshots = segment[first:]
        newly = [(p, o) for (t, p), end in detail.items()
                 for o in range(covered.get((t, p), 0), end)]  # fmt: skip
        covered.update(detail)
        # the covered records' alerts and dead letters were acknowledged before the snapshots
        outputs = {source_of(m) for m in port.published_to(ALERTS) + port.published_to(DLQ)}
        assert {n for n in newly if n in outputs} <= acknowledged
        # the snapshots are the entities the covered records changed, once each, and each
        # includes its entity's last covered record
        keys = [m.key.decode() for m in snapshots if m.key]
        assert len(keys) == len(set(keys)) == len(snapshots)
        changed = {entity[n] for n in newly if entity[n] is not None}
        assert set(keys) == changed
        for message in snapshots:
            last = max(o for p, o in newly if entity[(p, o)] == (message.key or b"").decode())
            assert header(message)["next_offset"] == last + 1
            assert header(message)["partition"] == message.partition
        segment = []
    assert checkpoints > 3
    assert segment == []
    assert covered == {
        (DEFAULT_TOPIC, p): sum(r.partition == p for r in port.records) for p in (0, 1)
    }


def test_a_failing_changelog_publish_is_retried_and_nothing_is_committed_until_it_succeeds() -> (
    None
):
    port = stream_port(3, n=60)
    service, metrics = make_service(port, interval=NEVER)
    service.run_once()
    assert port.commits == []
    changed = {e for r in port.records if (e := entity_of(r)) is not None}
    mark = len(port.history)
    port.fail_next_publishes(3, acknowledge_first=2)

    assert service.checkpoint()
    tail = [(name, topic) for name, topic, _ in port.history[mark:]]
    assert [n for n, _ in tail].count("publish_failed") == 3
    assert tail[-1][0] == "commit"
    assert all(name != "commit" for name, _ in tail[:-1])
    assert {topic for name, topic in tail if name == "publish"} == {CHANGELOG}
    # acknowledged snapshots are not sent again: each entity exactly once
    keys = [m.key.decode() for m in port.published_to(CHANGELOG) if m.key]
    assert sorted(keys) == sorted(changed)
    assert value(metrics, "alerting_broker_errors_total", operation="publish") == 3
    assert value(metrics, "alerting_snapshots_total") == len(changed)
    assert port.committed == {
        (DEFAULT_TOPIC, p): sum(r.partition == p for r in port.records) for p in (0, 1)
    }


def test_stopping_while_the_changelog_publish_keeps_failing_commits_nothing() -> None:
    port = stream_port(4, n=40)
    service, _ = make_service(port, interval=NEVER)
    service.run_once()
    port.fail_next_publishes(10**9)
    port.after_failed_publish = lambda failures: service.stop.set() if failures == 3 else None
    assert not service.checkpoint()
    assert port.commits == []
    assert port.published_to(CHANGELOG) == []


def test_run_commits_nothing_after_an_abandoned_checkpoint() -> None:
    # the stopped checkpoint's snapshots were never acknowledged; the final checkpoint of
    # run() must not commit the offsets they cover (their state would be lost)
    port = FakePort()
    for event in calm("a", 10) + calm("b", 10):
        port.add_event(event)
    service, _ = make_service(port, interval=0.0)
    port.fail_next_publishes(10**9)
    port.after_failed_publish = lambda failures: service.stop.set() if failures == 3 else None
    service.run()
    assert port.published_to(CHANGELOG) == []
    assert port.commits == []


def test_alerts_abandoned_at_stop_are_delivered_after_a_restart() -> None:
    # stopping while the alerts of a batch are unacknowledged: the final checkpoint must not
    # write state that includes that batch, or the replay skips it and the alerts are lost
    port = FakePort()
    for event in calm("a", 20) + calm("b", 20):
        port.add_event(event)
    port.add_event(spike("a", START + 100))
    port.add_event(spike("b", START + 100))
    service, _ = make_service(port, interval=0.0)
    port.fail_next_publishes(3)  # the broker comes back right after the stop
    port.after_failed_publish = lambda failures: service.stop.set() if failures == 3 else None
    service.run()
    assert port.published_to(ALERTS) == []
    assert port.commits == []

    port.restart()
    again, metrics = make_service(port, interval=0.0)
    drain(again)
    subjects = sorted(json.loads(m.value or b"")["subject"] for m in port.published_to(ALERTS))
    assert subjects == ["a", "b"]
    assert value(metrics, "alerting_events_skipped_total") == 0


# -- what snapshots hold ------------------------------------------------------------------


def test_snapshots_go_to_the_source_partition_keyed_by_entity_and_only_when_changed() -> None:
    port = FakePort()
    for event in calm("a", 4):
        port.add_event(event, partition=1)
    for event in calm("b", 3):
        port.add_event(event, partition=0)
    service, metrics = make_service(port, interval=NEVER)
    service.run_once()
    assert service.checkpoint()
    first = port.published_to(CHANGELOG)
    assert sorted((m.key, m.partition) for m in first) == [(b"a", 1), (b"b", 0)]
    for message in first:
        head = header(message)
        assert head["partition"] == message.partition
        assert head["next_offset"] == {b"a": 4, b"b": 3}[message.key or b""]
        assert message.value is not None
    assert port.published_to(CHANGELOG, 1) == [m for m in first if m.key == b"a"]
    assert value(metrics, "alerting_snapshots_total") == 2
    assert value(metrics, "alerting_snapshot_bytes_total") == sum(
        len(m.value or b"") for m in first
    )

    assert service.checkpoint()  # nothing changed: nothing written, nothing to commit
    assert len(port.published_to(CHANGELOG)) == 2
    assert len(port.commits) == 1

    port.add_event(Metric(entity="a", values={"load": 1.0}, time=START + 10), partition=1)
    service.run_once()
    assert service.checkpoint()
    second = port.published_to(CHANGELOG)[2:]
    assert [(m.key, m.partition) for m in second] == [(b"a", 1)]
    assert header(second[0])["next_offset"] == 5
    assert port.committed == {(DEFAULT_TOPIC, 0): 3, (DEFAULT_TOPIC, 1): 5}


def test_without_a_changelog_topic_only_offsets_are_committed() -> None:
    port = stream_port(5, n=30)
    service, _ = make_service(port, changelog=None)
    drain(service)
    assert port.published_to(CHANGELOG) == []
    assert {topic for name, topic, _ in port.history if name == "publish"} <= {ALERTS, DLQ}
    assert port.commits


# -- rebalances ---------------------------------------------------------------------------


def warm_two_partitions() -> FakePort:
    port = FakePort()
    for a, b, c, d in zip(calm("a", 12), calm("b", 12), calm("c", 12), calm("d", 12), strict=True):
        port.add_event(a, partition=0)
        port.add_event(b, partition=1)
        port.add_event(c, partition=0)
        port.add_event(d, partition=1)
    return port


def test_revocation_checkpoints_before_dropping_the_partitions_state() -> None:
    port = warm_two_partitions()
    processor = make_processor()
    service, metrics = make_service(port, processor, interval=NEVER)
    service.run_once()
    assert port.commits == []  # processed, not yet checkpointed
    assert processor.store.live == 4

    port.rebalance(revoked={0, 1}, assigned={0})
    port.add_event(spike("a", START + 50), partition=0)
    port.add_event(spike("b", START + 50), partition=1)  # no longer ours
    mark = len(port.history)
    assert service.run_once() == 1

    tail = port.history[mark:]
    names = [name for name, _, _ in tail]
    assert names[0] == "revoked"
    commit = names.index("commit")
    assert set(names[1:commit]) == {"publish"}
    assert {tail[i][1] for i in range(1, commit)} == {CHANGELOG}
    assert sorted(tail[i][2].key for i in range(1, commit)) == [b"a", b"b", b"c", b"d"]  # type: ignore[union-attr]
    assert tail[commit][2] == {(DEFAULT_TOPIC, 0): 24, (DEFAULT_TOPIC, 1): 24}
    assert names[commit + 1 : commit + 3] == ["assigned", "read"]
    assert tail[commit + 2][1:] == (CHANGELOG, {0})
    assert names[commit + 3] == "poll"
    # partition 1's entities are gone, partition 0's came back from the changelog
    assert sorted(e for e, _ in processor.store) == ["a"]
    assert processor.store.cold.get("b") is None and processor.store.cold.get("d") is None
    assert processor.store.cold.get("c") is not None
    assert processor.store.get("a", 0, 0.0).seen == 13
    # the spike was scored by the restored, warmed-up model
    assert [json.loads(m.value or b"")["subject"] for m in port.published_to(ALERTS)] == ["a"]
    assert value(metrics, "alerting_restore_records_total") == len(port.published_to(CHANGELOG, 0))
    assert value(metrics, "alerting_restore_records_total") == 2
    assert value(metrics, "alerting_restore_seconds_count") == 1
    assert value(metrics, "alerting_restore_remaining_records") == 0
    assert value(metrics, "alerting_entities_warming_up") == 0


def fresh_builds(processor: Processor) -> list[int]:
    """From now on, counts (in its one item) the entity states ``processor``'s store
    builds fresh: a restored entity is not one of them."""
    count = [0]
    make = processor.store.factory

    def counted() -> EntityState:
        count[0] += 1
        return make()

    processor.store.factory = counted
    return count


def test_a_new_member_restores_before_processing_its_first_records() -> None:
    port = warm_two_partitions()
    first, _ = make_service(port, interval=NEVER)
    first.run_once()
    assert first.checkpoint()
    # another process takes over both partitions; the input goes on with two spikes
    port.add_event(spike("a", START + 50), partition=0)
    port.add_event(spike("d", START + 50), partition=1)
    port.restart()
    processor = make_processor()
    second, metrics = make_service(port, processor, interval=NEVER)
    fresh = fresh_builds(processor)
    mark = len(port.history)
    assert second.run_once() == 2
    names = [name for name, _, _ in port.history[mark:]]
    assert names[:3] == ["assigned", "read", "poll"]
    # a and d, from the changelog, not fresh
    assert fresh == [0]
    assert processor.store.get("a", 0, 0.0).seen > 1 and processor.store.get("d", 1, 0.0).seen > 1
    subjects = sorted(json.loads(m.value or b"")["subject"] for m in port.published_to(ALERTS))
    assert subjects == ["a", "d"]
    assert value(metrics, "alerting_restore_records_total") == 4
    assert value(metrics, "alerting_restore_seconds_count") == 1
    assert value(metrics, "alerting_events_skipped_total") == 0


def test_a_refused_changelog_state_starts_fresh_and_is_counted() -> None:
    port = warm_two_partitions()
    first, _ = make_service(port, interval=NEVER)
    first.run_once()
    assert first.checkpoint()
    port.restart()
    processor = make_processor(window=32)  # another configuration
    second, metrics = make_service(port, processor, interval=NEVER)
    port.add_event(Metric(entity="a", values={"load": 1.0}, time=START + 50), partition=0)
    assert second.run_once() == 1
    assert value(metrics, "alerting_restore_records_total") == 4
    assert value(metrics, "alerting_snapshots_refused_total", reason="config_mismatch") == 4
    assert processor.store.get("a", 0, 0.0).seen == 1


# -- crashes ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "interval", "every", "max_entities", "idle_ttl_s"),
    [
        (1, 0.0, 0, 1000, None),
        (2, 0.0, 0, 3, 15.0),
        (3, NEVER, 2, 1000, None),
        (4, NEVER, 3, 2, None),
        (5, 0.0, 0, 4, 10.0),
        (6, NEVER, 4, 3, 20.0),
    ],
)
def test_crashes_at_random_points_give_the_alerts_of_an_uninterrupted_run(
    seed: int, interval: float, every: int, max_entities: int, idle_ttl_s: float | None
) -> None:
    skipped: list[float] = []

    def build(port: FakePort) -> tuple[Service, Processor]:
        processor = make_processor(max_entities=max_entities, idle_ttl_s=idle_ttl_s)
        service, metrics = make_service(port, processor, interval, max_batch_records=9)
        skipped.append(0.0)
        service.run_once = counting(service.run_once, metrics, skipped)  # type: ignore[method-assign]
        return service, processor

    expected_port = stream_port(seed)
    entities = {e for r in expected_port.records if (e := entity_of(r)) is not None}
    service, expected_processor = build(expected_port)
    drain(service, every)
    service.checkpoint()
    expected = {}
    for message in expected_port.published_to(ALERTS):
        alert = json.loads(message.value or b"")
        assert alert["id"] not in expected, "an uninterrupted run publishes each alert once"
        expected[alert["id"]] = message.value
    assert len(expected) >= 3

    operations = sum(name in ("publish", "commit") for name, _ in expected_port.calls)
    snapshot_calls = len(expected_port.commits)  # each commit follows one snapshot publish
    rng = random.Random(seed)
    port = stream_port(seed)
    crashes = 0
    for _ in range(6):
        port.restart()
        service, _ = build(port)
        if rng.random() < 0.5:
            port.crash_after(rng.randint(1, operations // 4))
        else:  # between a checkpoint's snapshots and its commit
            port.crash_after(rng.randint(1, snapshot_calls // 4), topic=CHANGELOG)
        try:
            drain(service, every)
        except Crash:
            crashes += 1  # the process is gone: no final checkpoint, no close
    port.crash_after(None)
    port.restart()
    service, processor = build(port)
    drain(service, every)
    service.checkpoint()

    assert crashes >= 4
    assert sum(skipped) > 0, "some crash fell between a snapshot and its commit"
    published = [m.value for m in port.published_to(ALERTS)]
    ids = [json.loads(v or b"")["id"] for v in published]
    assert set(ids) == set(expected)
    for alert_id, message in zip(ids, published, strict=True):
        assert message == expected[alert_id]  # a repeat is the very same alert
    # nothing was learned twice (or missed): the states end where the uninterrupted ones do
    assert seen_of(processor, entities) == seen_of(expected_processor, entities)
    assert port.committed == expected_port.committed


def counting(
    run_once: Callable[[], int], metrics: Metrics, skipped: list[float]
) -> Callable[[], int]:
    """``run_once`` that keeps the last entry of ``skipped`` at the service's skip count."""

    def wrapped() -> int:
        try:
            return run_once()
        finally:
            skipped[-1] = value(metrics, "alerting_events_skipped_total")

    return wrapped


def test_replayed_events_a_snapshot_already_includes_are_skipped_and_counted() -> None:
    port = stream_port(7, n=80)
    first, _ = make_service(port, interval=NEVER, max_batch_records=30)
    first.run_once()
    assert first.checkpoint()
    committed = dict(port.committed)
    first.run_once()
    second_batch = [r for r in port.records if r.offset >= committed[(r.topic, r.partition)]][:30]
    valid = [r for r in second_batch if entity_of(r) is not None]
    port.crash_after(1)
    with pytest.raises(Crash):
        first.checkpoint()  # the snapshots are acknowledged, then the process dies
    assert port.committed == committed

    port.restart()
    processor = make_processor()
    again, metrics = make_service(port, processor, interval=NEVER, max_batch_records=1000)
    drain(again)
    assert value(metrics, "alerting_events_skipped_total") == len(valid)
    consumed = 80 - sum(committed.values())
    assert value(metrics, "alerting_events_consumed_total") == consumed
    assert value(metrics, "alerting_events_processed_total", kind="metric") == sum(
        entity_of(r) is not None for r in port.records
        if r.offset >= committed[(r.topic, r.partition)]
    ) - len(valid)  # fmt: skip

    reference_port = stream_port(7, n=80)
    reference, _ = make_service(reference_port, (expected := make_processor()), interval=NEVER)
    drain(reference)
    entities = {e for r in port.records if (e := entity_of(r)) is not None}
    assert seen_of(processor, entities) == seen_of(expected, entities)


def test_the_fake_rewinds_to_the_committed_offsets_per_partition() -> None:
    # the crash tests rely on it: each partition resumes at its own committed offset
    port = FakePort()
    for i in range(6):
        port.add_raw(b"x", partition=i % 2)
    assert [(r.partition, r.offset) for r in port.poll(4, 0)] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    port.commit({(DEFAULT_TOPIC, 0): 1, (DEFAULT_TOPIC, 1): 2})
    port.restart()
    calls: list[set[int]] = []
    port.on_rebalance(calls.append, lambda p: None)
    batch = port.poll(10, 0)
    assert calls == [{0, 1}]
    assert [(r.partition, r.offset) for r in batch] == [(0, 1), (0, 2), (1, 2)]
    assert port.lag() == {0: 0, 1: 0}


def test_lag_of_revoked_partitions_is_no_longer_exported() -> None:
    port = FakePort()
    for partition in (0, 1):
        for i in range(3):
            port.add_event(
                Metric(entity=f"e{partition}", values={"v": 1.0}, time=START + i),
                partition=partition,
            )
    service, metrics = make_service(port, max_batch_records=1)
    service.run_once()
    assert value(metrics, "alerting_consumer_lag_records", partition="1") is not None
    port.rebalance(revoked={1})
    service.run_once()
    assert (
        metrics.registry.get_sample_value("alerting_consumer_lag_records", {"partition": "1"})
        is None
    )
    assert value(metrics, "alerting_consumer_lag_records", partition="0") is not None


def test_score_ratios_and_thresholds_are_exported_per_batch() -> None:
    port = FakePort()
    n = WARMUP + 7
    for i in range(n):
        port.add_event(Metric(entity="e", values={"v": 1.0 + (i % 3) * 0.1}, time=START + i))
    service, metrics = make_service(port, max_batch_records=n)
    service.run_once()
    # one ratio per decided event: every event after the warm-up
    assert value(metrics, "alerting_score_ratio_count") == n - WARMUP
    assert value(metrics, "alerting_score_ratio_bucket", le="+Inf") == n - WARMUP
    assert value(metrics, "alerting_threshold", stat="p50") == 6.0


def test_a_changelog_key_that_is_not_an_entity_is_skipped_and_counted() -> None:
    """One record with a key that is not UTF-8 (or empty) used to raise inside the
    rebalance callback: every entity of the partitions started fresh, and the next
    checkpoint overwrote their good snapshots."""
    port = warm_two_partitions()
    first, _ = make_service(port, interval=NEVER)
    first.run_once()
    assert first.checkpoint()
    good = {m.key: m.value for m in port.published_to(CHANGELOG)}
    for key in (b"\xff\xfe not utf-8", b"", b"x" * 300):
        port.publish([Outgoing(CHANGELOG, key, b"ALST whatever", partition=0)], 1.0)
    port.restart()
    processor = make_processor()
    second, metrics = make_service(port, processor, interval=NEVER)
    port.add_event(Metric(entity="a", values={"load": 1.0}, time=START + 50), partition=0)
    fresh = fresh_builds(processor)
    assert second.run_once() == 1
    assert value(metrics, "alerting_snapshots_refused_total", reason="bad_key") == 3
    assert fresh == [0]
    assert processor.store.get("a", 0, 0.0).seen > 1  # "a" came back
    assert {m.key for m in port.published_to(CHANGELOG)} >= set(good)


def test_a_partition_whose_restore_failed_waits_for_its_state() -> None:
    """The changelog cannot be read at assignment: the partitions are paused, not processed
    on fresh state (which the next checkpoint would write over their good snapshots), and
    resumed once a retried restore succeeds."""
    import time

    port = warm_two_partitions()
    first, _ = make_service(port, interval=NEVER)
    first.run_once()
    assert first.checkpoint()
    port.add_event(spike("a", START + 50), partition=0)
    port.restart()
    port.read_failures_left = 2
    processor = make_processor()
    second, metrics = make_service(port, processor, interval=NEVER)
    fresh = fresh_builds(processor)
    assert second.run_once() == 0  # assigned, restore failed: paused, nothing processed
    assert port.paused == {0, 1} and processor.store.live == 0
    assert value(metrics, "alerting_broker_errors_total", operation="restore") == 1
    time.sleep(0.01)  # past the retry backoff
    assert second.run_once() == 0  # the retry fails too: still paused
    assert port.paused == {0, 1}
    time.sleep(0.01)
    assert second.run_once() == 1  # restored, resumed, and the spike scored on its state
    assert port.paused == set()
    assert [json.loads(m.value or b"")["subject"] for m in port.published_to(ALERTS)] == ["a"]
    assert fresh == [0]
    assert processor.store.get("a", 0, 0.0).seen > 1
    assert value(metrics, "alerting_broker_errors_total", operation="restore") == 2


# -- retention: tombstones through the checkpoint -----------------------------------------


def retaining_processor(retention_s: float, quorum: int = 1) -> Processor:
    """Retention on; the clock the partition's newest event time unless ``quorum`` (the
    service's default, 3, waits for that many entities to reach a time)."""
    processor = make_processor()
    processor.store.retention_s = retention_s
    processor.store.clock_quorum = quorum
    return processor


def test_one_entitys_stray_event_time_ages_no_other_entity() -> None:
    # a plausible but wrong time (months ahead of its stream, not of the wall clock) on
    # one record: with the default quorum the partition's other entities keep their state
    port = FakePort()
    for name in ("a", "b", "c"):
        for event in calm(name, 8):
            port.add_event(event, partition=0)
    port.add_event(Metric(entity="odd", values={"load": 1.0}, time=START + 150 * 86400))
    processor = retaining_processor(retention_s=7 * 86400.0, quorum=CLOCK_QUORUM)
    service, metrics = make_service(port, processor, interval=NEVER)
    service.run_once()
    assert service.checkpoint()
    tombstones = [m for m in port.published_to(CHANGELOG) if m.value is None]
    assert tombstones == [] and value(metrics, "alerting_entities_expired_total") == 0
    assert processor.store.stored == 4
    # once enough entities of the partition have reached that time, the clock follows
    for name in ("b", "c"):
        port.add_event(Metric(entity=name, values={"load": 1.0}, time=START + 150 * 86400))
    service.run_once()
    assert service.checkpoint()
    tombstones = [m.key for m in port.published_to(CHANGELOG) if m.value is None]
    assert tombstones == [b"a"]


def test_entities_idle_past_retention_are_tombstoned_at_the_checkpoint() -> None:
    port = FakePort()
    for name, partition in [("a", 0), ("b", 1), ("c", 0)]:
        for event in calm(name, 8):
            port.add_event(event, partition=partition)
    processor = retaining_processor(retention_s=500.0)
    service, metrics = make_service(port, processor, interval=NEVER)
    service.run_once()
    assert service.checkpoint()
    assert value(metrics, "alerting_entities_stored") == 3
    assert value(metrics, "alerting_entities_expired_total") == 0
    # much later in event time: c and a new entity d; a and b have been idle past retention
    port.add_event(Metric(entity="c", values={"load": 1.0}, time=START + 1000), partition=0)
    port.add_event(Metric(entity="d", values={"load": 1.0}, time=START + 1000), partition=1)
    mark = len(port.published_to(CHANGELOG))
    service.run_once()
    assert service.checkpoint()
    written = port.published_to(CHANGELOG)[mark:]
    tombstones = [(m.key, m.partition) for m in written if m.value is None]
    assert sorted(tombstones) == [(b"a", 0), (b"b", 1)]
    snapshots = sorted(m.key or b"" for m in written if m.value is not None)
    assert snapshots == [b"c", b"d"]
    assert written[-2:] == [m for m in written if m.value is None]  # after the snapshots
    assert value(metrics, "alerting_entities_expired_total") == 2
    assert value(metrics, "alerting_entities_stored") == 2
    assert value(metrics, "alerting_snapshots_total") == 3 + 2  # tombstones are not snapshots

    # a new process restores only the live ones; a comes back fresh with its next event
    port.add_event(Metric(entity="a", values={"load": 1.0}, time=START + 1001), partition=0)
    port.restart()
    again = retaining_processor(retention_s=500.0)
    second, metrics2 = make_service(port, again, interval=NEVER)
    fresh = fresh_builds(again)
    second.run_once()
    assert fresh == [1]  # a: fresh, c restored
    assert again.store.get("a", 0, 0.0).seen == 1
    assert again.store.get("c", 0, 0.0).seen == 9  # restored, then seen
    assert second.checkpoint()
    assert value(metrics2, "alerting_entities_stored") == 3  # a, c, d
    assert value(metrics2, "alerting_entities_expired_total") == 0


def test_without_a_changelog_retention_still_bounds_the_store() -> None:
    port = FakePort()
    for i in range(50):
        port.add_event(Metric(entity=f"e{i}", values={"load": 1.0}, time=START + 100 * i))
    processor = retaining_processor(retention_s=450.0)
    service, metrics = make_service(port, processor, changelog=None, max_batch_records=5)
    drain(service)
    assert processor.store.stored == 5  # the last 450 s of event time: 5 entities
    assert value(metrics, "alerting_entities_stored") == 5
    assert value(metrics, "alerting_entities_expired_total") == 45
