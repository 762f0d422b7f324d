"""Forged changelog records: nothing read from the changelog runs code.

Each forgery is what someone who can write the changelog topic could put there: a real
snapshot's header with a pickle that runs a command in place of its body (as plain and
as pickled body), a bare pickle, a zlib-compressed pickle, a record signed with another
key, a key that is not an entity. The service restores them among genuine snapshots and
then processes an event of every entity: no command runs, the genuine entities carry on
from their state, the forged ones start fresh, and every forgery is counted by reason.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import struct
import zlib
from pathlib import Path

import pytest

from alerting.alerts import SourcePosition
from alerting.events import Metric
from alerting.processor import Processor
from alerting.settings import Settings
from alerting.state import MAGIC, SnapshotCodec
from alerting.wiring import build_processor

KEY = "a changelog signing key for the tests"
OTHER_KEY = b"somebody else's signing key, 32b"
TOPIC = "market.events"
START = 1_700_000_000.0
GENUINE = ["AAPL", "MSFT", "NVDA"]


class RunsACommand:
    """A pickle that, when loaded, runs a shell command (here: creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def processor(**state: object) -> Processor:
    # the defaults otherwise: sad, calibrated tails, ADWIN drift, the policy
    return build_processor(Settings.model_validate({"state": state}))


def signed(**extra: object) -> Processor:
    return processor(signing_key=KEY, **extra)


def feed(p: Processor, entity: str, n: int, offset: int = 0) -> None:
    for i in range(n):
        event = Metric(entity=entity, values={"load": 10.0 + (i % 7) * 0.1}, time=START + i)
        p.process(event, SourcePosition(TOPIC, 0, offset + i))
    p.end_batch()


def envelope(header: dict[str, object], payload: bytes, signature: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return (
        MAGIC
        + struct.pack(">I", len(head))
        + head
        + bytes([len(signature)])
        + signature
        + zlib.compress(payload)
    )


def other_key_signature(header: dict[str, object], payload: bytes) -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    mac = hmac.new(OTHER_KEY, MAGIC + struct.pack(">I", len(head)) + head, hashlib.sha256)
    mac.update(zlib.compress(payload))
    return mac.digest()


def forgeries(header: dict[str, object], evil: bytes) -> dict[str, tuple[bytes, bytes]]:
    """entity → (changelog key, value): every way of smuggling ``evil`` (a pickle)."""
    as_pickle = {**header, "body": "pickle"}
    return {
        "COPIED_HEADER_PLAIN": (b"COPIED_HEADER_PLAIN", envelope(header, evil)),
        "COPIED_HEADER_PICKLE": (b"COPIED_HEADER_PICKLE", envelope(as_pickle, evil)),
        "BARE_PICKLE": (b"BARE_PICKLE", evil),
        "ZLIB_PICKLE": (b"ZLIB_PICKLE", zlib.compress(evil)),
        "OTHER_KEY": (
            b"OTHER_KEY",
            envelope(as_pickle, evil, other_key_signature(as_pickle, evil)),
        ),
        # a real snapshot's signature on another body: the HMAC covers the body too
        "STOLEN_SIGNATURE": (b"STOLEN_SIGNATURE", b""),
        "BAD_KEY": (b"\xff\xfeBAD_KEY", envelope(as_pickle, evil)),
    }


def genuine_snapshots(p: Processor) -> dict[str, tuple[int, bytes]]:
    for n, entity in enumerate(GENUINE):
        feed(p, entity, 40, offset=1000 * n)
    return {e: (part, blob) for e, part, blob in p.store.snapshots()}


def stolen(real: bytes, evil: bytes) -> bytes:
    """``real``'s header and signature, with ``evil`` for its body."""
    (length,) = struct.unpack_from(">I", real, 4)
    at = 8 + length
    size = real[at]
    return real[: at + 1 + size] + zlib.compress(evil)


@pytest.mark.parametrize("signing", [True, False], ids=["signed", "unsigned-plain-only"])
def test_forged_records_run_no_code_and_only_the_forged_entities_start_fresh(
    tmp_path: Path, signing: bool
) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps(RunsACommand(marker))
    make = signed if signing else processor
    first = make()
    snapshots = genuine_snapshots(first)
    real = snapshots["AAPL"][1]
    header = SnapshotCodec.read_header(real)
    assert header["body"] == "plain"  # the default detectors' state is plain data
    forged = forgeries(header, evil)
    forged["STOLEN_SIGNATURE"] = (b"STOLEN_SIGNATURE", stolen(real, evil))

    second = make()
    for entity, (partition, blob) in snapshots.items():
        assert second.store.restore_record(entity.encode(), partition, blob)
    accepted = {
        name: second.store.restore_record(key, 0, value) for name, (key, value) in forged.items()
    }
    for n, entity in enumerate([*GENUINE, *forged]):
        feed(second, entity, 1, offset=1000 * n + 40)
    assert not marker.exists(), "a forged changelog record ran a command"
    # genuine entities went on from their 40 events, the forged ones started fresh
    for entity in GENUINE:
        assert second.store.get(entity, 0, START).seen == 41
    for entity in forged:
        if entity != "BAD_KEY":
            assert second.store.get(entity, 0, START).seen == 1, entity
    refused = dict(second.store.refused)
    if signing:
        assert not any(accepted.values()), accepted
        assert refused == {
            "unsigned": 2,  # the copied header (as plain, as pickle) without a signature
            "bad_signature": 2,  # another key's signature, a real one on another body
            "not_a_snapshot": 2,  # bare and compressed pickles
            "bad_key": 1,
        }
    else:
        # without a key plain snapshots are read (they cannot run code): the copied
        # plain header passes the check and its body is refused when read, as corrupt
        assert refused.pop("corrupt") == 2  # the plain-header pickle and the stolen signature
        assert refused == {"unsigned": 2, "not_a_snapshot": 2, "bad_key": 1}
    assert not marker.exists()


def test_a_plain_body_is_never_unpickled_even_when_it_holds_a_pickle(tmp_path: Path) -> None:
    # the header says plain: the body is read as JSON into fresh objects, whatever it is
    marker = tmp_path / "pwned"
    p = processor()
    blob = genuine_snapshots(p)["MSFT"][1]
    forged = stolen(blob, pickle.dumps(RunsACommand(marker)))
    fresh = processor()
    assert fresh.store.restore_record(b"MSFT", 0, forged)  # plain, unsigned: checked on load
    feed(fresh, "MSFT", 1, offset=99)
    assert not marker.exists()
    assert fresh.store.refused["corrupt"] == 1
    assert fresh.store.get("MSFT", 0, START).seen == 1


def test_pickled_state_is_read_only_when_signed_with_the_key(tmp_path: Path) -> None:
    # River's tree models are still pickled: signed with the key, they come back
    tree = {"name": "hst", "params": {"n_trees": 3, "height": 4, "window_size": 50}}
    settings_extra = {"signing_key": KEY}
    first = Settings.model_validate({"state": settings_extra, "detector": tree})
    a = build_processor(first)
    feed(a, "AAPL", 60)
    ((entity, partition, blob),) = a.store.snapshots()
    assert SnapshotCodec.read_header(blob)["body"] == "pickle"
    b = build_processor(first)
    assert b.store.restore_record(entity.encode(), partition, blob)
    feed(b, "AAPL", 1, offset=60)
    assert b.store.get("AAPL", 0, START).seen == 61
    # the same pickle without the key, or under another key, is refused
    for state in ({}, {"signing_key": "another key of at least 16"}):
        c = build_processor(Settings.model_validate({"state": state, "detector": tree}))
        assert not c.store.restore_record(entity.encode(), partition, blob)
        assert set(c.store.refused) <= {"unsigned", "bad_signature"}, c.store.refused
    # trusting the changelog explicitly reads an unsigned pickle
    trusted = Settings.model_validate({"state": {"trust_changelog": True}, "detector": tree})
    unsigned = build_processor(Settings.model_validate({"detector": tree}))
    feed(unsigned, "AAPL", 60)
    ((_, _, plain_blob),) = unsigned.store.snapshots()
    d = build_processor(trusted)
    assert d.store.restore_record(b"AAPL", 0, plain_blob)
    feed(d, "AAPL", 1, offset=60)
    assert d.store.get("AAPL", 0, START).seen == 61


def test_the_harness_sees_code_run_when_the_changelog_is_explicitly_trusted(
    tmp_path: Path,
) -> None:
    # why a real cluster needs the key: state.trust_changelog reads unsigned pickles, and
    # the forged one then runs its command (this also shows the marker would catch it)
    marker = tmp_path / "pwned"
    first = processor()
    header = SnapshotCodec.read_header(genuine_snapshots(first)["AAPL"][1])
    key, value = forgeries(header, pickle.dumps(RunsACommand(marker)))["COPIED_HEADER_PICKLE"]
    trusting = processor(trust_changelog=True)
    assert trusting.store.restore_record(key, 0, value)
    feed(trusting, key.decode(), 1)
    assert marker.exists()
    assert trusting.store.refused["corrupt"] == 1  # not a state: refused after the fact
