"""Per-entity state: bounded in memory, snapshotted to a changelog, restored after a crash.

An entity's :class:`EntityState` holds everything decisions depend on (feature memory,
the detector, the threshold, the policy's memory of open alert episodes and feedback
penalties, running feature statistics for explanations, how many events it has seen, and
the position of the last source record it includes). :class:`EntityStore` keeps at most
``max_live`` of them as live objects (least recently used first out) and moves entities
idle for ``idle_ttl_s`` of *event time* out too. An entity moved out is serialised into
a :class:`ColdStore` (on disk in the service) and comes back exactly as it was.

Snapshots are versioned envelopes::

    b"ALST" | u32 header length | header JSON | zlib(pickle(EntityState))

The header names the snapshot format, the detector, a hash of the model configuration,
the river and Python versions, and the source partition/offset the state includes. A
snapshot that does not match the running configuration is refused (counted, logged
once per reason) and the entity starts fresh; a bad snapshot never stops the service.

Pickle runs code when loading: the changelog topic must be writable only by the service.

>>> from alerting.detectors.zscore import RollingZScore
>>> codec = SnapshotCodec(detector="zscore", config_hash="abc")
>>> store = EntityStore(lambda: EntityState(RollingZScore()), codec, max_live=2)
>>> for name in ["A", "B", "C"]:
...     store.get(name, partition=0, event_time=0.0).seen += 1
>>> store.live, store.evictions
(2, 1)
>>> store.get("A", 0, 1.0).seen   # A was evicted, and comes back as it was
1
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import platform
import sqlite3
import struct
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from alerting.detectors.base import Detector
from alerting.explain import FeatureStats
from alerting.features import FeatureState
from alerting.policy import PolicyState

log = logging.getLogger(__name__)

#: the longest entity key the events schema admits (a longer changelog key is no entity)
MAX_ENTITY_CHARS = 200

MAGIC = b"ALST"
FORMAT = 1
_LEN = struct.Struct(">I")


def _river_version() -> str:
    try:
        import river

        return str(getattr(river, "__version__", "unknown"))
    except ImportError:  # pragma: no cover - river is a dependency
        return "none"


RIVER_VERSION = _river_version()


class EntityState:
    """Everything the service remembers about one entity."""

    __slots__ = (
        "challenger",
        "consecutive_flags",
        "drift",
        "features",
        "last_seen",
        "model",
        "next_offset",
        "partition",
        "policy",
        "seen",
        "stats",
        "threshold",
    )

    def __init__(self, model: Detector, threshold: Any = None, drift: Any = None) -> None:
        self.model = model
        self.threshold = threshold
        self.drift = drift
        self.challenger: Any = None  # a model trained beside this one after a drift
        self.features = FeatureState()
        self.policy = PolicyState()
        self.stats = FeatureStats()  # usual range of each feature, for explanations
        self.seen = 0
        self.consecutive_flags = 0
        self.last_seen = 0.0  # event time of the newest event learned
        self.partition = -1  # source partition and next offset the state includes
        self.next_offset = 0

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, values: dict[str, Any]) -> None:
        self.drift = self.challenger = None  # absent from older snapshots
        for name, value in values.items():
            setattr(self, name, value)


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the model configuration (detector, params, threshold, ...)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class SnapshotRefused(Exception):
    """A snapshot that cannot be used; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SnapshotCodec:
    """Encodes and checks snapshots for one model configuration."""

    detector: str
    config_hash: str
    river: str = RIVER_VERSION
    python: str = platform.python_version()

    def header(self, state: EntityState) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "detector": self.detector,
            "config": self.config_hash,
            "river": self.river,
            "python": self.python,
            "partition": state.partition,
            "next_offset": state.next_offset,
        }

    def encode(self, state: EntityState) -> bytes:
        head = json.dumps(self.header(state), separators=(",", ":")).encode()
        body = zlib.compress(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), 1)
        return MAGIC + _LEN.pack(len(head)) + head + body

    @staticmethod
    def read_header(blob: bytes) -> dict[str, Any]:
        if len(blob) < 8 or blob[:4] != MAGIC:
            raise SnapshotRefused("not_a_snapshot", "missing the ALST magic bytes")
        (length,) = _LEN.unpack_from(blob, 4)
        try:
            header = json.loads(blob[8 : 8 + length])
        except ValueError as exc:
            raise SnapshotRefused("corrupt", f"unreadable header: {exc}") from None
        if not isinstance(header, dict):
            raise SnapshotRefused("corrupt", f"the header is a {type(header).__name__}")
        return header

    def check(self, blob: bytes) -> dict[str, Any]:
        """The header, if the snapshot fits this configuration; else SnapshotRefused."""
        header = self.read_header(blob)
        expected = {"format": FORMAT, "detector": self.detector, "config": self.config_hash,
                    "river": self.river}  # fmt: skip
        for key, want in expected.items():
            got = header.get(key)
            if got != want:
                raise SnapshotRefused(
                    f"{key}_mismatch", f"snapshot has {key}={got!r}, this service runs {want!r}"
                )
        return header

    def decode(self, blob: bytes) -> EntityState:
        self.check(blob)
        (length,) = _LEN.unpack_from(blob, 4)
        try:
            state = pickle.loads(zlib.decompress(blob[8 + length :]))
        except Exception as exc:  # any unpickling failure: start fresh, never crash
            raise SnapshotRefused("corrupt", f"cannot load the state: {exc!r}") from None
        if not isinstance(state, EntityState):
            raise SnapshotRefused("corrupt", f"snapshot holds a {type(state).__name__}")
        return state


