"""Fuzz suite of issue 12: adversarial records on the real broker, good records around them.

Over 10,000 seeded adversarial records of some 25 families, one poison pill per finding
about input records, and about 5,000 good records (some with odd keys, headers, times and
names) go to the events topic; one ``alerting run`` consumes them all. The service must
survive (alive, exits 0 when stopped, no traceback), every adversarial record must be in
the dead-letter topic exactly once with a reason and its key, value and headers kept, and
every good record must be learned by its entity's model (the processed counter, and each
entity's event count in its last changelog snapshot).

The run happens once per module; each family is its own test case, so the report says
which ones hold. ``pytest -s`` prints the per-family table of outcomes and reasons; the
table is also written as JSON next to the service log (path printed).

Records that stop or kill a consumer on their own (past the size limit, a header name
that is not UTF-8) get their own service run, so that they cannot hide the others.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import subprocess
import time
import uuid
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fuzz_records import (
    DEAD_LETTER,
    FAMILIES,
    GOOD_FAMILIES,
    ID_HEADER,
    PILLS,
    PROCESSED,
    FuzzRecord,
    generate,
    oversized_pills,
)
from kafka import KafkaProducer
from kafkastack import Broker, Stack, metrics_port, scrape, stop

from alerting.events import Trade, encode

REASON = "x-dlq-reason"
SOURCE_PARTITION = "x-dlq-source-partition"
SOURCE_OFFSET = "x-dlq-source-offset"

#: the service must have consumed everything within this (it takes ~20 s here)
CONSUME_TIMEOUT_S = 150

_ADVERSARIAL_ID = re.compile(rb"^FZ(\d+)-")


# ---------------------------------------------------------------------------------------------
# helpers


def fast_producer(stack: Stack) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=stack.bootstrap,
        acks="all",
        linger_ms=20,
        batch_size=1024 * 1024,
        max_request_size=64 * 1024 * 1024,
    )


def produce(stack: Stack, records: list[FuzzRecord]) -> dict[int, tuple[int, int]]:
    """Send ``records`` in order; {record id: (partition, offset)} as acknowledged."""
    producer = fast_producer(stack)
    try:
        futures = [
            (
                r.id,
                producer.send(
                    stack.events,
                    key=r.key,
                    value=r.value,
                    headers=r.all_headers(),
                    partition=r.partition,
                ),
            )
            for r in records
        ]
        producer.flush(timeout=120)
        out = {}
        for rid, future in futures:
            meta = future.get(timeout=30)
            out[rid] = (meta.partition, meta.offset)
        return out
    finally:
        producer.close(timeout=10)


def last_header(headers: list[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The last header named ``name`` (the service appends its own after the original ones,
    so a forged ``x-dlq-*`` header of the input comes first)."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def snapshot_seen(blob: bytes | None) -> int | None:
    """Events seen by the entity in a changelog snapshot (plain body), else None."""
    if not blob or blob[:4] != b"ALST":
        return None
    try:
        (length,) = struct.unpack_from(">I", blob, 4)
        at = 8 + length
        body = blob[at + 1 + blob[at] :]
        seen = json.loads(zlib.decompress(body))["counts"][0]
        return int(seen)
    except (ValueError, KeyError, IndexError, TypeError, zlib.error, struct.error):
        return None


def is_stub(letter: Any, value: bytes | None) -> bool:
    """Whether ``letter`` is the stub of a record too large to keep whole: small, and
    naming the original's size and SHA-256 (in a header or its value)."""
    if value is None or len(letter.value or b"") >= min(len(value), 1024 * 1024):
        return False
    shown = b" ".join([letter.value or b"", *(v or b"" for _, v in letter.headers)])
    return str(len(value)).encode() in shown and hashlib.sha256(value).hexdigest().encode() in shown


def exposition_values(exposition: str, name: str) -> dict[str, float]:
    """{label value: sample} of a one-label counter (the empty label for none)."""
    out: dict[str, float] = {}
    for line in exposition.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            label = line.split('"')[1] if "{" in line else ""
            out[label] = float(line.rsplit(" ", 1)[1])
    return out


