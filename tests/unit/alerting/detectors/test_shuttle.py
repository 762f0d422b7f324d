"""Every registered detector on River's bundled Shuttle data set, and the default thresholds.

Shuttle (UCI Statlog, cast as anomaly detection as in ODDS) ships inside the River wheel
(``river/datasets/shuttle.csv.gz``): nothing is downloaded. We use its first 10 000 of
49 097 samples (712 anomalies) to keep the test fast, in order, with one model for the
whole stream, each sample scored and *then* learned, as the service does. ROC-AUC is
computed exactly (Mann-Whitney, ties count half).

River documents figures for exactly this setup in the ``datasets.Shuttle`` docstring
(``river/datasets/shuttle.py`` in River 0.26.1, the installed version; also
https://github.com/online-ml/river/blob/16421f880911cc3199a9bc6a57efa6f393eaa0ee/river/datasets/shuttle.py):
``MinMaxScaler() | detector(seed=42)`` with River's default parameters,
``RollingROCAUC(window_size=10_000)`` over the first 10 000 samples (i.e. the exact AUC):
HalfSpaceTrees 90.07 %, LODA 96.46 %. Our wrappers built with River's parameters must
reproduce them within :data:`DOC_MARGIN`. (Another revision of that docstring gives 96.08 %
and 97.19 % for the full stream with a 50 000 window; we do not run the full stream.)

River documents no Shuttle figure for OneClassSVM, GaussianScorer or
StandardAbsoluteDeviation, nor for our defaults of HST and LODA; for those the measured
AUC (in :data:`MEASURED`) is a regression floor with a margin of :data:`FLOOR_MARGIN`.
Run with ``-s`` to see the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from river import datasets, metrics

from alerting.detectors import DEFAULT_DETECTOR, REGISTRY, Detector, build
from alerting.features import FeatureState, extract
from alerting.settings import load_settings
from producers.synthetic import SyntheticMarket

SAMPLES = 10_000
DOC_MARGIN = 0.005
FLOOR_MARGIN = 0.01

#: River's documented figures (see the module docstring) and the parameters of that setup
RIVER_DOCS: dict[str, tuple[float, dict[str, object]]] = {
    "hst": (
        0.9007,
        {"n_trees": 10, "height": 8, "window_size": 250, "seed": 42, "scaler": "minmax"},
    ),
    # grace_period=1: River's LODA scores 0 before it learned anything, and so do we
    "loda": (
        0.9646,
        {"n_bins": 10, "n_random_cuts": 100, "seed": 42, "scaler": "minmax", "grace_period": 1},
    ),
}

#: AUC measured with each detector's default parameters (River 0.26.1)
MEASURED = {
    "hst": 0.9211,
    "oneclass_svm": 0.9703,
    "gaussian": 0.9765,
    "loda": 0.9737,
    "sad": 0.9836,
    "zscore": 0.9791,
}


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Exact ROC-AUC: the probability a random anomaly outscores a random normal point."""
    order = sorted(range(len(scores)), key=scores.__getitem__)
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their average rank
        i = j + 1
    positives = sum(labels)
    negatives = len(labels) - positives
    rank_sum = sum(r for r, y in zip(ranks, labels, strict=True) if y)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def test_roc_auc_against_pairs() -> None:
    labels = [0, 1, 0, 1, 1, 0, 0]
    scores = [0.1, 0.9, 0.5, 0.5, 0.3, 0.2, 0.5]
    positives = [s for s, y in zip(scores, labels, strict=True) if y]
    negatives = [s for s, y in zip(scores, labels, strict=True) if not y]
    pairs = [(p, n) for p in positives for n in negatives]
    want = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)
    assert roc_auc(labels, scores) == pytest.approx(want)


@pytest.fixture(scope="module")
def shuttle() -> list[tuple[dict[str, float], int]]:
    dataset = datasets.Shuttle()
    assert Path(dataset.path).is_file()  # bundled in the wheel: no download
    return [({k: float(v) for k, v in x.items()}, int(y)) for x, y in dataset.take(SAMPLES)]


def stream_scores(det: Detector, data: Iterable[tuple[dict[str, float], int]]) -> list[float]:
    scores = []
    for x, _ in data:
        scores.append(det.score_one(x))
        det.learn_one(x)
    return scores


@pytest.fixture(scope="module")
def auc_table(shuttle: list[tuple[dict[str, float], int]]) -> dict[str, float]:
    labels = [y for _, y in shuttle]
    table = {name: roc_auc(labels, stream_scores(build(name), shuttle)) for name in REGISTRY}
    print(f"\nShuttle, first {SAMPLES} samples, score then learn, exact ROC-AUC")
    print(f"{'detector':14s} {'AUC':>7s} {'floor':>7s}  River docs")
    for name, auc in table.items():
        doc = f"{RIVER_DOCS[name][0]:.4f} (River's params)" if name in RIVER_DOCS else "-"
        floor = MEASURED.get(name)
        shown = f"{floor - FLOOR_MARGIN:.4f}" if floor is not None else "-"
        print(f"{name:14s} {auc:7.4f} {shown:>7s}  {doc}")
    return table


def test_shuttle_is_bundled_with_river(shuttle: list[tuple[dict[str, float], int]]) -> None:
    assert len(shuttle) == SAMPLES
    assert all(len(x) == 9 for x, _ in shuttle)
    assert sum(y for _, y in shuttle) == 712


