"""Seeded adversarial input records for the fuzz suite (issue 12), with good records between.

Every record carries its family and the outcome the service owes it:

- ``dead_letter``: an adversarial record; it must reach the dead-letter topic exactly once,
  with a reason, its key, value and headers kept;
- ``processed``: a good record (some with odd but valid keys, headers, times or names);
  it must be learned by its entity's model.

The same seed gives the same records, byte for byte. Adversarial records that hold a
symbol or entity name start it with ``FZ<id>-``, so one the service wrongly accepts shows
up, by id, among the changelog keys. Good records of an entity all go to one partition,
in event-time order.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

DEAD_LETTER = "dead_letter"
PROCESSED = "processed"

#: headers every generated record carries (kept by the dead letter, so it can be matched)
ID_HEADER = "fuzz-id"
FAMILY_HEADER = "fuzz-family"

#: event times of good records start here (2024-01-01T00:00:00Z): in the past, plausible
BASE_TIME = 1_704_067_200

#: the service's producer limit (consumers.kafka_python.MAX_MESSAGE_BYTES)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class FuzzRecord:
    id: int
    family: str
    expect: str  # DEAD_LETTER or PROCESSED
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    #: good records: the entity whose model must have learned it
    entity: str | None = None

    def all_headers(self) -> list[tuple[str, bytes]]:
        """The headers as produced: the tags first, then the record's own."""
        tags = [(ID_HEADER, str(self.id).encode()), (FAMILY_HEADER, self.family.encode())]
        return tags + self.headers


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------------------------------------
# adversarial families: each builder makes (value, key, headers) for record ``rid``

Built = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
Builder = Callable[[random.Random, int], Built]


def _sym(rid: int, suffix: str = "") -> str:
    return f"FZ{rid}-{suffix}" if suffix else f"FZ{rid}-X"


def _trade(rid: int, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "kind": "trade",
        "symbol": _sym(rid),
        "price": 101.25,
        "size": 100,
        "time": BASE_TIME + rid,
    }
    base.update(over)
    return base


def _quote(rid: int, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "kind": "quote",
        "symbol": _sym(rid),
        "bid": 100.0,
        "ask": 100.5,
        "bid_size": 10,
        "ask_size": 10,
        "time": BASE_TIME + rid,
    }
    base.update(over)
    return base


def _metric(rid: int, **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "kind": "metric",
        "entity": _sym(rid),
        "values": {"load": 1.5},
        "time": BASE_TIME + rid,
    }
    base.update(over)
    return base


def _key(rid: int) -> bytes:
    return _sym(rid).encode()


def _splice(obj: dict[str, object], field_name: str, raw: bytes) -> bytes:
    """``obj`` as JSON with ``field_name``'s value replaced by raw (not JSON-escaped) bytes."""
    marker = "\u0000SPLICE\u0000"
    text = _dumps({**obj, field_name: marker})
    return text.replace(json.dumps(marker).encode(), raw)


def _random_event(rng: random.Random, rid: int) -> dict[str, object]:
    return rng.choice((_trade, _quote, _metric))(rid)


def not_utf8(rng: random.Random, rid: int) -> Built:
    """Otherwise valid JSON with bytes that are not UTF-8 (in a string, a key, or bare)."""
    bad = rng.choice(
        (b"\xff", b"\xfe\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\x80", b"\xf8\x88\x80")
    )
    text = _dumps(_trade(rid))
    where = rng.randrange(3)
    if where == 0:  # inside the symbol string
        value = text.replace(b'-X"', b"-X" + bad + b'"')
    elif where == 1:  # inside a field name
        value = text.replace(b'"size"', b'"si' + bad + b'ze"')
    else:  # a truncated multi-byte sequence at the very end of a string value
        value = text.replace(b'"trade"', b'"trade' + bad[:1] + b'"')
    return value, _key(rid), []


def random_bytes(rng: random.Random, rid: int) -> Built:
    """Noise: random bytes, sometimes starting like JSON."""
    n = rng.choice((1, 2, 7, 64, 512, 2048))
    noise = rng.randbytes(n)
    prefix = rng.choice((b"", b"{", b'{"kind":"trade",', b"["))
    return prefix + noise, _key(rid), []


