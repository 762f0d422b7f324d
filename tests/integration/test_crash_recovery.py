"""Kill the service with SIGKILL mid-stream, start it again: no input event is left unprocessed."""

from __future__ import annotations

import signal

from kafkastack import Stack, metrics_port, scrape, stop

COUNT = 60_000


def _consumed(exposition: str) -> float:
    for line in exposition.splitlines():
        if line.startswith("alerting_events_consumed_total "):
            return float(line.split()[1])
    raise AssertionError("alerting_events_consumed_total missing")


def test_sigkill_mid_stream_then_restart_processes_every_event(stack: Stack) -> None:
    stack.create_topics()
    replay = stack.cli(
        "replay", "--synthetic", "--count", str(COUNT), "--seed", "3", "--fast", "--no-progress"
    )
    assert replay.returncode == 0, replay.stderr
    ends = stack.log_end(stack.events)
    assert sum(ends.values()) == COUNT

    small_batches = {"ALERTING__SERVICE__MAX_BATCH_RECORDS": "200"}
    first = stack.start("run", log_name="first", **small_batches)
    try:
        stack.wait_for(lambda: sum(stack.committed().values()) > 0, 60, "a first commit")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    at_kill = stack.committed()
    done_at_kill = sum(at_kill.values())
    assert 0 < done_at_kill < COUNT, "the kill must land mid-stream"
    alerts_before = len(stack.read_all(stack.alerts, idle_s=0.5))

    second = stack.start("run", log_name="second")
    try:
        stack.wait_for(lambda: stack.committed() == ends, 120, "every event committed")
        port = metrics_port(stack.log("second"))
        assert port is not None, stack.log("second")
        consumed_by_second = _consumed(scrape(port))
    finally:
        assert stop(second) == 0, stack.log("second")

    # the second run read exactly what the first had not committed: nothing skipped
    assert consumed_by_second == COUNT - done_at_kill
    assert stack.committed() == ends
    # and it kept alerting from where the first stopped
    assert len(stack.read_all(stack.alerts, idle_s=0.5)) > alerts_before