class ColdStore(Protocol):
    """Serialised states of entities that are not live, keyed by entity."""

    def get(self, entity: str) -> bytes | None: ...
    def put(self, entity: str, partition: int, blob: bytes) -> None: ...
    def delete(self, entity: str) -> None: ...
    def drop_partitions(self, partitions: set[int]) -> None: ...
    def __len__(self) -> int: ...


class MemoryColdStore:
    """A dict; for tests and back-tests."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, bytes]] = {}

    def get(self, entity: str) -> bytes | None:
        item = self._data.get(entity)
        return None if item is None else item[1]

    def put(self, entity: str, partition: int, blob: bytes) -> None:
        self._data[entity] = (partition, blob)

    def delete(self, entity: str) -> None:
        self._data.pop(entity, None)

    def drop_partitions(self, partitions: set[int]) -> None:
        self._data = {k: v for k, v in self._data.items() if v[0] not in partitions}

    def __len__(self) -> int:
        return len(self._data)


class SqliteColdStore:
    """On disk, so memory stays bounded however many entities were ever seen."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")  # the changelog is the durable copy
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS state "
            "(entity TEXT PRIMARY KEY, partition INTEGER, blob BLOB)"
        )
        self._db.execute("DELETE FROM state")  # rebuilt from the changelog at assignment

    def get(self, entity: str) -> bytes | None:
        row = self._db.execute("SELECT blob FROM state WHERE entity = ?", (entity,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, entity: str, partition: int, blob: bytes) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO state (entity, partition, blob) VALUES (?, ?, ?)",
            (entity, partition, blob),
        )

    def put_many(self, rows: list[tuple[str, int, bytes]]) -> None:
        self._db.execute("BEGIN")
        self._db.executemany(
            "INSERT OR REPLACE INTO state (entity, partition, blob) VALUES (?, ?, ?)", rows
        )
        self._db.execute("COMMIT")

    def delete(self, entity: str) -> None:
        self._db.execute("DELETE FROM state WHERE entity = ?", (entity,))

    def drop_partitions(self, partitions: set[int]) -> None:
        self._db.executemany("DELETE FROM state WHERE partition = ?", [(p,) for p in partitions])

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM state").fetchone()[0])

    def close(self) -> None:
        self._db.close()