def truncated_json(rng: random.Random, rid: int) -> Built:
    """A good event cut short anywhere before its closing brace."""
    text = _dumps(_random_event(rng, rid))
    return text[: rng.randrange(1, len(text) - 1)], _key(rid), []


def huge_numbers(rng: random.Random, rid: int) -> Built:
    """Numbers that overflow a double: 1e400, 400-digit integers, in any numeric field."""
    raw = rng.choice(
        (b"1e400", b"-1e400", b"1.7976931348623159e308", b"9" * 400, b"-" + b"9" * 400)
    )
    event = rng.choice((_trade, _quote, _metric))(rid)
    if event["kind"] == "metric":
        return _splice(event, "values", b'{"load":' + raw + b"}"), _key(rid), []
    field_name = rng.choice(
        ["price", "size", "time"] if event["kind"] == "trade" else ["bid", "ask"]
    )
    return _splice(event, field_name, raw), _key(rid), []


def nan_inf_literals(rng: random.Random, rid: int) -> Built:
    """JSON has no NaN or Infinity: the literals, and their strings, in numeric fields."""
    raw = rng.choice(
        (b"NaN", b"Infinity", b"-Infinity", b"+Infinity", b"nan", b"inf", b'"NaN"', b'"Infinity"')
    )
    event = rng.choice((_trade, _quote, _metric))(rid)
    if event["kind"] == "metric":
        return _splice(event, "values", b'{"load":' + raw + b"}"), _key(rid), []
    field_name = rng.choice(
        ["price", "size", "time"] if event["kind"] == "trade" else ["bid", "ask"]
    )
    return _splice(event, field_name, raw), _key(rid), []


def deep_nesting(rng: random.Random, rid: int) -> Built:
    """Arrays or objects nested thousands of levels deep, whole or as a field's value."""
    depth = rng.choice((200, 1_000, 5_000, 20_000))
    opener, closer = rng.choice(((b"[", b"]"), (b'{"a":', b"}")))
    nest = opener * depth + b"1" + closer * depth
    if rng.random() < 0.3:
        nest = opener * depth  # never closed
    if rng.random() < 0.5:
        return nest, _key(rid), []
    return _splice(_trade(rid), "venue", nest), _key(rid), []


def too_many_fields(rng: random.Random, rid: int) -> Built:
    """A metric with more values than the schema allows (65 to 20,000)."""
    n = rng.choice((65, 100, 1_000, 20_000))
    values = {f"v{i}": float(i) for i in range(n)}
    return _dumps(_metric(rid, values=values)), _key(rid), []


def huge_strings(rng: random.Random, rid: int) -> Built:
    """Entity names past the 200-character limit (up to 1 MB)."""
    n = rng.choice((201, 1_000, 10_000, 100_000)) if rng.random() < 0.99 else 1_000_000
    name = _sym(rid, "H" * n)
    event = rng.choice((_trade, _quote, _metric))(rid)
    event["entity" if event["kind"] == "metric" else "symbol"] = name
    return _dumps(event), _key(rid), []


def wrong_types_bool(rng: random.Random, rid: int) -> Built:
    """Booleans where numbers belong (strict types: ``true`` is not a price of 1)."""
    flag = rng.choice((True, False))
    choice = rng.randrange(6)
    if choice == 0:
        event = _trade(rid, price=flag)
    elif choice == 1:
        event = _trade(rid, size=True)
    elif choice == 2:
        event = _quote(rid, bid=True, ask=True)
    elif choice == 3:
        event = _metric(rid, values={"load": flag})
    elif choice == 4:
        event = _quote(rid, bid_size=flag)
    else:
        event = _trade(rid, time=flag)
    return _dumps(event), _key(rid), []


def wrong_types(rng: random.Random, rid: int) -> Built:
    """Fields of the wrong JSON type: containers or null for numbers, numbers or
    containers for strings, scalars for the values object."""
    choice = rng.randrange(5)
    if choice == 0:
        event = _trade(rid, price=rng.choice(([101.0], {"v": 101.0}, None)))
    elif choice == 1:
        event = _trade(rid, symbol=rng.choice((42, True, ["FZ"], {"s": "FZ"}, None)))
    elif choice == 2:
        event = _trade(rid, time=rng.choice(([BASE_TIME], {"t": BASE_TIME})))
    elif choice == 3:
        event = _metric(rid, values=rng.choice(([1.0, 2.0], "load=1", 1.5, {"load": [1.0]})))
    else:
        event = _trade(rid, side=rng.choice((1, "up", "BUY ", None)))
    return _dumps(event), _key(rid), []


