"""Snapshot size and restore time for N entities, on the embedded broker.

Builds N entities with the configured detector (default settings unless ALERTING__*
says otherwise), each fed a few hundred synthetic events, writes their snapshots to a
changelog topic as the service does, then times a restore of every partition: reading
the changelog and putting each snapshot into the on-disk cold store (the first event of
an entity then loads it), plus loading all of them back into live models.

    .venv/bin/python benchmarks/bench_state.py [--entities 1000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

from kafka import KafkaProducer

from alerting.alerts import SourcePosition
from alerting.embedded_broker import EmbeddedBroker
from alerting.metrics import Metrics
from alerting.settings import load_settings
from alerting.state import SqliteColdStore
from alerting.wiring import build_processor
from consumers.kafka_python import KafkaPort
from producers.synthetic import SyntheticMarket
from producers.topics import ensure_topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entities", type=int, default=1000)
    parser.add_argument("--events-per-entity", type=int, default=300)
    args = parser.parse_args()
    n = args.entities

    settings = load_settings()
    processor = build_processor(settings)
    market = SyntheticMarket(symbols=n, seed=5, anomaly_rate=0.0)
    started = time.perf_counter()
    for offset, (event, _) in enumerate(market.events(n * args.events_per_entity)):
        processor.process(event, SourcePosition("bench", hash(event.entity) % 4, offset))
    fed = time.perf_counter() - started
    snapshots = processor.store.snapshots()
    sizes = sorted(len(blob) for _, _, blob in snapshots)

    with EmbeddedBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        tag = uuid.uuid4().hex[:6]
        s = load_settings(
            kafka={"bootstrap_servers": broker.bootstrap_servers},
            topics={"events": f"bench-{tag}"},
            service={"group_id": f"bench-{tag}"},
        )
        ensure_topics(s)
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers,
            linger_ms=20,
            max_request_size=16 * 1024 * 1024,
        )
        for entity, partition, blob in snapshots:
            producer.send(s.topics.changelog, key=entity.encode(), value=blob, partition=partition)
        producer.flush()
        producer.close()

        cold = SqliteColdStore(Path(tmp) / "state.sqlite")
        restored = build_processor(s, cold=cold)
        port = KafkaPort(s, Metrics())
        started = time.perf_counter()
        count = 0
        for _, partition, key, value in port.read_partitions(s.topics.changelog, {0, 1, 2, 3}):
            restored.store.restore((key or b"").decode(), partition, value)
            count += 1
        restore_s = time.perf_counter() - started
        started = time.perf_counter()
        for entity, partition, _ in snapshots:
            restored.store.get(entity, partition, 0.0)
        load_s = time.perf_counter() - started
        port.close()
        cold.close()

    print(f"detector                      {processor.model_version}")
    print(
        f"entities                      {n} ({args.events_per_entity} events each, "
        f"fed in {fed:.1f}s)"
    )
    print(
        f"snapshot size (compressed)    median {sizes[len(sizes) // 2]:,} B, "
        f"max {sizes[-1]:,} B, total {sum(sizes) / 1e6:.1f} MB"
    )
    print(
        f"restore from the changelog    {count} records in {restore_s:.2f}s "
        "(read + into the on-disk store)"
    )
    print(f"load all back into memory     {load_s:.2f}s ({load_s / n * 1e3:.2f} ms per entity)")


if __name__ == "__main__":
    main()
