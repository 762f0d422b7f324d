"""River's online anomaly detectors behind the project's ``Detector`` protocol.

==================  ==========================================================  ============
name                pipeline                                                    score
==================  ==========================================================  ============
``hst``             ``StandardScaler | squash | HalfSpaceTrees`` per group      [0, 1]
``loda``            ``StandardScaler | LODA`` (or ``MinMaxScaler``) per group   [0, 27.7]
``oneclass_svm``    ``StandardScaler | abs | OneClassSVM`` (its margin)         [0, 1e6]
``gaussian``        one ``GaussianScorer`` per feature, max over the event      [0, 1]
``sad``             one ``StandardAbsoluteDeviation`` per feature, max          [0, 1e6]
==================  ==========================================================  ============

What every wrapper adds to the bare River model:

- **Scores** are finite floats ≥ 0, higher is more anomalous: NaN becomes 0.0 and scores
  are capped at :data:`MAX_SCORE`. LODA's and the SVM's raw scores, mostly negative for
  normal events, go through ``softplus`` (order kept, see :func:`_softplus`).
- **No side effects in** ``score_one``: River's scalers create per-feature state when
  they transform a feature they have never learned; the wrappers only pass them
  features they already learned.
- **Bounded features**: at most ``max_features`` distinct feature names are tracked per
  model, in order of first appearance (sorted within an event); later new names are
  ignored, so an entity whose metric names keep changing stays bounded.
- **Missing and new features** never raise. ``HalfSpaceTrees`` and ``LODA`` fix their
  feature set when they see their first event, and per-entity trading features arrive
  in pieces (a symbol's first trade has no return yet) and in disjoint sets (trades and
  quotes share no feature). So these two wrappers keep one model per **feature group**:
  features that arrive together. An event goes to the group of its first known feature;
  a feature first seen in an event without any known feature opens a new group (at most
  :data:`MAX_GROUPS`). While a group's model is still neutral it takes the *union* of its
  features: when a new one shows up, the River model is rebuilt (same seed) over the
  larger set and its warm-up starts again; the scaler keeps what it learned. Once warmed
  up, a group's feature set is frozen and features first seen later with it are ignored.
- **Neutral warm-up**, precisely (a "learned event" is a ``learn_one`` call whose event
  has at least one of the model's features):

  - ``hst``: 0.0 until ``window_size`` events were learned since the feature set last
    grew (HST's first reference window is full);
  - ``loda``: 0.0 until ``grace_period`` events were learned since the feature set last
    grew;
  - ``oneclass_svm``: 0.0 until ``grace_period`` events were learned;
  - ``gaussian``, ``sad``: a feature contributes 0.0 until it has ``grace_period``
    learned values, so the score is 0.0 until one feature has.

  For a stream whose first event carries all its features, every model is therefore
  neutral for exactly ``params()[DetectorSpec.warmup_param]`` learned events. An event
  with none of the model's features scores 0.0 and is not learned.
- **Deterministic and picklable**: the random models take a ``seed`` (42 by default);
  the same seed and stream give the same scores, and a model pickled mid-stream scores
  the rest of the stream exactly as the original would.

HST's scaling. River pairs HST with ``MinMaxScaler``, which fits bounded features: on
heavy-tailed trading features every outlier widens the range for good and squeezes the
usual values into a sliver of it, where no tree splits them apart. The default
``scaler="squash"`` standardizes each feature (running mean and variance) and maps the
standard score through a logistic of width :data:`SQUASH_WIDTH` (8 σ ↦ 0.73): the usual
range keeps the middle of the unit cube whatever the outliers were. ``scaler="minmax"``
is River's documented setup.

HST's defaults (``n_trees=20, height=5, window_size=250``) rank anomalies as well as
River's (10 trees of height 8) at about the same time per event and a quarter of the
memory; the window, River's default, is also the warm-up. The measurements behind the
feature groups, the squash width and these defaults are in
``benchmarks/river_models.md``.

>>> det = HalfSpaceTreesDetector(window_size=50)
>>> stream = [{"a": 0.1 * (i % 7), "b": 1.0 + 0.01 * (i % 5)} for i in range(120)]
>>> scores = []
>>> for x in stream:
...     scores.append(det.score_one(x))
...     det.learn_one(x)
>>> scores[:50] == [0.0] * 50          # neutral until the first window is full
True
>>> det.score_one({"a": 0.3, "b": 1.02}) < det.score_one({"a": 9.0, "b": -5.0})
True
"""

