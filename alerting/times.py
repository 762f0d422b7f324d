"""Times as the service reads and writes them: RFC 3339 text and seconds since the epoch.

Written, a time is always UTC with a ``Z`` suffix: :func:`rfc3339` (alerts, silences,
Alertmanager) shows microseconds only when there are some, :func:`rfc3339_micro` (the
labels file) always shows them. A time without a zone is read as UTC everywhere.

Read, three rules on purpose:

- :func:`parse_time` is lenient, for recorded files and back-test labels: an RFC 3339
  string or a number since the epoch (seconds, or milli-, micro-, nanoseconds by
  magnitude, as pydantic reads a number on the wire), always converted to UTC;
- :func:`parse_rfc3339` is strict, for records this service wrote itself (labels): an
  ISO 8601 string only, its offset kept;
- :func:`rfc3339_or_none` is forgiving, for fields of alerts read back (``alerting
  forward``): None for anything that is not such a string, so a missing or odd field
  falls back to a default instead of dropping the alert.

>>> rfc3339(parse_time(1767623400)), rfc3339_micro(parse_rfc3339("2026-01-05T14:30:00"))
('2026-01-05T14:30:00Z', '2026-01-05T14:30:00.000000Z')
>>> rfc3339_seconds(1767623400.25), rfc3339_or_none(1767623400)
('2026-01-05T14:30:00.250000Z', None)
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "parse_rfc3339",
    "parse_time",
    "rfc3339",
    "rfc3339_micro",
    "rfc3339_or_none",
    "rfc3339_seconds",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339(moment: datetime) -> str:
    """UTC time with a ``Z`` suffix, microseconds only when non-zero."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def rfc3339_seconds(seconds: float) -> str:
    """:func:`rfc3339` of a time in seconds since the epoch."""
    return rfc3339(datetime.fromtimestamp(seconds, UTC))


def rfc3339_micro(moment: datetime) -> str:
    """UTC time with a ``Z`` suffix and always microseconds (the labels' format)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime from an ISO 8601 string, UTC when it has no zone, its offset
    kept otherwise; ValueError for anything else (a number is no time here)."""
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def rfc3339_or_none(value: Any) -> datetime | None:
    """:func:`parse_rfc3339` of ``value``, or None when it is not a string that reads."""
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def parse_time(value: object) -> datetime:
    """A timezone-aware UTC datetime from an RFC 3339 string or a number since the epoch.

    Numbers are seconds, or milliseconds above 2e10 (as pydantic reads a number on the
    wire, so a file and its replay agree; microseconds above 1e14, nanoseconds above
    1e17); strings holding a number are read the same way.

    >>> parse_time("2026-01-05T14:30:00Z") == parse_time(1767623400) == parse_time("1767623400000")
    True
    >>> parse_time("2026-01-05 15:30:00.5+01:00").isoformat()
    '2026-01-05T14:30:00.500000+00:00'
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not an RFC 3339 time or a number since the epoch"
                ) from None
            if moment.tzinfo is None:
                return moment.replace(tzinfo=UTC)
            return moment.astimezone(UTC)
    else:
        raise ValueError(f"{value!r} is not a time")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a time")
    magnitude = abs(number)
    if magnitude >= 1e17:
        number /= 1e9
    elif magnitude >= 1e14:
        number /= 1e6
    elif magnitude > 2e10:
        number /= 1e3
    try:
        return _EPOCH + timedelta(seconds=number)
    except OverflowError:
        raise ValueError(f"{value!r} is out of the supported time range") from None
