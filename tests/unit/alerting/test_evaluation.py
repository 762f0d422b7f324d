"""The scoring core of ``alerting evaluate``: hand-computed cases, an oracle for NAB, labels."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting.errors import LabelError
from alerting.evaluation import (
    PROFILES,
    Window,
    combine,
    load_labels,
    merge_windows,
    nab_raw,
    scaled_sigmoid,
    score_entity,
    windows_from_flags,
)
from producers.synthetic import Label, write_labels

TEN = [float(t) for t in range(10)]


def alerts_at(n: int, *indices: int) -> list[int]:
    counts = [0] * n
    for i in indices:
        counts[i] += 1
    return counts


# -- event level -----------------------------------------------------------------------------


def test_event_precision_recall_f1_by_hand() -> None:
    # positives: events 2, 3, 4 (window [2, 4]) and 7; predicted: 3, 5, 7
    f = score_entity(TEN, alerts_at(10, 3, 5, 7), [Window(2, 4), Window(7, 7)])
    assert (f.tp, f.fp, f.fn, f.tn) == (2, 1, 2, 5)
    assert f.precision == pytest.approx(2 / 3)
    assert f.recall == pytest.approx(2 / 4)
    assert f.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    d = f.to_dict()["event"]
    assert d["precision"] == round(2 / 3, 6) and d["f1"] == round(4 / 7, 6)


def test_undefined_ratios_are_none_not_zero() -> None:
    quiet = score_entity(TEN, [0] * 10, [])
    assert quiet.precision is None and quiet.recall is None and quiet.f1 is None
    missed = score_entity(TEN, [0] * 10, [Window(3, 3)])
    assert missed.precision is None and missed.recall == 0.0 and missed.f1 == 0.0


def test_several_alerts_on_one_event_count_once_as_events_but_all_as_alerts() -> None:
    f = score_entity(TEN, [0, 0, 0, 3, 0, 0, 0, 0, 0, 2], [Window(3, 3)])
    assert (f.tp, f.fp) == (1, 1)
    assert f.alerts == 5 and f.alerts_outside == 2


# -- windows, slack, delay ---------------------------------------------------------------------


def test_window_detection_delay_and_slack() -> None:
    times = [0.5 * i for i in range(20)]  # two events a second
    windows = [Window(2.0, 3.0), Window(6.0, 6.0)]  # events 4-6, and event 12
    alerts = alerts_at(20, 5, 6, 13)  # late in the first window, one event after the second
    strict = score_entity(times, alerts, windows)
    assert (strict.windows, strict.windows_detected) == (2, 1)
    assert strict.delays_events == [1] and strict.delays_s == [0.5]
    assert strict.alerts_outside == 1
    lenient = score_entity(times, alerts, windows, slack_s=0.5)
    assert lenient.windows_detected == 2
    assert lenient.delays_events == [1, 1] and lenient.delays_s == [0.5, 0.5]
    assert lenient.alerts_outside == 0
    # slack never changes the event-level figures: event 13 is outside every window
    assert (lenient.tp, lenient.fp, lenient.fn) == (strict.tp, strict.fp, strict.fn) == (2, 1, 2)


def test_a_window_between_events_is_counted_empty_not_missed() -> None:
    f = score_entity(TEN, [0] * 10, [Window(3.2, 3.8), Window(5, 5)])
    assert (f.windows, f.windows_empty, f.windows_detected) == (1, 1, 0)
    assert f.nab_windows == 1


def test_alerts_per_thousand_events_and_per_hour() -> None:
    times = [60.0 * i for i in range(121)]  # two hours, one event a minute
    d = score_entity(times, alerts_at(121, 10, 20, 30, 40), []).to_dict()["alerts"]
    assert d["firing"] == 4 and d["outside_windows"] == 4
    assert d["per_1000_events"] == round(4000 / 121, 6)
    assert d["per_hour"] == 2.0


def test_by_anomaly_type() -> None:
    windows = [Window(1, 1, "price_spike"), Window(5, 5, "size_burst"), Window(8, 8, "size_burst")]
    f = score_entity(TEN, alerts_at(10, 5), windows)
    assert f.by_anomaly == {"price_spike": [1, 0], "size_burst": [2, 1]}


def test_combine_adds_counts_and_pools_delays() -> None:
    a = score_entity(TEN, alerts_at(10, 3), [Window(2, 4)])
    b = score_entity(TEN, alerts_at(10, 0), [Window(6, 6)])
    total = combine([a, b])
    assert (total.events, total.tp, total.fp, total.fn, total.windows) == (20, 1, 1, 3, 2)
    assert total.windows_detected == 1 and total.delays_events == [1]
    for name in PROFILES:
        assert total.nab_raw[name] == pytest.approx(a.nab_raw[name] + b.nab_raw[name])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="non-decreasing"):
        score_entity([2.0, 1.0], [0, 0], [])
    with pytest.raises(ValueError, match="slack_s"):
        score_entity(TEN, [0] * 10, [], slack_s=-1)
    with pytest.raises(ValueError, match="before it starts"):
        Window(5, 4)


# -- NAB -------------------------------------------------------------------------------------


def test_scaled_sigmoid_matches_the_published_values() -> None:
    # the values NAB's documentation gives for the window's start, middle and end
    assert scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert scaled_sigmoid(3.0) == -1.0


def test_nab_perfect_null_and_known_detector() -> None:
    times = [float(t) for t in range(40)]
    windows = [Window(10, 19), Window(30, 31)]
    perfect = score_entity(times, alerts_at(40, 10, 30), windows)
    null = score_entity(times, [0] * 40, windows)
    for profile in PROFILES:
        assert perfect.nab[profile] == pytest.approx(100.0)
        assert null.nab[profile] == pytest.approx(0.0)
    # by hand, standard profile (tp 1, fp 0.11, fn 1):
    #   detection at 14 in [10, 19]:  y = -(19 - 14 + 1)/10 = -0.6 → σ(-0.6)/σ(-1) = 0.917429
    #   false positive at 25:        y = (25 - 19)/(19 - 10) = 0.667 → 0.11·σ = -0.102422
    #   false positive at 2, before any window: -0.11;  window [30, 31] missed: -1
    known = score_entity(times, alerts_at(40, 2, 14, 16, 25), windows)
    raw = 0.9174287 - 0.1024221 - 0.11 - 1.0
    assert known.nab_raw["standard"] == pytest.approx(raw, abs=1e-6)
    assert known.nab["standard"] == pytest.approx(100 * (raw + 2) / 4, abs=1e-4)
    assert known.to_dict()["nab"]["standard"] == 42.625
    # reward_low_FN_rate doubles the cost of the missed window
    low_fn = 0.9174287 - 0.1024221 - 0.11 - 2.0
    assert known.nab_raw["reward_low_FN_rate"] == pytest.approx(low_fn, abs=1e-6)


def _nab_row_by_row(
    n: int, detected: set[int], windows: list[tuple[int, int]], w: dict[str, float]
) -> float:
    """NAB's scorer as published: a weighted score per row, then the best row per window."""
    row_score: list[float] = []
    row_window: list[int | None] = []
    previous: tuple[int, int] | None = None
    for i in range(n):
        inside = next((k for k, (a, b) in enumerate(windows) if a <= i <= b), None)
        if inside is not None:
            a, b = windows[inside]
            width = b - a + 1
            row_score.append(w["tp"] * scaled_sigmoid(-(b - i + 1) / width) / scaled_sigmoid(-1))
        elif previous is None:
            row_score.append(w["fp"] * -1.0)
        else:
            a, b = previous
            row_score.append(w["fp"] * scaled_sigmoid(abs(b - i) / max(b - a, 1)))
        row_window.append(inside)
        if inside is not None and i == windows[inside][1]:
            previous = windows[inside]
    parts = {k: -w["fn"] for k in range(len(windows))}
    fp = 0.0
    for i in sorted(detected):
        k = row_window[i]
        if k is None:
            fp += row_score[i]
        else:
            parts[k] = max(parts[k], row_score[i])
    return fp + sum(parts.values())