from __future__ import annotations

import importlib
import math
from collections import deque
from typing import Any, Literal

from alerting.detectors.zscore import MAX_SCORE
from alerting.errors import PlainError
from alerting.params import Parameterised
from alerting.plain import NotPlain, integer, mapping, number, sequence, text

__all__ = [
    "MAX_SCORE",
    "GaussianDetector",
    "HalfSpaceTreesDetector",
    "LODADetector",
    "OneClassSVMDetector",
    "StandardAbsoluteDeviationDetector",
]

Scaler = Literal["standard", "minmax"]

#: Most feature groups (separately modelled feature sets, e.g. trades and quotes) per model.
MAX_GROUPS = 4
#: Width of the logistic squash of standard scores for ``hst``: z = ±8 maps to 0.27 / 0.73.
SQUASH_WIDTH = 8.0
#: Smallest ``clip`` of ``sad``: winsorised closer in, a normal stream's variance shrinks
#: with every update (at 1 σ the clipped variance is about half the true one, and so on).
MIN_CLIP = 2.0


def _clean(score: Any) -> float:
    """A finite score ≥ 0: NaN and negatives become 0.0, large values are capped."""
    value = float(score)
    if not value > 0.0:  # also catches NaN
        return 0.0
    return value if value < MAX_SCORE else MAX_SCORE


def _softplus(score: Any) -> float:
    """``log(1 + e**score)``: maps a score that may be negative onto (0, ∞) keeping its order.

    LODA's and the SVM's raw scores are negative for most normal events; clipping them to 0
    would tie those events together (on Shuttle it costs LODA half a point of ROC-AUC).
    Above 0 the two hardly differ: softplus(s) − s < 0.7, and < 1e-13 beyond 30.
    """
    value = float(score)
    if value > 30.0:
        return _clean(value)
    return _clean(math.log1p(math.exp(value)))  # NaN stays NaN, and _clean makes it 0.0


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_fraction(name: str, value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0.0 < float(value) < 1.0
    ):
        raise ValueError(f"{name} must be a number strictly between 0 and 1, got {value!r}")
    return float(value)


def _admit(features: dict[str, None], x: dict[str, float], max_features: int) -> bool:
    """Add ``x``'s new feature names to ``features`` while there is room; True if it grew."""
    room = max_features - len(features)
    if room <= 0:
        return False
    new = sorted(name for name in x if name not in features)
    for name in new[:room]:
        features[name] = None
    return bool(new)


