"""Drift per entity: River drift detectors on the score stream and on each feature.

A :class:`DriftMonitor` belongs to one entity. ``update(score, x)`` feeds the score
(signal ``"score"``) and, when ``features`` is on, every feature value (signal = the
feature's name) to its own River detector, and returns what drifted, with the signal's
mean before the change (since the previous drift) and after it (its last few values).
At most one drift per ``min_interval_s`` of event time is reported per entity, so a
shaky signal cannot flood the alerts topic.

Detectors: ``adwin`` (the default: :class:`alerting.adwin.Adwin`, River ``ADWIN``'s
algorithm, parameters and detections, with its state in plain data for the changelog),
``page_hinkley`` and ``kswin``
(which tests every event: at River's default ``alpha`` of 0.005 it reports stationary
noise within a few thousand events; use ``alpha`` around 1e-5).
Measured delay (``tests/unit/alerting/test_drift.py``): a 2σ shift of the mean of a unit-variance
signal is reported within 50 events by ADWIN with its defaults, and 30 stationary
streams of 4,000 values report nothing.

>>> monitor = DriftMonitor("adwin")
>>> found = [d for i in range(600)
...          for d in monitor.update(float(i >= 300) * 5 + (i % 7) * 0.1, {}, event_time=i)]
>>> [(d.signal, round(d.before, 1), round(d.after, 1)) for d in found]
[('score', 0.5, 5.3)]
"""

from __future__ import annotations

import importlib
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from alerting.adwin import Adwin
from alerting.errors import PlainError
from alerting.params import Parameterised
from alerting.plain import (
    NotPlain,
    integer,
    mapping,
    number,
    optional_number,
    sequence,
    text,
)

DETECTORS = {"adwin": "ADWIN", "page_hinkley": "PageHinkley", "kswin": "KSWIN"}


def _factory(detector: str) -> Any:
    """The class of a drift detector by its setting's name (ADWIN: the plain-data one)."""
    if detector == "adwin":
        return Adwin
    return getattr(importlib.import_module("river.drift"), DETECTORS[detector])


_RECENT = 8  # values averaged as the "after" statistic


@dataclass(frozen=True, slots=True)
class Drift:
    """One signal of one entity changed."""

    signal: str  # "score" or a feature name
    before: float  # mean since the previous drift, before the recent values
    after: float  # mean of the last few values

    @property
    def kind(self) -> str:
        """``score`` or ``feature``: the low-cardinality metric label."""
        return "score" if self.signal == "score" else "feature"


class _Signal:
    __slots__ = ("count", "detector", "recent", "total")

    def __init__(self, detector: Any) -> None:
        self.detector = detector
        self.count = 0
        self.total = 0.0
        self.recent: deque[float] = deque(maxlen=_RECENT)


