"""Malformed records go to the dead-letter topic with their reason; good ones around them flow."""

from __future__ import annotations

import json

from kafkastack import Stack, metrics_port, scrape, stop

from alerting.events import Trade, encode

BAD = [
    (b"not json at all", "not_json"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": NaN, "size": 1, "time": 1}', "not_finite"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": -5, "size": 1, "time": 1}', "out_of_range"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": 5, "size": 1}', "missing_field"),
    (b'{"kind": "trade", "symbol": "AAPL", "price": 5, "size": 1e15, "time": 1}', "out_of_range"),
    (b'{"kind": "option", "symbol": "AAPL", "time": 1}', "unknown_kind"),
    (b"[1, 2, 3]", "not_an_object"),
]


def test_malformed_records_are_dead_lettered_and_the_loop_goes_on(stack: Stack) -> None:
    stack.partitions = 1  # one partition: the order of good and bad records is the test's
    stack.create_topics()
    producer = stack.producer()
    sent_bad = []
    good = 0
    for i in range(300):
        trade = Trade(symbol="AAPL", price=100 + (i % 7) * 0.01, size=100, time=1_700_000_000 + i)
        producer.send(stack.events, key=b"AAPL", value=encode(trade))
        good += 1
        if i % 40 == 20:
            value, reason = BAD[len(sent_bad) % len(BAD)]
            headers = [("trace-id", f"t{i}".encode())]
            producer.send(stack.events, key=b"AAPL", value=value, headers=headers)
            sent_bad.append((value, reason, headers))
    producer.flush()
    producer.close()
    total = good + len(sent_bad)

    service = stack.start("run")
    try:
        stack.wait_for(lambda: stack.committed() == {0: total}, 60, "all records committed")
        port = metrics_port(stack.log())
        assert port is not None
        exposition = scrape(port)
    finally:
        assert stop(service) == 0, stack.log()

    letters = stack.read_all(stack.dead_letters)
    assert len(letters) == len(sent_bad)
    for record, (value, reason, headers) in zip(letters, sent_bad, strict=True):
        got = dict(record.headers)
        assert record.value == value
        assert record.key == b"AAPL"
        assert got["trace-id"] == headers[0][1]
        assert got["x-dlq-reason"].decode() == reason
        assert got["x-dlq-source-topic"].decode() == stack.events
        assert int(got["x-dlq-source-offset"]) >= 0
        assert got["x-dlq-detail"]

    assert f'alerting_events_processed_total{{kind="trade"}} {float(good)}' in exposition
    invalid = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith("alerting_events_invalid_total{")
    }
    expected: dict[str, float] = {}
    for _, reason, _ in sent_bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert invalid == expected, json.dumps(invalid)
