"""Per-entity thresholds: a score at or above ``value()`` is flagged.

A threshold is a small verb protocol, like River's ``QuantileFilter`` split in two:
``value()`` is the current threshold, ``update(score)`` learns from a score *after* the
decision on it, ``clone()`` gives the per-entity copy (fresh, same parameters) and
``params()`` the constructor parameters (for the configuration hash of snapshots).
Thresholds pickle with the entity's state and are deterministic.

- :class:`FixedThreshold`: one number, typically the detector's
  ``REGISTRY[name].default_threshold``.
- :class:`QuantileThreshold`: the ``q`` quantile of the entity's last ``window`` scores,
  never below ``min_value`` and +inf (flag nothing) until ``grace`` scores were seen.

Why a windowed exact quantile (River's ``stats.RollingQuantile``) rather than the P²
estimator (``stats.Quantile``, five markers, O(1) memory): P² never forgets, so after a
change of regime an entity's threshold stays where the old regime put it, and its
estimate of a tail quantile (q = 0.995) from a few hundred scores is rough, while an exact
quantile over a window follows the new regime within ``window`` scores and is what a
brute-force recompute gives (the oracle test checks it). River keeps the window in Rust:
the scores in arrival order and sorted (16 bytes per score, 16 KB per entity at the
default window of 1 000; an update is a binary search and a memory move), pickled with
the entity.

The quantile interpolates linearly between the two nearest ranks (numpy's default
``"linear"`` method): over scores ``s[0] ≤ … ≤ s[n-1]``, with ``h = (n − 1) q``, it is
``s[⌊h⌋] + (h − ⌊h⌋) (s[⌊h⌋ + 1] − s[⌊h⌋])``.

>>> t = QuantileThreshold(q=0.9, window=10, grace=5)
>>> t.value()
inf
>>> for score in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]:
...     t.update(float(score))
>>> round(t.value(), 6)
9.1
>>> t.update(100.0)  # the window slides: 1 drops out
>>> round(t.value(), 6)
19.0
>>> QuantileThreshold(q=0.9, window=10, grace=5, min_value=50.0).clone().params()
{'q': 0.9, 'window': 10, 'grace': 5, 'min_value': 50.0}
"""

from __future__ import annotations

from math import inf, isfinite
from typing import Any, Protocol, runtime_checkable

__all__ = ["FixedThreshold", "QuantileThreshold", "Threshold"]


@runtime_checkable
class Threshold(Protocol):
    """When a score is flagged; one object per entity."""

    def value(self) -> float:
        """The current threshold: a score ≥ this is flagged."""
        ...

    def update(self, score: float) -> None:
        """Learn from a score (after deciding on it)."""
        ...

    def clone(self) -> Threshold:
        """Fresh, same parameters."""
        ...

    def params(self) -> dict[str, object]:
        """The constructor parameters."""
        ...


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class FixedThreshold:
    """One fixed value; ``update`` learns nothing.

    >>> t = FixedThreshold(6.0)
    >>> t.update(100.0)
    >>> t.value(), t.params()
    (6.0, {'value': 6.0})
    """

    def __init__(self, value: float) -> None:
        if not _is_number(value) or not (isfinite(value) and value > 0):
            raise ValueError(f"value must be a positive finite number, got {value!r}")
        # stored privately: ``value`` is the protocol's method
        self._value = float(value)

    def value(self) -> float:
        return self._value

    def update(self, score: float) -> None:
        pass

    def clone(self) -> FixedThreshold:
        return FixedThreshold(self._value)

    def params(self) -> dict[str, object]:
        return {"value": self._value}


class QuantileThreshold:
    """The ``q`` quantile of the last ``window`` scores, at least ``min_value``.

    Parameters
    ----------
    q
        The quantile, in (0, 1): about ``1 − q`` of a stationary entity's scores are flagged
        (0.5 % at 0.995), so set ``min_value`` to keep a quiet entity from alerting on its
        own noise.
    window
        Recent scores the quantile covers.
    grace
        Scores needed before anything is flagged (``value()`` is +inf until then). With
        fewer than ``1 / (1 − q)`` scores (200 at q = 0.995) the quantile lies between the
        two largest, so a longer grace gives a steadier start.
    min_value
        Floor of the threshold, e.g. the detector's default threshold.

    NaN and infinite scores are not learned.
    """

    def __init__(
        self, q: float = 0.995, window: int = 1000, grace: int = 100, min_value: float = 0.0
    ) -> None:
        if not _is_number(q) or not 0.0 < q < 1.0:
            raise ValueError(f"q must be a number in (0, 1), got {q!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window must be an integer >= 2, got {window!r}")
        if isinstance(grace, bool) or not isinstance(grace, int) or not 1 <= grace <= window:
            raise ValueError(f"grace must be an integer in [1, window={window}], got {grace!r}")
        if not _is_number(min_value) or not (isfinite(min_value) and min_value >= 0):
            raise ValueError(f"min_value must be a finite number >= 0, got {min_value!r}")
        self.q = q
        self.window = window
        self.grace = grace
        self.min_value = min_value
        from river import stats  # lazily: River takes about a second to import

        self._quantile: Any = stats.RollingQuantile(q=q, window_size=window)
        self._seen = 0  # scores learned, counted up to ``grace``

    def value(self) -> float:
        if self._seen < self.grace:
            return inf
        quantile = float(self._quantile.get())
        return quantile if quantile > self.min_value else float(self.min_value)

    def update(self, score: float) -> None:
        if not isfinite(score):
            return
        self._quantile.update(float(score))
        if self._seen < self.grace:
            self._seen += 1

    def clone(self) -> QuantileThreshold:
        return QuantileThreshold(self.q, self.window, self.grace, self.min_value)

    def params(self) -> dict[str, object]:
        return {
            "q": self.q,
            "window": self.window,
            "grace": self.grace,
            "min_value": self.min_value,
        }
