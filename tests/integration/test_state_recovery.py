"""State that survives: SIGKILL at several points, and a second process taking over.

The bar: with a deterministic detector and a fixed input, the set of alert ids of an
interrupted run equals the set of an uninterrupted one (duplicates only as repeats of
the same id). The runs read the same events topic, each with its own consumer group,
alerts topic and changelog.
"""

from __future__ import annotations

import json
import pickle
import signal
import struct
import subprocess
import zlib
from typing import Any

import pytest
from kafkastack import Stack, metrics_port, scrape, stop

COUNT = 24_000


def _run_env(stack: Stack, name: str) -> dict[str, str]:
    return {
        "ALERTING__SERVICE__GROUP_ID": f"{stack.group}-{name}",
        "ALERTING__TOPICS__ALERTS": f"{stack.alerts}-{name}",
        "ALERTING__TOPICS__CHANGELOG": f"{stack.events}.{name}.state",
        "ALERTING__SERVICE__MAX_BATCH_RECORDS": "500",
    }


def _committed(stack: Stack, name: str) -> int:
    group = stack.group
    stack.group = f"{group}-{name}"
    try:
        return sum(stack.committed().values())
    finally:
        stack.group = group


def _alert_ids(stack: Stack, name: str) -> list[str]:
    return [json.loads(r.value)["id"] for r in stack.read_all(f"{stack.alerts}-{name}")]


def _run_to_end(stack: Stack, name: str, log_name: str) -> subprocess.Popen[str]:
    service = stack.start("run", log_name=log_name, **_run_env(stack, name))
    stack.wait_for(lambda: _committed(stack, name) == COUNT, 180, f"{name}: all committed")
    return service


REPLAY = ("replay", "--synthetic", "--count", str(COUNT), "--seed", "21", "--symbols", "12",
          "--anomaly-rate", "0.003", "--no-progress")  # fmt: skip


@pytest.fixture
def replayed(stack: Stack) -> Stack:
    stack.create_topics()
    replay = stack.cli(*REPLAY, "--fast")
    assert replay.returncode == 0, replay.stderr
    return stack


def _live_replay(stack: Stack) -> subprocess.Popen[str]:
    """The same events, published in event time at 3,000/s (8 s), so kills land mid-stream."""
    stack.create_topics()
    return stack.start(*REPLAY, "--events-per-second", "3000", log_name="replay")


def _reference(stack: Stack) -> set[str]:
    service = _run_to_end(stack, "reference", "reference")
    assert stop(service) == 0, stack.log("reference")
    ids = _alert_ids(stack, "reference")
    assert len(ids) >= 20, "the stream must alert enough for the comparison to mean much"
    assert len(set(ids)) == len(ids), "an uninterrupted run publishes each alert once"
    return set(ids)


def test_sigkill_at_several_points_gives_the_same_alert_ids(stack: Stack) -> None:
    replay = _live_replay(stack)
    name = "killed"
    try:
        for i in range(3):
            before = _committed(stack, name)
            service = stack.start("run", log_name=f"{name}{i}", **_run_env(stack, name))
            try:
                stack.wait_for(
                    lambda b=before: _committed(stack, name) > b, 120, f"run {i} to progress"
                )
            finally:
                service.send_signal(signal.SIGKILL)
                service.wait(timeout=10)
            assert _committed(stack, name) < COUNT, f"kill {i} must land mid-stream"
        assert replay.wait(timeout=120) == 0, stack.log("replay")
    finally:
        stop(replay)
    last = _run_to_end(stack, name, f"{name}-last")
    stack.wait_for(lambda: "entity states" in stack.log(f"{name}-last"), 30, "the restore")
    port = metrics_port(stack.log(f"{name}-last"))
    assert port is not None
    exposition = scrape(port)
    assert stop(last) == 0, stack.log(f"{name}-last")
    reference = _reference(stack)

    ids = _alert_ids(stack, name)
    assert set(ids) == reference, (
        f"missing {len(reference - set(ids))}, new {len(set(ids) - reference)}"
    )
    assert "alerting_restore_records_total" in exposition
    restored = _sample(exposition, "alerting_restore_records_total")
    assert restored > 0, "the last run must have restored state from the changelog"


