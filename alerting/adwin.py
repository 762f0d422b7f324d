"""ADWIN, the adaptive windowing drift detector, with its state in plain data.

Bifet and Gavaldà, "Learning from time-changing data with adaptive windowing" (SDM 2007),
in its ADWIN2 form: the window is kept as an exponential histogram, rows of buckets
where row ``i`` sums ``2**i`` values, at most ``max_buckets`` per row (two are merged
into the next row when a row overflows). Every ``clock`` values, once the window holds
more than ``grace_period`` values, every cut of the window into an older part W0 and a
newer part W1 (both at least ``min_window_length`` long) is tested; when
``|mean(W0) − mean(W1)|`` exceeds

    ε = sqrt(2 m σ² δ′) + 2/3 δ′ m,   δ′ = ln(2 ln(n) / δ),  m = 1/(n0 − l + 1) + 1/(n1 − l + 1)

(σ² the window's variance, ``n`` its length, ``l`` the minimum length), the oldest bucket
is dropped and the test is repeated; a drift is reported, and the next value starts a
fresh window. These are River's ``ADWIN`` semantics with its parameters and defaults,
and the same arithmetic in the same order, so the two report the same drifts on the same
stream (``tests/unit/alerting/test_drift.py`` checks it on random streams); what differs is that
this one's state is a few lists of floats that :meth:`dump` writes and :meth:`load`
reads, so a snapshot of it is plain data rather than a pickle of a compiled object.

>>> adwin = Adwin()
>>> found = [i for i, x in enumerate([0.0] * 500 + [1.0] * 200) if adwin.update(x)]
>>> found[0] > 500, adwin.width < 200
(True, True)
"""

from __future__ import annotations

import math
from typing import Any

from alerting.errors import PlainError
from alerting.plain import integer, number, sequence

__all__ = ["Adwin"]


