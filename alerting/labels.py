"""Ground truth for back-tests: labelled anomaly windows, as the synthetic market writes them.

A :class:`Label` is one injected anomaly: a window of events of one entity, from ``time``
(and stream position ``index``) to ``end`` (``end_index``), inclusive. The labels file
is JSON Lines, one :meth:`Label.to_json` object per line; ``producers.synthetic`` writes
it and ``alerting evaluate`` reads it (with :mod:`alerting.evaluation`).

>>> from datetime import UTC, datetime
>>> label = Label(3, "AAPL", datetime(2026, 1, 5, 14, 30, tzinfo=UTC), "trade",
...               "price_spike", "price +3.1% off the walk")
>>> Label.from_json(label.to_json()) == label, label.end == label.time
(True, True)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from alerting.times import parse_rfc3339, rfc3339_micro

__all__ = ["Label", "read_labels", "write_labels"]

_UNSET_TIME = datetime.min.replace(tzinfo=UTC)  # "end not given": same as time


@dataclass(frozen=True)
class Label:
    """Ground truth for one injected anomaly: a window of events of one entity.

    ``end`` and ``end_index`` default to ``time`` and ``index`` (a one-event anomaly).
    """

    index: int  #: 0-based position of the window's first event in the generated stream
    entity: str
    time: datetime  #: event time where the window starts
    kind: str  #: event kind: trade, quote, metric
    anomaly: str  #: anomaly type name, see producers.synthetic.ANOMALY_TYPES
    detail: str  #: short human explanation, e.g. "price +3.1% off the walk"
    end: datetime = _UNSET_TIME  #: event time where the window ends (inclusive)
    end_index: int = -1  #: position of the window's last event (may be past a stream's end)

    def __post_init__(self) -> None:
        if self.end is _UNSET_TIME:
            object.__setattr__(self, "end", self.time)
        if self.end_index == -1:
            object.__setattr__(self, "end_index", self.index)
        if self.end < self.time:
            raise ValueError(f"end must not be before time, got {self.end} < {self.time}")
        if self.end_index < self.index:
            raise ValueError(f"end_index must be >= index, got {self.end_index} < {self.index}")

    def to_json(self) -> str:
        """One JSON object; ``time`` and ``end`` are RFC 3339 in UTC with a ``Z``."""
        return json.dumps(
            {
                "index": self.index,
                "entity": self.entity,
                "time": rfc3339_micro(self.time),
                "kind": self.kind,
                "anomaly": self.anomaly,
                "detail": self.detail,
                "end": rfc3339_micro(self.end),
                "end_index": self.end_index,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Label:
        """Parse the output of :meth:`to_json`; records without ``end`` are one event long."""
        data = json.loads(text)
        moment = parse_rfc3339(data["time"])
        return cls(
            index=int(data["index"]),
            entity=str(data["entity"]),
            time=moment,
            kind=str(data["kind"]),
            anomaly=str(data["anomaly"]),
            detail=str(data["detail"]),
            end=parse_rfc3339(data["end"]) if data.get("end") is not None else moment,
            end_index=int(data["end_index"]) if data.get("end_index") is not None else -1,
        )


def write_labels(path: str | Path, labels: Iterable[Label]) -> int:
    """Write labels as JSON Lines; return how many were written."""
    written = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for label in labels:
            out.write(label.to_json())
            out.write("\n")
            written += 1
    return written


def read_labels(path: str | Path) -> list[Label]:
    """Read labels written by :func:`write_labels` (blank lines are ignored)."""
    with Path(path).open(encoding="utf-8") as source:
        return [Label.from_json(line) for line in source if line.strip()]