@pytest.mark.slow  # 40 s; the kafka-python kills above run in make test
def test_the_confluent_client_through_a_kill_gives_the_same_alert_ids(stack: Stack) -> None:
    # kafka.client = confluent (librdkafka) for the consume loop: killed mid-stream and
    # restarted (state restored from its changelog), it must alert exactly as an
    # uninterrupted kafka-python run does
    replay = _live_replay(stack)
    name = "confluent"
    env = {**_run_env(stack, name), "ALERTING__KAFKA__CLIENT": "confluent"}
    try:
        first = stack.start("run", log_name=f"{name}-first", **env)
        try:
            stack.wait_for(lambda: _committed(stack, name) > 0, 120, "the first run to progress")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
        assert _committed(stack, name) < COUNT, "the kill must land mid-stream"
        assert replay.wait(timeout=120) == 0, stack.log("replay")
    finally:
        stop(replay)
    last = stack.start("run", log_name=f"{name}-last", **env)
    try:
        stack.wait_for(lambda: _committed(stack, name) == COUNT, 180, "all committed")
        stack.wait_for(lambda: "entity states" in stack.log(f"{name}-last"), 30, "the restore")
    finally:
        assert stop(last) == 0, stack.log(f"{name}-last")
    assert "(client confluent)" in stack.log(f"{name}-last")
    assert "Traceback" not in stack.log(f"{name}-first") + stack.log(f"{name}-last")
    reference = _reference(stack)
    ids = _alert_ids(stack, name)
    assert set(ids) == reference, (
        f"missing {len(reference - set(ids))}, new {len(set(ids) - reference)}"
    )


def test_a_second_process_takes_over_and_the_alerts_are_the_same(stack: Stack) -> None:
    name = "pair"
    first = stack.start("run", log_name="first", **_run_env(stack, name))
    second = stack.start("run", log_name="second", **_run_env(stack, name))
    replay: subprocess.Popen[str] | None = None
    try:
        stack.wait_for(
            lambda: _assigned(stack.log("first")) and _assigned(stack.log("second")),
            60,
            "both processes to get partitions",
        )
        replay = _live_replay(stack)
        stack.wait_for(lambda: _committed(stack, name) >= COUNT * 0.3, 180, "progress")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        assert _committed(stack, name) < COUNT, "the kill must land mid-stream"
        assert replay.wait(timeout=120) == 0, stack.log("replay")
        stack.wait_for(lambda: _committed(stack, name) == COUNT, 180, "the survivor finishes")
    finally:
        if first.poll() is None:
            first.kill()
        if replay is not None:
            stop(replay)
        assert stop(second) == 0, stack.log("second")

    survivor = stack.log("second")
    assert _assigned(survivor, all_four=True), "the survivor took every partition"
    restores = [line for line in survivor.splitlines() if "entity states" in line]
    assert any(" 0 entity states" not in line for line in restores[1:]), survivor
    reference = _reference(stack)
    ids = _alert_ids(stack, name)
    assert set(ids) == reference, (
        f"missing {len(reference - set(ids))}, new {len(set(ids) - reference)}"
    )


def _assigned(log: str, all_four: bool = False) -> bool:
    lines = [line for line in log.splitlines() if "partitions assigned: [" in line]
    if all_four:
        return any("[0, 1, 2, 3]" in line for line in lines)
    return any("partitions assigned: []" not in line for line in lines)


def _sample(exposition: str, name: str) -> Any:
    for line in exposition.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} missing")


