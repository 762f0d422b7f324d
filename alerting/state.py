"""Per-entity state: bounded in memory, snapshotted to a changelog, restored after a crash.

An entity's :class:`EntityState` holds everything decisions depend on (feature memory,
the detector, the threshold, the policy's memory of open alert episodes and feedback
penalties, running feature statistics for explanations, how many events it has seen, and
the position of the last source record it includes). :class:`EntityStore` keeps at most
``max_live`` of them as live objects (least recently used first out) and moves entities
idle for ``idle_ttl_s`` of *event time* out too. An entity moved out is serialised into
a :class:`ColdStore` (on disk in the service) and comes back exactly as it was.

Retention bounds what is kept at all: an entity idle for more than ``retention_s`` of
event time (the newest event time that :data:`CLOCK_QUORUM` entities of its partition
have reached, minus the entity's last event time) is forgotten, live or cold, by
:meth:`EntityStore.retire` once per checkpoint, and the service writes a tombstone (its
key, no value) to the changelog so compaction removes it there too; its next event
starts it fresh. The sweep reads an ordered index (a heap of live entities by last event
time, an index of the cold store by partition and time), so its cost follows the
entities changed and forgotten, never the entities stored. An event time more than
:data:`MAX_CLOCK_AHEAD_S` ahead of the wall clock ages nothing: one record stamped years
ahead must not wipe a partition's state.

Snapshots are versioned envelopes::

    b"ALST" | u32 header length | header JSON | u8 n | signature (n bytes) | zlib(body)

The header names the snapshot format, the detector, a hash of the model configuration,
the river and Python versions, the source partition/offset the state includes, and the
body's kind. The body is **plain data** (:mod:`alerting.plain`: JSON of numbers, strings
and base64 arrays, read into fresh objects of the running configuration; nothing in it
names a class or a function) for every state whose parts have a plain form: the
features, ``sad`` and ``zscore``, the fixed and calibrated thresholds, the policy, the
ADWIN drift monitor, the explanation statistics. Only the rest (River's tree and density
models, the quantile threshold, River's other drift detectors) is **pickled**, and a
pickle runs code when it is read: it is read only with a valid signature, an
HMAC-SHA256 over the header and body with ``state.signing_key``, or when the changelog is
explicitly trusted. With a key, every snapshot is signed and an unsigned or wrongly
signed one is refused whatever its body. A snapshot that does not match the running
configuration, fails its signature or its checks, or inflates past
:data:`MAX_STATE_BYTES`, is refused (counted by reason, logged once per reason) and the
entity starts fresh; a bad snapshot never stops the service.

>>> from alerting.detectors.zscore import RollingZScore
>>> def fresh() -> EntityState:
...     return EntityState(RollingZScore())
>>> codec = SnapshotCodec(detector="zscore", config_hash="abc", factory=fresh,
...                       fresh_model=RollingZScore)
>>> store = EntityStore(fresh, codec, max_live=2)
>>> for name in ["A", "B", "C"]:
...     store.get(name, partition=0, event_time=0.0).seen += 1
>>> store.live, store.evictions
(2, 1)
>>> store.get("A", 0, 1.0).seen   # A was evicted, and comes back as it was
1
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import json
import logging
import pickle
import platform
import sqlite3
import struct
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from alerting.detectors.base import Detector
from alerting.drift import Challenger
from alerting.errors import PlainError, SnapshotRefused
from alerting.explain import FeatureStats
from alerting.features import FeatureState
from alerting.plain import NotPlain, integer, mapping, number, sequence
from alerting.policy import PolicyState

log = logging.getLogger(__name__)

#: the longest entity key the events schema admits (a longer changelog key is no entity)
MAX_ENTITY_CHARS = 200

MAGIC = b"ALST"
FORMAT = 2
_LEN = struct.Struct(">I")
#: the most a snapshot may inflate to (a forged one could be a zlib bomb)
MAX_STATE_BYTES = 16 * 1024 * 1024
#: the most entities one :meth:`EntityStore.retire` forgets (the rest go at the next
#: checkpoint), so a jump in event time never stalls the loop on one huge checkpoint
RETIRE_BATCH = 10_000
#: an event time further ahead of the wall clock than this ages no other entity
MAX_CLOCK_AHEAD_S = 86_400.0
#: a partition's retention clock is the newest event time this many of its entities
#: have reached: one entity's stray timestamp (months ahead, yet not in the future) must
#: not age every other entity of the partition past retention
CLOCK_QUORUM = 3


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

    def dump(self) -> dict[str, Any]:
        """Everything as plain data (:mod:`alerting.plain`); :class:`NotPlain` if a part
        (a River model, a quantile threshold, a River drift detector) has none."""
        parts = {"model": self.model, "threshold": self.threshold, "drift": self.drift}
        out: dict[str, Any] = {}
        for name, part in parts.items():
            if part is None:
                out[name] = None
                continue
            dump = getattr(part, "dump", None)
            if dump is None:
                raise NotPlain(f"{name} {type(part).__name__}")
            out[name] = dump()
        out["challenger"] = None if self.challenger is None else self.challenger.dump()
        out["features"] = self.features.dump()
        out["policy"] = self.policy.dump()
        out["stats"] = self.stats.dump()
        out["counts"] = [self.seen, self.consecutive_flags, self.partition, self.next_offset]
        out["last_seen"] = self.last_seen
        return out

    def load(self, data: Any, fresh_model: Callable[[], Any]) -> None:
        """Take :meth:`dump`'s data into this state, fresh from the running configuration
        (``fresh_model`` makes a challenger's model); raises :class:`PlainError`."""
        d = mapping(data, "state")
        for name in ("model", "threshold", "drift"):
            part, value = getattr(self, name), d.get(name)
            if part is None:
                if value is not None:
                    raise PlainError(f"state.{name}: not this configuration's")
                continue
            part.load(value)  # a part with no state (a fixed threshold) dumps None
        if d.get("challenger") is not None:
            self.challenger = Challenger(fresh_model())
            self.challenger.load(d["challenger"])
        self.features.load(d.get("features"))
        self.policy.load(d.get("policy"))
        self.stats.load(d.get("stats"))
        seen, flags, partition, offset = sequence(d.get("counts"), "state.counts", 4)
        self.seen = integer(seen, "state.seen")
        self.consecutive_flags = integer(flags, "state.consecutive_flags")
        self.partition = integer(partition, "state.partition", low=-1)
        self.next_offset = integer(offset, "state.next_offset")
        self.last_seen = number(d.get("last_seen"), "state.last_seen")


def config_hash(config: dict[str, Any]) -> str:
    """A short stable hash of the model configuration (detector, params, threshold, ...)."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class SnapshotCodec:
    """Encodes and checks snapshots for one model configuration.

    ``factory`` makes the fresh state a plain snapshot is poured into, and ``fresh_model``
    a challenger's model (both from the running configuration). With a ``key`` every
    snapshot is signed (HMAC-SHA256 over header and body) and only a snapshot with a
    valid signature is read; without one, plain snapshots are read (they cannot run
    code) and pickled ones are refused unless ``trust_pickles`` (the changelog topic is
    writable by nobody else).
    """

    detector: str
    config_hash: str
    river: str = RIVER_VERSION
    python: str = platform.python_version()
    factory: Callable[[], EntityState] | None = None
    fresh_model: Callable[[], Any] | None = None
    key: bytes | None = field(default=None, repr=False)
    trust_pickles: bool = False

    def header(self, state: EntityState, body: str = "plain") -> dict[str, Any]:
        return {
            "format": FORMAT,
            "detector": self.detector,
            "config": self.config_hash,
            "river": self.river,
            "python": self.python,
            "partition": state.partition,
            "next_offset": state.next_offset,
            "last_seen": state.last_seen,  # read at restore for retention, body unread
            "body": body,
        }

    def encode(self, state: EntityState) -> bytes:
        try:
            payload = json.dumps(state.dump(), separators=(",", ":")).encode()
            kind = "plain"
        except NotPlain:
            payload = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
            kind = "pickle"
        head = json.dumps(self.header(state, kind), separators=(",", ":")).encode()
        body = zlib.compress(payload, 1)
        signature = self._sign(head, body) if self.key is not None else b""
        return MAGIC + _LEN.pack(len(head)) + head + bytes([len(signature)]) + signature + body

    def _sign(self, head: bytes, body: bytes) -> bytes:
        assert self.key is not None
        mac = hmac.new(self.key, MAGIC + _LEN.pack(len(head)) + head, hashlib.sha256)
        mac.update(body)
        return mac.digest()

    @staticmethod
    def _parts(blob: bytes) -> tuple[dict[str, Any], bytes, bytes, bytes]:
        """(header, header bytes, signature, body) of a snapshot; SnapshotRefused if it is
        not one."""
        if len(blob) < 9 or blob[:4] != MAGIC:
            raise SnapshotRefused("not_a_snapshot", "missing the ALST magic bytes")
        (length,) = _LEN.unpack_from(blob, 4)
        head = blob[8 : 8 + length]
        try:
            header = json.loads(head)
        except ValueError as exc:
            raise SnapshotRefused("corrupt", f"unreadable header: {exc}") from None
        if not isinstance(header, dict):
            raise SnapshotRefused("corrupt", f"the header is a {type(header).__name__}")
        at = 8 + length
        if at >= len(blob):
            raise SnapshotRefused("corrupt", "truncated after the header")
        size = blob[at]
        signature = blob[at + 1 : at + 1 + size]
        return header, head, signature, blob[at + 1 + size :]

    @classmethod
    def read_header(cls, blob: bytes) -> dict[str, Any]:
        return cls._parts(blob)[0]

    def check(self, blob: bytes, vetted: bool = False) -> dict[str, Any]:
        """The header, if the snapshot fits this configuration and its signature holds;
        else SnapshotRefused. ``vetted``: the blob comes from this process's cold store,
        which holds only snapshots it encoded itself or checked when they were read from
        the changelog, so its signature is not checked again."""
        header, head, signature, body = self._parts(blob)
        expected = {"format": FORMAT, "detector": self.detector, "config": self.config_hash,
                    "river": self.river}  # fmt: skip
        for key, want in expected.items():
            got = header.get(key)
            if got != want:
                raise SnapshotRefused(
                    f"{key}_mismatch", f"snapshot has {key}={got!r}, this service runs {want!r}"
                )
        kind = header.get("body")
        if kind not in ("plain", "pickle"):
            raise SnapshotRefused("corrupt", f"unknown body {kind!r}")
        if vetted:
            pass
        elif self.key is not None:
            if not signature:
                raise SnapshotRefused("unsigned", "the snapshot is not signed (state.signing_key)")
            if not hmac.compare_digest(signature, self._sign(head, body)):
                raise SnapshotRefused(
                    "bad_signature", "its signature is not the one state.signing_key gives"
                )
        elif kind == "pickle" and not self.trust_pickles:
            raise SnapshotRefused(
                "unsigned",
                "a pickled snapshot without a signature: set state.signing_key (or "
                "state.trust_changelog = true if nobody else can write the changelog)",
            )
        return header

    def decode(self, blob: bytes, vetted: bool = False) -> EntityState:
        header = self.check(blob, vetted)
        body = self._parts(blob)[3]
        inflater = zlib.decompressobj()
        try:
            payload = inflater.decompress(body, MAX_STATE_BYTES)
        except zlib.error as exc:
            raise SnapshotRefused("corrupt", f"cannot inflate the state: {exc}") from None
        if inflater.unconsumed_tail:
            raise SnapshotRefused("too_large", f"the state inflates past {MAX_STATE_BYTES} bytes")
        if not inflater.eof or inflater.unused_data:
            raise SnapshotRefused(
                "corrupt", "the compressed state is cut short or followed by more"
            )
        if header["body"] == "plain":
            return self._plain(payload)
        try:
            state = pickle.loads(payload)  # signed, or explicitly trusted: see check()
        except Exception as exc:  # any unpickling failure: start fresh, never crash
            raise SnapshotRefused("corrupt", f"cannot load the state: {exc!r}") from None
        if not isinstance(state, EntityState):
            raise SnapshotRefused("corrupt", f"snapshot holds a {type(state).__name__}")
        return state

    def _plain(self, payload: bytes) -> EntityState:
        if self.factory is None or self.fresh_model is None:
            raise SnapshotRefused("corrupt", "no configuration to read plain state into")
        try:
            data = json.loads(payload)
            state = self.factory()
            state.load(data, self.fresh_model)
        except (ValueError, RecursionError) as exc:  # PlainError, JSON, a missing part
            raise SnapshotRefused("corrupt", f"plain state: {exc}") from None
        return state


class ColdStore(Protocol):
    """Serialised states of entities that are not live, keyed by entity, with the event
    time of each one's last event (``None``: unknown, never taken by age)."""

    def get(self, entity: str) -> bytes | None: ...
    def put(
        self, entity: str, partition: int, blob: bytes, last_seen: float | None = None
    ) -> None: ...
    def delete(self, entity: str) -> None: ...
    def take_older(self, partition: int, horizon: float, limit: int) -> list[str]:
        """Delete and name up to ``limit`` entities of ``partition`` whose last event is
        before ``horizon``, oldest first; in time that follows the number taken."""
        ...

    def drop_partitions(self, partitions: set[int]) -> None: ...
    def __len__(self) -> int: ...


class MemoryColdStore:
    """A dict (and a heap by last event time per partition); for tests and back-tests."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[int, bytes, float | None]] = {}
        # (last_seen, entity) per partition; an entry that no longer matches is skipped
        self._by_time: dict[int, list[tuple[float, str]]] = {}
        self._heaped = 0

    def get(self, entity: str) -> bytes | None:
        item = self._data.get(entity)
        return None if item is None else item[1]

    def put(self, entity: str, partition: int, blob: bytes, last_seen: float | None = None) -> None:
        self._data[entity] = (partition, blob, last_seen)
        if last_seen is not None:
            heapq.heappush(self._by_time.setdefault(partition, []), (last_seen, entity))
            self._heaped += 1
            if self._heaped > 2 * len(self._data) + 1024:
                self._reindex()

    def delete(self, entity: str) -> None:
        self._data.pop(entity, None)

    def take_older(self, partition: int, horizon: float, limit: int) -> list[str]:
        heap = self._by_time.get(partition)
        taken: list[str] = []
        while heap and heap[0][0] < horizon and len(taken) < limit:
            last_seen, entity = heapq.heappop(heap)
            self._heaped -= 1
            item = self._data.get(entity)
            if item is not None and item[0] == partition and item[2] == last_seen:
                del self._data[entity]
                taken.append(entity)
        return taken

    def _reindex(self) -> None:
        self._by_time = {}
        for entity, (partition, _, last_seen) in self._data.items():
            if last_seen is not None:
                self._by_time.setdefault(partition, []).append((last_seen, entity))
        for heap in self._by_time.values():
            heapq.heapify(heap)
        self._heaped = sum(len(heap) for heap in self._by_time.values())

    def drop_partitions(self, partitions: set[int]) -> None:
        self._data = {k: v for k, v in self._data.items() if v[0] not in partitions}
        for partition in partitions:
            self._heaped -= len(self._by_time.pop(partition, ()))

    def __len__(self) -> int:
        return len(self._data)


class SqliteColdStore:
    """On disk, so memory stays bounded however many entities were ever seen.

    Indexed by (partition, last event time), so :meth:`take_older` reads only the rows it
    takes; the row count is kept in memory (``COUNT(*)`` would scan the table).
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")  # the changelog is the durable copy
        # rebuilt from the changelog at assignment, so an older layout is simply replaced
        self._db.execute("DROP TABLE IF EXISTS state")
        self._db.execute(
            "CREATE TABLE state "
            "(entity TEXT PRIMARY KEY, partition INTEGER, blob BLOB, last_seen REAL)"
        )
        self._db.execute("CREATE INDEX state_by_age ON state (partition, last_seen)")
        self._rows = 0

    def get(self, entity: str) -> bytes | None:
        row = self._db.execute("SELECT blob FROM state WHERE entity = ?", (entity,)).fetchone()
        return None if row is None else bytes(row[0])

    def put(self, entity: str, partition: int, blob: bytes, last_seen: float | None = None) -> None:
        updated = self._db.execute(
            "UPDATE state SET partition = ?, blob = ?, last_seen = ? WHERE entity = ?",
            (partition, blob, last_seen, entity),
        )
        if updated.rowcount == 0:
            self._db.execute(
                "INSERT INTO state (entity, partition, blob, last_seen) VALUES (?, ?, ?, ?)",
                (entity, partition, blob, last_seen),
            )
            self._rows += 1

    def delete(self, entity: str) -> None:
        self._rows -= self._db.execute("DELETE FROM state WHERE entity = ?", (entity,)).rowcount

    def take_older(self, partition: int, horizon: float, limit: int) -> list[str]:
        rows = self._db.execute(
            "SELECT entity FROM state WHERE partition = ? AND last_seen < ? "
            "ORDER BY last_seen LIMIT ?",
            (partition, horizon, limit),
        ).fetchall()
        if not rows:
            return []
        self._db.execute("BEGIN")
        self._rows -= self._db.executemany("DELETE FROM state WHERE entity = ?", rows).rowcount
        self._db.execute("COMMIT")
        return [str(row[0]) for row in rows]

    def drop_partitions(self, partitions: set[int]) -> None:
        self._rows -= self._db.executemany(
            "DELETE FROM state WHERE partition = ?", [(p,) for p in partitions]
        ).rowcount

    def __len__(self) -> int:
        return self._rows

    def close(self) -> None:
        self._db.close()


class EntityStore:
    """Live entity states, bounded by count (LRU) and idleness (event-time TTL); every
    stored state (live or cold) bounded by event-time retention (:meth:`retire`)."""

    def __init__(
        self,
        factory: Callable[[], EntityState],
        codec: SnapshotCodec,
        max_live: int = 100_000,
        idle_ttl_s: float | None = None,
        cold: ColdStore | None = None,
        retention_s: float | None = None,
        clock: Callable[[], float] = time.time,
        clock_quorum: int = CLOCK_QUORUM,
    ) -> None:
        if max_live < 1:
            raise ValueError(f"max_live must be at least 1, got {max_live}")
        if clock_quorum < 1:
            raise ValueError(f"clock_quorum must be at least 1, got {clock_quorum}")
        self.clock_quorum = clock_quorum
        if idle_ttl_s is not None and not idle_ttl_s > 0:
            raise ValueError(f"idle_ttl_s must be positive, got {idle_ttl_s}")
        self.factory = factory
        self.codec = codec
        self.max_live = max_live
        self.idle_ttl_s = idle_ttl_s
        self.retention_s = retention_s
        self.clock = clock  # wall clock, only to ignore event times far ahead of it
        self.cold: ColdStore = cold if cold is not None else MemoryColdStore()
        self._live: OrderedDict[str, EntityState] = OrderedDict()
        self._dirty: set[str] = set()  # live, changed since their last snapshot
        self._unsaved: dict[str, tuple[int, bytes]] = {}  # evicted before their snapshot
        self._stale: set[str] = set()  # live, with an older copy still in the cold store
        # retention: the newest event time each partition's states include, and a heap
        # per partition of (last_seen, entity) over live entities; an entry is current
        # only while _indexed holds the same (partition, last_seen) for the entity
        self._newest: dict[int, float] = {}
        # per partition, the clock_quorum entities with the newest event times, newest first
        self._front: dict[int, list[tuple[float, str]]] = {}
        self._by_time: dict[int, list[tuple[float, str]]] = {}
        self._indexed: dict[str, tuple[int, float]] = {}
        self._heaped = 0
        self.evictions = 0
        self.refused: Counter[str] = Counter()  # since the last drain (metrics)
        self._warned: set[str] = set()  # reasons already logged
        self.on_enter: Callable[[EntityState], None] | None = None
        self.on_leave: Callable[[EntityState], None] | None = None

    @property
    def retention_s(self) -> float | None:
        return self._retention_s

    @retention_s.setter
    def retention_s(self, value: float | None) -> None:
        if value is not None and not value > 0:  # also refuses NaN
            raise ValueError(f"retention_s must be positive (or None: keep forever), got {value}")
        self._retention_s = value

    @property
    def live(self) -> int:
        return len(self._live)

    @property
    def stored(self) -> int:
        """Entities whose state is held, live or cold, each counted once."""
        return len(self._live) + len(self.cold) - len(self._stale)

    def __iter__(self) -> Iterator[tuple[str, EntityState]]:
        return iter(self._live.items())

    def drain(self) -> tuple[int, Counter[str]]:
        """The evictions and the refused records (by reason) since the last drain; both
        start again from zero."""
        drained = self.evictions, self.refused
        self.evictions, self.refused = 0, Counter()
        return drained

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
        return state

    def _load(self, entity: str) -> EntityState | None:
        pending = self._unsaved.pop(entity, None)
        blob = pending[1] if pending is not None else self.cold.get(entity)
        if blob is None:
            return None
        try:
            state = self.codec.decode(blob, vetted=True)  # checked when it entered the store
        except SnapshotRefused as refused:
            self._refuse(entity, refused)
            return None
        self._stale.add(entity)  # its cold copy stays until it is moved out again
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
        self._stale.discard(entity)
        self._indexed.pop(entity, None)
        self._advance(state.partition, state.last_seen, entity)
        blob = self.codec.encode(state)
        self.cold.put(entity, state.partition, blob, state.last_seen)
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

    def retire(self, limit: int = RETIRE_BATCH) -> list[tuple[str, int]]:
        """Forget up to ``limit`` entities, live or cold, idle for more than ``retention_s``
        of event time: their last event is older than the newest event time of their
        partition's states (ignoring those more than :data:`MAX_CLOCK_AHEAD_S` past the
        wall clock) minus ``retention_s``. (entity, partition) of each, for the changelog's
        tombstones; none of them is in the next :meth:`snapshots`.

        Once per checkpoint, before :meth:`snapshots`: its cost follows the entities
        changed since the last call and those forgotten (log n each), not those stored.
        """
        retention = self._retention_s
        if retention is None:
            return []
        self._index_changed()
        out: list[tuple[str, int]] = []
        for partition, newest in self._newest.items():
            if len(out) >= limit:
                break
            horizon = newest - retention
            self._retire_live(partition, horizon, limit, out)
            if len(out) >= limit:
                break
            for entity in self.cold.take_older(partition, horizon, limit - len(out)):
                if entity in self._live:  # an older copy of a live state: the live one counts
                    self._stale.discard(entity)
                    continue
                self._unsaved.pop(entity, None)
                out.append((entity, partition))
        return out

    def _advance(
        self, partition: int, last_seen: float, entity: str, ceiling: float | None = None
    ) -> None:
        """Move the partition's retention clock on: the newest event time that
        ``clock_quorum`` of its entities have reached (an event time past ``ceiling``,
        the wall clock plus MAX_CLOCK_AHEAD_S, is ignored: it ages nothing)."""
        front = self._front.setdefault(partition, [])
        quorum = self.clock_quorum
        if len(front) == quorum and last_seen <= front[-1][0]:
            return  # the common case: not among the newest
        if ceiling is None:
            ceiling = self.clock() + MAX_CLOCK_AHEAD_S
        if last_seen > ceiling:
            return
        for index, (seen, who) in enumerate(front):
            if who == entity:
                if seen >= last_seen:
                    return
                del front[index]
                break
        front.append((last_seen, entity))
        front.sort(reverse=True)
        del front[quorum:]
        if len(front) == quorum:
            self._newest[partition] = front[-1][0]

    def _index_changed(self) -> None:
        """Put the live entities changed since the last call into the heaps by time."""
        indexed, by_time = self._indexed, self._by_time
        ceiling = self.clock() + MAX_CLOCK_AHEAD_S
        for entity in self._dirty:
            state = self._live.get(entity)
            if state is None:
                continue
            key = (state.partition, state.last_seen)
            if indexed.get(entity) == key:
                continue
            indexed[entity] = key
            heapq.heappush(by_time.setdefault(key[0], []), (key[1], entity))
            self._heaped += 1
            self._advance(key[0], key[1], entity, ceiling)
        if self._heaped > 2 * len(indexed) + 1024:  # mostly outdated entries: rebuild
            self._by_time = {}
            for entity, (partition, last_seen) in indexed.items():
                self._by_time.setdefault(partition, []).append((last_seen, entity))
            for heap in self._by_time.values():
                heapq.heapify(heap)
            self._heaped = len(indexed)

    def _retire_live(
        self, partition: int, horizon: float, limit: int, out: list[tuple[str, int]]
    ) -> None:
        heap = self._by_time.get(partition)
        while heap and heap[0][0] < horizon and len(out) < limit:
            last_seen, entity = heapq.heappop(heap)
            self._heaped -= 1
            if self._indexed.get(entity) != (partition, last_seen):
                continue  # outdated: the entity changed, moved out or is gone
            del self._indexed[entity]
            state = self._live.pop(entity)
            self._dirty.discard(entity)
            if entity in self._stale:
                self._stale.discard(entity)
                self.cold.delete(entity)
            if self.on_leave is not None:
                self.on_leave(state)
            out.append((entity, partition))

    def snapshots(self) -> list[tuple[str, int, bytes]]:
        """(entity, partition, snapshot) for every state changed since the last call."""
        if self._retention_s is not None:
            self._index_changed()  # what changed stays known to retire() after this
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
        if self._live.pop(entity, None) is not None:
            self._indexed.pop(entity, None)
            self._stale.discard(entity)
        if blob is None:
            self.cold.delete(entity)
            return True
        try:
            last_seen = self.codec.check(blob).get("last_seen")
            if last_seen is None:  # written before headers carried it: read the body
                last_seen = self.codec.decode(blob).last_seen
            if isinstance(last_seen, bool) or not isinstance(last_seen, int | float):
                raise SnapshotRefused("corrupt", f"header last_seen is {last_seen!r}")
            if not -1e300 < last_seen < 1e300:  # NaN, infinite, or an int no float holds
                raise SnapshotRefused("corrupt", f"header last_seen is {last_seen!r:.40}")
        except SnapshotRefused as refused:
            self._refuse(entity, refused)
            return False
        self.cold.put(entity, partition, blob, float(last_seen))
        self._advance(partition, float(last_seen), entity)
        return True

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget the entities of partitions this process no longer owns."""
        for entity in [e for e, s in self._live.items() if s.partition in partitions]:
            state = self._live.pop(entity)
            self._dirty.discard(entity)
            self._stale.discard(entity)
            self._indexed.pop(entity, None)
            if self.on_leave is not None:
                self.on_leave(state)
        self._unsaved = {e: v for e, v in self._unsaved.items() if v[0] not in partitions}
        self.cold.drop_partitions(partitions)
        for partition in partitions:  # its watermark comes back with its restored states
            self._newest.pop(partition, None)
            self._front.pop(partition, None)
            self._heaped -= len(self._by_time.pop(partition, ()))


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
