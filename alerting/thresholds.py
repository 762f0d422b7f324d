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
- :class:`TailThreshold` (the default): a *calibrated* decision. Each score becomes a tail
  probability against the entity's own recent scores, and the threshold is a false-alarm
  budget (expected breaching events per 10,000 of an entity whose scores do not change),
  the same for every detector whatever its score scale.

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

import math
from array import array
from math import inf, isfinite
from typing import Any, ClassVar, Protocol, runtime_checkable

from alerting.errors import PlainError
from alerting.params import Parameterised
from alerting.plain import (
    NotPlain,
    integer,
    mapping,
    number,
    pack_floats,
    sequence,
    text,
    unpack_floats,
)

__all__ = ["FeatureTails", "FixedThreshold", "QuantileThreshold", "TailThreshold", "Threshold"]


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


class FixedThreshold(Parameterised):
    """One fixed value; ``update`` learns nothing.

    >>> t = FixedThreshold(6.0)
    >>> t.update(100.0)
    >>> t.value(), t.params()
    (6.0, {'value': 6.0})
    """

    #: ``value()`` is the protocol's method: the parameter is ``_value``
    stored_as: ClassVar[dict[str, str]] = {"value": "_value"}

    def __init__(self, value: float) -> None:
        if not _is_number(value) or not (isfinite(value) and value > 0):
            raise ValueError(f"value must be a positive finite number, got {value!r}")
        # stored privately: ``value`` is the protocol's method
        self._value = float(value)

    def value(self) -> float:
        return self._value

    def update(self, score: float) -> None:
        pass

    def dump(self) -> None:
        """Nothing to remember (:mod:`alerting.plain`)."""
        return None

    def load(self, data: Any) -> None:
        if data is not None:
            raise PlainError("threshold: a fixed threshold has no state")