def wrong_kind(rng: random.Random, rid: int) -> Built:
    """Kinds that do not exist, spelled wrong, of the wrong type, or missing."""
    event = _trade(rid)
    choice = rng.randrange(6)
    if choice == 0:
        event["kind"] = rng.choice(("option", "future", "", "trades", "quote ", "metric\u0000"))
    elif choice == 1:
        event["kind"] = rng.choice(("Trade", "TRADE", " trade", "tr\u0430de"))  # Cyrillic a
    elif choice == 2:
        event["kind"] = rng.choice((1, None, True, ["trade"], {"k": "trade"}))
    elif choice == 3:
        del event["kind"]
    elif choice == 4:  # a quote's fields under kind trade
        event = _quote(rid, kind="trade")
        del event["symbol"]
    else:  # a trade's fields under kind metric
        event["kind"] = "metric"
    return _dumps(event), _key(rid), []


def missing_time(rng: random.Random, rid: int) -> Built:
    """No event time, or an empty one."""
    event = _random_event(rng, rid)
    choice = rng.randrange(4)
    if choice == 0:
        del event["time"]
    elif choice == 1:
        event["time"] = None
    elif choice == 2:
        event["time"] = rng.choice(("", " ", "null"))
    else:
        del event["time"]
        event["timestamp"] = BASE_TIME + rid  # the wrong name
    return _dumps(event), _key(rid), []


def bad_time(rng: random.Random, rid: int) -> Built:
    """Event times that are not times: words, NaN, out of any range, bad zones."""
    raw = rng.choice(
        (
            b'"yesterday"',
            b'"2024-13-01T00:00:00Z"',
            b'"2024-02-30T00:00:00Z"',
            b'"2024-01-01T25:00:00Z"',
            b'"2024-01-01T00:00:00+25:00"',
            b'"10000-01-01T00:00:00Z"',
            b'"-0001-01-01T00:00:00Z"',
            b"NaN",
            b"1e20",
            b"-1e20",
            b"1e400",
            b'"1e400"',
            b"99999999999999999999",
        )
    )
    return _splice(_random_event(rng, rid), "time", raw), _key(rid), []


def future_time(rng: random.Random, rid: int) -> Built:
    """Events dated far in the future (9999-12-31 and the like): a clock gone wrong."""
    value = rng.choice(
        (
            "9999-12-31T23:59:59Z",
            "9999-12-31T23:59:59.999999+00:00",
            "9999-12-31",
            "2200-01-01T00:00:00Z",
            "3000-06-15T12:00:00+02:00",
            253_402_300_799_000,  # 9999-12-31 in milliseconds
        )
    )
    event = _random_event(rng, rid)
    event["time"] = value
    return _dumps(event), _key(rid), []


def bad_sizes(rng: random.Random, rid: int) -> Built:
    """Negative, zero, NaN or absurd sizes and prices."""
    raw = rng.choice((b"-1", b"-0.0", b"0", b"-1e308", b"NaN", b"-Infinity", b"1e9", b"1e-400"))
    event = rng.choice((_trade, _quote))(rid)
    if event["kind"] == "trade":
        field_name = rng.choice(("size", "price"))
    else:
        field_name = rng.choice(("bid_size", "ask_size", "bid"))
        if raw in (b"0", b"-0.0", b"1e-400") and field_name != "bid":
            raw = b"-1"  # a zero quote size is allowed
    return _splice(event, field_name, raw), _key(rid), []


#: C0 controls, DEL and C1 controls: never part of an entity name (log and terminal
#: injection through alerts, ``alerting tail``, the changelog keys)
_CONTROLS = [chr(c) for c in (*range(0, 32), 127, *range(128, 160))]


def entity_control_chars(rng: random.Random, rid: int) -> Built:
    """Entity names with control characters (NUL, ESC sequences, newlines, C1)."""
    inject = rng.choice(
        ("\u0000", "\u001b[31mRED\u001b[0m", "\n", "\r\nFAKE LOG LINE", "\u0085", *_CONTROLS)
    )
    name = _sym(rid, "C" + inject + "Z")
    event = rng.choice((_trade, _quote, _metric))(rid)
    event["entity" if event["kind"] == "metric" else "symbol"] = name
    return _dumps(event), _key(rid), []


