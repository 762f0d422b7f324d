"""The broker goes away and comes back: the service rides it out and loses no event."""

from __future__ import annotations

import time

import pytest
from kafkastack import Stack, metrics_port, scrape, stop

COUNT = 20_000


def test_broker_pause_and_resume_loses_nothing(stack: Stack) -> None:
    embedded = stack.broker.embedded
    if embedded is None:
        pytest.skip("pausing needs the embedded broker; a configured cluster cannot be paused")
    stack.create_topics()
    service = stack.start("run", log_name="service")
    replay = stack.start(
        "replay",
        "--synthetic",
        "--count",
        str(COUNT),
        "--seed",
        "9",
        "--events-per-second",
        "2000",
        "--no-progress",
        log_name="replay",
    )
    try:
        stack.wait_for(lambda: sum(stack.committed().values()) > 1000, 60, "processing")
        embedded.pause()
        try:
            time.sleep(12)
        finally:
            embedded.resume()
        assert replay.wait(timeout=120) == 0, stack.log("replay")
        ends = stack.log_end(stack.events)
        assert sum(ends.values()) == COUNT
        stack.wait_for(lambda: stack.committed() == ends, 120, "every event committed")
        port = metrics_port(stack.log())
        assert port is not None
        exposition = scrape(port)
    finally:
        stop(replay)
        assert stop(service) == 0, stack.log()
    processed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("alerting_events_processed_total{")
    )
    assert processed >= COUNT  # at least once: a retried batch may be read twice
    log = stack.log()
    assert "is not answering" in log and "answers again" in log, log
    assert "Traceback" not in log