class EntityStore:
    """Live entity states, bounded by count (LRU) and idleness (event-time TTL)."""

    def __init__(
        self,
        factory: Callable[[], EntityState],
        codec: SnapshotCodec,
        max_live: int = 100_000,
        idle_ttl_s: float | None = None,
        cold: ColdStore | None = None,
    ) -> None:
        if max_live < 1:
            raise ValueError(f"max_live must be at least 1, got {max_live}")
        if idle_ttl_s is not None and not idle_ttl_s > 0:
            raise ValueError(f"idle_ttl_s must be positive, got {idle_ttl_s}")
        self.factory = factory
        self.codec = codec
        self.max_live = max_live
        self.idle_ttl_s = idle_ttl_s
        self.cold: ColdStore = cold if cold is not None else MemoryColdStore()
        self._live: OrderedDict[str, EntityState] = OrderedDict()
        self._dirty: set[str] = set()  # live, changed since their last snapshot
        self._unsaved: dict[str, tuple[int, bytes]] = {}  # evicted before their snapshot
        self.evictions = 0
        self.created = 0
        self.loaded = 0
        self.refused: Counter[str] = Counter()  # since the last drain (metrics)
        self._warned: set[str] = set()  # reasons already logged
        self.on_enter: Callable[[EntityState], None] | None = None
        self.on_leave: Callable[[EntityState], None] | None = None

    @property
    def live(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[tuple[str, EntityState]]:
        return iter(self._live.items())

    def get(self, entity: str, partition: int, event_time: float) -> EntityState:
        """The entity's state (live, brought back from cold, or new); marks it changed."""
        live = self._live
        state = live.get(entity)
        if state is not None:
            live.move_to_end(entity)
        else:
            state = self._load(entity) or self._new(partition)
            self._enter(entity, state)
        self._dirty.add(entity)
        return state

    def find(self, entity: str) -> EntityState | None:
        """The entity's state if it was ever seen (live, or brought back from cold), else
        None; marks it changed. Unlike :meth:`get`, never creates a state."""
        state = self._live.get(entity)
        if state is None:
            state = self._load(entity)
            if state is None:
                return None
            self._enter(entity, state)
        self._dirty.add(entity)
        return state

    def _enter(self, entity: str, state: EntityState) -> None:
        """Make a loaded or new state live, moving the least recently used out if full."""
        live = self._live
        if len(live) >= self.max_live:
            self._evict(next(iter(live)))
        live[entity] = state
        if self.on_enter is not None:
            self.on_enter(state)

    def _new(self, partition: int) -> EntityState:
        state = self.factory()
        state.partition = partition
        self.created += 1
        return state

    def _load(self, entity: str) -> EntityState | None:
        pending = self._unsaved.pop(entity, None)
        blob = pending[1] if pending is not None else self.cold.get(entity)
        if blob is None:
            return None
        try:
            state = self.codec.decode(blob)
        except SnapshotRefused as refused:
            self._refuse(entity, refused)
            return None
        self.loaded += 1
        return state

    def _refuse(self, entity: str, refused: SnapshotRefused) -> None:
        """Count a refused snapshot, log the first of each reason, and forget the entity's
        stored state (an older snapshot would be behind the committed offset): it starts
        fresh."""
        self._count(refused.reason, f"state of {entity!r} refused, it starts fresh ({refused})")
        self.cold.delete(entity)

    def _count(self, reason: str, detail: str) -> None:
        """Count a refused changelog record by reason; log the first of each reason."""
        self.refused[reason] += 1
        if reason not in self._warned:
            self._warned.add(reason)
            log.warning(
                "%s; further records refused for this reason are only counted in "
                "alerting_snapshots_refused_total{reason=%r}",
                detail,
                reason,
            )

    def _evict(self, entity: str) -> None:
        state = self._live.pop(entity)
        blob = self.codec.encode(state)
        self.cold.put(entity, state.partition, blob)
        if entity in self._dirty:
            self._dirty.discard(entity)
            self._unsaved[entity] = (state.partition, blob)
        self.evictions += 1
        if self.on_leave is not None:
            self.on_leave(state)

    def expire(self, now: float) -> int:
        """Move out entities idle for more than ``idle_ttl_s`` of event time; how many."""
        if self.idle_ttl_s is None:
            return 0
        horizon = now - self.idle_ttl_s
        idle = [e for e, s in self._live.items() if s.last_seen < horizon]
        for entity in idle:
            self._evict(entity)
        return len(idle)

    def snapshots(self) -> list[tuple[str, int, bytes]]:
        """(entity, partition, snapshot) for every state changed since the last call."""
        out = [(e, p, b) for e, (p, b) in self._unsaved.items()]
        self._unsaved.clear()
        for entity in self._dirty:
            state = self._live.get(entity)
            if state is not None:
                out.append((entity, state.partition, self.codec.encode(state)))
        self._dirty.clear()
        return out

    def restore_record(self, key: bytes, partition: int, blob: bytes | None) -> bool:
        """Take one changelog record as read from the topic; False if refused. A key that is
        not an entity (not UTF-8, empty, longer than any entity) is refused and counted
        (``bad_key``); nothing else is touched."""
        try:
            entity = key.decode("utf-8")
        except UnicodeDecodeError:
            entity = ""
        if not entity or len(entity) > MAX_ENTITY_CHARS:
            self._count("bad_key", f"changelog key {key[:40]!r} is not an entity key")
            return False
        try:
            return self.restore(entity, partition, blob)
        except Exception as exc:  # a bug must not wipe the restore of the other entities
            self._count("corrupt", f"restoring {entity!r} failed: {exc!r}")
            return False

    def restore(self, entity: str, partition: int, blob: bytes | None) -> bool:
        """Take a changelog record; False if refused. ``None`` (a tombstone) deletes."""
        self._live.pop(entity, None)
        if blob is None:
            self.cold.delete(entity)
            return True
        try:
            self.codec.check(blob)
        except SnapshotRefused as refused:
            self._refuse(entity, refused)
            return False
        self.cold.put(entity, partition, blob)
        return True

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the entities of partitions this process no longer owns."""
        for entity in [e for e, s in self._live.items() if s.partition in partitions]:
            state = self._live.pop(entity)
            self._dirty.discard(entity)
            if self.on_leave is not None:
                self.on_leave(state)
        self._unsaved = {e: v for e, v in self._unsaved.items() if v[0] not in partitions}
        self.cold.drop_partitions(partitions)


def estimate_model_bytes(factory: Callable[[], EntityState], samples: int = 8) -> int:
    """Approximate memory of one live entity state, after it has learned a few hundred events.

    Measured with tracemalloc over ``samples`` fresh states fed a fixed pseudo-random
    stream of trade-like features; an estimate for the ``alerting_model_memory_bytes`` gauge.
    """
    import random
    import tracemalloc

    rng = random.Random(0)
    stream = [
        {
            "log_return": rng.gauss(0, 2e-4),
            "log_size": rng.gauss(6, 0.8),
            "log_interarrival": rng.gauss(-2, 1),
            "signed_notional": rng.choice((-1, 1)) * rng.gauss(10, 1),
        }
        for _ in range(300)
    ]
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        states = []
        for _ in range(samples):
            state = factory()
            for x in stream:
                state.model.learn_one(x)
            states.append(state)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return max(used // samples, 0)