class DriftMonitor(Parameterised):
    """River drift detectors for one entity's score and (optionally) features."""

    #: ``params()`` is the method: the drift detector's parameters are ``params_``
    stored_as: ClassVar[dict[str, str]] = {"params": "params_"}

    def __init__(
        self,
        detector: str = "adwin",
        params: dict[str, Any] | None = None,
        features: bool = True,
        min_interval_s: float = 60.0,
        max_signals: int = 33,
    ) -> None:
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
        if not min_interval_s >= 0:
            raise ValueError(f"min_interval_s must not be negative, got {min_interval_s}")
        if max_signals < 1:
            raise ValueError(f"max_signals must be at least 1, got {max_signals}")
        self.detector = detector
        self.params_ = dict(params or {})
        self.features = features
        self.min_interval_s = min_interval_s
        self.max_signals = max_signals
        self._factory = _factory(detector)
        try:
            self._factory(**self.params_)
        except TypeError as exc:
            raise ValueError(f"drift detector {detector!r}: {exc}") from None
        self._signals: dict[str, _Signal] = {}
        self._last_drift: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_factory")  # a class: found again by name when loaded
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._factory = _factory(self.detector)

    def dump(self) -> dict[str, Any]:
        """Plain data (:mod:`alerting.plain`), for ``adwin``; River's other detectors have
        none (their snapshots are pickled, signed)."""
        if self._factory is not Adwin:
            raise NotPlain(f"drift.detector = {self.detector} (a River object)")
        return {
            "last": self._last_drift,
            "signals": {
                name: [s.count, s.total, list(s.recent), s.detector.dump()]
                for name, s in self._signals.items()
            },
        }

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data into this fresh monitor (checked: ``PlainError``)."""
        if self._factory is not Adwin:
            raise PlainError(f"drift: drift.detector = {self.detector} is never plain data")
        d = mapping(data, "drift")
        self._last_drift = optional_number(d.get("last"), "drift.last")
        self._signals = {}
        for name, values in mapping(d.get("signals"), "drift.signals", self.max_signals).items():
            where = f"drift.signals.{name}"
            count, total, recent, state = sequence(values, where, 4)
            signal = _Signal(self._factory(**self.params_))
            signal.count = integer(count, where)
            signal.total = number(total, where)
            signal.recent.extend(number(v, where) for v in sequence(recent, where, limit=_RECENT))
            signal.detector.load(state)
            self._signals[text(name, "drift.signals", 400)] = signal

    def _feed(self, name: str, value: float) -> Drift | None:
        signal = self._signals.get(name)
        if signal is None:
            if len(self._signals) >= self.max_signals:
                return None
            signal = self._signals[name] = _Signal(self._factory(**self.params_))
        signal.detector.update(value)
        signal.count += 1
        signal.total += value
        signal.recent.append(value)
        if not signal.detector.drift_detected:
            return None
        recent = list(signal.recent)
        older = signal.count - len(recent)
        before = (signal.total - sum(recent)) / older if older > 0 else recent[0]
        after = sum(recent) / len(recent)
        signal.count, signal.total = len(recent), sum(recent)  # the new regime starts here
        return Drift(name, before, after)

    def update(self, score: float, x: dict[str, float], event_time: float) -> list[Drift]:
        """Feed one event's score (and features); the drifts to report (usually none)."""
        found = []
        drift = self._feed("score", score)
        if drift is not None:
            found.append(drift)
        if self.features:
            for name, value in x.items():
                drift = self._feed(name, value)
                if drift is not None:
                    found.append(drift)
        if not found:
            return []
        last = self._last_drift
        if last is not None and event_time - last < self.min_interval_s:
            return []
        self._last_drift = event_time
        return found


class Challenger:
    """A fresh model trained beside an entity's live model after a drift.

    Promotion criterion: over the ``compare`` events after the challenger's own warm-up,
    it flags fewer events than the live model at the entity's threshold, i.e. it has
    learned the new regime that the live model still finds surprising. Otherwise it is
    discarded and the live model stays.
    """

    __slots__ = ("challenger_flags", "compared", "learned", "live_flags", "model")

    def __init__(self, model: Any) -> None:
        self.model = model
        self.learned = 0
        self.compared = 0
        self.live_flags = 0
        self.challenger_flags = 0

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}

    def __setstate__(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def dump(self) -> list[Any]:
        """Plain data (:mod:`alerting.plain`), when its model has one."""
        dump = getattr(self.model, "dump", None)
        if dump is None:
            raise NotPlain(f"challenger model {type(self.model).__name__}")
        return [self.learned, self.compared, self.live_flags, self.challenger_flags, dump()]

    def load(self, data: Any) -> None:
        """Take :meth:`dump`'s data into this challenger around a fresh model."""
        learned, compared, live, challenger, model = sequence(data, "challenger", 5)
        self.learned = integer(learned, "challenger")
        self.compared = integer(compared, "challenger")
        self.live_flags = integer(live, "challenger")
        self.challenger_flags = integer(challenger, "challenger")
        self.model.load(model)