def test_state_from_another_detector_configuration_is_refused_not_fatal(stack: Stack) -> None:
    stack.create_topics()
    replay = stack.cli(*REPLAY[:3], "3000", *REPLAY[4:], "--fast")
    assert replay.returncode == 0, replay.stderr
    name = "reconfigured"
    zscore = {"ALERTING__DETECTOR__NAME": "zscore"}
    first = stack.start("run", log_name="first", **_run_env(stack, name), **zscore)
    stack.wait_for(lambda: _committed(stack, name) == 3000, 120, "the first run")
    assert stop(first) == 0
    # same changelog, another configuration: its snapshots must be refused, not crash
    more = stack.cli(*REPLAY[:3], "3000", "--seed", "22", *REPLAY[6:], "--fast")
    assert more.returncode == 0, more.stderr
    env = {**_run_env(stack, name), **zscore, "ALERTING__DETECTOR__PARAMS": '{"window": 64}'}
    second = stack.start("run", log_name="second", **env)
    stack.wait_for(lambda: _committed(stack, name) == 6000, 120, "the second run")
    port = metrics_port(stack.log("second"))
    assert port is not None
    exposition = scrape(port)
    assert stop(second) == 0, stack.log("second")
    log = stack.log("second")
    assert "refused" in log and "config_mismatch" in log, log
    assert "Traceback" not in log
    assert 'alerting_snapshots_refused_total{reason="config_mismatch"}' in exposition


@pytest.mark.slow  # 30 s of real-time replay
def test_same_alerts_byte_for_byte_in_real_time_and_100x_faster(stack: Stack) -> None:
    streams = {}
    for name, pace in (("realtime", ("--speed", "1")), ("fast", ("--speed", "100"))):
        events = f"{stack.events}-{name}"
        env = {**_run_env(stack, name), "ALERTING__TOPICS__EVENTS": events}
        service = stack.start("run", log_name=name, **env)
        replay = stack.start(
            *REPLAY[:3],
            "3000",
            *REPLAY[4:],
            "--events-per-second",
            "300",
            # 2 symbols: 1,500 events each, most of them past their thresholds' grace
            "--symbols",
            "2",
            *pace,
            log_name=f"replay-{name}",
            ALERTING__TOPICS__EVENTS=events,
        )
        try:
            assert replay.wait(timeout=120) == 0, stack.log(f"replay-{name}")
            group = stack.group
            stack.group, stack.events = f"{group}-{name}", events
            try:
                stack.wait_for(lambda: sum(stack.committed().values()) == 3000, 120, name)
            finally:
                stack.group, stack.events = group, events.rsplit("-", 1)[0]
        finally:
            assert stop(service) == 0, stack.log(name)
        records = stack.read_all(f"{stack.alerts}-{name}")
        by_partition: dict[int, list[bytes]] = {}
        for record in sorted(records, key=lambda r: (r.partition, r.offset)):
            by_partition.setdefault(record.partition, []).append(record.value)
        streams[name] = by_partition
    assert streams["realtime"], "the stream must alert"

    # alert ids name the source topic; everything else must be identical byte for byte. An
    # episode's firing_id is an alert id too: compare which alert it names (its source offset)
    def strip(value: bytes, offsets: dict[str, int]) -> bytes:
        alert = json.loads(value)
        alert.pop("id")
        alert["data"]["source"].pop("topic")
        if "firing_id" in alert["data"]:
            alert["data"]["firing_id"] = offsets[alert["data"]["firing_id"]]
        return json.dumps(alert, sort_keys=True).encode()

    def comparable(stream: dict[int, list[bytes]]) -> dict[int, list[bytes]]:
        alerts = [json.loads(v) for vs in stream.values() for v in vs]
        offsets = {a["id"]: a["data"]["source"]["offset"] for a in alerts}
        return {p: [strip(v, offsets) for v in vs] for p, vs in stream.items()}

    assert comparable(streams["realtime"]) == comparable(streams["fast"])


class _RunsACommand:
    """Unpickled, creates ``marker`` (a forged changelog body that runs a shell command)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        import os

        return os.system, (f"touch {self.marker}",)


def _latest_snapshots(stack: Stack, topic: str) -> dict[bytes, Any]:
    latest: dict[bytes, Any] = {}
    for record in stack.read_all(topic):
        latest[record.key] = record
    return latest


def _seen(blob: bytes) -> int:
    """How many events a plain snapshot's state has learned (read as data, never run)."""
    (length,) = struct.unpack_from(">I", blob, 4)
    header = json.loads(blob[8 : 8 + length])
    assert header["body"] == "plain", header
    at = 8 + length
    body = zlib.decompress(blob[at + 1 + blob[at] :])
    return int(json.loads(body)["counts"][0])


