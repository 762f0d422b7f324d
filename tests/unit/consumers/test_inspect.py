"""What ``alerting inspect`` reads: the last (or first) N records of a topic, partition by
partition from the true high watermark back, and the first or last lines of a JSONL file."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition

from alerting.settings import load_settings
from consumers import kafka_python
from consumers.inspect import Sample, file_samples, is_file, topic_samples
from tests.unit.fakes import FakeKafkaConsumer


class Consumer(FakeKafkaConsumer):
    """The fake, with the two calls :func:`topic_samples` makes besides follow()'s."""

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(tps, 0)


@pytest.fixture
def consumer(monkeypatch: pytest.MonkeyPatch) -> list[Consumer]:
    made: list[Consumer] = []

    def consumer_for(settings: Any, group_id: str | None, **extra: Any) -> Consumer:
        assert group_id is None
        return made[0]

    monkeypatch.setattr(kafka_python, "consumer_for", consumer_for)
    return made


def values(samples: list[Sample] | None) -> list[bytes | None]:
    assert samples is not None
    return sorted(s.value for s in samples)  # type: ignore[type-var]


def test_the_last_n_are_spread_over_the_partitions(consumer: list[Consumer]) -> None:
    log = {0: [b"a0", b"a1", b"a2", b"a3"], 1: [b"b0", b"b1", b"b2"], 2: [b"c0"]}
    consumer.append(Consumer(log))
    read = topic_samples(load_settings(), "t", 4)
    # shares of 4 over partitions holding 4, 3 and 1: 2, 2 and 0, each the newest
    assert sorted(values(read)) == [b"a2", b"a3", b"b1", b"b2"]
    # tansu's ListOffsets answers one short: the rewind starts from the true high watermark
    assert "seek 0 2" in consumer[0].calls and "seek 1 1" in consumer[0].calls
    assert "seek 2 1" in consumer[0].calls and consumer[0].closed


def test_a_short_partition_leaves_its_share_to_the_others(consumer: list[Consumer]) -> None:
    consumer.append(Consumer({0: [b"a%d" % i for i in range(20)], 1: [], 2: [b"c0", b"c1"]}))
    read = topic_samples(load_settings(), "t", 12)
    assert len(read or []) == 12  # ceil(12 / 3) per partition would read 4 + 0 + 2
    assert {b"c0", b"c1"} <= set(values(read))


def test_the_last_n_of_a_short_topic_are_all_of_it(consumer: list[Consumer]) -> None:
    consumer.append(Consumer({0: [b"x", b"y"], 1: []}))
    assert values(topic_samples(load_settings(), "t", 500)) == [b"x", b"y"]


def test_from_the_beginning_reads_the_first_n(consumer: list[Consumer]) -> None:
    consumer.append(Consumer({0: [b"%d" % i for i in range(10)]}))
    read = topic_samples(load_settings(), "t", 3, from_beginning=True)
    assert [s.value for s in read or []] == [b"0", b"1", b"2"]
    assert read is not None and read[0].key == b"k" and read[0].timestamp_ms == 0


def test_an_empty_topic_gives_no_records_and_a_missing_one_none(consumer: list[Consumer]) -> None:
    consumer.append(Consumer({0: []}))
    assert topic_samples(load_settings(), "t", 10) == []
    consumer[0] = Consumer({0: [b"a"]}, metadata_after=10**9)
    assert topic_samples(load_settings(), "t", 10, timeout_s=0.3) is None


def test_a_jsonl_file_gives_its_first_or_last_lines(tmp_path: Path) -> None:
    plain = tmp_path / "t.jsonl"
    plain.write_text("\ufeff{}\n\n" + "".join(f'{{"i": {i}}}\n' for i in range(1, 10)))
    assert [s.value for s in file_samples(plain, 2)] == [b"{}", b'{"i": 1}']
    zipped = tmp_path / "t.jsonl.gz"
    zipped.write_bytes(gzip.compress(plain.read_bytes()))
    last = file_samples(zipped, 2, from_beginning=False)
    assert [s.value for s in last] == [b'{"i": 8}', b'{"i": 9}']
    assert file_samples(tmp_path / "t.jsonl", 100)[-1] == Sample(b'{"i": 9}')


def test_a_target_is_a_file_when_it_exists_or_is_named_like_one(tmp_path: Path) -> None:
    assert is_file("x.jsonl") and is_file("x.jsonl.gz") and is_file(str(tmp_path))
    assert not is_file("desk.trades")