def entity_lone_surrogate(rng: random.Random, rid: int) -> Built:
    """Entity names with lone UTF-16 surrogates (a JSON escape no UTF-8 string can hold)."""
    escape = rng.choice((b"\\ud800", b"\\udfff", b"\\udc00\\ud800", b"\\ud83d", b"\\uDBFF"))
    raw = b'"' + _sym(rid, "S").encode() + escape + b'"'
    event = rng.choice((_trade, _metric))(rid)
    return _splice(event, "entity" if event["kind"] == "metric" else "symbol", raw), _key(rid), []


def not_an_object(rng: random.Random, rid: int) -> Built:
    """Valid JSON that is not an object."""
    value = rng.choice(
        (
            b"[]",
            b"[1,2,3]",
            b'"trade"',
            b"42",
            b"-0",
            b"true",
            b"null",
            b"[" + _dumps(_trade(rid)) + b"]",
        )
    )
    return value, _key(rid), []


def empty_values(rng: random.Random, rid: int) -> Built:
    """Nothing or whitespace: empty bytes, a tombstone, ``{}``."""
    value = rng.choice((b"", None, b" ", b"\n", b"\x00", b"{}", b"\t\r\n "))
    return value, _key(rid), []


def schema_violations(rng: random.Random, rid: int) -> Built:
    """Well-typed but invalid: crossed quotes, empty names, empty values, bad side."""
    choice = rng.randrange(5)
    if choice == 0:
        event = _quote(rid, bid=101.0, ask=100.0)
    elif choice == 1:
        event = _trade(rid, symbol="")
    elif choice == 2:
        event = _metric(rid, values={})
    elif choice == 3:
        event = _metric(rid, entity="")
    else:
        event = _trade(rid, venue={"mic": "XNAS"})
    return _dumps(event), _key(rid), []


def encodings(rng: random.Random, rid: int) -> Built:
    """A good event in the wrong encoding, or behind a byte-order mark."""
    text = json.dumps(_trade(rid))
    value = rng.choice(
        (
            b"\xef\xbb\xbf" + text.encode(),
            text.encode("utf-16"),
            text.encode("utf-16-le"),
            text.encode("utf-32"),
            zlib.compress(text.encode()),
        )
    )
    return value, _key(rid), []


def trailing_data(rng: random.Random, rid: int) -> Built:
    """A good event followed by more: another object, a comma, garbage, a second line."""
    text = _dumps(_trade(rid))
    tail = rng.choice((b"{}", b",", b"garbage", b"\n" + text, b"\x00", b"]"))
    return text + tail, _key(rid), []


def not_json_syntax(rng: random.Random, rid: int) -> Built:
    """Things that look like JSON to a lenient reader: comments, single quotes, hex, +1."""
    text = _dumps(_trade(rid))
    value = rng.choice(
        (
            text[:-1] + b" /* comment */}",
            text[:-1] + b" // comment\n}",
            text.replace(b'"', b"'"),
            text.replace(b'"kind"', b"kind"),
            text.replace(b"101.25", b"0x65"),
            text.replace(b"101.25", b"+101.25"),
            text.replace(b"101.25", b"0101.25"),
            text.replace(b"101.25", b".25"),
            text[:-1] + b",}",
        )
    )
    return value, _key(rid), []


def weird_keys(rng: random.Random, rid: int) -> Built:
    """An invalid value under a key that is not UTF-8, 10 KB long, empty or null."""
    key = rng.choice(
        (None, b"", b"\xff\xfe\x00\x80", rng.randbytes(16), b"K" * 10_240, b"\x00" * 32)
    )
    value, _, _ = rng.choice((truncated_json, not_an_object, bad_sizes))(rng, rid)
    return value, key, []