class Adwin:
    """River ``ADWIN``'s verbs (``update``, ``drift_detected``) and parameters."""

    __slots__ = (
        "_grace",
        "_min_length",
        "_rows",
        "clock",
        "delta",
        "drift_detected",
        "grace_period",
        "max_buckets",
        "min_window_length",
        "n_detections",
        "tick",
        "total",
        "variance",
        "width",
    )

    def __init__(
        self,
        delta: float = 0.002,
        clock: int = 32,
        max_buckets: int = 5,
        min_window_length: int = 5,
        grace_period: int = 10,
    ) -> None:
        if not (isinstance(delta, int | float) and 0.0 < delta < 1.0):
            raise ValueError(f"delta must be a number in (0, 1), got {delta!r}")
        for name, value, low in (
            ("clock", clock, 1),
            ("max_buckets", max_buckets, 2),
            ("min_window_length", min_window_length, 1),
            ("grace_period", grace_period, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        self.delta = float(delta)
        self.clock = clock
        self.max_buckets = max_buckets
        self.min_window_length = min_window_length
        self.grace_period = grace_period
        self._min_length = float(min_window_length)
        self._grace = float(grace_period)
        self.n_detections = 0
        self.drift_detected = False
        self._reset()

    def _reset(self) -> None:
        self.total = 0.0
        self.variance = 0.0  # the sum of squared deviations, not divided by the width
        self.width = 0.0
        self.tick = 0
        # rows of [totals, variances]; row i's buckets each hold 2**i values, oldest first
        self._rows: list[list[list[float]]] = [[[], []]]

    @property
    def estimation(self) -> float:
        """The window's mean."""
        return self.total / self.width if self.width else 0.0

    def update(self, x: float) -> bool:
        """Learn ``x``; True (and :attr:`drift_detected`) if the window was cut."""
        if self.drift_detected:
            self._reset()  # as River's: the value after a drift starts a fresh window
        self._insert(float(x))
        self.drift_detected = self._detect()
        return self.drift_detected

    def _insert(self, value: float) -> None:
        totals, variances = self._rows[0]
        totals.append(value)
        variances.append(0.0)
        self.width += 1.0
        incremental = 0.0
        if self.width > 1.0:
            step = value - self.total / (self.width - 1.0)
            incremental = (self.width - 1.0) * step * step / self.width
        self.variance += incremental
        self.total += value
        self._compress()

    def _compress(self) -> None:
        """Merge the two oldest buckets of every full row into the next row."""
        rows, full = self._rows, self.max_buckets + 1
        index = 0
        while len(rows[index][0]) == full:
            totals, variances = rows[index]
            n = float(1 << index)
            mean1, mean2 = totals[0] / n, totals[1] / n
            merged_total = totals[0] + totals[1]
            gap = n * 0.5 * (mean1 - mean2) * (mean1 - mean2)
            merged_variance = variances[0] + variances[1] + gap
            if index + 1 == len(rows):
                rows.append([[], []])
            rows[index + 1][0].append(merged_total)
            rows[index + 1][1].append(merged_variance)
            del totals[:2], variances[:2]
            if len(rows[index + 1][0]) <= self.max_buckets:
                break
            index += 1

    def _drop_oldest(self) -> None:
        """Drop the oldest bucket (of the last row), taking its values out of the moments."""
        rows = self._rows
        last = len(rows) - 1
        totals, variances = rows[last]
        n = float(1 << last)
        u, v = totals[0], variances[0]
        mean = u / n
        self.width -= n
        self.total -= u
        window_mean = self.total / self.width
        self.variance -= v + n * self.width * (mean - window_mean) * (mean - window_mean) / (
            n + self.width
        )
        del totals[0], variances[0]
        if not totals:
            rows.pop()

    def _detect(self) -> bool:
        changed = False
        self.tick += 1
        if self.tick % self.clock or not self.width > self._grace:
            return False
        cut = True
        while cut:
            cut = False
            n0, n1, u0, u1 = 0.0, self.width, 0.0, self.total
            done = False
            for index in range(len(self._rows) - 1, -1, -1):
                size = float(1 << index)
                totals = self._rows[index][0]
                last = len(totals) - 1
                for k in range(len(totals)):
                    n0 += size
                    n1 -= size
                    u0 += totals[k]
                    u1 -= totals[k]
                    if index == 0 and k == last:
                        done = True
                        break
                    if (
                        n1 >= self._min_length
                        and n0 >= self._min_length
                        and self._significant(n0, n1, u0 / n0 - u1 / n1)
                    ):
                        cut = changed = True
                        if self.width > 0.0:
                            self._drop_oldest()
                        done = True
                        break
                if done:
                    break
        if changed:
            self.n_detections += 1
        return changed

    def _significant(self, n0: float, n1: float, mean_gap: float) -> bool:
        delta_prime = math.log(2.0 * math.log(self.width) / self.delta)
        m = 1.0 / (n0 - self._min_length + 1.0) + 1.0 / (n1 - self._min_length + 1.0)
        spread = 2.0 * m * (self.variance / self.width) * delta_prime
        if spread < 0.0:
            # a flat line's variance can round to just below 0: River's C sqrt is then NaN
            # and the cut not significant (math.sqrt would raise in the consume loop)
            return False
        epsilon = math.sqrt(spread) + 2.0 / 3.0 * delta_prime * m
        return abs(mean_gap) > epsilon

    def dump(self) -> list[Any]:
        """Plain data (:mod:`alerting.plain`)."""
        return [
            self.total,
            self.variance,
            self.width,
            self.tick,
            self.n_detections,
            self.drift_detected,
            self._rows,
        ]

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data into this fresh detector (checked: ``PlainError``)."""
        total, variance, width, tick, detections, detected, rows = sequence(data, "adwin", 7)
        self.total = number(total, "adwin.total")
        self.variance = number(variance, "adwin.variance")
        self.width = number(width, "adwin.width")
        self.tick = integer(tick, "adwin.tick")
        self.n_detections = integer(detections, "adwin.n_detections")
        if not isinstance(detected, bool):
            raise PlainError("adwin.drift_detected: expected true or false")
        self.drift_detected = detected
        loaded: list[list[list[float]]] = []
        for index, row in enumerate(sequence(rows, "adwin.rows", limit=64)):
            totals, variances = sequence(row, f"adwin.rows.{index}", 2)
            room = self.max_buckets + 1
            t = [number(v, "adwin.rows") for v in sequence(totals, "adwin.rows", limit=room)]
            v = [number(v, "adwin.rows") for v in sequence(variances, "adwin.rows", len(t))]
            loaded.append([t, v])
        if not loaded:
            raise PlainError("adwin.rows: at least one row")
        self._rows = loaded
