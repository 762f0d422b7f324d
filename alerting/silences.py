"""Silences, as Alertmanager has them: mute the alerts of matching entities for a while.

A silence matches an alert when its ``entity`` pattern, an anchored regular expression
(Alertmanager's ``=~``: a plain name matches exactly that name), matches the alert's
entity, and its ``severity`` (if set) equals the alert's severity. It is active from
``starts_at`` to ``ends_at``, on the wall clock, as in Alertmanager. Silences live in a
compacted control topic keyed by silence id, so every service instance obeys them;
``expire`` rewrites a silence with ``ends_at = now``.

Patterns are RE2 syntax, compiled and matched by RE2 (google-re2), the engine behind the
Go regexp package Alertmanager uses: matching takes time linear in the entity whatever
the pattern, so one such as ``(a|a)*b`` cannot stall the consume loop, which matches
every alert against the active silences. What RE2 cannot run in linear time
(backreferences, look-around) is refused, as Alertmanager refuses it, and so is a pattern
longer than :data:`MAX_PATTERN_CHARS`. The check runs wherever a silence is built, by
``silence add`` and for every record read from the control topic; Python's ``re`` never
compiles a pattern.

Which alerts are held back (:class:`SilenceGate`):

- a FIRING or DRIFT alert that an active silence matches is not sent, only counted;
- a RESOLVED is sent only if a notification of its episode (``firing_id``) was sent: a
  subscriber who saw the firing always sees it close, and one who saw nothing sees no
  resolve. The ids of silenced episodes are remembered in a bounded LRU; one forgotten
  (or silenced on another instance before a rebalance) is resolved, which is harmless.

>>> s = new_silence("AAPL|MSFT", None, parse_duration("2h"), "maintenance", "ops", now=0.0)
>>> s.matches("AAPL", "critical"), s.matches("AAPL.X", "warning"), s.active(7199.0)
(True, False, True)
>>> Silence.from_json(s.to_json()) == s
True
"""

from __future__ import annotations

import json
import re
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, get_args

import re2

from alerting.alerts import FIRING, RESOLVED, Alert
from alerting.errors import InvalidSilence
from alerting.policy import Severity
from alerting.times import parse_rfc3339, rfc3339_seconds

#: the policy's severities, in rising order (silences, ``tail --severity``, forwarding)
SEVERITIES: Final[tuple[str, ...]] = get_args(Severity)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: the longest entity pattern accepted: entities are at most 200 characters, and an
#: alternation of some 150 symbols fits
MAX_PATTERN_CHARS: Final = 1000


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refused pattern to stderr
    options.never_capture = True  # only whether it matches: RE2's DFA answers alone
    return options


