"""Per-entity state: snapshot codec, the bounded entity store (oracle), cold stores, and
the processor's restore-and-skip path (crash replay gives the alerts of an uninterrupted run)."""

from __future__ import annotations

import json
import math
import pickle
import random
import struct
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from alerting.alerts import Alert, SourcePosition
from alerting.detectors.zscore import RollingZScore
from alerting.errors import SnapshotRefused
from alerting.events import Metric
from alerting.features import extract
from alerting.policy import AlertPolicy, Episode
from alerting.processor import Processor
from alerting.state import (
    FORMAT,
    MAGIC,
    RIVER_VERSION,
    EntityState,
    EntityStore,
    MemoryColdStore,
    SnapshotCodec,
    SqliteColdStore,
    config_hash,
    estimate_model_bytes,
)
from alerting.thresholds import FixedThreshold, QuantileThreshold, TailThreshold, Threshold

TOPIC = "market.events"
PROBES = [
    {"a": 0.0},
    {"a": 1.5, "b": -2.0},
    {"b": 40.0},
    {"c": 1.0},
    {"load": 10.2, "load.diff": 0.3},
    {"load": 35.0, "load.diff": -20.0},
]
KEY = b"a test signing key of 32 bytes."


def detector() -> RollingZScore:
    return RollingZScore(window=16, min_history=4)


def codec(threshold: Callable[[], Threshold] | None = None, **overrides: object) -> SnapshotCodec:
    """A codec for states of ``detector()`` and ``threshold()`` (plain snapshots are read
    into a fresh one of those); ``overrides`` change the header or add a key."""

    def fresh() -> EntityState:
        return EntityState(detector(), None if threshold is None else threshold())

    fields: dict[str, object] = {
        "detector": "zscore",
        "config_hash": config_hash({"window": 16}),
        "factory": fresh,
        "fresh_model": detector,
    }
    return SnapshotCodec(**{**fields, **overrides})  # type: ignore[arg-type]


CODEC = codec()


def features(rng: random.Random) -> dict[str, float]:
    x = {"a": rng.gauss(0, 1), "b": rng.gauss(5, 2)}
    if rng.random() < 0.05:
        x["a"] = rng.choice((-1, 1)) * rng.uniform(8, 30)
    if rng.random() < 0.1:
        x["c"] = rng.random()
    return x


def scores(model: RollingZScore) -> list[float]:
    return [model.score_one(p) for p in PROBES]


def envelope(header: object, body: bytes) -> bytes:
    head = json.dumps(header).encode()
    return MAGIC + struct.pack(">I", len(head)) + head + body


def refusal(codec: SnapshotCodec, blob: bytes) -> SnapshotRefused:
    with pytest.raises(SnapshotRefused) as info:
        codec.decode(blob)
    return info.value


def trained_state(n: int = 60, seed: int = 0, threshold: Threshold | None = None) -> EntityState:
    rng = random.Random(seed)
    state = EntityState(detector(), threshold)
    for _ in range(n):
        state.model.learn_one(features(rng))
        state.seen += 1
    state.partition, state.next_offset = 3, 1234
    return state


# -- the snapshot codec -------------------------------------------------------------------


def step(state: EntityState, x: dict[str, float]) -> tuple[float, float, bool]:
    """What the processor does per event: score, decide, update the threshold, learn."""
    score = state.model.score_one(x)
    limit = state.threshold.value()
    state.threshold.update(score)
    state.model.learn_one(x)
    state.seen += 1
    return score, limit, score >= limit


@pytest.mark.parametrize(
    "make_threshold",
    [
        lambda: FixedThreshold(3.0),
        lambda: QuantileThreshold(q=0.9, window=32, grace=8),
        lambda: TailThreshold(budget=50.0, level=0.9, grace=30, half_life=100),
    ],
    ids=["fixed", "quantile", "tail"],
)
@pytest.mark.parametrize("cut", [0, 5, 20, 40, 150])
def test_round_trip_scores_and_learns_like_the_original(
    make_threshold: Callable[[], Threshold], cut: int
) -> None:
    rng = random.Random(cut)
    stream = [features(rng) for _ in range(300)]
    original = EntityState(detector(), make_threshold())
    for x in stream[:cut]:
        step(original, x)
    original.partition, original.next_offset = 2, cut + 17
    original.policy.episodes["metric"] = Episode(123.5, "critical")
    original.policy.episodes["metric"].firing_id = "f1"
    original.policy.penalty_factor, original.policy.mute_until = 2.0, 130.0
    original.stats.update({"load": 1.25})
    extract(Metric(entity="e", values={"load": 1.0}, time=1.0), original.features)
    extract(Metric(entity="e", values={"load": 1.25}, time=2.0), original.features)
    original.consecutive_flags = 3
    original.last_seen = 1_700_000_000.5

    # signed: the quantile threshold has no plain form, so its state is pickled
    writer = codec(make_threshold, key=KEY)
    copy = writer.decode(writer.encode(original))

    assert copy is not original
    assert copy.model is not original.model
    for name in EntityState.__slots__:
        if name not in ("model", "threshold", "features", "policy", "stats"):
            assert getattr(copy, name) == getattr(original, name), name
    episode = copy.policy.episodes["metric"]
    assert (episode.started_at, episode.severity, episode.firing_id) == (123.5, "critical", "f1")
    assert (copy.policy.penalty_factor, copy.policy.mute_until) == (2.0, 130.0)
    assert copy.stats.stats == original.stats.stats
    assert copy.features.values.keys() == {"load"}
    assert copy.features.values["load"].data == original.features.values["load"].data
    rest = stream[cut:]
    assert [step(copy, x) for x in rest] == [step(original, x) for x in rest]
    assert scores(copy.model) == scores(original.model)
    assert copy.seen == original.seen == 300


