"""Explanations of firing alerts: the usual range of each feature, and a line a person can read.

:class:`FeatureStats` keeps, per entity, an exponentially weighted mean and variance of
each feature (O(1) per feature per event, a few floats per feature, at most
``MAX_FEATURES`` features). An alert's explanation compares the event's features with
them: ``expected`` ± ``band`` (``BAND_SIGMAS`` standard deviations) is the usual range,
``deviation`` is how far the value is from ``expected`` in band units. The features
that contributed most come from the detector's ``explain_one`` when it has one, else
from the deviations.

Updates are winsorised at the band, so one huge anomaly barely widens the usual range,
while a lasting change still moves the mean (by up to ``alpha`` × band per event).

>>> stats = FeatureStats()
>>> for i in range(200):
...     stats.update({"log_size": 4.6 + (0.1 if i % 2 else -0.1)})
>>> e = explain(stats, {"log_size": 7.1}, {}, "AAPL", "trade", "critical")
>>> e["top"], round(e["features"]["log_size"]["expected"], 2)
(['log_size'], 4.6)
>>> e["summary"]
'AAPL trade size 12x usual (band ×/÷ 1.3) [critical]'
"""

from __future__ import annotations

import math
from typing import Any, Final

from alerting.errors import PlainError
from alerting.plain import mapping, number, sequence, text

#: weight of a new value in the running mean and variance (a memory of about 1/alpha events)
ALPHA: Final = 0.02
#: the usual range is expected ± this many standard deviations
BAND_SIGMAS: Final = 3.0
_BAND2: Final = BAND_SIGMAS * BAND_SIGMAS
#: features tracked per entity; more (an ever-changing metric schema) are not explained
MAX_FEATURES: Final = 64
#: values seen before updates are winsorised and a band is reported
MIN_COUNT: Final = 10
#: features named in the top list and the summary
TOP: Final = 3