_RE2_OPTIONS: Final = _re2_options()


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h`` or ``1d``; ValueError says what is accepted.

    >>> parse_duration("90s"), parse_duration("30m"), parse_duration("1.5h")
    (90.0, 1800.0, 5400.0)
    """
    match = _DURATION.match(text)
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(
            f"duration {text!r} is not a positive number followed by s, m, h or d "
            "(e.g. 90s, 30m, 2h, 1d)"
        )
    return float(match.group(1)) * _UNIT_S[match.group(2)]


class EntityPattern(Protocol):
    """A compiled entity pattern (an RE2 regular expression)."""

    def fullmatch(self, text: str | bytes) -> object | None: ...

    def search(self, text: str | bytes) -> object | None: ...


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def compile_pattern(pattern: str) -> EntityPattern:
    """The RE2 regular expression of an entity matcher; ValueError if it is refused.

    >>> compile_pattern("(a|a)*b").fullmatch("a" * 10_000) is None  # linear: no backtracking
    True
    >>> compile_pattern("AAPL(?=X)")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: entity pattern 'AAPL(?=X)' is not a valid regular expression ...: invalid perl ...
    """
    if not pattern:
        raise ValueError("entity pattern must not be empty (use '.*' to match every entity)")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(
            f"entity pattern {pattern[:20]!r}… is {len(pattern)} characters long, "
            f"over the cap of {MAX_PATTERN_CHARS} characters: match fewer names or use a "
            "broader expression"
        )
    try:
        compiled: EntityPattern = re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        detail = exc.args[0] if exc.args else ""
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", errors="replace")
        raise ValueError(
            f"entity pattern {pattern!r} is not a valid regular expression "
            f"(RE2 syntax, as Alertmanager's): {_one_line(str(detail))}"
        ) from None
    except UnicodeEncodeError:
        raise ValueError(
            f"entity pattern {pattern!r} is not valid Unicode text (a lone surrogate)"
        ) from None
    return compiled


def _time(value: Any, name: str) -> float:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be an RFC 3339 string, got {value!r}")
    try:
        return parse_rfc3339(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValueError(f"{name} {value!r} is not an RFC 3339 time") from None


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence. Times are seconds since the epoch (wall clock)."""

    id: str
    entity: str
    severity: str | None
    starts_at: float
    ends_at: float
    comment: str
    author: str
    created_at: float
    regex: EntityPattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id must not be empty")
        object.__setattr__(self, "regex", compile_pattern(self.entity))
        if self.severity is not None and self.severity not in SEVERITIES:
            raise ValueError(
                f"severity must be one of {', '.join(SEVERITIES)} (or unset), got {self.severity!r}"
            )
        if not self.ends_at >= self.starts_at:
            raise ValueError(
                f"ends_at ({rfc3339_seconds(self.ends_at)}) must not be before starts_at "
                f"({rfc3339_seconds(self.starts_at)})"
            )

    def matches(self, entity: str, severity: str) -> bool:
        """Whether the matchers select an alert of ``entity`` with ``severity``."""
        if self.severity is not None and severity != self.severity:
            return False
        try:
            text = entity.encode()  # bytes: RE2's binding then skips its character offsets
        except UnicodeEncodeError:  # a lone surrogate: match it as U+FFFD, as Go would see it
            text = entity.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
        return self.regex.fullmatch(text) is not None

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def state(self, now: float) -> str:
        """``active``, ``pending`` (not started yet) or ``expired``, as Alertmanager says."""
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def expired(self, now: float) -> Silence:
        """This silence ending at ``now`` (unchanged if it already ended)."""
        if self.ends_at <= now:
            return self
        return Silence(
            self.id,
            self.entity,
            self.severity,
            min(self.starts_at, now),
            now,
            self.comment,
            self.author,
            self.created_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "entity": self.entity,
            "severity": self.severity,
            "starts_at": rfc3339_seconds(self.starts_at),
            "ends_at": rfc3339_seconds(self.ends_at),
            "comment": self.comment,
            "author": self.author,
            "created_at": rfc3339_seconds(self.created_at),
        }

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, value: bytes | str) -> Silence:
        """Decode a control record; ValueError says what is wrong with it."""
        try:
            data = json.loads(value)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        missing = {"id", "entity", "starts_at", "ends_at"} - set(data)
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        for name in ("id", "entity"):
            if not isinstance(data[name], str):
                raise ValueError(f"{name} must be a string, got {data[name]!r}")
        severity = data.get("severity")
        if severity is not None and not isinstance(severity, str):
            raise ValueError(f"severity must be a string or null, got {severity!r}")
        starts = _time(data["starts_at"], "starts_at")
        return cls(
            id=data["id"],
            entity=data["entity"],
            severity=severity,
            starts_at=starts,
            ends_at=_time(data["ends_at"], "ends_at"),
            comment=str(data.get("comment") or ""),
            author=str(data.get("author") or ""),
            created_at=_time(data["created_at"], "created_at")
            if data.get("created_at")
            else starts,
        )


def new_silence(
    entity: str,
    severity: str | None,
    duration_s: float,
    comment: str,
    author: str,
    now: float,
    silence_id: str | None = None,
) -> Silence:
    """A silence starting ``now`` for ``duration_s``; ValueError names what is wrong."""
    if not duration_s > 0:
        raise ValueError(f"duration must be positive, got {duration_s}")
    if not comment.strip():
        raise ValueError("comment must not be empty: say why the alerts are silenced")
    return Silence(
        id=silence_id or str(uuid.uuid4()),
        entity=entity,
        severity=severity,
        starts_at=now,
        ends_at=now + duration_s,
        comment=comment,
        author=author,
        created_at=now,
    )