def test_header_names_format_detector_config_versions_and_position() -> None:
    state = trained_state()
    blob = CODEC.encode(state)
    header = SnapshotCodec.read_header(blob)
    assert blob[:4] == MAGIC
    assert header == {
        "format": FORMAT,
        "detector": "zscore",
        "config": CODEC.config_hash,
        "river": RIVER_VERSION,
        "python": CODEC.python,
        "partition": 3,
        "next_offset": 1234,
        "last_seen": state.last_seen,
        "body": "plain",
    }
    assert CODEC.check(blob) == header


def test_config_hash_is_stable_and_order_independent() -> None:
    assert config_hash({"a": 1, "b": [1, 2]}) == config_hash({"b": [1, 2], "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert len(config_hash({})) == 16


@pytest.mark.parametrize(
    ("writer", "mismatched"),
    [
        (codec(detector="other"), "detector"),
        (codec(config_hash="0" * 16), "config"),
        (codec(river="0.0.1"), "river"),
    ],
)
def test_snapshots_of_another_configuration_are_refused(
    writer: SnapshotCodec, mismatched: str
) -> None:
    blob = writer.encode(trained_state())
    refused = refusal(CODEC, blob)
    assert refused.reason == f"{mismatched}_mismatch"
    assert mismatched in refused.detail
    with pytest.raises(SnapshotRefused):
        CODEC.check(blob)
    # and the writer itself reads it back
    assert writer.decode(blob).seen == 60


def test_another_python_version_is_accepted() -> None:
    writer = codec(python="2.7.18")
    assert CODEC.decode(writer.encode(trained_state())).seen == 60


def test_another_snapshot_format_is_refused() -> None:
    blob = CODEC.encode(trained_state())
    header = SnapshotCodec.read_header(blob)
    (length,) = struct.unpack_from(">I", blob, 4)
    body = blob[8 + length :]
    for other in (FORMAT + 1, 0, "1", None):
        refused = refusal(CODEC, envelope({**header, "format": other}, body))
        assert refused.reason == "format_mismatch"
    missing = {k: v for k, v in header.items() if k != "format"}
    assert refusal(CODEC, envelope(missing, body)).reason == "format_mismatch"


def test_garbage_and_truncated_blobs_are_refused_never_another_exception() -> None:
    rng = random.Random(7)
    blob = CODEC.encode(trained_state())
    garbage = [b"", b"A", b"ALST", b"ALST\x00\x00\x00", b"\x00" * 64, b"{}", b"null"]
    garbage += [rng.randbytes(rng.randrange(1, 300)) for _ in range(200)]
    garbage += [MAGIC + rng.randbytes(rng.randrange(0, 300)) for _ in range(200)]
    for junk in garbage:
        assert refusal(CODEC, junk).reason in ("not_a_snapshot", "corrupt")
    for end in range(len(blob)):  # every truncation
        assert refusal(CODEC, blob[:end]).reason in ("not_a_snapshot", "corrupt"), end
    assert refusal(CODEC, blob[:3]).reason == "not_a_snapshot"


def test_valid_header_with_a_corrupt_body_is_refused() -> None:
    rng = random.Random(11)
    blob = CODEC.encode(trained_state())
    (length,) = struct.unpack_from(">I", blob, 4)
    start = 8 + length
    head = blob[:start]
    bodies = [
        b"",
        b"not zlib at all",
        zlib.compress(b"not a pickle"),
        zlib.compress(b"\x80\x05\x95"),  # a pickle cut short
        zlib.compress(pickle.dumps({"seen": 3, "model": None})),  # not an EntityState
        zlib.compress(pickle.dumps([EntityState(detector())])),
        zlib.compress(pickle.dumps(None)),
        # an EntityState pickled from a class that is not importable here
        zlib.compress(
            pickle.dumps(EntityState(detector())).replace(b"alerting.state", b"alerting.statX")
        ),
    ]
    for body in bodies:
        refused = refusal(CODEC, head + body)
        assert refused.reason == "corrupt", body[:20]
    for _ in range(300):  # flipped bytes in the compressed body
        body = bytearray(blob[start:])
        for _ in range(rng.randrange(1, 4)):
            body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        try:
            state = CODEC.decode(head + bytes(body))
        except SnapshotRefused as refused:
            assert refused.reason == "corrupt"
        else:  # a flip in the deflate stream's padding bits changes nothing
            assert pickle.dumps(state) == pickle.dumps(CODEC.decode(blob))


@pytest.mark.parametrize("header", [[1, 2], None, 3, "zscore", True])
def test_a_header_that_is_not_a_json_object_is_refused_as_corrupt(header: object) -> None:
    blob = CODEC.encode(trained_state())
    (length,) = struct.unpack_from(">I", blob, 4)
    refused = refusal(CODEC, envelope(header, blob[8 + length :]))
    assert refused.reason == "corrupt"


def test_random_mutations_give_a_state_or_a_refusal() -> None:
    rng = random.Random(3)
    blob = CODEC.encode(trained_state())
    for _ in range(400):
        mutated = bytearray(blob)
        kind = rng.randrange(3)
        at = rng.randrange(len(mutated))
        if kind == 0:
            mutated[at] ^= 1 << rng.randrange(8)
        elif kind == 1:
            del mutated[at : at + rng.randrange(1, 20)]
        else:
            mutated[at:at] = rng.randbytes(rng.randrange(1, 20))
        try:
            state = CODEC.decode(bytes(mutated))
        except SnapshotRefused as refused:
            assert refused.reason in {"not_a_snapshot", "corrupt", "unsigned"} | {
                f"{k}_mismatch" for k in ("format", "detector", "config", "river")
            }
        else:
            assert isinstance(state, EntityState)


# -- the entity store: an oracle on random streams ----------------------------------------

ENTITIES = [f"e{i}" for i in range(40)]
WEIGHTS = [1.0 / (i + 1) ** 1.2 for i in range(len(ENTITIES))]  # a few hot keys, a long tail
PARTITIONS = 3
FOREIGN = codec(config_hash="f" * 16)


def partition_of(entity: str) -> int:
    return int(entity.lstrip("ex")) % PARTITIONS


@dataclass
class Ref:
    """The reference copy of one entity: what it learned, rebuilt from scratch on demand."""

    partition: int
    seen: int = 0
    last_seen: float = 0.0
    learned: list[dict[str, float]] = field(default_factory=list)

    def copy(self) -> Ref:
        return Ref(self.partition, self.seen, self.last_seen, list(self.learned))

    def scores(self) -> list[float]:
        model = detector()
        for x in self.learned:
            model.learn_one(x)
        return scores(model)


def same(state: EntityState, ref: Ref, where: str) -> None:
    assert (state.seen, state.last_seen, state.partition) == (
        ref.seen,
        ref.last_seen,
        ref.partition,
    ), where
    assert scores(state.model) == ref.scores(), where


class Reference:
    """The documented rules, brute force: LRU of ``max_live``, event-time idle TTL, the
    set changed since the last snapshot, cold copies, partitions dropped and restored."""

    def __init__(self, max_live: int, idle_ttl_s: float | None) -> None:
        self.max_live = max_live
        self.idle_ttl_s = idle_ttl_s
        self.live: OrderedDict[str, Ref] = OrderedDict()
        self.cold: dict[str, Ref] = {}  # not live; what the cold store holds for them
        self.stale_cold: set[str] = set()  # live, with an older copy still in the cold store
        self.dirty: set[str] = set()
        self.evictions = 0
        self.refused: Counter[str] = Counter()

    def evict(self, entity: str) -> None:
        self.cold[entity] = self.live.pop(entity)
        self.stale_cold.discard(entity)
        self.evictions += 1

    def get(self, entity: str) -> Ref:
        if entity in self.live:
            self.live.move_to_end(entity)
        else:
            if entity in self.cold:
                ref = self.cold.pop(entity)
                self.stale_cold.add(entity)
            else:
                ref = Ref(partition_of(entity))
            if len(self.live) >= self.max_live:
                self.evict(next(iter(self.live)))
            self.live[entity] = ref
        self.dirty.add(entity)
        return self.live[entity]

    def expire(self, now: float) -> int:
        if self.idle_ttl_s is None:
            return 0
        idle = [e for e, r in self.live.items() if r.last_seen < now - self.idle_ttl_s]
        for entity in idle:
            self.evict(entity)
        return len(idle)

    def drop(self, partitions: set[int]) -> None:
        for entity in [e for e, r in self.live.items() if r.partition in partitions]:
            del self.live[entity]
            self.stale_cold.discard(entity)
        self.cold = {e: r for e, r in self.cold.items() if r.partition not in partitions}
        self.dirty = {e for e in self.dirty if partition_of(e) not in partitions}

    def cold_size(self) -> int:
        return len(self.cold) + len(self.stale_cold)


def check_all(store: EntityStore, ref: Reference, codec: SnapshotCodec, where: str) -> None:
    assert [e for e, _ in store] == list(ref.live), where
    for entity, state in store:
        same(state, ref.live[entity], f"{where}: live {entity}")
    for entity in ENTITIES + [f"x{i}" for i in range(4)]:
        blob = store.cold.get(entity)
        if entity in ref.cold:
            assert blob is not None, f"{where}: {entity} lost"
            same(codec.decode(blob), ref.cold[entity], f"{where}: cold {entity}")
        elif entity not in ref.live:
            assert blob is None, f"{where}: {entity} should be forgotten"
    assert len(store.cold) == ref.cold_size(), where
    assert store.evictions == ref.evictions, where
    assert store.refused == ref.refused, where


@pytest.mark.parametrize(
    ("seed", "max_live", "idle_ttl_s", "sqlite"),
    [
        (1, 1, None, False),
        (2, 3, None, False),
        (3, 8, 40.0, False),
        (4, 5, 15.0, False),
        (5, 100, 25.0, False),
        (6, 4, 30.0, True),
    ],
)
def test_entity_store_matches_the_reference(
    seed: int, max_live: int, idle_ttl_s: float | None, sqlite: bool, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    cold = SqliteColdStore(tmp_path / "cold.db") if sqlite else MemoryColdStore()
    store = EntityStore(
        lambda: EntityState(detector()), CODEC, max_live=max_live, idle_ttl_s=idle_ttl_s,
        cold=cold,
    )  # fmt: skip
    ref = Reference(max_live, idle_ttl_s)
    changelog: dict[str, list[tuple[bytes | None, Ref | None]]] = {}  # what snapshots wrote
    now = 1_700_000_000.0
    for i in range(700):
        op = rng.random()
        where = f"seed {seed} op {i}"
        if op < 0.75:
            now += rng.expovariate(1.0) if rng.random() > 0.03 else rng.uniform(20, 100)
            t = now - rng.uniform(0, 2) if rng.random() < 0.1 else now  # a little disorder
            entity = rng.choices(ENTITIES, WEIGHTS)[0]
            state = store.get(entity, partition_of(entity), t)
            expected = ref.get(entity)
            same(state, expected, f"{where}: get {entity}")
            x = features(rng)
            state.model.learn_one(x)
            state.seen += 1
            state.last_seen = max(state.last_seen, t)
            expected.learned.append(x)
            expected.seen += 1
            expected.last_seen = max(expected.last_seen, t)
        elif op < 0.83:
            assert store.expire(now) == ref.expire(now), where
        elif op < 0.93:
            taken = store.snapshots()
            names = [e for e, _, _ in taken]
            assert len(names) == len(set(names)), f"{where}: an entity snapshotted twice"
            assert set(names) == ref.dirty, where
            for entity, partition, blob in taken:
                current = (ref.live.get(entity) or ref.cold[entity]).copy()
                assert partition == current.partition == partition_of(entity), where
                header = CODEC.check(blob)
                assert header["partition"] == partition
                same(CODEC.decode(blob), current, f"{where}: snapshot of {entity}")
                changelog.setdefault(entity, []).append((blob, current))
            ref.dirty.clear()
            assert store.snapshots() == [], f"{where}: nothing changed since"
        else:
            # a rebalance: drop some partitions, then (usually) restore them from the changelog
            dropped = set(rng.sample(range(PARTITIONS), rng.randrange(1, PARTITIONS + 1)))
            store.drop_partitions(dropped)
            ref.drop(dropped)
            if rng.random() < 0.8:
                for entity, history in changelog.items():
                    if partition_of(entity) not in dropped:
                        continue
                    if rng.random() < 0.15:  # the service deleted it: a tombstone
                        history.append((None, None))
                    for blob, copy in history:
                        assert store.restore(entity, partition_of(entity), blob)
                        if copy is None:
                            ref.cold.pop(entity, None)
                        else:
                            ref.cold[entity] = copy.copy()
                foreign = f"x{rng.randrange(4)}"  # a state written by another configuration
                alien = FOREIGN.encode(EntityState(detector()))
                assert not store.restore(foreign, partition_of(foreign), alien)
                ref.refused["config_mismatch"] += 1
        assert store.live == len(ref.live) <= max_live, where
        assert store.evictions == ref.evictions, where
        if i % 25 == 0:
            check_all(store, ref, CODEC, where)
    check_all(store, ref, CODEC, f"seed {seed} end")
    assert ref.evictions > 0 or max_live >= len(ENTITIES)
    if sqlite:
        cold.close()  # type: ignore[union-attr]


def test_evicted_entities_come_back_exactly_as_they_were() -> None:
    store = EntityStore(lambda: EntityState(detector()), CODEC, max_live=1)
    rng = random.Random(5)
    a = store.get("a", 0, 1.0)
    for _ in range(30):
        a.model.learn_one(features(rng))
    a.seen = 30
    before = scores(a.model)
    store.get("b", 1, 2.0)  # evicts a
    assert store.evictions == 1
    back = store.get("a", 0, 3.0)  # evicts b
    assert back is not a
    assert back.seen == 30
    assert scores(back.model) == before
    assert store.evictions == 2


def test_idle_entities_expire_on_event_time_only() -> None:
    store = EntityStore(lambda: EntityState(detector()), CODEC, idle_ttl_s=10.0)
    for name, t in [("a", 100.0), ("b", 105.0), ("c", 109.0)]:
        store.get(name, 0, t).last_seen = t
    assert store.expire(110.0) == 0  # a is idle exactly 10 s: not more than the TTL
    assert store.expire(115.5) == 2
    assert [e for e, _ in store] == ["c"]
    assert store.get("a", 0, 116.0).last_seen == 100.0  # back from cold as it was
    assert EntityStore(lambda: EntityState(detector()), CODEC).expire(1e12) == 0
    with pytest.raises(ValueError, match="idle_ttl_s"):
        EntityStore(lambda: EntityState(detector()), CODEC, idle_ttl_s=0)
    with pytest.raises(ValueError, match="max_live"):
        EntityStore(lambda: EntityState(detector()), CODEC, max_live=0)


def test_restore_a_refused_blob_counts_it_and_the_entity_starts_fresh() -> None:
    store = EntityStore(lambda: EntityState(detector()), CODEC)
    assert not store.restore("a", 0, FOREIGN.encode(trained_state()))
    assert not store.restore("b", 0, b"garbage")
    assert store.refused == Counter({"config_mismatch": 1, "not_a_snapshot": 1})
    assert store.get("a", 0, 0.0).seen == 0
    assert store.get("b", 0, 0.0).seen == 0
    assert len(store.cold) == 0


def test_a_refused_record_after_a_valid_one_starts_the_entity_fresh() -> None:
    # the newest changelog record is the truth: an older state must not come back in its
    # place (its next offset is behind the committed one, so events would be missed)
    store = EntityStore(lambda: EntityState(detector()), CODEC)
    assert store.restore("a", 0, CODEC.encode(trained_state()))
    assert not store.restore("a", 0, FOREIGN.encode(trained_state(n=90)))
    assert store.get("a", 0, 0.0).seen == 0


def test_restore_and_tombstones() -> None:
    store = EntityStore(lambda: EntityState(detector()), CODEC)
    assert store.restore("a", 2, CODEC.encode(trained_state(n=10)))
    assert store.restore("a", 2, CODEC.encode(trained_state(n=20)))  # the newest wins
    assert store.restore("b", 2, CODEC.encode(trained_state(n=5)))
    assert store.restore("b", 2, None)
    assert store.restore("never-seen", 2, None)
    assert len(store.cold) == 1
    assert store.live == 0
    assert store.snapshots() == []  # restored states are not changes
    assert store.get("a", 2, 0.0).seen == 20
    assert store.get("b", 2, 0.0).seen == 0


def test_drop_partitions_forgets_live_cold_and_unsaved_entities_of_those_only() -> None:
    left: list[int] = []
    store = EntityStore(lambda: EntityState(detector()), CODEC, max_live=3)
    store.on_leave = lambda s: left.append(s.partition)
    for name, p in [("a", 0), ("b", 1), ("c", 0), ("d", 1), ("e", 2)]:
        store.get(name, p, 0.0).seen = 7
    # a and b were evicted before any snapshot (unsaved); c, d, e are live
    assert store.evictions == 2
    left.clear()
    store.drop_partitions({0})
    assert left == [0]  # c
    assert sorted(e for e, _ in store) == ["d", "e"]
    assert store.cold.get("a") is None
    assert store.cold.get("b") is not None
    assert sorted(e for e, _, _ in store.snapshots()) == ["b", "d", "e"]
    assert store.get("a", 0, 0.0).seen == 0
    assert store.get("b", 1, 0.0).seen == 7


# -- cold stores --------------------------------------------------------------------------


def test_sqlite_cold_store_behaves_like_the_memory_one(tmp_path: Path) -> None:
    rng = random.Random(17)
    names = [f"k{i}" for i in range(25)] + ["", "ünï", "with space", "a'quote"]
    sqlite = SqliteColdStore(tmp_path / "sub" / "cold.db")
    memory = MemoryColdStore()
    try:
        for i in range(1500):
            op = rng.random()
            if op < 0.45:
                name, part = rng.choice(names), rng.randrange(4)
                blob = rng.randbytes(rng.randrange(0, 64)) + b"\x00"
                sqlite.put(name, part, blob)
                memory.put(name, part, blob)
            elif op < 0.75:
                name = rng.choice(names)
                sqlite.delete(name)
                memory.delete(name)
            elif op < 0.8:
                dropped = set(rng.sample(range(5), rng.randrange(0, 3)))
                sqlite.drop_partitions(dropped)
                memory.drop_partitions(dropped)
            name = rng.choice(names)
            assert sqlite.get(name) == memory.get(name), i
            assert len(sqlite) == len(memory), i
            if i % 100 == 0:
                assert [sqlite.get(n) for n in names] == [memory.get(n) for n in names]
    finally:
        sqlite.close()
    # the changelog is the durable copy: a new store starts empty, rebuilt at assignment
    again = SqliteColdStore(tmp_path / "sub" / "cold.db")
    assert len(again) == 0
    again.close()


# -- the processor: restore, skip, crash replay -------------------------------------------

WARMUP = 8
START = 1_700_000_000.0


class OtherZScore(RollingZScore):
    name = "otherz"


def make_processor(
    template: RollingZScore | None = None,
    threshold: Threshold | None = None,
    warmup: int = WARMUP,
    max_entities: int = 100,
    idle_ttl_s: float | None = None,
    protect: bool = False,
    snapshot_key: bytes | None = None,
) -> Processor:
    return Processor(
        template if template is not None else detector(),
        AlertPolicy(critical_factor=2.0, repeat_after=3.0, resolve_after=3.0),
        threshold if threshold is not None else FixedThreshold(4.0),
        warmup=warmup,
        max_entities=max_entities,
        idle_ttl_s=idle_ttl_s,
        protect=protect,
        protect_max_consecutive=2,
        snapshot_key=snapshot_key,
    )


Positioned = tuple[Metric, SourcePosition]


def positioned_stream(
    seed: int, n: int, entities: int = 6, partitions: int = 2
) -> list[Positioned]:
    """Metric events of a few entities, keyed to partitions, with offsets per partition."""
    rng = random.Random(seed)
    names = [f"m{i}" for i in range(entities)]
    offsets = [0] * partitions
    t = START
    out: list[Positioned] = []
    for _ in range(n):
        t += rng.expovariate(2.0) if rng.random() > 0.02 else rng.uniform(30, 90)
        name = rng.choice(names)
        p = int(name[1:]) % partitions
        load = rng.gauss(10, 0.5) if rng.random() > 0.07 else rng.uniform(20, 60)
        out.append(
            (
                Metric(entity=name, values={"load": load}, time=t),
                SourcePosition(TOPIC, p, offsets[p]),
            )
        )
        offsets[p] += 1
    return out


def run(processor: Processor, stream: list[Positioned], batch: int = 7) -> list[Alert]:
    alerts: list[Alert] = []
    for i, (event, source) in enumerate(stream):
        alerts += processor.process(event, source).alerts
        if i % batch == batch - 1:
            processor.end_batch()
    return alerts


def final_states(processor: Processor, entities: set[str]) -> dict[str, tuple[object, ...]]:
    out = {}
    for name in sorted(entities):
        s = processor.store.get(name, -1, 0.0)
        out[name] = (s.seen, s.next_offset, s.partition, s.consecutive_flags,
                     tuple((k, e.started_at, e.severity, e.notified, e.notified_at, e.firing_id)
                           for k, e in s.policy.episodes.items()),
                     tuple((k, tuple(v)) for k, v in s.stats.stats.items()),
                     s.threshold.value(), tuple(scores(s.model)))  # fmt: skip
    return out


def test_events_a_restored_snapshot_includes_are_skipped_and_not_learned() -> None:
    stream = positioned_stream(seed=1, n=120)
    first = make_processor()
    run(first, stream[:80])
    snapshots = first.store.snapshots()
    assert {p for _, p, _ in snapshots} == {0, 1}

    second = make_processor()
    for entity, partition, blob in snapshots:
        assert second.store.restore(entity, partition, blob)
    assert run(second, stream[:80]) == []
    assert second.stats.skipped == 80
    assert sum(second.stats.processed.values()) == 0
    entities = {e.entity for e, _ in stream}
    assert final_states(second, entities) == final_states(first, entities)
    # and from there on both decide and learn alike
    assert [a.id for a in run(second, stream[80:])] == [a.id for a in run(first, stream[80:])]
    assert second.stats.skipped == 80
    assert final_states(second, entities) == final_states(first, entities)


def test_a_skipped_event_of_another_partition_is_not_skipped() -> None:
    # the snapshot's position is per source partition: offset 3 of partition 1 is new
    first = make_processor()
    for i in range(5):
        first.process(
            Metric(entity="a", values={"v": 1.0}, time=START + i), SourcePosition(TOPIC, 0, i)
        )
    second = make_processor()
    for entity, partition, blob in first.store.snapshots():
        second.store.restore(entity, partition, blob)
    second.process(
        Metric(entity="a", values={"v": 1.0}, time=START + 9), SourcePosition(TOPIC, 1, 3)
    )
    assert second.stats.skipped == 0
    assert second.store.get("a", 1, 0.0).seen == 6


@dataclass
class Variant:
    threshold: Callable[[], Threshold] = lambda: FixedThreshold(4.0)
    max_entities: int = 100
    idle_ttl_s: float | None = None
    protect: bool = False


VARIANTS = [
    Variant(),
    Variant(max_entities=2),
    Variant(idle_ttl_s=20.0, max_entities=3),
    Variant(threshold=lambda: QuantileThreshold(q=0.95, window=50, grace=10, min_value=3.0)),
    Variant(protect=True, max_entities=4, idle_ttl_s=30.0),
]


@pytest.mark.parametrize("seed", range(8))
def test_crash_replay_gives_the_alerts_of_an_uninterrupted_run(seed: int) -> None:
    rng = random.Random(seed)
    variant = VARIANTS[seed % len(VARIANTS)]

    def build() -> Processor:
        return make_processor(
            threshold=variant.threshold(), max_entities=variant.max_entities,
            idle_ttl_s=variant.idle_ttl_s, protect=variant.protect, snapshot_key=KEY,
        )  # fmt: skip

    stream = positioned_stream(seed, n=400)
    entities = {e.entity for e, _ in stream}
    reference = build()
    expected = run(reference, stream)
    assert expected, "the stream should cause alerts"
    by_index = {a.source: a for a in expected}

    # the crashed process: a checkpoint (snapshots + commit) at `commit`, then snapshots
    # at `cut` of which only some were acknowledged, then it died before committing
    commit = rng.randrange(0, 300)
    cut = rng.randrange(commit, 400)
    crashed = build()
    before = run(crashed, stream[:commit])
    changelog = crashed.store.snapshots()
    before += run(crashed, stream[commit:cut])
    at_cut = crashed.store.snapshots()
    acked = rng.sample(at_cut, rng.randrange(0, len(at_cut) + 1))
    changelog += acked

    restarted = build()
    for entity, partition, blob in changelog:
        assert restarted.store.restore(entity, partition, blob)
    replayed = run(restarted, stream[commit:])  # from the committed offsets

    # nothing is learned twice: every event already in an acknowledged snapshot is skipped
    in_snapshot = {e for e, _, _ in acked}
    assert restarted.stats.skipped == sum(e.entity in in_snapshot for e, _ in stream[commit:cut])
    assert final_states(restarted, entities) == final_states(reference, entities)
    # after the cut: exactly the uninterrupted alerts; before it: repeats of the same alerts
    after_cut = {source for _, source in stream[cut:]}
    assert [a for a in replayed if a.source in after_cut] == [
        a for a in expected if a.source in after_cut
    ]
    for alert in before + replayed:
        assert alert == by_index[alert.source]
        assert alert.to_json() == by_index[alert.source].to_json()
    assert {a.id for a in before + replayed} == {a.id for a in expected}


def test_a_processor_with_another_configuration_refuses_the_snapshots() -> None:
    stream = positioned_stream(seed=2, n=150)
    entities = {e.entity for e, _ in stream}
    first = make_processor()
    run(first, stream)
    snapshots = first.store.snapshots()
    for other, reason in [
        (make_processor(template=RollingZScore(window=32, min_history=4)), "config_mismatch"),
        (make_processor(warmup=WARMUP + 1), "config_mismatch"),
        (make_processor(threshold=FixedThreshold(5.0)), "config_mismatch"),
        (make_processor(template=OtherZScore(window=16, min_history=4)), "detector_mismatch"),
    ]:
        results = [other.store.restore(e, p, b) for e, p, b in snapshots]
        assert results == [False] * len(snapshots)
        assert other.store.refused == Counter({reason: len(snapshots)})
        run(other, stream)  # starts fresh: nothing skipped, everything learned once
        assert other.stats.skipped == 0
        seen = Counter(e.entity for e, _ in stream)
        assert {n: other.store.get(n, -1, 0.0).seen for n in entities} == seen


def test_warm_up_accounting_follows_entities_in_and_out_of_the_store() -> None:
    stream = positioned_stream(seed=4, n=200, entities=8)
    processor = make_processor(max_entities=3, idle_ttl_s=10.0)
    for i, (event, source) in enumerate(stream):
        processor.process(event, source)
        if i % 5 == 4:
            processor.end_batch()
        warming = sum(s.seen < WARMUP for _, s in processor.store)
        assert processor.warming_up == warming, i
    processor.store.drop_partitions({0})
    assert processor.warming_up == sum(s.seen < WARMUP for _, s in processor.store)


# -- memory estimate ----------------------------------------------------------------------


def test_estimate_model_bytes_is_positive_and_plausible() -> None:
    small = estimate_model_bytes(lambda: EntityState(RollingZScore(window=16)), samples=4)
    large = estimate_model_bytes(lambda: EntityState(RollingZScore(window=1024)), samples=4)
    default = estimate_model_bytes(lambda: EntityState(RollingZScore()), samples=4)
    # four features × window floats: a few kB at 16, tens of kB at 256, ~100+ kB at 1024
    assert 500 < small < 20_000
    assert 8 * 4 * 256 < default < 500_000
    assert large > default > small


def test_a_refusal_reason_is_logged_once_even_across_metric_drains(
    caplog: pytest.LogCaptureFixture,
) -> None:
    theirs = SnapshotCodec(detector="zscore", config_hash="other")
    ours = SnapshotCodec(detector="zscore", config_hash="ours")
    store = EntityStore(lambda: EntityState(RollingZScore()), ours)
    for batch in range(3):
        for i in range(2):
            blob = theirs.encode(EntityState(RollingZScore()))
            assert store.restore(f"e{batch}-{i}", 0, blob) is False
        assert store.refused == {"config_mismatch": 2}
        assert store.drain() == (0, {"config_mismatch": 2})  # the service, once per batch
        assert store.refused == {}
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1


# -- retention: entities idle past state.retention_s are forgotten ----------------------

WALL = 2e9  # a wall clock past every event time of these tests


def retaining(
    retention_s: float = 100.0,
    max_live: int = 100_000,
    cold: MemoryColdStore | SqliteColdStore | None = None,
    idle_ttl_s: float | None = None,
    quorum: int = 1,
) -> EntityStore:
    """A store with retention; its clock the newest event time of ``quorum`` entities (1:
    the partition's newest, which the tests of the other rules read most simply)."""
    return EntityStore(
        lambda: EntityState(detector()),
        CODEC,
        max_live=max_live,
        idle_ttl_s=idle_ttl_s,
        cold=cold,
        retention_s=retention_s,
        clock=lambda: WALL,
        clock_quorum=quorum,
    )


def see(store: EntityStore, entity: str, t: float, partition: int = 0) -> EntityState:
    """What the processor does with an event: get the state, learn, note the time."""
    state = store.get(entity, partition, t)
    state.partition = partition
    state.seen += 1
    state.last_seen = max(state.last_seen, t)
    return state


def test_entities_idle_past_retention_are_forgotten_live_and_cold() -> None:
    store = retaining(retention_s=100.0, max_live=2)
    for entity, t in [("a", 0.0), ("b", 50.0), ("c", 120.0), ("d", 150.0)]:
        see(store, entity, t)
    assert sorted(e for e, _ in store) == ["c", "d"]  # a and b moved out (LRU), still stored
    assert store.stored == 4
    assert store.retire() == [("a", 0)]  # newest 150: a idle 150 s, b exactly 100 s: kept
    see(store, "b", 40.0)  # a late event: b's last event time stays 50
    see(store, "d", 200.0)  # newest 200: b idle 150 s
    assert store.retire() == [("b", 0)]
    assert store.cold.get("a") is None and store.cold.get("b") is None
    assert store.stored == 2 and [e for e, _ in store] == ["d"]  # b's return moved c out
    assert {e for e, _, _ in store.snapshots()} == {"c", "d"}  # no snapshot of a forgotten one
    see(store, "d", 230.0)  # c: idle 110 s, live
    assert store.retire() == [("c", 0)]
    assert [e for e, _ in store] == ["d"] and store.stored == 1
    assert see(store, "a", 231.0).seen == 1  # back as a fresh entity
    assert store.retire() == [] and store.stored == 2  # a is live again, d is recent


def test_retention_is_off_by_default_and_validated() -> None:
    store = EntityStore(lambda: EntityState(detector()), CODEC)
    see(store, "a", 0.0)
    see(store, "b", 1e9)
    assert store.retention_s is None and store.retire() == [] and store.stored == 2
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="retention_s"):
            EntityStore(lambda: EntityState(detector()), CODEC, retention_s=bad)


def test_retention_clock_is_per_partition() -> None:
    # a partition that lags behind (catching up after an outage) keeps its entities
    store = retaining(retention_s=100.0)
    see(store, "old-0", 0.0, partition=0)
    see(store, "old-1", 0.0, partition=1)
    see(store, "new-1", 1000.0, partition=1)
    assert store.retire() == [("old-1", 1)]
    see(store, "new-0", 100.0, partition=0)  # partition 0's newest: 100, not past 100 s
    assert store.retire() == []
    see(store, "new-0", 100.5, partition=0)
    assert store.retire() == [("old-0", 0)]


def test_an_event_time_far_ahead_of_the_wall_clock_ages_nothing() -> None:
    store = retaining(retention_s=3600.0)
    see(store, "a", WALL - 60)
    see(store, "bogus", WALL + 30 * 86400)  # a record stamped a month ahead
    assert store.retire() == []
    assert {e for e, _ in store} == {"a", "bogus"}


def test_a_retire_batch_is_bounded_and_the_rest_go_next_time() -> None:
    store = retaining(retention_s=10.0, max_live=50)
    for i in range(300):
        see(store, f"e{i}", float(i))
    see(store, "now", 1000.0)
    first = store.retire(limit=120)
    assert len(first) == 120
    rest = store.retire(limit=1000)
    assert len(rest) == 180 and not set(first) & set(rest)
    assert store.stored == 1


@pytest.mark.parametrize("sqlite", [False, True])
def test_stored_entities_stay_bounded_however_many_were_ever_seen(
    sqlite: bool, tmp_path: Path
) -> None:
    cold = SqliteColdStore(tmp_path / "cold.db") if sqlite else MemoryColdStore()
    store = retaining(retention_s=500.0, max_live=64, cold=cold)
    rng = random.Random(3)
    most = 0
    for i in range(6000):  # one new entity per second, a few hot ones throughout
        t = float(i)
        see(store, f"new{i}", t, partition=i % 3)
        hot = f"hot{rng.randrange(4)}"
        see(store, hot, t, partition=int(hot[-1]) % 3)
        if i % 50 == 49:  # a checkpoint
            store.retire()
            store.snapshots()
            most = max(most, store.stored)
            assert store._heaped <= 2 * len(store._indexed) + 1024  # the index stays bounded
    # about retention_s worth of new entities (+ one checkpoint interval) and the hot ones
    assert 500 <= most <= 500 + 50 + 3 + 4
    assert store.stored == len(cold) + store.live - len(store._stale)
    if sqlite:
        rows = cold._db.execute("SELECT COUNT(*) FROM state").fetchone()[0]  # type: ignore[union-attr]
        assert len(cold) == rows
        cold.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", range(6))
def test_retire_matches_a_brute_force_recompute_on_random_streams(
    seed: int, tmp_path: Path
) -> None:
    """Which entities expire, against the rule recomputed from scratch: an entity is
    forgotten at a retire when the partition's clock (the newest event time ``quorum`` of
    its entities have reached) minus its own last event time is more than retention_s,
    whether it is live or cold."""
    rng = random.Random(seed)
    retention = rng.choice([20.0, 60.0, 150.0])
    quorum = [1, 2, 3][seed % 3]
    cold = SqliteColdStore(tmp_path / "cold.db") if seed % 2 else MemoryColdStore()
    store = retaining(
        retention_s=retention,
        max_live=rng.choice([1, 4, 16, 1000]),
        cold=cold,
        idle_ttl_s=rng.choice([None, 10.0, 40.0]),
        quorum=quorum,
    )
    names = [f"e{i}" for i in range(60)]
    weights = [1.0 / (i + 1) for i in range(len(names))]
    last: dict[str, float] = {}  # stored entities: their last event time
    newest: dict[int, dict[str, float]] = {}  # partition: entity: its newest event time
    now = 1000.0
    forgotten = 0
    for op in range(1500):
        r = rng.random()
        if r < 0.85:
            now += rng.expovariate(1.0) if rng.random() > 0.05 else rng.uniform(20, 200)
            t = now - rng.uniform(0, 30) if rng.random() < 0.1 else now  # late events too
            entity = rng.choices(names, weights)[0]
            partition = partition_of(entity)
            state = see(store, entity, t, partition)
            last[entity] = max(last.get(entity, -math.inf), t)
            assert state.last_seen == last[entity], op
            times = newest.setdefault(partition, {})
            times[entity] = max(times.get(entity, -math.inf), t)
        elif r < 0.9:
            store.expire(now)  # the idle TTL moves entities out, never forgets them
        elif r < 0.97:
            clock = {
                p: sorted(times.values())[-quorum] if len(times) >= quorum else -math.inf
                for p, times in newest.items()
            }
            expected = {
                (e, partition_of(e))
                for e, seen in last.items()
                if seen < clock[partition_of(e)] - retention
            }
            got = store.retire(limit=10_000)
            assert len(got) == len(set(got)), op
            assert set(got) == expected, op
            for entity, _ in got:
                del last[entity]
            forgotten += len(got)
            assert {e for e, _, _ in store.snapshots()}.isdisjoint({e for e, _ in got}), op
        else:
            store.snapshots()
        assert store.stored == len(last), op
    assert forgotten > 0
    for entity in names:  # what is left is exactly what the rule keeps, as it was
        blob = store.cold.get(entity)
        live = dict(iter(store)).get(entity)
        if entity not in last:
            assert blob is None and live is None, entity
        else:
            kept = live if live is not None else CODEC.decode(blob or b"")
            assert kept.last_seen == last[entity], entity
    if seed % 2:
        cold.close()  # type: ignore[union-attr]


def test_restored_tombstones_leave_the_entity_fresh_and_headers_set_the_clock() -> None:
    source = retaining(retention_s=100.0)
    for entity, t in [("gone", 0.0), ("kept", 150.0), ("newest", 200.0)]:
        for _ in range(3):
            see(source, entity, t)
    changelog = [(e, p, blob) for e, p, blob in source.snapshots()]
    retired = source.retire()
    assert retired == [("gone", 0)]
    changelog += [(e, p, None) for e, p in retired]  # what the service writes

    store = retaining(retention_s=100.0)
    for entity, partition, blob in changelog:
        assert store.restore(entity, partition, blob)
    assert store.cold.get("gone") is None
    assert store.stored == 2
    assert store.get("gone", 0, 201.0).seen == 0  # fresh
    assert store.get("kept", 0, 201.0).seen == 3  # as it was
    # the restored headers say how far partition 0 got: no event is needed to age them
    again = retaining(retention_s=40.0)
    for entity, partition, blob in changelog[:-1]:
        assert again.restore(entity, partition, blob)
    assert sorted(again.retire()) == [("gone", 0), ("kept", 0)]


def test_a_snapshot_without_last_seen_in_its_header_is_read_from_its_body() -> None:
    state = trained_state()
    state.last_seen = 42.0
    blob = CODEC.encode(state)
    head = SnapshotCodec.read_header(blob)
    del head["last_seen"]  # as written before headers carried it
    body = blob[8 + struct.unpack(">I", blob[4:8])[0] :]  # no signature: n = 0, then zlib
    legacy = envelope(head, body)
    store = retaining(retention_s=10.0)
    assert store.restore("old", 0, legacy)
    see(store, "recent", 52.5)
    assert store.retire() == [("old", 0)]
    for bad in ("soon", float("nan"), True):
        forged = envelope({**head, "last_seen": bad}, body)
        assert not store.restore("forged", 0, forged)
    assert store.refused["corrupt"] == 3


def test_a_state_file_of_the_older_layout_is_replaced(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "cold.db"
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE state (entity TEXT PRIMARY KEY, partition INTEGER, blob BLOB)")
    db.execute("INSERT INTO state VALUES ('a', 0, x'00')")
    db.commit()
    db.close()
    cold = SqliteColdStore(path)
    assert len(cold) == 0 and cold.get("a") is None
    cold.put("b", 1, b"x", 10.0)
    cold.put("c", 1, b"y", 20.0)
    cold.put("b", 1, b"z", 30.0)  # replaced: counted once, its time moved
    cold.put("d", 2, b"w", 0.0)
    assert len(cold) == 3
    assert cold.take_older(1, 25.0, 10) == ["c"]
    assert cold.take_older(1, 31.0, 10) == ["b"] and cold.take_older(2, 1.0, 10) == ["d"]
    assert len(cold) == 0
    cold.close()


def test_retention_setting_defaults_to_a_week_validates_and_reaches_the_store() -> None:
    from alerting.errors import ConfigError
    from alerting.settings import load_settings
    from alerting.wiring import build_processor

    settings = load_settings()
    assert settings.state.retention_s == 7 * 86400.0
    assert build_processor(settings).store.retention_s == 7 * 86400.0
    forever = load_settings(state={"retention_s": 0})
    assert build_processor(forever).store.retention_s is None
    with pytest.raises(ConfigError, match="retention_s"):
        load_settings(state={"retention_s": 600, "idle_ttl_s": 3600})
    with pytest.raises(ConfigError, match="retention_s"):
        load_settings(state={"retention_s": -1})


@pytest.mark.parametrize("last_seen", [10**400, "1e9", None, True, float("nan")])
def test_a_header_last_seen_that_is_no_time_refuses_the_record_and_forgets_the_older_one(
    last_seen: object,
) -> None:
    store = retaining(retention_s=100.0)
    see(store, "a", 5.0)
    ((_, _, blob),) = store.snapshots()
    (length,) = struct.unpack_from(">I", blob, 4)
    header = json.loads(blob[8 : 8 + length])
    if last_seen is None:
        header["last_seen"] = "not a number"
    else:
        header["last_seen"] = last_seen
    head = json.dumps(header).encode()
    forged = MAGIC + struct.pack(">I", len(head)) + head + blob[8 + length :]
    fresh = retaining(retention_s=100.0)
    assert fresh.restore("a", 0, blob)
    assert not fresh.restore("a", 0, forged)  # no exception escapes, whatever the number
    assert fresh.refused["corrupt"] == 1
    assert fresh.cold.get("a") is None  # the older snapshot is forgotten: a starts fresh