def garbage_headers(rng: random.Random, rid: int) -> Built:
    """An invalid value with headers that are not UTF-8, empty, many, duplicated, large, or
    named like the dead-letter headers themselves."""
    choice = rng.randrange(6)
    if choice == 0:
        headers = [("trace-id", rng.randbytes(24)), ("x", b"\xff\xfe\xfd")]
    elif choice == 1:
        headers = [("", b""), (" ", b"\x00"), ("\u0000", b"nul name")]
    elif choice == 2:
        headers = [(f"h{i}", str(i).encode()) for i in range(rng.choice((100, 500)))]
    elif choice == 3:
        headers = [("dup", b"1"), ("dup", b"2"), ("dup", b"")]
    elif choice == 4:
        headers = [("big", rng.randbytes(rng.choice((1_024, 32_768))))]
    else:  # a sender pretending to be the dead-letter publisher
        headers = [("x-dlq-reason", b"forged"), ("x-dlq-source-offset", b"-1")]
    value, key, _ = rng.choice((truncated_json, random_bytes))(rng, rid)
    return value, key, headers


#: family -> (builder, records in the default run); the sum is the adversarial volume
FAMILIES: dict[str, tuple[Builder, int]] = {
    "not_utf8": (not_utf8, 600),
    "random_bytes": (random_bytes, 700),
    "truncated_json": (truncated_json, 800),
    "huge_numbers": (huge_numbers, 500),
    "nan_inf_literals": (nan_inf_literals, 500),
    "deep_nesting": (deep_nesting, 300),
    "too_many_fields": (too_many_fields, 150),
    "huge_strings": (huge_strings, 200),
    "wrong_types_bool": (wrong_types_bool, 400),
    "wrong_types": (wrong_types, 500),
    "wrong_kind": (wrong_kind, 600),
    "missing_time": (missing_time, 500),
    "bad_time": (bad_time, 600),
    "future_time": (future_time, 400),
    "bad_sizes": (bad_sizes, 600),
    "entity_control_chars": (entity_control_chars, 400),
    "entity_lone_surrogate": (entity_lone_surrogate, 300),
    "not_an_object": (not_an_object, 400),
    "empty_values": (empty_values, 400),
    "schema_violations": (schema_violations, 400),
    "encodings": (encodings, 300),
    "trailing_data": (trailing_data, 400),
    "not_json_syntax": (not_json_syntax, 400),
    "weird_keys": (weird_keys, 400),
    "garbage_headers": (garbage_headers, 400),
}


def _pill(
    value: Callable[[int], bytes | None],
    key: bytes | None = b"FZPILL",
    headers: list[tuple[str, bytes]] | None = None,
) -> Callable[[int], Built]:
    return lambda rid: (value(rid), key, list(headers or []))


def _t(**over: object) -> Callable[[int], bytes]:
    return lambda rid: _dumps(_trade(rid, **over))


def _s(field_name: str, raw: bytes) -> Callable[[int], bytes]:
    return lambda rid: _splice(_trade(rid), field_name, raw)


_DEEP = b"[" * 100_000
_CUT = b'{"kind":"trade","sym'

#: one canonical record per finding of issue 12 that is about input records
PILL_BUILDERS: dict[str, Callable[[int], Built]] = {
    "pill_future_9999_12_31": _pill(_t(time="9999-12-31T23:59:59Z")),
    "pill_price_true": _pill(_t(price=True)),
    "pill_key_not_utf8": _pill(lambda rid: _CUT, key=b"\xff\xfe\xc0\xaf\xed\xa0\x80"),
    "pill_key_10kb": _pill(lambda rid: _CUT, key=b"k" * 10_240),
    "pill_key_null": _pill(lambda rid: _CUT, key=None),
    "pill_invalid_utf8_value": _pill(lambda rid: _dumps(_trade(rid)).replace(b'-X"', b'-X\xff"')),
    "pill_truncated_json": _pill(lambda rid: _dumps(_trade(rid))[:-7]),
    "pill_1e400": _pill(_s("price", b"1e400")),
    "pill_nan_literal": _pill(_s("price", b"NaN")),
    "pill_infinity_literal": _pill(_s("size", b"Infinity")),
    "pill_nested_100k_arrays": _pill(lambda rid: _DEEP),
    "pill_nested_100k_in_field": _pill(_s("venue", _DEEP)),
    "pill_100k_fields": _pill(
        lambda rid: _dumps(_metric(rid, values={f"v{i}": 1.0 for i in range(100_000)}))
    ),
    "pill_1mb_entity_name": _pill(lambda rid: _dumps(_trade(rid, symbol=_sym(rid, "H" * 10**6)))),
    "pill_duplicate_keys": _pill(lambda rid: _dumps(_trade(rid))[:-1] + b',"price":-5}'),
    "pill_wrong_kind": _pill(_t(kind="option")),
    "pill_missing_time": _pill(
        lambda rid: _dumps({k: v for k, v in _trade(rid).items() if k != "time"})
    ),
    "pill_negative_size": _pill(_t(size=-100)),
    "pill_nan_size": _pill(_s("size", b"NaN")),
    "pill_entity_control_chars": _pill(
        lambda rid: _dumps(_trade(rid, symbol=_sym(rid, "\u0000\u001b[2J\nX")))
    ),
    "pill_entity_lone_surrogate": _pill(
        lambda rid: _splice(_trade(rid), "symbol", b'"' + _sym(rid).encode() + b'\\ud800"')
    ),
    "pill_garbage_headers": _pill(
        lambda rid: b"\xde\xad\xbe\xef",
        headers=[("", b"\xff"), ("x-dlq-reason", b"forged"), ("h" * 1000, b"\x00" * 1000)],
    ),
}