def test_nab_against_a_row_by_row_reference_on_random_series() -> None:
    rng = random.Random(5)
    for _ in range(300):
        n = rng.randint(1, 80)
        edges = sorted(rng.sample(range(n), k=2 * rng.randint(0, min(4, n // 2))))
        windows = [(edges[j], edges[j + 1]) for j in range(0, len(edges), 2)]
        detected = {i for i in range(n) if rng.random() < 0.15}
        for weights in PROFILES.values():
            raw, _ = nab_raw(sorted(detected), windows, weights)
            assert raw == pytest.approx(_nab_row_by_row(n, detected, windows, weights), abs=1e-9)


# -- labels ------------------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def test_synthetic_labels_become_one_event_windows(tmp_path: Path) -> None:
    labels = [
        Label(3, "AAPL", T0, "trade", "price_spike", "price +3% off the walk"),
        Label(9, "MSFT", T0 + timedelta(seconds=2), "quote", "spread_blowout", "spread 30x"),
    ]
    path = tmp_path / "labels.jsonl"
    write_labels(path, labels)
    fmt, windows = load_labels(path)
    assert fmt == "synthetic"
    t = T0.timestamp()
    assert windows == {
        "AAPL": [Window(t, t, "price_spike")],
        "MSFT": [Window(t + 2, t + 2, "spread_blowout")],
    }
    assert windows["AAPL"][0].anomaly == "price_spike"


def test_synthetic_labels_with_an_end_become_windows(tmp_path: Path) -> None:
    line = {
        "index": 5,
        "entity": "AAPL",
        "time": "2026-01-05T14:30:00Z",
        "kind": "trade",
        "anomaly": "level_shift",
        "detail": "",
        "end": "2026-01-05T14:30:09.5Z",
        "end_index": 90,
    }
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps(line) + "\n")
    (window,) = load_labels(path)[1]["AAPL"]
    label = Label.from_json(json.dumps(line))
    # read through Label.from_json: a one-event label when Label has no ``end`` field yet
    expected_end = getattr(label, "end", label.time).timestamp()
    assert (window.start, window.end) == (T0.timestamp(), expected_end)


def test_windows_json_in_rfc3339_and_epoch_seconds(tmp_path: Path) -> None:
    t = T0.timestamp()
    path = tmp_path / "windows.json"
    path.write_text(
        json.dumps(
            {
                "cpu": [["2026-01-05T14:30:00Z", "2026-01-05 14:30:10"], [t + 5, t + 20]],
                "disk": [[t + 100, t + 100]],
                "idle": [],
            }
        )
    )
    fmt, windows = load_labels(path)
    assert fmt == "windows"
    assert windows == {"cpu": [Window(t, t + 20)], "disk": [Window(t + 100, t + 100)]}


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"cpu": [["2026-01-05T14:30:10Z", "2026-01-05T14:30:00Z"]]}', "before it starts"),
        ('{"cpu": [["2026-01-05T14:30:00Z"]]}', "expected \\[start, end\\]"),
        ('{"cpu": [["yesterday", 5]]}', "window 1.*RFC 3339"),
        ('{"index": 1, "entity": "A"}\n', "line 1: not a label"),
        ("not json at all\n", "line 1: not a label"),
    ],
)
def test_bad_labels_say_where(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "labels.json"
    path.write_text(text)
    with pytest.raises(LabelError, match=match):
        load_labels(path)


def test_missing_labels_file(tmp_path: Path) -> None:
    with pytest.raises(LabelError, match="does not exist"):
        load_labels(tmp_path / "nope.json")


def test_flags_to_windows_and_merging() -> None:
    flags = {"a": [(3, True), (1, True), (2, False), (4, True), (5, False)], "b": [(1, False)]}
    assert windows_from_flags(flags) == {"a": [Window(1, 1), Window(3, 4)]}
    merged = merge_windows([Window(0, 2, "x"), Window(2, 3, "y"), Window(5, 6)])
    assert merged == [Window(0, 3, "x+y"), Window(5, 6)]
    assert merged[0].anomaly == "x+y"


def test_sigmoid_is_finite_far_before_a_window() -> None:
    assert math.isfinite(scaled_sigmoid(-1000.0))


def test_window_precision_and_f1_from_alerts_inside_and_outside_windows() -> None:
    from alerting.evaluation import Figures

    figures = Figures(alerts=10, alerts_outside=2, windows=8, windows_detected=4)
    assert figures.window_precision == pytest.approx(0.8)
    assert figures.window_recall == pytest.approx(0.5)
    assert figures.window_f1 == pytest.approx(2 * 0.8 * 0.5 / 1.3)
    assert Figures(windows=3).window_f1 is None  # no alert: precision undefined
    assert Figures(alerts=2, alerts_outside=2, windows=3).window_f1 == 0.0
    window = Figures(alerts=10, alerts_outside=2, windows=8, windows_detected=4).to_dict()
    assert window["window"]["f1"] == pytest.approx(0.615385)