def wait_consumed(stack: Stack, ends: dict[int, int], service: Any, timeout_s: float) -> bool:
    """True when the group committed ``ends``; False if the service died or time ran out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            return False
        committed = stack.committed()
        if all(committed.get(p, 0) >= end for p, end in ends.items()):
            return True
        time.sleep(0.5)
    return False


def new_stack(broker: Broker, workdir: Path, partitions: int = 4) -> Stack:
    tag = uuid.uuid4().hex[:8]
    return Stack(
        broker,
        events=f"fuzz-events-{tag}",
        alerts=f"fuzz-alerts-{tag}",
        dead_letters=f"fuzz-dlq-{tag}",
        group=f"fuzz-group-{tag}",
        partitions=partitions,
        workdir=workdir,
    )


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------------
# the bulk run


@dataclass
class FuzzRun:
    records: dict[int, FuzzRecord]
    positions: dict[tuple[int, int], int]  # (partition, offset) -> record id
    consumed: bool  # the group committed every partition's end
    alive: bool  # the service was running when the checks were done
    exit_code: int | None
    log: str
    produce_s: float
    consume_s: float
    exposition: str
    #: record id -> the dead letters carrying it
    letters: dict[int, list[Any]] = field(default_factory=lambda: defaultdict(list))
    #: dead letters that match no produced record
    strays: list[Any] = field(default_factory=list)
    #: entity -> events seen, from the last changelog snapshot of each entity
    seen: dict[str, int | None] = field(default_factory=dict)
    #: entities whose last changelog record is a tombstone (their state was forgotten)
    tombstoned: set[str] = field(default_factory=set)
    #: adversarial record ids whose FZ<id>- entity has model state (it was processed)
    processed_adversarial: set[int] = field(default_factory=set)
    table: dict[str, dict[str, Any]] = field(default_factory=dict)

    def outcome(self, record: FuzzRecord) -> str:
        letters = self.letters.get(record.id, [])
        if len(letters) > 1:
            return "dead_lettered_twice"
        if letters:
            reason = last_header(letters[0].headers, REASON)
            return "dead_lettered" if reason else "dead_lettered_without_reason"
        if record.expect == DEAD_LETTER:
            return "processed" if record.id in self.processed_adversarial else "lost"
        return "not_dead_lettered"  # a good record: its entity's count says if it was learned

    def of(self, family: str) -> list[FuzzRecord]:
        return [r for r in self.records.values() if r.family == family]


def build_table(run: FuzzRun) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for record in run.records.values():
        row = table.setdefault(
            record.family,
            {"expect": record.expect, "produced": 0, "outcomes": Counter(), "reasons": Counter()},
        )
        row["produced"] += 1
        row["outcomes"][run.outcome(record)] += 1
        for letter in run.letters.get(record.id, [])[:1]:
            reason = last_header(letter.headers, REASON)
            row["reasons"][(reason or b"").decode(errors="replace")] += 1
    for row in table.values():
        want = "dead_lettered" if row["expect"] == DEAD_LETTER else "not_dead_lettered"
        row["ok"] = dict(row["outcomes"]) == {want: row["produced"]}
    return table


def print_table(run: FuzzRun) -> str:
    lines = [
        f"fuzz run: {len(run.records)} records produced in {run.produce_s:.1f}s, "
        f"consumed in {run.consume_s:.1f}s (all committed: {run.consumed}), "
        f"service alive: {run.alive}, exit code: {run.exit_code}",
        f"{'family':34} {'expect':11} {'n':>5}  {'ok':3} outcomes | reasons",
    ]
    for family, row in sorted(run.table.items(), key=lambda kv: (kv[1]["expect"], kv[0])):
        outcomes = ", ".join(f"{k} {v}" for k, v in row["outcomes"].most_common())
        reasons = ", ".join(f"{k} {v}" for k, v in row["reasons"].most_common())
        lines.append(
            f"{family:34} {row['expect']:11} {row['produced']:>5}  "
            f"{'yes' if row['ok'] else 'NO':3} {outcomes} | {reasons}"
        )
    text = "\n".join(lines)
    print("\n" + text)
    return text


@pytest.fixture(scope="module")
def fuzz(broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> FuzzRun:
    workdir = tmp_path_factory.mktemp("fuzz")
    stack = new_stack(broker, workdir)
    stack.create_topics()
    records = generate(partitions=stack.partitions)
    started = time.monotonic()
    placed = produce(stack, records)
    produce_s = time.monotonic() - started
    ends: dict[int, int] = {}
    for partition, offset in placed.values():
        ends[partition] = max(ends.get(partition, 0), offset + 1)

    started = time.monotonic()
    service = stack.start("run")
    exposition = ""
    try:
        consumed = wait_consumed(stack, ends, service, CONSUME_TIMEOUT_S)
        consume_s = time.monotonic() - started
        alive = service.poll() is None
        port = metrics_port(stack.log())
        if alive and port is not None:
            exposition = scrape(port)
    finally:
        exit_code = stop(service)

    run = FuzzRun(
        records={r.id: r for r in records},
        positions={pos: rid for rid, pos in placed.items()},
        consumed=consumed,
        alive=alive,
        exit_code=exit_code,
        log=stack.log(),
        produce_s=produce_s,
        consume_s=consume_s,
        exposition=exposition,
    )
    for letter in stack.read_all(stack.dead_letters, idle_s=3.0, timeout_s=90):
        partition = last_header(letter.headers, SOURCE_PARTITION)
        offset = last_header(letter.headers, SOURCE_OFFSET)
        try:
            rid = run.positions[(int(partition or b"-1"), int(offset or b"-1"))]
        except (KeyError, ValueError):
            run.strays.append(letter)
            continue
        run.letters[rid].append(letter)
    for snapshot in stack.read_all(f"{stack.events}.state", idle_s=2.0, timeout_s=60):
        key = snapshot.key or b""
        match = _ADVERSARIAL_ID.match(key)
        if match:
            run.processed_adversarial.add(int(match.group(1)))
            continue
        entity = key.decode(errors="replace")
        run.seen[entity] = snapshot_seen(snapshot.value)
        if snapshot.value is None:
            run.tombstoned.add(entity)
        else:
            run.tombstoned.discard(entity)
    run.table = build_table(run)
    text = print_table(run)
    report = workdir / "fuzz_table.json"
    report.write_text(json.dumps(run.table, indent=2, default=dict))
    (workdir / "fuzz_table.txt").write_text(text)
    print(f"fuzz table: {report}; service log: {workdir / 'service.log'}")
    return run


def test_the_fuzz_is_big_enough(fuzz: FuzzRun) -> None:
    adversarial = [r for r in fuzz.records.values() if r.expect == DEAD_LETTER]
    good = [r for r in fuzz.records.values() if r.expect == PROCESSED]
    assert len(adversarial) >= 10_000
    assert len(good) >= 2_000
    assert {r.family for r in adversarial} == set(FAMILIES) | set(PILLS)


def test_the_service_survives_and_consumes_everything(fuzz: FuzzRun) -> None:
    assert "Traceback" not in fuzz.log, tail(fuzz.log[fuzz.log.find("Traceback") :], 60)
    assert fuzz.alive, f"the service died (exit {fuzz.exit_code}):\n{tail(fuzz.log)}"
    assert fuzz.consumed, f"not every record was consumed and committed:\n{tail(fuzz.log)}"
    assert fuzz.exit_code == 0, tail(fuzz.log)


def test_every_adversarial_record_is_dead_lettered_once_with_a_reason(fuzz: FuzzRun) -> None:
    wrong = {
        family: dict(row["outcomes"])
        for family, row in fuzz.table.items()
        if row["expect"] == DEAD_LETTER and not row["ok"]
    }
    assert not wrong, json.dumps(wrong, indent=1)
    assert not fuzz.strays, f"{len(fuzz.strays)} dead letters match no adversarial record"


def test_dead_letters_keep_key_value_and_headers(fuzz: FuzzRun) -> None:
    broken = []
    for rid, letters in fuzz.letters.items():
        record, letter = fuzz.records[rid], letters[0]
        original = record.all_headers()
        kept = [(k, v if v is not None else b"") for k, v in letter.headers[: len(original)]]
        tagged = last_header(letter.headers, ID_HEADER) == str(rid).encode()
        value_kept = letter.value == record.value or is_stub(letter, record.value)
        same = letter.key == record.key and value_kept and kept == original
        if not (same and tagged):
            broken.append((record.family, rid))
    assert not broken, f"{len(broken)} dead letters changed the record, e.g. {broken[:10]}"


def test_good_records_are_all_processed(fuzz: FuzzRun) -> None:
    good = [r for r in fuzz.records.values() if r.expect == PROCESSED]
    dead = Counter(r.family for r in good if r.id in fuzz.letters)
    assert not dead, f"good records dead-lettered: {dict(dead)}"
    processed = sum(exposition_values(fuzz.exposition, "alerting_events_processed_total").values())
    expected_per_entity = Counter(r.entity for r in good)
    counted = {e: fuzz.seen.get(e) for e in expected_per_entity}
    differ = {e: (n, counted[e]) for e, n in expected_per_entity.items() if counted[e] != n}
    gone = sorted(set(differ) & fuzz.tombstoned)
    assert not differ, (
        f"events learned per entity (sent, learned) differ for {len(differ)} entities: "
        f"{dict(list(differ.items())[:5])}; last changelog record a tombstone for "
        f"{len(gone)} of them"
    )
    assert processed == len(good), (
        f"alerting_events_processed_total is {processed}, {len(good)} good records were sent "
        f"(adversarial records processed: {len(fuzz.processed_adversarial)})"
    )


def test_metrics_count_every_record(fuzz: FuzzRun) -> None:
    invalid = exposition_values(fuzz.exposition, "alerting_events_invalid_total")
    consumed = exposition_values(fuzz.exposition, "alerting_events_consumed_total")
    adversarial = sum(1 for r in fuzz.records.values() if r.expect == DEAD_LETTER)
    assert sum(consumed.values()) == len(fuzz.records)
    assert invalid.get("processing_error", 0) == 0, "processing raised for some records"
    assert sum(invalid.values()) == adversarial, json.dumps(invalid)


@pytest.mark.parametrize("family", [*FAMILIES, *PILLS, *GOOD_FAMILIES])
def test_family(fuzz: FuzzRun, family: str) -> None:
    row = fuzz.table[family]
    if row["expect"] == PROCESSED:  # learned: checked per entity in the test above
        assert dict(row["outcomes"]) == {"not_dead_lettered": row["produced"]}
        return
    examples = [
        (r.id, fuzz.outcome(r), (r.value or b"")[:120])
        for r in fuzz.of(family)
        if fuzz.outcome(r) != "dead_lettered"
    ]
    assert not examples, (
        f"{len(examples)} of {row['produced']} {family} records were not dead-lettered once "
        f"with a reason: {dict(row['outcomes'])}; e.g. {examples[:3]}"
    )


# ---------------------------------------------------------------------------------------------
# records that would stop the bulk run: each gets its own service


def _good_trades(symbol: str, n: int, start: int) -> list[bytes]:
    return [
        encode(Trade(symbol=symbol, price=100 + (i % 7) * 0.01, size=100, time=1_704_067_200 + i))
        for i in range(start, start + n)
    ]


def _run_single_partition(
    stack: Stack,
    sends: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    timeout_s: float,
    flush_after: frozenset[int] = frozenset(),
    **env: str,
) -> tuple[bool, bool, int | None, str, str, list[Any], list[tuple[int, int]]]:
    """Produce ``sends`` (key, value, headers) to one partition, run the service until it
    committed them all (or died, or ``timeout_s``); (consumed, alive, exit code, log,
    metrics, dead letters, (partition, offset) of each send)."""
    stack.create_topics()
    producer = fast_producer(stack)
    try:
        futures = []
        for index, (k, v, h) in enumerate(sends):
            futures.append(producer.send(stack.events, key=k, value=v, headers=h, partition=0))
            if index in flush_after:  # a record batch ends here
                producer.flush(timeout=60)
        producer.flush(timeout=60)
        placed = [(f.get(timeout=30).partition, f.get(timeout=30).offset) for f in futures]
    finally:
        producer.close(timeout=10)
    service = stack.start("run", **env)
    exposition = ""
    try:
        consumed = wait_consumed(stack, {0: placed[-1][1] + 1}, service, timeout_s)
        alive = service.poll() is None
        port = metrics_port(stack.log())
        if alive and port is not None:
            exposition = scrape(port)
    finally:
        try:
            code: int | None = stop(service, timeout=10)
        except subprocess.TimeoutExpired:  # killed after 10 s
            code = None
    try:
        letters = stack.read_all(stack.dead_letters, idle_s=2.0, timeout_s=30)
    except Exception as exc:  # the reader itself may choke on what the service wrote
        pytest.fail(f"reading the dead-letter topic failed: {exc!r}\n{tail(stack.log())}")
    return consumed, alive, code, stack.log(), exposition, letters, placed


@pytest.mark.slow  # test_dead_letters.py's oversized record (with a restart) is in make test
def test_oversized_garbage_is_dead_lettered_as_a_stub(broker: Broker, tmp_path: Path) -> None:
    """Issue 12: a ~16.7 MB garbage record must not kill the service; its dead letter is a
    stub with the key, headers, size, hash and reason (the value cannot be kept whole)."""
    stack = new_stack(broker, tmp_path, partitions=1)
    pills = oversized_pills()
    sends: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    good = 0
    for i, (name, value) in enumerate(pills):
        sends += [(b"OVR", v, []) for v in _good_trades("OVR", 100, i * 100)]
        sends.append((b"\xffbig-key", value, [("fuzz-family", name.encode()), ("t", b"\xff")]))
        good += 100
    sends += [(b"OVR", v, []) for v in _good_trades("OVR", 100, len(pills) * 100)]
    good += 100
    consumed, alive, code, log, exposition, letters, placed = _run_single_partition(
        stack, sends, 45
    )
    print(f"\noversized: consumed {consumed}, alive {alive}, exit {code}, {len(letters)} letters")
    assert "Traceback" not in log, tail(log[log.find("Traceback") :], 30)
    assert alive and consumed, tail(log)
    assert code == 0, f"exit code {code} (None: did not stop within 10 s of SIGTERM)"
    pill_at = [placed[i] for i, s in enumerate(sends) if s[0] == b"\xffbig-key"]
    by_offset = {int(last_header(x.headers, SOURCE_OFFSET) or b"-1"): x for x in letters}
    assert sorted(by_offset) == [o for _, o in pill_at] and len(letters) == len(pills)
    for (name, value), (_, offset) in zip(pills, pill_at, strict=True):
        letter = by_offset[offset]
        headers = dict(letter.headers)
        assert last_header(letter.headers, REASON), name
        assert letter.key == b"\xffbig-key", name
        assert headers.get("fuzz-family") == name.encode() and headers.get("t") == b"\xff", name
        assert is_stub(letter, value), f"{name}: not a stub with the size and SHA-256"
    processed = sum(exposition_values(exposition, "alerting_events_processed_total").values())
    assert processed == good


class _RawName(str):
    """A header name kafka-python sends as the raw bytes given (one that is not UTF-8)."""

    raw: bytes

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


@pytest.mark.parametrize("client", ["kafka-python", "confluent"])
def test_a_header_name_that_is_not_utf8_is_dead_lettered_and_skipped(
    broker: Broker, tmp_path: Path, client: str
) -> None:
    """The protocol allows any bytes in a header name; the clients decode names as UTF-8
    (kafka-python then polled that partition forever, blocked, and ignored SIGTERM;
    confluent-kafka lost the rest of the batch). The record goes to the dead-letter topic
    as unreadable, the records after it are processed. (kafka-python reads no further in
    the record batch that holds it: the unreadable record ends its batch here.)"""
    stack = new_stack(broker, tmp_path, partitions=1)
    name = _RawName("raw")
    name.raw = b"\xff\xfe-name"
    sends: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    sends += [(b"HDR", v, []) for v in _good_trades("HDR", 100, 0)]
    sends.append((b"HDR", _good_trades("HDR", 1, 100)[0], [(name, b"v")]))
    sends += [(b"HDR", v, []) for v in _good_trades("HDR", 100, 101)]
    consumed, alive, code, log, exposition, letters, placed = _run_single_partition(
        stack, sends, 60, frozenset({99, 100}), ALERTING__KAFKA__CLIENT=client
    )
    assert "Traceback" not in log, tail(log[log.find("Traceback") :], 30)
    assert alive and consumed, tail(log)
    assert code == 0, f"exit code {code} (None: did not stop within 10 s of SIGTERM)"
    assert len(letters) == 1, [dict(x.headers) for x in letters]
    assert last_header(letters[0].headers, REASON) == b"unreadable"
    assert int(last_header(letters[0].headers, SOURCE_OFFSET) or b"-1") == placed[100][1]
    processed = sum(exposition_values(exposition, "alerting_events_processed_total").values())
    assert processed == 200
    invalid = exposition_values(exposition, "alerting_events_invalid_total")
    assert sum(invalid.values()) == 1, invalid