PILLS = tuple(PILL_BUILDERS)


# ---------------------------------------------------------------------------------------------
# good records


def _good_entities() -> list[tuple[str, str]]:
    """(entity, kind) of the good records: plain symbols, and printable Unicode names."""
    out = [(f"SYM{i:02d}", ("trade", "quote", "metric")[i % 3]) for i in range(45)]
    out += [
        ("株式-7203", "trade"),
        ("ÄÖÜ-straße", "quote"),
        ("emoji-📈", "metric"),
        ("Ωmega.Σ", "trade"),
        ("host-01.prod.example.com", "metric"),
        ("a", "trade"),  # a one-character entity
        ("Z" * 200, "quote"),  # exactly the longest allowed name
    ]
    return out


#: variants of good records: (family, share of good records)
GOOD_FAMILIES: dict[str, float] = {
    "good": 0.70,
    "good_key_null": 0.03,
    "good_key_not_utf8": 0.03,
    "good_key_10kb": 0.02,
    "good_key_empty": 0.02,
    "good_garbage_headers": 0.04,
    "good_time_rfc3339_offset": 0.04,
    "good_time_epoch_ms": 0.04,
    "good_extra_fields": 0.04,
    "good_whitespace_and_order": 0.04,
}


def _good_event(
    entity: str, kind: str, step: int, level: float, rng: random.Random
) -> dict[str, object]:
    t = BASE_TIME + step * 10 + rng.random()
    if kind == "trade":
        return {
            "kind": "trade",
            "symbol": entity,
            "price": round(level, 4),
            "size": rng.choice((1, 10, 100, 250, 1000)),
            "side": rng.choice(("buy", "sell")),
            "venue": "XNAS",
            "time": t,
        }
    if kind == "quote":
        spread = 0.01 + rng.random() * 0.05
        return {
            "kind": "quote",
            "symbol": entity,
            "bid": round(level, 4),
            "ask": round(level + spread, 4),
            "bid_size": rng.randint(1, 500),
            "ask_size": rng.randint(1, 500),
            "time": t,
        }
    return {
        "kind": "metric",
        "entity": entity,
        "values": {"load": round(level, 4), "queue": float(rng.randint(0, 50))},
        "time": t,
    }


def _good_variant(
    family: str, event: dict[str, object], entity: str, rng: random.Random
) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
    key: bytes | None = entity.encode()
    headers: list[tuple[str, bytes]] = []
    if family == "good_key_null":
        key = None
    elif family == "good_key_not_utf8":
        key = b"\xff\xfe" + rng.randbytes(6)
    elif family == "good_key_10kb":
        key = b"k" * 10_240
    elif family == "good_key_empty":
        key = b""
    elif family == "good_garbage_headers":
        headers = [("", b"\xff\xfe"), ("trace", rng.randbytes(8)), ("dup", b"1"), ("dup", b"2")]
    elif family == "good_time_rfc3339_offset":
        from datetime import UTC, datetime, timedelta, timezone

        moment = datetime.fromtimestamp(float(event["time"]), UTC)  # type: ignore[arg-type]
        zone = timezone(timedelta(hours=rng.choice((-8, 1, 5.5, 9))))
        event["time"] = moment.astimezone(zone).isoformat()
    elif family == "good_time_epoch_ms":
        event["time"] = int(float(event["time"]) * 1000)  # type: ignore[arg-type]
    elif family == "good_extra_fields":
        event.update({"source": "feed-7", "seq": rng.randint(0, 10**9), "tags": ["a", "b"]})
    if family == "good_whitespace_and_order":
        items = list(event.items())
        rng.shuffle(items)
        return json.dumps(dict(items), indent=2).encode() + b"\n", key, headers
    return _dumps(event), key, headers


