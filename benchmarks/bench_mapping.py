"""Per-event cost of the declared input mappings (``[[inputs]]``) against the native
decoding and against the processing of the same events, in one run, without Kafka.

For each of the three shapes of issue 14 (a trading desk, an exchange feed with nested
string numbers and µs times, a metrics pipeline with a ``metrics.*`` prefix and RFC 3339
times), it builds a seeded stream, encodes it in that shape and in the native schema, and
times ``InputMapping.decode`` on the first, ``alerting.events.decode`` on the second and
``Processor.process`` (``build_processor`` on the default settings) on the decoded events.
It prints µs/event and the ratios to the processing cost; the mapping's extra cost over
native decoding is meant to stay within 10 % of the processing cost.

    .venv/bin/python benchmarks/bench_mapping.py [--events 20000] [--entities 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from alerting import events
from alerting.mapping import InputMapping, compile_input
from alerting.settings import InputSettings, load_settings
from alerting.times import rfc3339_seconds
from alerting.wiring import build_processor

T0 = 1_733_300_000.0

SHAPES: dict[str, dict[str, Any]] = {
    "desk": {
        "topic": "desk.trades",
        "kind": "trade",
        "entity": "sym",
        "time": "ts",
        "fields": {"price": "px", "size": "qty", "side": "side", "venue": "=XNAS"},
    },
    "exchange": {
        "topic": "exchange.trades",
        "kind": "trade",
        "entity": "data.s",
        "time": "data.T",
        "fields": {"price": "data.p", "size": "data.q"},
    },
    "metrics": {
        "topic": "metrics",
        "kind": "metric",
        "entity": "host",
        "time": ".@timestamp",
        "fields": {"values": "metrics.*"},
    },
}


def _records(shape: str, n: int, entities: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    level = [100.0 + 10 * i for i in range(entities)]
    out = []
    for i in range(n):
        e = i % entities
        level[e] *= 1 + rng.gauss(0, 0.001)
        size = float(rng.randint(1, 500))
        moment = T0 + i * 0.05
        if shape == "desk":
            doc: dict[str, Any] = {
                "sym": f"S{e}",
                "px": round(level[e], 4),
                "qty": size,
                "side": rng.choice(["buy", "sell"]),
                "ts": int(moment * 1e3),
            }
        elif shape == "exchange":
            doc = {
                "e": "trade",
                "data": {
                    "s": f"S{e}USDT",
                    "p": f"{level[e]:.2f}",
                    "q": f"{size / 1000:.3f}",
                    "T": int(moment * 1e6),
                },
            }
        else:
            doc = {
                "host": f"web-{e}",
                "metrics": {"cpu": rng.random(), "mem": 0.4 + rng.random() / 10},
                "@timestamp": rfc3339_seconds(round(moment)),
            }
        out.append(json.dumps(doc).encode())
    return out


def _best_us(run: Callable[[], object], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best / n * 1e6


def _decode_all(mapping: InputMapping, records: Sequence[bytes]) -> list[events.Event]:
    return [mapping.decode(value) for value in records]


def _decode_native(values: Sequence[bytes]) -> list[events.Event]:
    return [events.decode(value) for value in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--entities", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timing runs (best is reported)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    for name, spec in SHAPES.items():
        mapping = compile_input(InputSettings(**spec))
        records = _records(name, args.events, args.entities, args.seed)
        decoded = _decode_all(mapping, records)
        native = [events.encode(event) for event in decoded]
        mapped_us = _best_us(partial(_decode_all, mapping, records), len(records), args.repeat)
        native_us = _best_us(partial(_decode_native, native), len(native), args.repeat)
        processing: list[float] = []
        for _ in range(args.repeat):
            processor = build_processor(load_settings())  # fresh state, the same work each run
            start = time.perf_counter()
            for event in decoded:
                processor.process(event)
            processing.append((time.perf_counter() - start) / len(decoded) * 1e6)
        process_us = min(processing)
        results[name] = {
            "mapping_us": mapped_us,
            "native_us": native_us,
            "processing_us": process_us,
            "mapping_over_processing": mapped_us / process_us,
            "extra_over_processing": (mapped_us - native_us) / process_us,
        }

    if args.json:
        print(json.dumps({"events": args.events, "shapes": results}, indent=2))
        return
    print(f"{args.events} events per shape, {args.entities} entities, best of {args.repeat}")
    header = f"{'shape':10} {'mapping':>10} {'native':>10} {'process':>10} {'map/proc':>9} "
    print(header + f"{'extra/proc':>11}")
    for name, r in results.items():
        print(
            f"{name:10} {r['mapping_us']:8.2f}µs {r['native_us']:8.2f}µs "
            f"{r['processing_us']:8.1f}µs {r['mapping_over_processing']:8.1%} "
            f"{r['extra_over_processing']:10.1%}"
        )
    worst = max(r["extra_over_processing"] for r in results.values())
    verdict = "within" if worst <= 0.10 else "ABOVE"
    print(
        f"mapping's extra cost over native decoding: at most {worst:.1%} of processing "
        f"({verdict} the 10 % target)"
    )


if __name__ == "__main__":
    main()