def test_forged_changelog_records_run_no_code_and_only_their_entities_start_fresh(
    stack: Stack,
) -> None:
    stack.create_topics()
    first_events = stack.cli(*REPLAY[:3], "3000", *REPLAY[4:], "--fast")
    assert first_events.returncode == 0, first_events.stderr
    name = "forged"
    changelog = f"{stack.events}.{name}.state"
    first = stack.start("run", log_name="first", **_run_env(stack, name))
    stack.wait_for(lambda: _committed(stack, name) == 3000, 120, "the first run")
    assert stop(first) == 0, stack.log("first")

    genuine = _latest_snapshots(stack, changelog)
    assert len(genuine) >= 8, "each symbol has a snapshot"
    victims = sorted(genuine)[:2]  # two real entities whose snapshot is overwritten
    real = genuine[victims[0]].value
    (length,) = struct.unpack_from(">I", real, 4)
    header = json.loads(real[8 : 8 + length])
    marker = stack.workdir / "pwned"
    evil = pickle.dumps(_RunsACommand(str(marker)))

    def envelope(head: dict[str, Any], signature: bytes = b"") -> bytes:
        text = json.dumps(head).encode()
        sig = bytes([len(signature)]) + signature
        return b"ALST" + struct.pack(">I", len(text)) + text + sig + zlib.compress(evil)

    at = 8 + length
    stolen = real[: at + 1 + real[at]] + zlib.compress(evil)  # a real signature, another body
    forged = [
        (victims[0], envelope({**header, "body": "pickle"})),  # copied header, a pickle
        (victims[1], stolen),
        (b"FORGED-PLAIN", envelope(header)),
        (b"FORGED-BARE", evil),
        (b"FORGED-ZLIB", zlib.compress(evil)),
        (b"\xff\xfe-not-utf8", envelope({**header, "body": "pickle"})),
    ]
    producer = stack.producer()
    for key, value in forged:
        partition = genuine[key].partition if key in genuine else 0
        producer.send(changelog, key=key, value=value, partition=partition)
    producer.flush()
    producer.close()

    first_run_end = stack.log_end(stack.events)
    more = stack.cli(*REPLAY[:3], "3000", "--seed", "22", *REPLAY[6:], "--fast")
    assert more.returncode == 0, more.stderr
    second = stack.start("run", log_name="second", **_run_env(stack, name))
    stack.wait_for(lambda: _committed(stack, name) == 6000, 120, "the second run")
    port = metrics_port(stack.log("second"))
    assert port is not None
    exposition = scrape(port)
    assert stop(second) == 0, stack.log("second")
    log = stack.log("second")
    assert not marker.exists(), "a forged changelog record ran a command"
    assert "Traceback" not in log, log
    refused = {
        reason: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("alerting_snapshots_refused_total{")
        for reason in [line.split('reason="', 1)[1].split('"', 1)[0]]
    }
    assert refused.get("unsigned") == 2, refused  # the copied headers without a signature
    assert refused.get("bad_signature") == 1, refused  # the stolen signature
    assert refused.get("not_a_snapshot") == 2, refused  # the bare and the compressed pickles
    assert refused.get("bad_key") == 1, refused

    # per entity: how many events each run gave it (the events topic, in order)
    counts: dict[bytes, list[int]] = {}
    for record in stack.read_all(stack.events):
        run = 0 if record.offset < first_run_end[record.partition] else 1
        counts.setdefault(record.key, [0, 0])[run] += 1
    final = _latest_snapshots(stack, changelog)
    for key, (before, after) in counts.items():
        learned = _seen(final[key].value)
        if key in victims:
            assert learned == after, (key, learned, before, after)  # forged: started fresh
        else:
            assert learned == before + after, (key, learned, before, after)  # kept its state