class FeatureStats:
    """Running mean and variance of each feature of one entity
    (``name -> [count (counted up to 1/alpha), mean, variance]``)."""

    __slots__ = ("alpha", "stats")

    def __init__(self, alpha: float = ALPHA) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")
        self.alpha = alpha
        self.stats: dict[str, list[float]] = {}

    def update(self, x: dict[str, float]) -> None:
        """Learn one event's features."""
        stats = self.stats
        alpha = self.alpha
        min_count, band2 = MIN_COUNT, _BAND2  # locals: this runs for every event
        for name, value in x.items():
            entry = stats.get(name)
            if entry is None:
                if len(stats) < MAX_FEATURES and math.isfinite(value):
                    stats[name] = [1.0, value, 0.0]
                continue
            n, mean, var = entry
            delta = value - mean
            if n >= min_count:
                if delta * delta > band2 * var:  # beyond the band: winsorise (no sqrt usually)
                    if var > 0.0:
                        reach = BAND_SIGMAS * math.sqrt(var)
                        delta = reach if delta > 0 else -reach
                    elif not math.isfinite(delta):
                        continue
                    # else a so-far constant feature moved: learned as is, or its band
                    # would stay 0 for good
            elif not math.isfinite(delta):
                continue
            if n * alpha < 1.0:  # a plain mean and variance until 1/alpha values
                n += 1.0
                entry[0] = n
                weight = 1.0 / n
            else:
                weight = alpha
            entry[1] = mean + weight * delta
            entry[2] = (1.0 - weight) * (var + weight * delta * delta)

    def dump(self) -> dict[str, Any]:
        """Plain data (:mod:`alerting.plain`)."""
        return {"alpha": self.alpha, "stats": self.stats}

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data (checked: :class:`~alerting.errors.PlainError`)."""
        d = mapping(data, "stats")
        if number(d.get("alpha"), "stats.alpha") != self.alpha:
            raise PlainError("stats.alpha: not this configuration's")
        stats = mapping(d.get("stats"), "stats.stats", MAX_FEATURES)
        self.stats = {
            text(name, "stats.stats", 400): [
                number(v, f"stats.{name}") for v in sequence(entry, f"stats.{name}", 3)
            ]
            for name, entry in stats.items()
        }

    def usual(self, name: str) -> tuple[float, float] | None:
        """(expected, band) of a feature, or None before ``MIN_COUNT`` values."""
        entry = self.stats.get(name)
        if entry is None or entry[0] < MIN_COUNT:
            return None
        mean = entry[1]
        band = BAND_SIGMAS * math.sqrt(entry[2])
        return mean, max(band, 1e-12 * max(1.0, abs(mean)))


def explain(
    stats: FeatureStats,
    x: dict[str, float],
    contributions: dict[str, float],
    entity: str,
    kind: str,
    severity: str,
    unit: str = "",
) -> dict[str, Any]:
    """The ``explanation`` of a firing alert: summary, top features, and per-feature range."""
    features: dict[str, dict[str, float]] = {}
    for name, value in x.items():
        usual = stats.usual(name)
        if usual is None or not math.isfinite(value):
            continue
        expected, band = usual
        features[name] = {
            "value": value,
            "expected": expected,
            "band": band,
            "deviation": (value - expected) / band,
        }
    if contributions:
        ranked = sorted(contributions, key=lambda n: -abs(contributions[n]))
    else:
        ranked = sorted(features, key=lambda n: -abs(features[n]["deviation"]))
    top = [name for name in ranked if name in x][:TOP]
    # the summary names the first feature, and the others only when outside their usual
    # range; a metric value is named once, by the most telling of its features
    named: list[str] = []
    bases: set[str] = set()
    for name in ranked:
        base = _base(name)
        if name not in x or base in bases:
            continue
        if named and abs(features.get(name, _FAR)["deviation"]) < 1:
            continue  # inside its usual range
        bases.add(base)
        named.append(name)
        if len(named) == TOP:
            break
    parts = [_describe(name, x[name], features.get(name), x) for name in named]
    if contributions and unit:
        parts = [f"{p} ({contributions[n]:+.3g}{unit})" for p, n in zip(parts, named, strict=True)]
    summary = f"{entity} {kind} " + (", ".join(parts) or "unusual") + f" [{severity}]"
    return {"summary": summary, "top": top, "features": features}


_FAR: Final = {"deviation": math.inf}  # a feature without statistics yet


def _percent(log_change: float) -> float:
    return math.expm1(log_change) * 100.0


#: the features :mod:`alerting.features` derives from each metric value, by suffix
_DERIVED: Final = (".diff", ".trend", ".vol", ".season")


def _base(name: str) -> str:
    """The metric value a feature is derived from (``cpu.vol`` → ``cpu``), else the name."""
    for suffix in _DERIVED:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _describe(
    name: str, value: float, usual: dict[str, float] | None, x: dict[str, float] | None = None
) -> str:
    """One feature in words: ``price +3.4% vs band ±0.2%``, ``size 12x usual``."""
    if usual is None:
        return f"{name} {value:.4g}"
    expected, band = usual["expected"], usual["band"]
    base = _base(name)
    if base != name:
        now = f"{base} {x[base]:.4g}: " if x is not None and base in x else f"{base}: "
        suffix = name[len(base) :]
        if suffix == ".diff":
            return f"{now}a change of {value:+.3g} vs usual ± {band:.3g}"
        if suffix == ".trend":
            return f"{now}drifting {value:+.3g} per event vs usual ± {band:.3g}"
        if suffix == ".season":
            return f"{now}{value:+.3g} off its usual level at this hour and weekday (± {band:.3g})"
        # .vol: the log of a variance, so half its change is that of the spread
        ratio = math.exp(max(min((value - expected) / 2.0, 700.0), -700.0))
        if ratio >= 1.0:
            return f"{now}{ratio:.2g}x as variable as usual"
        return f"{now}flat, {1.0 / ratio:.2g}x less variable than usual (stuck?)"
    if name in ("log_return", "mid_log_return"):
        what = "price" if name == "log_return" else "mid"
        return f"{what} {_percent(value):+.2g}% vs band ±{band * 100:.2g}%"
    if name in ("log_size", "log_interarrival"):
        what = "size" if name == "log_size" else "time since last trade"
        ratio = math.exp(min(value - expected, 700.0))
        shown = f"{ratio:.2g}" if ratio < 10 else f"{ratio:.0f}"
        return f"{what} {shown}x usual (band ×/÷ {math.exp(min(band, 700.0)):.2g})"
    if name == "spread_bps":
        return f"spread {value:.3g} bps vs usual {expected:.2g} ± {band:.2g}"
    return f"{name} {value:.4g} vs usual {expected:.4g} ± {band:.3g}"
