"""Cost of each registered detector per entity: time per event, snapshot size, memory.

For every entry of the detector registry (default parameters), on per-entity features of
the seeded synthetic market (trades and quotes):

- score + learn time per event, after the models warmed up (5 symbols, one model each);
- the pickled snapshot of one model trained on ``--events`` events, raw and zlib-compressed
  (what the state changelog carries);
- memory per live model: ``--models`` clones, each trained on its own ``--events`` events
  (fresh floats, as in the service), measured with tracemalloc (Python allocations) and,
  in a fresh interpreter without tracemalloc, as the growth of the resident set (which
  also sees River's Rust allocations, e.g. the OneClassSVM weights and the
  QuantileThreshold window, and the allocator's overhead), divided by the count;
- entities per 2 GB: 2 GiB over the larger of the two memory figures.

    .venv/bin/python benchmarks/bench_models.py [--models 200] [--events 400]
"""

from __future__ import annotations

import argparse
import gc
import pickle
import statistics
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

from alerting.detectors import REGISTRY, build
from alerting.events import Event
from alerting.features import FeatureState, extract
from alerting.thresholds import QuantileThreshold
from producers.synthetic import SyntheticMarket

GIB2 = 2 * 1024**3


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    import resource

    return pages * resource.getpagesize()


def features(events: list[Event]) -> list[dict[str, float]]:
    state = FeatureState()
    return [extract(event, state) for event in events]


def time_per_event(name: str, stream: list[tuple[str, Event]], warm: int) -> float:
    """µs per score + learn once every entity's model is past its warm-up: the median over
    chunks of 1 000 events, so a burst of load from other processes does not count."""
    template = build(name)
    models: dict[str, object] = {}
    states: dict[str, FeatureState] = {}
    xs = []
    for entity, event in stream:
        state = states.setdefault(entity, FeatureState())
        xs.append((entity, extract(event, state)))
    for entity, x in xs[:warm]:
        model = models.setdefault(entity, template.clone())
        model.score_one(x)  # type: ignore[attr-defined]
        model.learn_one(x)  # type: ignore[attr-defined]
    chunks = []
    for start in range(warm, len(xs) - 999, 1000):
        began = time.perf_counter()
        for entity, x in xs[start : start + 1000]:
            model = models[entity]
            model.score_one(x)  # type: ignore[attr-defined]
            model.learn_one(x)  # type: ignore[attr-defined]
        chunks.append((time.perf_counter() - began) / 1000 * 1e6)
    return statistics.median(chunks)


def traced_per_model(make: Callable[[], object], train: Callable[[object], None], n: int) -> float:
    """Python bytes allocated (tracemalloc) per live model, over ``n`` trained models."""
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    models = []
    for _ in range(n):
        model = make()
        train(model)
        models.append(model)
    gc.collect()
    traced = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del models
    gc.collect()
    return traced / n


def rss_per_model(name: str, n: int, events: int) -> float:
    """Resident-set growth per live model, measured in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-of", name, "--models", str(n), "--events", str(events)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip())


def _rss_child(name: str, n: int, events: int) -> None:
    one_symbol = [e for e, _ in SyntheticMarket(symbols=1, seed=4).events(events)]
    template: object = QuantileThreshold() if name == "quantile" else build(name)

    def trained() -> object:
        model = template.clone()  # type: ignore[attr-defined]
        for x in features(one_symbol):  # fresh floats; the dicts are dropped right after
            if name == "quantile":
                model.update(float(sum(x.values())))
            else:
                model.learn_one(x)
        return model

    trained()  # lazy imports (River) and first-use caches are not the model's
    gc.collect()
    before = rss_bytes()
    models = [trained() for _ in range(n)]
    gc.collect()
    print((rss_bytes() - before) / len(models))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=200, help="live models measured")
    parser.add_argument("--events", type=int, default=400, help="events each model learns")
    parser.add_argument("--timed-events", type=int, default=10_000)
    parser.add_argument("--rss-of", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_of:
        _rss_child(args.rss_of, args.models, args.events)
        return

    market = SyntheticMarket(symbols=5, seed=3, anomaly_rate=0.0)
    warm = 2_500  # 500 per symbol: past every detector's warm-up
    stream = [(e.entity, e) for e, _ in market.events(warm + args.timed_events)]
    one_symbol = [e for e, _ in SyntheticMarket(symbols=1, seed=4).events(args.events)]

    header = (
        f"{'detector':13s} {'µs/event':>9s} {'events/s':>9s} {'pickle B':>9s} {'zlib B':>8s} "
        f"{'traced KB':>10s} {'RSS KB':>8s} {'entities/2GB':>13s}"
    )
    print(
        f"per-entity trading features; {args.models} models x {args.events} events each; "
        f"timing over {args.timed_events} events after warm-up"
    )
    print(header)
    print("-" * len(header))
    for name in REGISTRY:
        micros = time_per_event(name, stream, warm)
        template = build(name)
        trained = template.clone()
        for x in features(one_symbol):
            trained.score_one(x)
            trained.learn_one(x)
        blob = pickle.dumps(trained, protocol=pickle.HIGHEST_PROTOCOL)

        def train(model: object) -> None:
            for x in features(one_symbol):  # fresh floats per model, as in the service
                model.learn_one(x)  # type: ignore[attr-defined]

        traced = traced_per_model(template.clone, train, args.models)
        rss = rss_per_model(name, args.models, args.events)
        per_model = max(traced, rss)
        print(
            f"{name:13s} {micros:9.1f} {1e6 / micros:9.0f} {len(blob):9d} "
            f"{len(zlib.compress(blob)):8d} {traced / 1024:10.1f} {rss / 1024:8.1f} "
            f"{GIB2 / per_model:13,.0f}"
        )

    # the per-entity threshold lives next to the model when thresholds are quantiles
    quantile = QuantileThreshold()
    for i in range(1000):
        quantile.update(float(i % 97))
    blob = pickle.dumps(quantile, protocol=pickle.HIGHEST_PROTOCOL)

    def fill(threshold: object) -> None:
        for i in range(1000):
            threshold.update(float(i % 97))  # type: ignore[attr-defined]

    traced = traced_per_model(QuantileThreshold, fill, args.models)
    rss = rss_per_model("quantile", args.models, 1000)
    print(
        f"{'+quantile thr':13s} {'':9s} {'':9s} {len(blob):9d} {len(zlib.compress(blob)):8d} "
        f"{traced / 1024:10.1f} {rss / 1024:8.1f} {GIB2 / max(traced, rss):13,.0f}"
    )


if __name__ == "__main__":
    main()