class SilenceSet:
    """The current silences, as read from the control topic (last record per id wins).

    Thread-safe to read while another thread applies records: each update swaps in a
    new dict (one reference assignment).

    >>> silences = SilenceSet()
    >>> s = new_silence("BTC.*", "warning", 60, "noisy", "me", now=100.0)
    >>> silences.apply(s.id.encode(), s.to_json())
    >>> [x.id == s.id for x in silences.matching("BTC-USD", "warning", now=120.0)]
    [True]
    >>> silences.matching("BTC-USD", "critical", now=120.0), silences.active_count(now=200.0)
    ([], 0)
    """

    def __init__(self) -> None:
        self._by_id: dict[str, Silence] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Apply one control record; a tombstone deletes. :class:`InvalidSilence` (reason
        ``no_key``, ``invalid`` or ``key_mismatch``) if malformed, a refused entity pattern
        included (``invalid``, its detail says why); nothing changes then."""
        if key is None:
            raise InvalidSilence("no_key", "record has no key (the silence id)")
        silence_id = key.decode("utf-8", errors="replace")
        if value is None:
            by_id = dict(self._by_id)
            by_id.pop(silence_id, None)
            self._by_id = by_id
            return
        try:
            silence = Silence.from_json(value)
        except ValueError as exc:
            raise InvalidSilence("invalid", str(exc)) from None
        if silence.id != silence_id:
            raise InvalidSilence(
                "key_mismatch", f"key {silence_id!r} differs from the id {silence.id!r}"
            )
        self._by_id = {**self._by_id, silence.id: silence}

    def __len__(self) -> int:
        """Silences known, expired ones included."""
        return len(self._by_id)

    def get(self, silence_id: str) -> Silence | None:
        return self._by_id.get(silence_id)

    def all(self) -> list[Silence]:
        """Every silence, newest first."""
        return sorted(self._by_id.values(), key=lambda s: (-s.created_at, s.id))

    def matching(self, entity: str, severity: str, now: float) -> list[Silence]:
        return [s for s in self._by_id.values() if s.active(now) and s.matches(entity, severity)]

    def active_count(self, now: float) -> int:
        return sum(1 for s in self._by_id.values() if s.active(now))


def _lifecycle(alert: Alert) -> tuple[str | None, str | None]:
    """(notification, firing_id) of an alert: the processor puts them in its details."""
    details = alert.details or {}
    notification = details.get("notification")
    firing_id = details.get("firing_id")
    return (
        str(notification) if notification else None,
        str(firing_id) if firing_id else None,
    )


class SilenceGate:
    """Decides, per alert, whether it is sent; counts the silenced ones by severity.

    Drift events are silenced like anomalies: a silence says "no notifications about
    these entities for now", and a drift report during maintenance is such a
    notification.

    >>> from datetime import UTC, datetime
    >>> from alerting.alerts import SourcePosition
    >>> silences = SilenceSet()
    >>> gate = SilenceGate(silences, clock=lambda: 10.0)
    >>> s = new_silence("AAPL", None, 60, "deploy", "me", now=0.0)
    >>> silences.apply(s.id.encode(), s.to_json())
    >>> def alert(entity: str) -> Alert:
    ...     return Alert(FIRING, entity, datetime(2026, 1, 1, tzinfo=UTC), 9.0, 6.0, "warning",
    ...                  "zscore", "v", {}, {}, "", SourcePosition("t", 0, 1))
    >>> gate.admit(alert("AAPL")), gate.admit(alert("MSFT")), dict(gate.silenced)
    (False, True, {'warning': 1})
    """

    def __init__(
        self, silences: SilenceSet, clock: Callable[[], float], max_remembered: int = 100_000
    ) -> None:
        if max_remembered < 1:
            raise ValueError(f"max_remembered must be at least 1, got {max_remembered}")
        self.silences = silences
        self.clock = clock
        self.max_remembered = max_remembered
        #: firing ids of episodes none of whose notifications was sent (LRU, bounded)
        self._held: OrderedDict[str, None] = OrderedDict()
        #: silenced alerts since the last drain, by severity
        self.silenced: Counter[str] = Counter()

    def admit(self, alert: Alert, now: float | None = None) -> bool:
        """True if ``alert`` is to be sent; False (and counted) if silenced."""
        if not self._held and not self.silences:
            return True  # the usual case, once per alert on the consume loop: nothing to do
        notification, firing_id = _lifecycle(alert)
        if alert.type == RESOLVED:
            if firing_id is not None and firing_id in self._held:
                del self._held[firing_id]
                self.silenced[alert.severity] += 1
                return False
            return True
        when = self.clock() if now is None else now
        if self.silences.matching(alert.entity, alert.severity, when):
            self.silenced[alert.severity] += 1
            if alert.type == FIRING:
                episode = firing_id or alert.id
                if notification in (None, "new") or episode in self._held:
                    self._remember(episode)
            return False
        if alert.type == FIRING and firing_id is not None:
            self._held.pop(firing_id, None)  # a notification of the episode goes out now
        return True

    def _remember(self, firing_id: str) -> None:
        self._held[firing_id] = None
        self._held.move_to_end(firing_id)
        while len(self._held) > self.max_remembered:
            self._held.popitem(last=False)

    @property
    def remembered(self) -> int:
        return len(self._held)


__all__ = [
    "MAX_PATTERN_CHARS",
    "SEVERITIES",
    "EntityPattern",
    "Silence",
    "SilenceGate",
    "SilenceSet",
    "compile_pattern",
    "new_silence",
    "parse_duration",
]