@pytest.mark.parametrize("name", sorted(RIVER_DOCS))
def test_reproduces_river_documented_figure(
    name: str, shuttle: list[tuple[dict[str, float], int]]
) -> None:
    documented, params = RIVER_DOCS[name]
    scores = stream_scores(build(name, params), shuttle)
    labels = [y for _, y in shuttle]
    auc = roc_auc(labels, scores)
    print(f"\n{name} with River's parameters: {auc:.4f} (River documents {documented:.4f})")
    assert abs(auc - documented) <= DOC_MARGIN
    # and our exact AUC is River's metric in that setup (window covers every sample)
    river_auc: Any = metrics.RollingROCAUC(window_size=SAMPLES)  # type: ignore[no-untyped-call]
    for y, score in zip(labels, scores, strict=True):
        river_auc.update(y, score)
    assert river_auc.get() == pytest.approx(auc, abs=1e-4)  # River breaks ties its own way


@pytest.mark.parametrize("name", list(REGISTRY))
def test_auc_stays_above_its_regression_floor(name: str, auc_table: dict[str, float]) -> None:
    floor = MEASURED.get(name, 0.75 + FLOOR_MARGIN) - FLOOR_MARGIN
    assert auc_table[name] >= floor, f"{name}: AUC {auc_table[name]:.4f} < floor {floor:.4f}"


# ---------------------------------------------------------------- default thresholds
#
# How REGISTRY[name].default_threshold was chosen: the per-entity features of a seeded
# market *without* injected anomalies (5 symbols, 200 000 events, seed 11; each entity
# judged after its first 300 events) show how often a normal event reaches a score.
# zscore's 6 σ is reached by 0.65 in 10 000 of them (2 of 3 500 in the entities' events
# 300-1 000). Every other default is its rounded score at that rate or less, young entities
# included: loda scores higher while young (21.65 at that rate in the entities' events
# 300-1 000), hence hst 0.48 and loda 22.0 (both re-measured on 100 000 events after
# models per feature group and hst's squashed scaling came in); oneclass_svm 7.5 and gaussian
# 0.999999998 (6 σ) match zscore's rate as they are, and so does sad's 6.0 nearly (21 of
# the 198 500 events against zscore's 15, with its winsorised learning at 3.5 σ and a
# half-life of 500; 18 learning every value with a half-life of 1 000).
#
# Measured on the labelled market (0.5 % injected anomalies, 60 000 events, seed 7):
#
#   detector      threshold    anomalies caught   normal events flagged
#   zscore        6            63 %               18 in 10 000 (mostly the trade after a
#   gaussian      0.999999998  63 %               18            price spike, whose return
#   sad           6            64 %               18            jumps back to the walk)
#   oneclass_svm  7.5           8 %                0.2
#   loda          22.0          1 %                1.2   (reversal trades counted as part
#   hst           0.48          50 %               0.17   of the spike for these two rows)
#
# hst, loda and oneclass_svm rank anomalies well (ROC-AUC 0.91-0.99) but their score
# scale moves as their scalers widen with every anomaly they learn, so no fixed threshold
# suits a whole stream: pair them with a per-entity QuantileThreshold. This test
# re-measures the false-alert side on a shorter stream (entities 300-4 000 events old).

CLEAN_EVENTS = 20_000
WARMUP_EVENTS = 300
MAX_FLAG_RATE = 5e-4


@pytest.fixture(scope="module")
def clean_market() -> list[tuple[str, dict[str, float]]]:
    # the registry's fixed default thresholds (threshold.kind = "fixed") were measured on
    # the classic market; the calibrated default decision has its own tests
    # (tests/unit/alerting/test_calibration.py), on the realistic market too
    market = SyntheticMarket(symbols=5, seed=11, anomaly_rate=0.0, style="classic")
    states: dict[str, FeatureState] = {}
    out = []
    for event, _ in market.events(CLEAN_EVENTS):
        state = states.setdefault(event.entity, FeatureState())
        out.append((event.entity, extract(event, state)))
    return out


@pytest.mark.parametrize("name", list(REGISTRY))
def test_default_threshold_flags_few_events_of_a_clean_market(
    name: str, clean_market: list[tuple[str, dict[str, float]]]
) -> None:
    template = build(name)
    threshold = REGISTRY[name].default_threshold
    models: dict[str, Detector] = {}
    seen: dict[str, int] = {}
    flagged = judged = 0
    for entity, x in clean_market:
        model = models.get(entity)
        if model is None:
            model = models[entity] = template.clone()
        score = model.score_one(x)
        model.learn_one(x)
        seen[entity] = seen.get(entity, 0) + 1
        if seen[entity] > WARMUP_EVENTS:
            judged += 1
            flagged += score >= threshold
    print(f"\n{name}: {flagged} of {judged} clean events ≥ {threshold:.10g}")
    assert flagged <= MAX_FLAG_RATE * judged


def test_the_documented_setups_are_registered() -> None:
    for name, (_, params) in RIVER_DOCS.items():
        assert set(params) <= set(build(name).params())
    assert set(MEASURED) <= set(REGISTRY)  # a new detector gets the generic floor until recorded
    assert DEFAULT_DETECTOR in REGISTRY
    assert load_settings().detector.name == DEFAULT_DETECTOR
