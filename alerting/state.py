"""Per-entity state: bounded in memory, snapshotted to a changelog, restored after a crash.

An entity's :class:`EntityState` holds everything decisions depend on (feature memory,
the detector, the threshold, the policy's memory of open alert episodes and feedback
penalties, running feature statistics for explanations, how many events it has seen, and
the position of the last source record it includes). :class:`EntityStore` keeps at most
``max_live`` of them as live objects (least recently used first out) and moves entities
idle for ``idle_ttl_s`` of *event time* out too. An entity moved out is serialised into
a :class:`ColdStore` (on disk in the service) and comes back exactly as it was.

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
import hmac
import json
import logging
import pickle
import platform
import sqlite3
import struct
import zlib
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from alerting.detectors.base import Detector
from alerting.drift import Challenger
from alerting.explain import FeatureStats
from alerting.features import FeatureState
from alerting.plain import NotPlain, PlainError, integer, mapping, number, sequence
from alerting.policy import PolicyState

log = logging.getLogger(__name__)

#: the longest entity key the events schema admits (a longer changelog key is no entity)
MAX_ENTITY_CHARS = 200

MAGIC = b"ALST"
FORMAT = 2
_LEN = struct.Struct(">I")
#: the most a snapshot may inflate to (a forged one could be a zlib bomb)
MAX_STATE_BYTES = 16 * 1024 * 1024


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


class SnapshotRefused(Exception):
    """A snapshot that cannot be used; ``reason`` is a short metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
            raise SnapshotRefused("corrupt", "the compressed state is cut short or followed by more")
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
            state = self.codec.decode(blob, vetted=True)  # checked when it entered the store
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