def _river(path: str) -> Any:
    """``river.<module>.<name>``, imported on first use: River takes a second to import, and
    the service should not pay it unless it runs a River model."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(f"river.{module}"), name)


def _new_scaler(kind: Scaler) -> Any:
    if kind == "standard":
        return _river("preprocessing.StandardScaler")()
    return _river("preprocessing.MinMaxScaler")()


class _Group:
    """Features that arrive together, with their own scaler and River model."""

    __slots__ = ("features", "learned", "model", "scaler")

    def __init__(self, scaler: Any) -> None:
        self.features: dict[str, None] = {}
        self.scaler = scaler
        self.model: Any = None
        self.learned = 0  # events learned by the current model


class _FrozenSchemaDetector(Parameterised):
    """Scaler, then River models whose feature sets are fixed by the first events they learn.

    Features that never arrive together (a symbol's trades and its quotes) get separate
    groups, each with its own scaler and model (at most :data:`MAX_GROUPS`): an event
    goes to the group of its first known feature, and a feature first seen in an event
    without any known feature opens a new group. Subclasses give ``_new_model`` and the
    neutral warm-up length ``warmup``.
    """

    name: str
    max_features: int

    def __init__(self, scaler: Scaler, squash: float = 0.0) -> None:
        self._scaler_kind: Scaler = scaler
        self._squash = squash
        self._groups: list[_Group] = []
        self._group_of: dict[str, _Group] = {}
        # a missing feature in the model-building event gets the scaled "middle" value
        self._pad = 0.0 if scaler == "standard" and not squash else 0.5

    @property
    def warmup(self) -> int:
        raise NotImplementedError

    def _new_model(self) -> Any:
        raise NotImplementedError

    def _route(self, x: dict[str, float]) -> _Group | None:
        group_of = self._group_of
        for name in x:
            group = group_of.get(name)
            if group is not None:
                return group
        return None

    def _scaled(self, group: _Group, known: dict[str, float]) -> dict[str, float]:
        z: dict[str, float] = group.scaler.transform_one(known)
        width = self._squash
        if width:
            # logistic squash of the standard score onto (0, 1): the usual range spreads
            # over the middle of the unit cube whatever the outliers were, where min-max
            # scaling lets every outlier squeeze it further
            return {
                name: 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, value / width))))
                for name, value in z.items()
            }
        return z

    def learn_one(self, x: dict[str, float]) -> None:
        group = self._route(x)
        if group is None:
            if len(self._groups) >= MAX_GROUPS or len(self._group_of) >= self.max_features:
                return
            group = _Group(_new_scaler(self._scaler_kind))
            self._groups.append(group)
        if group.model is None or group.learned < self.warmup:
            room = self.max_features - len(self._group_of)
            new = sorted(name for name in x if name not in self._group_of)[: max(room, 0)]
            for name in new:
                group.features[name] = None
                self._group_of[name] = group
            if new:
                group.model = None  # rebuilt below over the larger feature set
        known = {name: value for name, value in x.items() if name in group.features}
        if not known:
            return
        group.scaler.learn_one(known)
        z = self._scaled(group, known)
        if group.model is None:
            group.model = self._new_model()
            group.learned = 0
            # River fixes the model's features from the first event it learns
            z = {name: z.get(name, self._pad) for name in group.features}
        group.model.learn_one(z)
        group.learned += 1

    def score_one(self, x: dict[str, float]) -> float:
        group = self._route(x)
        if group is None or group.model is None or group.learned < self.warmup:
            return 0.0
        known = {name: value for name, value in x.items() if name in group.features}
        return self._transform(group.model.score_one(self._scaled(group, known)))

    def _transform(self, raw: Any) -> float:
        return _clean(raw)


class HalfSpaceTreesDetector(_FrozenSchemaDetector):
    """``StandardScaler | squash | HalfSpaceTrees`` per feature group (River's setup:
    ``scaler="minmax"``).

    Parameters
    ----------
    n_trees
        Trees in the ensemble.
    height
        Height of each tree (``2 ** (height + 1) - 1`` nodes each).
    window_size
        Events per reference window; the model is neutral for the first one.
    seed
        Seed of the random tree structure.
    max_features
        Most distinct feature names the model covers.
    scaler
        ``"squash"`` (standard score through a logistic, the default) or ``"minmax"``.
    """

    name = "hst"

    def __init__(
        self,
        n_trees: int = 20,
        height: int = 5,
        window_size: int = 250,
        seed: int = 42,
        max_features: int = 32,
        scaler: Literal["squash", "minmax"] = "squash",
    ) -> None:
        self.n_trees = _check_int("n_trees", n_trees, 1)
        self.height = _check_int("height", height, 1)
        self.window_size = _check_int("window_size", window_size, 1)
        self.seed = _check_int("seed", seed, 0)
        self.max_features = _check_int("max_features", max_features, 1)
        if scaler not in ("squash", "minmax"):
            raise ValueError(f"scaler must be 'squash' or 'minmax', got {scaler!r}")
        self.scaler = scaler
        if scaler == "squash":
            super().__init__("standard", SQUASH_WIDTH)
        else:
            super().__init__("minmax")

    @property
    def warmup(self) -> int:
        return self.window_size

    def _new_model(self) -> Any:
        return _river("anomaly.HalfSpaceTrees")(
            n_trees=self.n_trees, height=self.height, window_size=self.window_size, seed=self.seed
        )


class LODADetector(_FrozenSchemaDetector):
    """``StandardScaler | LODA``: an ensemble of histograms of sparse random projections.

    The score is the mean negative log-density of the event's projections, through softplus
    (dense regions have negative log-densities): from just above 0 to about 27.6 (every
    projection outside its histogram). A missing feature counts as its mean (0 after
    standard scaling; the minimum with min-max scaling), as LODA treats missing features as
    zeros.

    Parameters
    ----------
    n_bins
        Bins per histogram.
    n_random_cuts
        Random projections (histograms) in the ensemble. River's default is 100; 40 keep
        ROC-AUC on the synthetic market at 0.993 (0.996 with 100) for 2.5x less time.
    seed
        Seed of the projections.
    grace_period
        Learned events (since the feature set last grew) before the first non-zero score.
    scaler
        ``"standard"`` (default; ROC-AUC 0.993 on the synthetic market against 0.976 with
        min-max scaling) or ``"minmax"`` (River's documented setup on Shuttle).
    max_features
        Most distinct feature names the model covers.

    >>> det = LODADetector(grace_period=20)
    >>> for i in range(100):
    ...     det.learn_one({"a": float(i % 10), "b": float(i % 3)})
    >>> det.score_one({"a": 4.0, "b": 1.0}) < det.score_one({"a": 50.0, "b": -9.0})
    True
    """

    name = "loda"

    def __init__(
        self,
        n_bins: int = 10,
        n_random_cuts: int = 40,
        seed: int = 42,
        grace_period: int = 50,
        scaler: Scaler = "standard",
        max_features: int = 32,
    ) -> None:
        self.n_bins = _check_int("n_bins", n_bins, 2)
        self.n_random_cuts = _check_int("n_random_cuts", n_random_cuts, 1)
        self.seed = _check_int("seed", seed, 0)
        self.grace_period = _check_int("grace_period", grace_period, 1)
        if scaler not in ("standard", "minmax"):
            raise ValueError(f"scaler must be 'standard' or 'minmax', got {scaler!r}")
        self.scaler: Scaler = scaler
        self.max_features = _check_int("max_features", max_features, 1)
        super().__init__(scaler)

    @property
    def warmup(self) -> int:
        return self.grace_period

    def _new_model(self) -> Any:
        return _river("anomaly.LODA")(
            n_bins=self.n_bins, n_random_cuts=self.n_random_cuts, seed=self.seed
        )

    def _transform(self, raw: Any) -> float:
        return _softplus(raw)


class OneClassSVMDetector(Parameterised):
    """``StandardScaler | abs | OneClassSVM``: a linear one-class SVM on |z| per feature.

    River's ``OneClassSVM`` is linear and scores ``w·x``. On standardized features the
    data sits around the origin, so a linear score ranks one side of each feature as
    anomalous and the other as extra normal (ROC-AUC 0.58 on the synthetic market, and
    an outlier on the "wrong" side scores 0). Folding each standardized feature to its
    absolute value first makes every direction away from the mean count: the hinge loss
    keeps the weights ≥ 0, so the score is a learned, weighted sum of |z|-scores. River's
    ``RBFSampler`` is the other documented way to make it non-linear, at 20x the cost per
    event. The score is the SVM's decision value ``w·|z| + b`` (through softplus): River's
    ``score_one`` leaves the intercept ``b`` out, but it is what puts the scores of
    different entities and moments on one scale (ROC-AUC 0.963 with it, 0.925 without).

    Parameters
    ----------
    nu
        Upper bound on the fraction of training errors (River's ``nu``; sets the L2 penalty).
    grace_period
        Learned events before the first non-zero score.
    max_features
        Most distinct feature names the model covers.

    >>> det = OneClassSVMDetector(grace_period=20)
    >>> for i in range(200):
    ...     det.learn_one({"a": float(i % 10), "b": float(i % 3)})
    >>> det.score_one({"a": 4.5, "b": 1.0}) < det.score_one({"a": 50.0, "b": 1.0})
    True
    """

    name = "oneclass_svm"

    def __init__(self, nu: float = 0.2, grace_period: int = 50, max_features: int = 32) -> None:
        self.nu = _check_fraction("nu", nu)
        self.grace_period = _check_int("grace_period", grace_period, 1)
        self.max_features = _check_int("max_features", max_features, 1)
        self._scaler = _new_scaler("standard")
        self._model = _river("anomaly.OneClassSVM")(nu=self.nu)
        self._features: dict[str, None] = {}
        self._learned = 0

    def _folded(self, x: dict[str, float]) -> dict[str, float]:
        return {name: abs(z) for name, z in self._scaler.transform_one(x).items()}

    def learn_one(self, x: dict[str, float]) -> None:
        _admit(self._features, x, self.max_features)
        known = {name: value for name, value in x.items() if name in self._features}
        if not known:
            return
        self._scaler.learn_one(known)
        self._model.learn_one(self._folded(known))
        self._learned += 1

    def score_one(self, x: dict[str, float]) -> float:
        if self._learned < self.grace_period:
            return 0.0
        known = {name: value for name, value in x.items() if name in self._features}
        if not known:
            return 0.0
        model = self._model
        return _softplus(model.score_one(self._folded(known)) + model.intercept)


class _PerFeatureDetector(Parameterised):
    """One univariate River detector per feature; the event's score is the largest."""

    name: str
    grace_period: int
    max_features: int

    def __init__(self) -> None:
        self._detectors: dict[str, Any] = {}
        self._counts: dict[str, int] = {}

    def _new_detector(self) -> Any:
        raise NotImplementedError

    def _learn(self, name: str, detector: Any, value: float) -> None:
        detector.learn_one(None, value)

    def _score(self, detector: Any, value: float) -> float:
        return _clean(detector.score_one(None, value))

    def learn_one(self, x: dict[str, float]) -> None:
        detectors, counts = self._detectors, self._counts
        for name in sorted(x):
            detector = detectors.get(name)
            if detector is None:
                if len(detectors) >= self.max_features:
                    continue
                detector = detectors[name] = self._new_detector()
                counts[name] = 0
            self._learn(name, detector, x[name])
            counts[name] += 1

    def score_one(self, x: dict[str, float]) -> float:
        best = 0.0
        grace = self.grace_period
        for name, value in x.items():
            detector = self._detectors.get(name)
            if detector is None or self._counts[name] < grace:
                continue
            score = self._score(detector, value)
            if score > best:
                best = score
        return best

    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        """Each scored feature's own score (the event's score is the largest of them)."""
        grace = self.grace_period
        out = {}
        for name, value in x.items():
            detector = self._detectors.get(name)
            if detector is not None and self._counts[name] >= grace:
                out[name] = self._score(detector, value)
        return out

    def score_features(self, x: dict[str, float]) -> dict[str, float]:
        """Each scored feature's own score (:class:`~alerting.detectors.base.FeatureScorer`)."""
        return _PerFeatureDetector.explain_one(self, x)


class GaussianDetector(_PerFeatureDetector):
    """River's ``GaussianScorer`` per feature: ``2 |CDF(x) - 0.5|`` of a Gaussian fitted on
    the feature's last ``window_size`` values.

    Scores lie in [0, 1] and saturate: 3σ gives 0.9973, 4σ 0.99994, beyond 8.3σ exactly
    1.0. A feature whose window is constant scores 0.0 for its usual value and 1.0 for any
    other. With ``window_size=None`` the fit covers all history and the score becomes a
    monotone function of ``sad``'s, so the two would alert alike; the window is what makes
    this one follow a change of regime.

    The window is kept here as a ring of floats and slid with the Gaussian's ``revert``
    (what River's ``utils.Rolling`` does, which also keeps an ``(args, kwargs)`` pair per
    value: about 200 bytes per value instead of 32).

    Parameters
    ----------
    window_size
        Values per feature the Gaussian is fitted on; ``None`` = all history.
    grace_period
        Values a feature needs before it scores.
    max_features
        Most distinct feature names tracked.

    >>> det = GaussianDetector(window_size=64, grace_period=10)
    >>> for i in range(50):
    ...     det.learn_one({"v": float(i % 5)})
    >>> det.score_one({"v": 2.0}) < 0.1 < 0.999 < det.score_one({"v": 30.0})
    True
    """

    name = "gaussian"

    def __init__(
        self, window_size: int | None = 256, grace_period: int = 30, max_features: int = 128
    ) -> None:
        if window_size is not None:
            _check_int("window_size", window_size, 2)
        self.window_size = window_size
        self.grace_period = _check_int("grace_period", grace_period, 2)
        if window_size is not None and grace_period > window_size:
            raise ValueError(
                f"grace_period must be at most window_size={window_size}, got {grace_period}"
            )
        self.max_features = _check_int("max_features", max_features, 1)
        super().__init__()
        self._windows: dict[str, deque[float]] = {}

    def _new_detector(self) -> Any:
        # grace is counted by the wrapper (values learned), the window slid by _learn
        return _river("anomaly.GaussianScorer")(window_size=None, grace_period=0)

    def _learn(self, name: str, detector: Any, value: float) -> None:
        size = self.window_size
        if size is not None:
            window = self._windows.get(name)
            if window is None:
                window = self._windows[name] = deque(maxlen=size)
            if len(window) == size:
                detector.gaussian.revert(window[0])
            window.append(value)
        detector.learn_one(None, value)

    def _score(self, detector: Any, value: float) -> float:
        gaussian = detector.gaussian
        sigma = gaussian.sigma  # a reverted variance can come out a hair below 0: complex
        if isinstance(sigma, complex) or not sigma > 1e-12 * max(1.0, abs(gaussian.mu)):
            return 0.0 if value == gaussian.mu else 1.0
        return _clean(detector.score_one(None, value))


class _FadingMean:
    """Mean with exponential forgetting, unbiased from the first value.

    Each value weighs ``max(1 / n, fading)``: the plain running mean until ``1 / fading``
    values were seen, exponentially weighted after that. River's ``EWMean`` starts from the
    first value with weight ``fading`` on the next, so a young statistic sits near its first
    value (and an ``EWVar`` near 0): a poor start for a detector that may hold flagged values
    back from learning. River's ``Univariate`` verbs (``update``, ``get``).
    """

    __slots__ = ("fading", "mean", "n")

    def __init__(self, fading: float) -> None:
        self.fading = fading
        self.n = 0
        self.mean = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        weight = max(1.0 / self.n, self.fading)
        self.mean += weight * (x - self.mean)

    def get(self) -> float:
        return self.mean


class _FadingVar(_FadingMean):
    """Variance with the same weights as :class:`_FadingMean` (West's weighted update)."""

    __slots__ = ("var",)

    def __init__(self, fading: float) -> None:
        super().__init__(fading)
        self.var = 0.0

    def update(self, x: float) -> None:
        self.n += 1
        weight = max(1.0 / self.n, self.fading)
        delta = x - self.mean
        self.mean += weight * delta
        self.var = (1.0 - weight) * (self.var + weight * delta * delta)

    def get(self) -> float:
        return self.var


class StandardAbsoluteDeviationDetector(_PerFeatureDetector):
    """River's ``StandardAbsoluteDeviation`` per feature: |x − mean| / std (the default).

    In σ units like ``zscore``, with O(1) memory per feature. Two changes to River's SAD,
    which keeps the mean and variance of all history and learns every value as it is:

    - **Forgetting.** A service that runs for months must learn a change of regime (a
      calmer or busier market), so the mean and variance forget exponentially with a
      ``half_life`` of 500 values of the feature (each value weighs ``max(1/n, fading)``:
      a plain average while young, see :class:`_FadingMean`); ``half_life = 0`` is
      River's all-history statistics.
    - **Winsorised learning.** Once a feature scores (``grace_period`` values), a value
      further than ``clip`` σ from its mean is learned as if it were at ``clip`` σ.
      Learned as they are, frequent outliers inflate the variance until they no longer
      stand out: 4 % of values at 9-10 σ nearly double σ and then score under 5, so they
      are never flagged and the processor's ``protect`` never keeps them out. Winsorised,
      each adds at most ``clip``² σ² to the variance (a bounded inflation while they are
      fewer than 1 in ``clip``² values), they score over 6 again, and from then on
      ``protect`` keeps them out of learning altogether. On River's Shuttle set (7 % of
      samples are anomalies) this took the detector from 55 to 367 detected windows of
      661 (``benchmarks/detection``). Normal values rarely pass 3.5 σ, so a clean
      stream's variance is almost unchanged; a lasting change is still learned, as the
      band it is clipped to widens with every clipped value; a so-far constant feature
      (σ = 0) learns a new value as it is. ``clip = 0`` learns every value as it is.

    Capped at :data:`MAX_SCORE`, which a change of a so-far constant feature reaches.

    Parameters
    ----------
    grace_period
        Values a feature needs before it scores.
    max_features
        Most distinct feature names tracked.
    half_life
        Values of a feature after which an old value weighs half; 0 = never forget.
    clip
        Learn values beyond this many σ from the mean as if at it; 0 = learn as is.

    >>> det = StandardAbsoluteDeviationDetector(grace_period=10)
    >>> for i in range(50):
    ...     det.learn_one({"v": float(i % 5)})
    >>> round(det.score_one({"v": 2.0}), 6), det.score_one({"v": 30.0}) > 10
    (0.0, True)
    """

    name = "sad"
    score_unit = "σ"

    def __init__(
        self,
        grace_period: int = 30,
        max_features: int = 128,
        half_life: int = 200,
        clip: float = 3.5,
    ) -> None:
        self.grace_period = _check_int("grace_period", grace_period, 2)
        self.max_features = _check_int("max_features", max_features, 1)
        self.half_life = _check_int("half_life", half_life, 0)
        if self.half_life == 1:
            raise ValueError("half_life must be 0 (all history) or at least 2, got 1")
        if (
            isinstance(clip, bool)
            or not isinstance(clip, int | float)
            or not (clip == 0 or MIN_CLIP <= clip < math.inf)
        ):
            raise ValueError(f"clip must be 0 (off) or a number >= {MIN_CLIP}, got {clip!r}")
        self.clip = float(clip)
        self._clip2 = self.clip * self.clip
        self._fading = 1.0 - 0.5 ** (1.0 / self.half_life) if self.half_life else 0.0
        super().__init__()

    def _new_detector(self) -> Any:
        detector = _river("anomaly.StandardAbsoluteDeviation")()
        if self.half_life:
            detector.sub_stat = _FadingMean(self._fading)
            detector.variance = _FadingVar(self._fading)
        return detector

    # The two methods below are the hot path of the default detector. With forgetting
    # statistics they do, inline, exactly what River's ``score_one`` / ``learn_one`` and
    # the statistics' ``get`` / ``update`` do (tests/unit/alerting/detectors/
    # test_conformance.py compares the two paths), without about ten Python calls per
    # feature; with ``half_life = 0`` the statistics are River's own and the generic path
    # runs.

    def score_one(self, x: dict[str, float]) -> float:
        if not self.half_life:
            return super().score_one(x)
        best = 0.0
        grace = self.grace_period
        detectors, counts = self._detectors, self._counts
        for name, value in x.items():
            detector = detectors.get(name)
            if detector is None or counts[name] < grace:
                continue
            # River: (y - sub_stat.get()) / (variance.get() ** 0.5 + 1e-10), then abs
            score = abs((value - detector.sub_stat.mean) / (detector.variance.var**0.5 + 1e-10))
            if score > best:  # a NaN score is never the best, as _clean makes it 0.0
                best = score
        return best if best < MAX_SCORE else MAX_SCORE

    def score_features(self, x: dict[str, float]) -> dict[str, float]:
        if not self.half_life:
            return super().score_features(x)
        out = {}
        grace = self.grace_period
        detectors, counts = self._detectors, self._counts
        for name, value in x.items():
            detector = detectors.get(name)
            if detector is None or counts[name] < grace:
                continue
            # as score_one: River's (y - mean) / (std + 1e-10), absolute, capped
            score = abs((value - detector.sub_stat.mean) / (detector.variance.var**0.5 + 1e-10))
            out[name] = score if score < MAX_SCORE else MAX_SCORE if score == score else 0.0
        return out

    def learn_one(self, x: dict[str, float]) -> None:
        if not self.half_life:
            super().learn_one(x)
            return
        detectors, counts = self._detectors, self._counts
        grace, clip, clip2, fading = self.grace_period, self.clip, self._clip2, self._fading
        for name in sorted(x):
            detector = detectors.get(name)
            if detector is None:
                if len(detectors) >= self.max_features:
                    continue
                detector = detectors[name] = self._new_detector()
                counts[name] = 0
            value = x[name]
            variance, mean = detector.variance, detector.sub_stat
            seen = counts[name]
            if clip and seen >= grace:  # _learn's winsorising
                delta = value - mean.mean
                var = variance.var
                if delta * delta > clip2 * var and var > 0.0:
                    reach = clip * math.sqrt(var)
                    value = mean.mean + (reach if delta > 0 else -reach)
            # _FadingVar.update
            n = variance.n = variance.n + 1
            weight = 1.0 / n
            if weight < fading:
                weight = fading
            delta = value - variance.mean
            variance.mean += weight * delta
            variance.var = (1.0 - weight) * (variance.var + weight * delta * delta)
            # _FadingMean.update
            n = mean.n = mean.n + 1
            weight = 1.0 / n
            if weight < fading:
                weight = fading
            mean.mean += weight * (value - mean.mean)
            counts[name] = seen + 1

    def _learn(self, name: str, detector: Any, value: float) -> None:
        variance, mean = detector.variance, detector.sub_stat
        if self.clip and self._counts[name] >= self.grace_period:
            delta = value - mean.get()
            var = variance.get()
            # beyond the band (no sqrt usually); a so-far constant feature learns as is
            if delta * delta > self._clip2 * var and var > 0.0:
                reach = self.clip * math.sqrt(var)
                value = mean.get() + (reach if delta > 0 else -reach)
        variance.update(value)
        mean.update(value)

    def dump(self) -> dict[str, list[float]]:
        """Plain data (:mod:`alerting.plain`): per feature, its learned count and the
        forgetting mean's and variance's counts and values. All-history statistics
        (``half_life = 0``) are River's own objects: pickled, signed."""
        if not self.half_life:
            raise NotPlain("sad with half_life = 0 (River's all-history statistics)")
        out = {}
        for name, detector in self._detectors.items():
            mean, var = detector.sub_stat, detector.variance
            out[name] = [self._counts[name], mean.n, mean.mean, var.n, var.mean, var.var]
        return out

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data into this fresh clone (checked: ``PlainError``)."""
        if not self.half_life:
            raise PlainError("detector: sad with half_life = 0 is never plain data")
        self._detectors, self._counts = {}, {}
        for name, values in mapping(data, "detector", self.max_features).items():
            where = f"detector.{name}"
            count, mean_n, mean, var_n, var_mean, var = sequence(values, where, 6)
            detector = self._new_detector()
            detector.sub_stat.n = integer(mean_n, where)
            detector.sub_stat.mean = number(mean, where)
            detector.variance.n = integer(var_n, where)
            detector.variance.mean = number(var_mean, where)
            detector.variance.var = number(var, where)
            self._detectors[text(name, "detector", 400)] = detector
            self._counts[name] = integer(count, where)

    def explain_one(self, x: dict[str, float]) -> dict[str, float]:
        """Each scored feature's deviation in σ, signed: + above its mean, − below."""
        out = super().explain_one(x)
        for name, score in out.items():
            if x[name] < self._detectors[name].sub_stat.get():
                out[name] = -score
        return out