class QuantileThreshold(Parameterised):
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
        self.check(q, window, grace, min_value)
        self.q = q
        self.window = window
        self.grace = grace
        self.min_value = min_value
        from river import stats  # lazily: River takes about a second to import

        self._quantile: Any = stats.RollingQuantile(q=q, window_size=window)
        self._seen = 0  # scores learned, counted up to ``grace``

    @staticmethod
    def check(q: float, window: int, grace: int, min_value: float) -> None:
        """Raise ``ValueError`` naming the first parameter a threshold cannot work with.

        The constructor's checks, without building River's rolling quantile (so settings
        can be checked without importing River).

        >>> QuantileThreshold.check(q=0.99, window=100, grace=200, min_value=0.0)
        Traceback (most recent call last):
        ...
        ValueError: grace must be at most window (100), got 200
        """
        if not _is_number(q) or not 0.0 < q < 1.0:
            raise ValueError(f"q must be a number in (0, 1), got {q!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"window must be an integer >= 2, got {window!r}")
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 1:
            raise ValueError(f"grace must be an integer >= 1, got {grace!r}")
        if grace > window:
            raise ValueError(f"grace must be at most window ({window}), got {grace}")
        if not _is_number(min_value) or not (isfinite(min_value) and min_value >= 0):
            raise ValueError(f"min_value must be a finite number >= 0, got {min_value!r}")

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

    def dump(self) -> Any:
        """River's rolling quantile has no plain form: pickled, signed (:mod:`alerting.plain`)."""
        raise NotPlain("threshold.kind = quantile (River's RollingQuantile)")

    def load(self, data: Any) -> None:  # pragma: no cover - never dumped
        raise PlainError("threshold: a quantile threshold is never plain data")


#: most decimal orders of surprise a score can carry (a tail probability of 1e-300)
MAX_SURPRISE = 300.0
#: peaks a tail needs before it is fitted; with fewer, a score above them all is judged
#: by the sample size alone (one in ``n``)
MIN_PEAKS = 5


class _P2:
    """The P² estimate of one quantile (Jain and Chlamtac, CACM 1985): five markers, no
    stored sample. Used only while a :class:`TailThreshold` is in its grace."""

    __slots__ = ("data", "n", "q")

    def __init__(self, q: float) -> None:
        self.q = q
        self.n = 0
        # heights[0:5], positions[5:10], desired positions[10:15]
        self.data = array("d", bytes(8 * 15))

    def add(self, x: float) -> None:
        d, q = self.data, self.q
        n = self.n = self.n + 1
        if n <= 5:
            d[n - 1] = x
            if n == 5:
                d[0:5] = array("d", sorted(d[0:5]))
                for i in range(5):
                    d[5 + i] = i + 1.0
                d[10:15] = array("d", (1.0, 1.0 + 2.0 * q, 1.0 + 4.0 * q, 3.0 + 2.0 * q, 5.0))
            return
        if x < d[0]:
            d[0] = x
            k = 0
        elif x >= d[4]:
            d[4] = x
            k = 3
        else:
            k = 0
            while k < 3 and x >= d[k + 1]:
                k += 1
        for i in range(k + 1, 5):
            d[5 + i] += 1.0
        d[11] += q / 2.0
        d[12] += q
        d[13] += (1.0 + q) / 2.0
        d[14] += 1.0
        for i in (1, 2, 3):
            gap = d[10 + i] - d[5 + i]
            if (gap >= 1.0 and d[6 + i] - d[5 + i] > 1.0) or (
                gap <= -1.0 and d[4 + i] - d[5 + i] < -1.0
            ):
                step = 1.0 if gap > 0 else -1.0
                h, hl, hr = d[i], d[i - 1], d[i + 1]
                p, pl, pr = d[5 + i], d[4 + i], d[6 + i]
                parabolic = h + step / (pr - pl) * (
                    (p - pl + step) * (hr - h) / (pr - p) + (pr - p - step) * (h - hl) / (p - pl)
                )
                if hl < parabolic < hr:
                    d[i] = parabolic
                else:  # linear, toward the neighbour in the step's direction
                    j = i + int(step)
                    d[i] = h + step * (d[j] - h) / (d[5 + j] - p)
                d[5 + i] = p + step

    def dump(self) -> list[Any]:
        return [self.n, pack_floats(self.data)]

    def load(self, data: Any) -> None:
        n, packed = sequence(data, "threshold.p2", 2)
        self.n = integer(n, "threshold.p2")
        self.data = unpack_floats(packed, 15, "threshold.p2")

    def value(self) -> float:
        d, n = self.data, self.n
        if n >= 5:
            return d[2]
        ordered = sorted(d[0:n])
        return ordered[min(n - 1, int(self.q * n))]


class TailThreshold(Parameterised):
    """The tail probability of a score against the entity's own recent scores.

    Peaks over threshold, as in SPOT (Siffer et al., "Anomaly detection in streams with
    extreme value theory", KDD 2017), made to forget and to start without a stored sample:
    ``u`` tracks the ``level`` quantile of the entity's scores (a stochastic approximation
    whose step is scaled by the tail's own scale, the peaks' mean excess), and the
    excesses of the scores above ``u`` (the peaks, ``1 − level`` of them) are fitted with a
    generalized Pareto distribution by exponentially weighted moments. A score ``s > u``
    then has the tail probability

        P(S ≥ s) = (1 − level) · (1 + γ (s − u) / σ) ** (−1 / γ)

    (``exp(−(s − u) / σ)`` at γ = 0); a score at or below ``u`` has ``1 − level``. The shape
    γ, kept in [0, 0.5], is what makes one budget fit light- and heavy-tailed entities: a
    heavy tail (γ > 0) puts the threshold further out; a bounded tail (γ < 0) is not
    trusted, since it would call any score past its guessed end point impossible.
    ``value()`` is the score whose tail probability is :attr:`alpha` = ``budget`` / 10,000.

    Nothing breaches during the first ``grace`` scores (``tail`` is 1.0, ``value()`` +inf):
    ``u`` is then the P² estimate of the quantile (five markers, Jain and Chlamtac 1985),
    and the peaks over it are measured over the grace's second half. A
    score learned after that counts as at most the current threshold, so an anomaly cannot
    fatten the tail it is judged against; a lasting change still moves ``u`` and the fit,
    at the pace of ``half_life``. State: a dozen floats, whatever the history.

    Parameters
    ----------
    budget
        Breaching events per 10,000 scores of an entity whose score distribution does not
        change (the per-event false-alarm rate, times 10,000).
    level
        Quantile above which scores are peaks (the tail that is fitted).
    grace
        Scores learned before anything breaches.
    half_life
        Scores after which an old score weighs half (peaks forget at the same pace in
        time); 0 = never forget.

    >>> import random
    >>> rng = random.Random(1)
    >>> t = TailThreshold(budget=1.0, grace=500)
    >>> t.value()
    inf
    >>> for _ in range(20_000):
    ...     t.update(abs(rng.gauss(0.0, 1.0)))
    >>> 3.89 < t.value() < 4.6    # |N(0, 1)| exceeds 3.89 with probability 1e-4: at least
    True
    >>> t.tail(2.0) > 1e-2 > 1e-5 > t.tail(6.0)   # exponential, so a little conservative
    True
    """

    __slots__ = (
        "_fade",
        "_fade_peak",
        "_gamma",
        "_k",
        "_m1",
        "_m2",
        "_n",
        "_p2",
        "_sigma",
        "_u",
        "_z",
        "alpha",
        "budget",
        "grace",
        "half_life",
        "level",
    )

    def __init__(
        self, budget: float = 1.0, level: float = 0.95, grace: int = 500, half_life: int = 5000
    ) -> None:
        self.check(budget, level, grace, half_life)
        self.budget = float(budget)
        self.level = float(level)
        self.grace = grace
        self.half_life = half_life
        self.alpha = self.budget / 10_000.0
        self._fade = 1.0 - 0.5 ** (1.0 / half_life) if half_life else 0.0
        # peaks are 1 - level of the scores: the same half-life in time is fewer peaks
        peaks = half_life * (1.0 - self.level)
        self._fade_peak = 1.0 - 0.5 ** (1.0 / peaks) if half_life and peaks > 1 else self._fade
        self._n = 0
        self._k = 0
        self._u = 0.0
        self._p2: _P2 | None = _P2(self.level)  # u while in the grace, then dropped
        self._m1 = 0.0
        self._m2 = 0.0
        self._gamma = 0.0
        self._sigma = 0.0
        self._z = inf

    @staticmethod
    def check(budget: float, level: float, grace: int, half_life: int) -> None:
        """Raise ``ValueError`` naming the first parameter a threshold cannot work with.

        The constructor's checks, also those of :class:`FeatureTails`'s per-feature tails.

        >>> TailThreshold.check(budget=2.0, level=0.95, grace=500, half_life=100)
        Traceback (most recent call last):
        ...
        ValueError: half_life must be 0 or at least grace (500), got 100
        """
        if not _is_number(budget) or not (isfinite(budget) and 0.0 < budget < 10_000.0):
            raise ValueError(f"budget must be a number in (0, 10000), got {budget!r}")
        if not _is_number(level) or not 0.5 <= level < 1.0:
            raise ValueError(f"level must be a number in [0.5, 1), got {level!r}")
        if isinstance(grace, bool) or not isinstance(grace, int) or grace < 20:
            raise ValueError(f"grace must be an integer >= 20, got {grace!r}")
        if isinstance(half_life, bool) or not isinstance(half_life, int) or half_life < 0:
            raise ValueError(
                f"half_life must be an integer >= 0 (0: never forget), got {half_life!r}"
            )
        if 0 < half_life < grace:
            raise ValueError(f"half_life must be 0 or at least grace ({grace}), got {half_life}")
        alpha = float(budget) / 10_000.0
        if 1.0 - float(level) <= alpha:
            raise ValueError(
                f"level must leave more than the budget's tail above it: 1 - level = "
                f"{1.0 - float(level):g} <= alpha = {alpha:g}"
            )

    @property
    def calibrated(self) -> bool:
        """True once ``grace`` scores were learned."""
        return self._n >= self.grace

    def value(self) -> float:
        return self._z

    def tail(self, score: float) -> float:
        """P(S ≥ score) for this entity's scores (1.0 while still in its grace)."""
        if self._n < self.grace:
            return 1.0
        excess = score - self._u
        tail = 1.0 - self.level
        if not excess > 0.0:
            return tail if excess == excess else 1.0  # NaN: not a tail event
        sigma, gamma = self._sigma, self._gamma
        if sigma <= 0.0 or self._k < MIN_PEAKS:
            # no tail to fit (a so-far constant score, or too few peaks): a score above
            # them all is as rare as the sample says, one in its size
            return min(tail, 1.0 / (self._n + 1.0))
        if gamma == 0.0:
            return tail * math.exp(-excess / sigma)
        base = 1.0 + gamma * excess / sigma
        if base <= 0.0:
            return 0.0  # past the end point of a bounded tail
        return tail * math.pow(base, -1.0 / gamma)

    def surprise(self, score: float) -> float:
        """``−log10`` of :meth:`tail`, at most :data:`MAX_SURPRISE` (decimal orders)."""
        p = self.tail(score)
        return MAX_SURPRISE if p <= 1e-300 else -math.log10(p)

    def quantile(self, p: float) -> float:
        """The score whose tail probability is ``p`` (+inf while still in its grace)."""
        if self._n < self.grace:
            return inf
        tail = 1.0 - self.level
        if p >= tail:
            return self._u
        if not p > 0.0:
            return inf
        if self._sigma <= 0.0 or self._k < MIN_PEAKS:  # no tail fitted: see tail()
            return self._u if p >= 1.0 / (self._n + 1.0) else inf
        sigma, gamma = self._sigma, self._gamma
        if gamma == 0.0:
            return self._u + sigma * math.log(tail / p)
        return self._u + sigma / gamma * (math.pow(tail / p, gamma) - 1.0)

    def update(self, score: float) -> None:
        if not isfinite(score):
            return
        if score > self._z and self._k >= MIN_PEAKS and self._sigma > 0.0:
            score = self._z  # an anomaly is learned as if at the threshold
        n = self._n = self._n + 1
        weight = 1.0 / n
        if weight < self._fade:
            weight = self._fade
        level, tail = self.level, 1.0 - self.level
        p2 = self._p2
        if p2 is not None:  # in the grace: u is the P² estimate of the quantile
            p2.add(score)
            self._u = p2.value()
            excess = score - self._u
            if n > self.grace // 2 and excess > 0.0:  # peaks, once u has settled
                self._k += 1
                self._m1 += (excess - self._m1) / self._k
                self._m2 += (excess * excess - self._m2) / self._k
            if n >= self.grace:
                self._p2 = None
                self._fit()
            return
        excess = score - self._u
        scale = self._sigma / (1.0 - self._gamma) if self._sigma > 0.0 else 0.0  # mean excess
        if excess > 0.0:
            self._k += 1
            w = 1.0 / self._k
            if w < self._fade_peak:
                w = self._fade_peak
            self._m1 += w * (excess - self._m1)
            self._m2 += w * (excess * excess - self._m2)
            self._u += weight * level * scale / tail
            self._fit()
        else:
            u = self._u - weight * scale
            self._u = u if u > 0.0 else 0.0  # scores are >= 0
            self._z = self.quantile(self.alpha)

    def _fit(self) -> None:
        """Method-of-moments GPD fit of the peaks: γ = (1 − m²/v) / 2 in [0, 0.5],
        σ = m (1 − γ) (the mean excess kept)."""
        m = self._m1
        v = self._m2 - m * m
        if m <= 0.0:
            self._gamma, self._sigma = 0.0, 0.0
        else:
            gamma = 0.5 * (1.0 - m * m / v) if v > 0.0 else 0.0
            # a bounded tail (gamma < 0) would call a score past its end point impossible:
            # from a few peaks that end point is a guess, so the tail is at least exponential
            gamma = 0.0 if gamma < 0.0 else 0.5 if gamma > 0.5 else gamma
            self._gamma, self._sigma = gamma, m * (1.0 - gamma)
        self._z = self.quantile(self.alpha)

    #: the learned state, in the order :meth:`dump` writes it
    _STATE = ("_n", "_k", "_u", "_m1", "_m2", "_gamma", "_sigma", "_z")

    def dump(self) -> list[Any]:
        """Plain data (:mod:`alerting.plain`): the counts and floats, and P²'s markers while
        in the grace."""
        return [
            *(getattr(self, name) for name in self._STATE),
            None if self._p2 is None else self._p2.dump(),
        ]

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data (checked: :class:`~alerting.errors.PlainError`)."""
        values = sequence(data, "threshold", len(self._STATE) + 1)
        self._n = integer(values[0], "threshold.n")
        self._k = integer(values[1], "threshold.k")
        for name, value in zip(self._STATE[2:], values[2:-1], strict=True):
            setattr(self, name, number(value, f"threshold.{name[1:]}"))
        if values[-1] is None:
            self._p2 = None
        else:
            self._p2 = _P2(self.level)
            self._p2.load(values[-1])
        if (self._p2 is None) != (self._n >= self.grace):
            raise PlainError("threshold: the grace's quantile estimate does not fit the count")


class FeatureTails(Parameterised):
    """A calibrated decision feature by feature: each feature's score against its own tail.

    For detectors whose score is the largest of per-feature scores
    (:class:`~alerting.detectors.base.FeatureScorer`: ``sad``, ``zscore``, ``gaussian``).
    Each feature gets its own :class:`TailThreshold`, so a heavy-tailed feature (a trade
    size, a metric's variability) does not raise the bar for a light-tailed one (a spread,
    a price change): judged on their largest score alone, the heaviest tail would set the
    threshold of all (on EUR/USD bars a 38 σ threshold, so nothing else could ever alert).
    The event's tail probability is the smallest of its calibrated features' ``p``, times
    their number ``k`` (Bonferroni: whatever the features' dependence, the chance that any
    of ``k`` ordinary features reaches ``alpha / k`` is at most ``alpha``), so the budget
    holds per event. At most ``max_features`` features are calibrated.

    >>> import random
    >>> rng = random.Random(2)
    >>> tails = FeatureTails(budget=1.0, grace=200)
    >>> for _ in range(5000):   # a light-tailed and a heavy-tailed feature
    ...     tails.learn({"spread": abs(rng.gauss(0, 1)), "size": rng.paretovariate(1.5)})
    >>> tails.judge({"spread": 6.0, "size": 1.0}) > 4.0   # 6σ of a Gaussian: surprising
    True
    >>> tails.judge({"spread": 1.0, "size": 30.0}) < 2.5  # not rare for the heavy tail
    True
    >>> tails.deciding
    'size'
    """

    __slots__ = (
        "_k",
        "_tails",
        "alpha",
        "budget",
        "deciding",
        "grace",
        "half_life",
        "level",
        "max_features",
    )

    def __init__(
        self,
        budget: float = 1.0,
        level: float = 0.95,
        grace: int = 500,
        half_life: int = 5000,
        max_features: int = 64,
    ) -> None:
        TailThreshold.check(budget, level, grace, half_life)
        if isinstance(max_features, bool) or not isinstance(max_features, int) or max_features < 1:
            raise ValueError(f"max_features must be an integer >= 1, got {max_features!r}")
        self.budget = float(budget)
        self.level = float(level)
        self.grace = grace
        self.half_life = half_life
        self.max_features = max_features
        self.alpha = self.budget / 10_000.0
        self._tails: dict[str, TailThreshold] = {}
        #: the feature with the smallest tail probability in the latest :meth:`judge`
        self.deciding: str | None = None
        self._k = 0  # calibrated features in the latest judge

    def judge(self, scores: dict[str, float]) -> float:
        """The event's surprise: ``−log10(min(1, k · min p))`` over its calibrated features."""
        best = 1.0
        deciding = None
        k = 0
        tails = self._tails
        for name, score in scores.items():
            tail = tails.get(name)
            if tail is None or tail._n < tail.grace:
                continue
            k += 1
            p = tail.tail(score)
            if p < best or deciding is None:
                best, deciding = p, name
        self.deciding, self._k = deciding, k
        p = best * k
        if not k or p >= 1.0:
            return 0.0
        return MAX_SURPRISE if p <= 1e-300 else -math.log10(p)

    def learn(self, scores: dict[str, float]) -> None:
        tails = self._tails
        for name, score in scores.items():
            tail = tails.get(name)
            if tail is None:
                if len(tails) >= self.max_features:
                    continue
                tail = tails[name] = TailThreshold(
                    self.budget, self.level, self.grace, self.half_life
                )
            tail.update(score)

    def shown(self, surprise: float) -> float:
        """The deciding feature's score at ``surprise`` (tail probability × ``k``): where the
        latest judged event would breach, for its alert (on the detector's scale)."""
        tail = self._tails.get(self.deciding) if self.deciding is not None else None
        if tail is None or not self._k:
            return inf
        return tail.quantile(10.0**-surprise / self._k)

    def value(self) -> float:
        """The lowest score at which one of the calibrated features breaches (+inf if none)."""
        calibrated = [t for t in self._tails.values() if t._n >= t.grace]
        if not calibrated:
            return inf
        return min(t.quantile(self.alpha / len(calibrated)) for t in calibrated)

    def update(self, score: float) -> None:
        """Nothing: a per-feature decision learns from :meth:`learn`."""

    def dump(self) -> dict[str, Any]:
        """Plain data (:mod:`alerting.plain`): each feature's tail."""
        return {name: tail.dump() for name, tail in self._tails.items()}

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data (checked: :class:`~alerting.errors.PlainError`)."""
        self._tails = {}
        for name, state in mapping(data, "threshold", self.max_features).items():
            tail = TailThreshold(self.budget, self.level, self.grace, self.half_life)
            tail.load(state)
            self._tails[text(name, "threshold", 400)] = tail
