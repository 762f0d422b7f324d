"""Throughput of `alerting run` (the settings' detector, `sad` by default) on the embedded broker.

Fills a fresh events topic with N synthetic events, starts `alerting run` against it,
and reads `alerting_events_consumed_total` from its /metrics endpoint until every event
is consumed. Also times the pure processor (decode + features + detector + policy) and
a bare consumer of the same client on the same topic, so the figures can be read as ratios
measured in one run on the same machine.

    .venv/bin/python benchmarks/bench_run.py [--events 200000] [--client confluent]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
import uuid

from kafka import KafkaConsumer, KafkaProducer

from alerting.embedded_broker import EmbeddedBroker, free_port
from alerting.events import decode, encode
from alerting.settings import load_settings
from alerting.wiring import build_processor
from producers.synthetic import SyntheticMarket


def consumed(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith("alerting_events_consumed_total "):
                return float(line.split()[1])
    return 0.0


def bare_kafka_python(bootstrap: str, topic: str, total: int) -> float:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    got, first = 0, None
    while got < total:
        for records in consumer.poll(timeout_ms=500, max_records=2000).values():
            first = first or time.perf_counter()
            got += len(records)
    consumer.close()
    return got / (time.perf_counter() - (first or time.perf_counter()))


def bare_confluent(bootstrap: str, topic: str, total: int) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bare-{topic}", "enable.auto.commit": False}
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    got, first = 0, None
    while got < total:
        messages = consumer.consume(2000, 0.5)
        if messages:
            first = first or time.perf_counter()
            got += sum(m.error() is None for m in messages)
    consumer.close()
    return got / (time.perf_counter() - (first or time.perf_counter()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--detector", help="registered detector (default: the settings')")
    parser.add_argument(
        "--client",
        choices=["kafka-python", "confluent"],
        default="kafka-python",
        help="kafka.client of the service under test",
    )
    args = parser.parse_args()
    if args.detector:
        os.environ["ALERTING__DETECTOR__NAME"] = args.detector
    n = args.events

    payloads = [
        (event.entity.encode(), encode(event))
        for event, _ in SyntheticMarket(symbols=args.symbols, seed=1).events(n)
    ]

    # 1. the processor alone, no Kafka
    settings = load_settings()
    processor = build_processor(settings)
    started = time.perf_counter()
    for _, value in payloads:
        processor.process(decode(value))
    pure = n / (time.perf_counter() - started)

    with EmbeddedBroker() as broker:
        topic = f"bench-{uuid.uuid4().hex[:6]}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTING__KAFKA")}
        port = free_port()
        env.update(
            {
                "ALERTING__KAFKA__BOOTSTRAP_SERVERS": broker.bootstrap_servers,
                "ALERTING__TOPICS__EVENTS": topic,
                "ALERTING__TOPICS__ALERTS": topic + ".alerts",
                "ALERTING__TOPICS__DEAD_LETTERS": topic + ".dlq",
                "ALERTING__METRICS__PORT": str(port),
                "ALERTING__SERVICE__GROUP_ID": topic,
                "ALERTING__KAFKA__CLIENT": args.client,
            }
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "alerting.cli",
                "--log-level",
                "warning",
                "replay",
                "--synthetic",
                "--count",
                "1",
                "--fast",
                "--no-progress",
            ],
            env=env,
            check=True,
        )  # creates the topics
        producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap_servers, linger_ms=20, batch_size=256 * 1024, acks=1
        )
        for key, value in payloads:
            producer.send(topic, key=key, value=value)
        producer.flush()
        producer.close()
        total = n + 1

        # 2. a bare consumer of the service's client on the same topic: its ceiling here
        bare = (
            bare_confluent(broker.bootstrap_servers, topic, total)
            if args.client == "confluent"
            else bare_kafka_python(broker.bootstrap_servers, topic, total)
        )

        # 3. the service end to end: poll, decode, process, publish alerts, commit
        service = subprocess.Popen(
            [sys.executable, "-m", "alerting.cli", "--log-level", "warning", "run"], env=env
        )
        try:
            start_count, start_time = 0.0, None
            while True:
                time.sleep(0.2)
                try:
                    count = consumed(port)
                except OSError:
                    continue
                if count and start_time is None:
                    start_count, start_time = count, time.perf_counter()
                if count >= total:
                    break
            service_rate = (count - start_count) / (time.perf_counter() - (start_time or 0))
        finally:
            service.terminate()
            service.wait(timeout=30)

    print(f"detector                       {processor.model_version}")
    print(f"service's Kafka client         {args.client}")
    print(f"events                         {n}")
    print(f"processor only (decode+score)  {pure:10,.0f} events/s")
    print(f"bare {args.client + ' consumer':25} {bare:10,.0f} events/s")
    print(
        f"alerting run, end to end       {service_rate:10,.0f} events/s "
        f"({service_rate / bare:.0%} of the bare consumer, {service_rate / pure:.0%} of the "
        "processor alone)"
    )


if __name__ == "__main__":
    main()