# ---------------------------------------------------------------------------------------------


def generate(
    seed: int = 12,
    partitions: int = 4,
    good_per_entity: int = 100,
    scale: float = 1.0,
    pills: bool = True,
) -> list[FuzzRecord]:
    """Adversarial and good records interleaved, in the order to produce them.

    ``scale`` multiplies every family's count (at least one record each).
    """
    rng = random.Random(seed)
    adversarial: list[tuple[str, Built, int]] = []
    for family, (builder, count) in FAMILIES.items():
        family_rng = random.Random(f"{seed}:{family}")
        for _ in range(max(1, round(count * scale))):
            rid = len(adversarial)
            adversarial.append((family, builder(family_rng, rid), family_rng.randrange(partitions)))
    if pills:
        for name, pill in PILL_BUILDERS.items():
            adversarial.append((name, pill(len(adversarial)), rng.randrange(partitions)))

    good: list[tuple[str, tuple[bytes, bytes | None, list[tuple[str, bytes]]], str, int]] = []
    good_rng = random.Random(f"{seed}:good")
    names = list(GOOD_FAMILIES)
    weights = list(GOOD_FAMILIES.values())
    per_entity: list[list[tuple[str, tuple[bytes, bytes | None, list[tuple[str, bytes]]]]]] = []
    for entity, kind in _good_entities():
        level = 50 + good_rng.random() * 150
        rows = []
        for step in range(good_per_entity):
            level *= 1 + good_rng.gauss(0, 0.001)
            family = good_rng.choices(names, weights)[0]
            event = _good_event(entity, kind, step, level, good_rng)
            rows.append((family, _good_variant(family, event, entity, good_rng)))
        per_entity.append(rows)
    # round-robin over entities keeps each entity's records in event-time order
    entities = _good_entities()
    for step in range(good_per_entity):
        for (entity, _), rows in zip(entities, per_entity, strict=True):
            family, built = rows[step]
            good.append((family, built, entity, zlib.crc32(entity.encode()) % partitions))

    # a random merge: good records keep their order, adversarial ones fall between them;
    # an adversarial record's id is the one in its FZ<id>- names, good ones come after
    slots = [True] * len(good) + [False] * len(adversarial)
    rng.shuffle(slots)
    order = list(range(len(adversarial)))
    rng.shuffle(order)
    out: list[FuzzRecord] = []
    goods = iter(enumerate(good, start=len(adversarial)))
    bads = iter(order)
    for is_good in slots:
        if is_good:
            rid, (family, (value, key, headers), entity, partition) = next(goods)
            out.append(
                FuzzRecord(rid, family, PROCESSED, partition, key, value, headers, entity=entity)
            )
        else:
            rid = next(bads)
            family, (value_, key_, headers_), partition = adversarial[rid]
            out.append(FuzzRecord(rid, family, DEAD_LETTER, partition, key_, value_, headers_))
    return out


def oversized_pills(seed: int = 12) -> list[tuple[str, bytes]]:
    """Garbage records at the size limit: (name, value). The first is the ~16.7 MB record
    of issue 12 (past the service's 16 MiB producer limit); the second fits the limit
    alone, but not once the dead-letter headers are added."""
    rng = random.Random(f"{seed}:oversized")
    return [
        ("pill_garbage_16_7mb", rng.randbytes(MAX_MESSAGE_BYTES + 4_096)),
        ("pill_garbage_just_under_limit", rng.randbytes(MAX_MESSAGE_BYTES - 512)),
    ]


def summary(records: list[FuzzRecord]) -> Counter[str]:
    """Records per family."""
    return Counter(r.family for r in records)
