"""A rule-based baseline: the rolling z-score of each feature over the last ``window`` events.

The score is the largest absolute z-score among the event's features, measured
against the window *before* the event (score first, then learn). Memory is bounded:
one ring buffer of ``window`` floats per feature.

>>> det = RollingZScore(window=16, min_history=4)
>>> for v in [1.0, 1.1, 0.9, 1.0, 1.05, 0.95]:
...     det.learn_one({"v": v})
>>> round(det.score_one({"v": 1.0}), 6)
0.0
>>> det.score_one({"v": 3.0}) > 20
True
"""

from __future__ import annotations

from math import fsum, sqrt
from typing import Any

from alerting.errors import PlainError
from alerting.params import Parameterised
from alerting.plain import (
    integer,
    mapping,
    number,
    pack_floats,
    sequence,
    text,
    unpack_floats,
)

#: scores are capped so a zero-variance feature that moves gives a large, finite score
MAX_SCORE = 1e6


class _Window:
    """Ring buffer with a running mean and sum of squared deviations (Welford, with removal)."""

    __slots__ = ("buf", "m2", "mean", "n", "pos")

    def __init__(self, size: int) -> None:
        self.buf = [0.0] * size
        self.pos = 0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def push(self, value: float) -> None:
        size = len(self.buf)
        if self.n < size:
            self.n += 1
            delta = value - self.mean
            self.mean += delta / self.n
            self.m2 += delta * (value - self.mean)
        else:
            old = self.buf[self.pos]
            old_mean, old_m2 = self.mean, self.m2
            self.mean += (value - old) / size
            self.m2 += (value - old) * (value - self.mean + old - old_mean)
            self.buf[self.pos] = value
            self.pos = (self.pos + 1) % size
            # the rolling update accumulates rounding: recompute exactly once per window
            # turnover (amortised O(1)) and whenever cancellation wipes out m2 (a level
            # shift into a flat stretch), where the rounding left is larger than m2 itself
            if self.pos == 0 or (old_m2 > 0.0 and self.m2 <= 1e-9 * old_m2):
                self._recompute()
            return
        self.buf[self.pos] = value
        self.pos = (self.pos + 1) % size

    def _recompute(self) -> None:
        values = self.buf
        low, high = min(values), max(values)
        if low == high:
            self.mean, self.m2 = low, 0.0
        else:
            self.mean = fsum(values) / len(values)
            self.m2 = fsum((v - self.mean) ** 2 for v in values)

    def std(self) -> float:
        return sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0


class RollingZScore(Parameterised):
    """Rolling z-score per feature; score = max |z| over the event's features.

    Parameters
    ----------
    window
        Events per feature the statistics cover.
    min_history
        A feature scores 0.0 until it has this many past values.
    min_std
        Floor of the standard deviation, so constant features give finite scores.
    max_features
        Most distinct feature names tracked per entity; later new names are scored 0 and
        not learned, so an entity whose metric names keep changing stays bounded.
    """

    name = "zscore"
    score_unit = "σ"

    def __init__(
        self,
        window: int = 256,
        min_history: int = 8,
        min_std: float = 1e-9,
        max_features: int = 128,
    ) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2, got {window}")
        if not 2 <= min_history <= window:
            raise ValueError(f"min_history must be in [2, window={window}], got {min_history}")
        if not min_std > 0:
            raise ValueError(f"min_std must be positive, got {min_std}")
        if max_features < 1:
            raise ValueError(f"max_features must be at least 1, got {max_features}")
        self.window = window
        self.min_history = min_history
        self.min_std = min_std
        self.max_features = max_features
        self._features: dict[str, _Window] = {}

    def _z(self, name: str, value: float) -> float:
        win = self._features.get(name)
        if win is None or win.n < self.min_history:
            return 0.0
        z = abs(value - win.mean) / max(win.std(), self.min_std)
        return z if z < MAX_SCORE else MAX_SCORE

    def score_one(self, x: dict[str, float]) -> float:
        best = 0.0
        for name, value in x.items():
            z = self._z(name, value)
            if z > best:
                best = z
        return best

    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        out = {}
        for name, value in x.items():
            win = self._features.get(name)
            if win is not None and win.n >= self.min_history:
                sign = 1.0 if value >= win.mean else -1.0
                out[name] = sign * self._z(name, value)
        return out

    def score_features(self, x: dict[str, float]) -> dict[str, float]:
        """Each scored feature's |z| (:class:`~alerting.detectors.base.FeatureScorer`)."""
        out = {}
        for name, value in x.items():
            win = self._features.get(name)
            if win is not None and win.n >= self.min_history:
                out[name] = self._z(name, value)
        return out

    def learn_one(self, x: dict[str, float]) -> None:
        features = self._features
        for name, value in x.items():
            win = features.get(name)
            if win is None:
                if len(features) >= self.max_features:
                    continue
                win = features[name] = _Window(self.window)
            win.push(value)

    def dump(self) -> dict[str, list[Any]]:
        """Plain data (:mod:`alerting.plain`): per feature, its ring buffer and moments."""
        return {
            name: [w.pos, w.n, w.mean, w.m2, pack_floats(w.buf)]
            for name, w in self._features.items()
        }

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data into this fresh clone (checked: ``PlainError``)."""
        self._features = {}
        for name, values in mapping(data, "detector", self.max_features).items():
            where = f"detector.{name}"
            pos, n, mean, m2, buf = sequence(values, where, 5)
            window = _Window(self.window)
            window.pos = integer(pos, where)
            window.n = integer(n, where)
            if window.pos >= self.window or window.n > self.window:
                raise PlainError(f"{where}: position or count outside the window")
            window.mean = number(mean, where)
            window.m2 = number(m2, where)
            window.buf = unpack_floats(buf, self.window, where).tolist()
            self._features[text(name, "detector", 400)] = window

    def stats(self, name: str) -> tuple[float, float] | None:
        """(mean, std) of a feature's window, or None before it has history."""
        win = self._features.get(name)
        return None if win is None or win.n < 2 else (win.mean, win.std())
