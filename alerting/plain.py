"""Plain data: how per-entity state goes to the changelog without pickle.

Every unit whose state is numbers (features, the default detectors, calibrated
thresholds, the policy, drift, explanation statistics) has two verbs: ``dump() -> data``
(JSON-able: numbers, strings, lists, dicts, None) and ``load(data)``, which pours such
data into a *fresh* object built from the running configuration (``template.clone()``).
Nothing read names a class or a function, so nothing read from Kafka can run code;
``load`` checks every field's type and shape and raises :class:`PlainError` (the
snapshot is refused) rather than take what it did not expect. A unit that cannot say its
state in plain data (River's tree models) raises :class:`NotPlain` from ``dump``; its
snapshots fall back to a signed pickle (:mod:`alerting.state`).

Arrays of floats travel as base64 of their little-endian IEEE 754 doubles: exact, and a
third of the size of their decimal text.

>>> from array import array
>>> unpack_floats(pack_floats(array("d", [1.5, -2.0])), 2).tolist()
[1.5, -2.0]
>>> number("x", "seen")
Traceback (most recent call last):
...
alerting.errors.PlainError: seen: expected a number, got str
"""

from __future__ import annotations

import base64
import math
import sys
from array import array
from collections.abc import Mapping
from typing import Any

from alerting.errors import PlainError

__all__ = [
    "NotPlain",
    "integer",
    "mapping",
    "number",
    "optional_number",
    "pack_floats",
    "sequence",
    "text",
    "unpack_floats",
]


class NotPlain(Exception):
    """This state has a part that is not plain data (a River model): pickle it, signed."""


def number(value: Any, where: str) -> float:
    """A float (an int is taken as one; a bool is not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlainError(f"{where}: expected a number, got {type(value).__name__}")
    return float(value)


def optional_number(value: Any, where: str) -> float | None:
    return None if value is None else number(value, where)


def integer(value: Any, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise PlainError(f"{where}: expected an integer >= {low}, got {value!r:.40}")
    return value


def text(value: Any, where: str, limit: int = 1000) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise PlainError(f"{where}: expected a string of at most {limit} characters")
    return value


def mapping(value: Any, where: str, limit: int = 10_000) -> Mapping[str, Any]:
    if not isinstance(value, dict) or len(value) > limit:
        raise PlainError(f"{where}: expected an object of at most {limit} entries")
    for key in value:
        if not isinstance(key, str):
            raise PlainError(f"{where}: keys must be strings")
    return value


def sequence(value: Any, where: str, length: int | None = None, limit: int = 100_000) -> list[Any]:
    if not isinstance(value, list) or len(value) > limit:
        raise PlainError(f"{where}: expected a list of at most {limit} items")
    if length is not None and len(value) != length:
        raise PlainError(f"{where}: expected {length} items, got {len(value)}")
    return value


def pack_floats(values: array[float] | list[float]) -> str:
    data = values if isinstance(values, array) else array("d", values)
    if sys.byteorder != "little":  # pragma: no cover - the machines this runs on
        data = array("d", data)
        data.byteswap()
    return base64.b64encode(data.tobytes()).decode("ascii")


def unpack_floats(value: Any, length: int | None, where: str = "floats") -> array[float]:
    if not isinstance(value, str):
        raise PlainError(f"{where}: expected base64 of doubles")
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise PlainError(f"{where}: not base64") from None
    if len(raw) % 8 or (length is not None and len(raw) != 8 * length):
        raise PlainError(f"{where}: expected {length} doubles, got {len(raw) / 8:g}")
    data = array("d")
    data.frombytes(raw)
    if sys.byteorder != "little":  # pragma: no cover
        data.byteswap()
    return data


def finite_or_inf(value: float) -> bool:
    """True unless NaN (infinities are legitimate: an unset bound, a penalty)."""
    return not math.isnan(value)
