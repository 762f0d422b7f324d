"""Alert volume and anomaly recall of the alert policy on the synthetic market, offline.

Drives the processor exactly as ``alerting run`` builds it (``build_processor`` on the
default settings, or ``ALERTING__*`` overrides), on a seeded ``SyntheticMarket`` with
labelled anomalies, without Kafka. Prints alerts per hour of event time (by type and
severity), suppressions by reason, how many labelled anomalies are followed by a FIRING
alert of the same entity within ``--within`` events of that entity, and the processor's
events/s, per wall-clock and per CPU second (features + detector + threshold + policy +
explanation; decoding excluded).

    .venv/bin/python benchmarks/bench_policy.py [--events 100000] [--symbols 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict

from alerting.alerts import FIRING
from alerting.settings import load_settings
from alerting.wiring import build_processor
from producers.synthetic import SyntheticMarket


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--within", type=int, default=3, help="events of the entity after a label")
    parser.add_argument("--repeat", type=int, default=3, help="timing runs (best is reported)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args()

    stream = list(SyntheticMarket(symbols=args.symbols, seed=args.seed).events(args.events))
    events = [event for event, _ in stream]
    span_h = (events[-1].timestamp - events[0].timestamp) / 3600.0

    # 1. the alerts, and which labelled anomalies they cover
    processor = build_processor(load_settings())
    by_type: Counter[str] = Counter()
    firing_at: dict[str, list[int]] = defaultdict(list)  # entity -> its event ordinals
    ordinal: dict[int, int] = {}  # stream index -> ordinal among the entity's events
    seen: Counter[str] = Counter()
    covered: set[int] = set()  # labelled events that breached inside an already notified episode
    is_label = {label.index for _, label in stream if label is not None}
    for index, event in enumerate(events):
        ordinal[index] = seen[event.entity]
        seen[event.entity] += 1
        outcome = processor.process(event)
        if index in is_label and outcome.decided:
            policy_state = getattr(dict(processor.store).get(event.entity), "policy", None)
            episode = getattr(policy_state, "episodes", {}).get(event.kind)
            if episode is not None and outcome.breached and episode.notified:
                covered.add(index)
        for alert in outcome.alerts:
            key = alert.type.rsplit(".", 1)[-1]
            by_type[f"{key}/{alert.severity}"] += 1
            if alert.type == FIRING:
                firing_at[alert.entity].append(ordinal[index])
    labels = [label for _, label in stream if label is not None]
    hit: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for label in labels:
        total[label.anomaly] += 1
        start = ordinal[label.index]
        if any(start <= at <= start + args.within for at in firing_at[label.entity]):
            hit[label.anomaly] += 1
        elif label.index in covered:
            hit["inside_open_episode"] += 1
    label_at: dict[str, list[int]] = defaultdict(list)
    for label in labels:
        label_at[label.entity].append(ordinal[label.index])
    unlabelled = sum(
        not any(0 <= at - start <= args.within for start in label_at[entity])
        for entity, ats in firing_at.items()
        for at in ats
    )
    suppressed = dict(processor.stats.suppressed)

    # 2. throughput of the processor alone
    # CPU time as well as wall time: on a shared machine, wall time mostly measures the others
    rates, cpu_rates = [], []
    for _ in range(args.repeat):
        fresh = build_processor(load_settings())
        started, cpu = time.perf_counter(), time.process_time()
        for event in events:
            fresh.process(event)
        rates.append(len(events) / (time.perf_counter() - started))
        cpu_rates.append(len(events) / (time.process_time() - cpu))

    firing = sum(n for key, n in by_type.items() if key.startswith("firing/"))
    result = {
        "events": len(events),
        "event_time_hours": round(span_h, 4),
        "alerts": dict(sorted(by_type.items())),
        "firing_per_hour": round(firing / span_h, 1),
        "all_alerts_per_hour": round(sum(by_type.values()) / span_h, 1),
        "suppressed": suppressed,
        "labels": len(labels),
        "labels_alerted": sum(n for k, n in hit.items() if k in total),
        "labels_flagged_inside_an_open_episode": hit["inside_open_episode"],
        "labels_alerted_by_type": {k: f"{hit[k]}/{n}" for k, n in sorted(total.items())},
        "firing_not_near_a_label": unlabelled,
        "events_per_s": round(max(rates)) if rates else None,
        "events_per_cpu_s": round(max(cpu_rates)) if cpu_rates else None,
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
