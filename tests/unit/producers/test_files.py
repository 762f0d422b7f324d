"""Reading recorded streams (CSV, JSON Lines, gzipped) into events."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alerting.events import Event, Metric, Quote, Trade, encode
from alerting.times import parse_time
from producers.files import ColumnMapping, InvalidRow, count_rows, read_events
from producers.synthetic import SyntheticMarket

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read(path: Path, **mapping: object) -> list[Event | InvalidRow]:
    return list(read_events(path, ColumnMapping(**mapping)))  # type: ignore[arg-type]


def events_only(items: list[Event | InvalidRow]) -> list[Event]:
    assert not [item for item in items if isinstance(item, InvalidRow)]
    return [item for item in items if not isinstance(item, InvalidRow)]


# -- CSV ----------------------------------------------------------------------------------


def test_a_timestamp_and_value_csv_replays_as_metrics_with_a_fixed_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "nab.csv",
        "timestamp,value\n2014-02-14 14:30:00,1.5\n2014-02-14 14:35:00,2\n",
    )
    events = events_only(read(path, fixed_key="cpu_utilization"))
    assert events == [
        Metric(entity="cpu_utilization", values={"value": 1.5},
               time=datetime(2014, 2, 14, 14, 30, tzinfo=UTC)),
        Metric(entity="cpu_utilization", values={"value": 2.0},
               time=datetime(2014, 2, 14, 14, 35, tzinfo=UTC)),
    ]  # fmt: skip


def test_metric_values_are_the_numeric_columns_but_not_the_label(tmp_path: Path) -> None:
    path = write(
        tmp_path / "hosts.csv",
        "host,timestamp,cpu,mem,note,is_anomaly\n"
        "web-1,2026-01-05T14:30:00Z,0.5,0.75,ok,0\n"
        "web-2,2026-01-05T14:30:01Z,0.25,,spike,1\n",  # an empty cell is a missing value
    )
    events = events_only(read(path, key="host"))
    assert [(e.entity, e.values) for e in events if isinstance(e, Metric)] == [
        ("web-1", {"cpu": 0.5, "mem": 0.75}),
        ("web-2", {"cpu": 0.25}),
    ]
    labelled = events_only(read(path, key="host", label="note", values=None))
    assert next(e.values for e in labelled if isinstance(e, Metric)) == {
        "cpu": 0.5,
        "mem": 0.75,
        "is_anomaly": 0.0,  # not skipped once another label column is named
    }
    with_mem, without_mem = read(path, key="host", values=("mem",))
    assert isinstance(with_mem, Metric) and with_mem.values == {"mem": 0.75}
    assert isinstance(without_mem, InvalidRow) and without_mem.reason == "missing_field"


def test_chosen_value_columns_must_be_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "timestamp,a,b\n0,1,x\n1,2,3\n")
    [bad, good] = read(path, fixed_key="m", values=("a", "b"))
    assert isinstance(bad, InvalidRow) and (bad.line, bad.reason) == (2, "not_a_number")
    assert isinstance(good, Metric) and good.values == {"a": 2.0, "b": 3.0}


def test_a_time_column_is_used_when_there_is_no_timestamp_column(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "time,value\n1767623400,3\n")
    [event] = events_only(read(path, fixed_key="m"))
    assert event.time == T0


def test_trades_with_a_symbol_column(tmp_path: Path) -> None:
    path = write(
        tmp_path / "trades.csv",
        "time,symbol,price,size,side,venue\n"
        "2026-01-05T14:30:00Z,AAPL,190.5,100,BUY,XNAS\n"
        "2026-01-05T14:30:01Z,MSFT,410.25,300,,\n",
    )
    events = events_only(read(path, default_kind="trade", key="symbol", time="time"))
    assert events == [
        Trade(symbol="AAPL", price=190.5, size=100, side="buy", venue="XNAS", time=T0),
        Trade(symbol="MSFT", price=410.25, size=300, time=T0 + timedelta(seconds=1)),
    ]


def test_a_kind_column_mixes_trades_quotes_and_metrics(tmp_path: Path) -> None:
    path = write(
        tmp_path / "mixed.csv",
        "kind,key,timestamp,price,size,bid,ask,bid_size,ask_size,latency\n"
        "trade,AAPL,1767623400,190.5,100,,,,,\n"
        "quote,AAPL,1767623400500,,,190.4,190.6,200,300,\n"
        "metric,gateway,1767623401,,,,,,,0.004\n"
        ",gateway,1767623402,,,,,,,0.005\n"  # no kind: default_kind
        "order,AAPL,1767623403,1,1,,,,,\n",
    )
    items = read(path, kind="kind", key="key")
    trade, quote, metric, default, unknown = items
    assert trade == Trade(symbol="AAPL", price=190.5, size=100, time=T0)
    assert quote == Quote(
        symbol="AAPL", bid=190.4, ask=190.6, bid_size=200, ask_size=300,
        time=T0 + timedelta(milliseconds=500),
    )  # fmt: skip
    assert metric == Metric(entity="gateway", values={"latency": 0.004},
                            time=T0 + timedelta(seconds=1))  # fmt: skip
    assert isinstance(default, Metric) and default.values == {"latency": 0.005}
    assert isinstance(unknown, InvalidRow)
    assert (unknown.line, unknown.reason) == (6, "unknown_kind")


def test_bad_rows_become_invalid_rows_and_good_rows_around_them_still_come(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "trades.csv",
        "timestamp,symbol,price,size\n"
        "1767623400,AAPL,190.5,100\n"  # line 2: good
        "yesterday,AAPL,190.5,100\n"  # 3: bad time
        "1767623401,AAPL,-3,100\n"  # 4: negative price
        "1767623402,AAPL,abc,100\n"  # 5: not a number
        "1767623403,,190.5,100\n"  # 6: no key
        "1767623404,AAPL,190.5\n"  # 7: a cell short
        "\n"  # 8: blank, skipped
        "1767623405,AAPL,,100\n"  # 9: required cell empty
        "1767623406,AAPL,191,200\n",  # 10: good
    )
    items = read(path, default_kind="trade", key="symbol")
    assert isinstance(items[0], Trade) and items[0].price == 190.5
    assert isinstance(items[-1], Trade) and items[-1].price == 191.0
    invalid = [item for item in items if isinstance(item, InvalidRow)]
    assert [(row.line, row.reason) for row in invalid] == [
        (3, "bad_time"),
        (4, "out_of_range"),
        (5, "schema"),
        (6, "missing_field"),
        (7, "bad_row"),
        (9, "missing_field"),
    ]
    assert invalid[0].raw == "yesterday,AAPL,190.5,100"
    assert "yesterday" in invalid[0].detail
    assert "price" in invalid[1].detail
    assert "symbol" in invalid[3].detail
    assert "price" in invalid[5].detail


def test_line_numbers_count_physical_lines_of_quoted_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.csv",
        'timestamp,value,note\n1,1,"two\nlines"\nnever,2,x\n3,3,x\n',
    )
    items = read(path, fixed_key="m")
    assert isinstance(items[0], Metric) and items[0].values == {"value": 1.0}
    assert isinstance(items[1], InvalidRow) and items[1].line == 4
    assert isinstance(items[2], Metric)


def test_a_cell_over_the_csv_size_limit_is_an_invalid_row(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", f"timestamp,value,note\n1,1,x\n2,2,{'x' * 200_000}\n3,3,x\n")
    first, huge, last = read(path, fixed_key="m")
    assert isinstance(huge, InvalidRow) and (huge.line, huge.reason) == (3, "bad_row")
    assert "limit" in huge.detail
    assert isinstance(first, Metric) and isinstance(last, Metric) and last.values == {"value": 3}


def test_an_empty_row_of_values_is_invalid(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "timestamp,value\n1,\n2,nan\n3,4\n")
    items = read(path, fixed_key="m")
    assert [(r.line, r.reason) for r in items if isinstance(r, InvalidRow)] == [
        (2, "missing_field"),
        (3, "missing_field"),
    ]
    assert isinstance(items[2], Metric)


def test_gzip_bom_and_crlf_are_read(tmp_path: Path) -> None:
    text = "\ufefftimestamp,value\r\n1767623400,1\r\n1767623401,2\r\n"
    for name in ("m.csv", "m.csv.gz"):
        events = events_only(read(write(tmp_path / name, text), fixed_key="m"))
        assert [e.values for e in events if isinstance(e, Metric)] == [
            {"value": 1.0},
            {"value": 2.0},
        ]


def test_an_empty_file_has_no_events(tmp_path: Path) -> None:
    assert read(write(tmp_path / "empty.csv", ""), fixed_key="m") == []
    assert read(write(tmp_path / "empty.jsonl", ""), fixed_key="m") == []


# -- header errors name the flag ----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "mapping", "flag"),
    [
        ("timestamp,value", {}, "--key NAME or --key-column COLUMN"),
        ("timestamp,value", {"key": "host"}, "--key-column"),
        ("ts,value", {"fixed_key": "m"}, "--time-column"),
        ("time,value", {"fixed_key": "m", "time": "ts"}, "--time-column"),
        ("timestamp,value", {"fixed_key": "m", "kind": "type"}, "--kind-column"),
        ("timestamp,value", {"fixed_key": "m", "values": ("cpu",)}, "--value-columns"),
        ("timestamp,value", {"fixed_key": "m", "default_kind": "trade"}, "--kind"),
        ("timestamp,bid", {"fixed_key": "m", "default_kind": "quote"}, "--kind"),
        ("timestamp,label", {"fixed_key": "m"}, "--value-columns"),
    ],
)
def test_mapping_errors_in_the_header_name_the_flag(
    tmp_path: Path, header: str, mapping: dict[str, object], flag: str
) -> None:
    path = write(tmp_path / "data.csv", f"{header}\n1,2\n")
    with pytest.raises(ValueError, match=flag) as raised:
        read_events(path, ColumnMapping(**mapping))  # type: ignore[arg-type]  # no iteration
    assert "data.csv" in str(raised.value) or "no entity key" in str(raised.value)


def test_mapping_itself_is_validated() -> None:
    with pytest.raises(ValueError, match="not both"):
        ColumnMapping(key="host", fixed_key="web-1")
    with pytest.raises(ValueError, match="default_kind"):
        ColumnMapping(default_kind="order")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="--value-columns"):
        ColumnMapping(values=())


def test_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "data.txt", "timestamp,value\n")
    with pytest.raises(ValueError, match=r"\.csv, \.jsonl or \.ndjson"):
        read_events(path, ColumnMapping(fixed_key="m"))


# -- JSON Lines ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["events.jsonl", "events.ndjson", "events.jsonl.gz"])
def test_events_in_the_wire_schema_pass_through(tmp_path: Path, name: str) -> None:
    generated = [e for e, _ in SyntheticMarket(anomaly_rate=0.05, warmup_events=0).events(500)]
    metric = Metric(entity="gateway", values={"p99": 0.25}, time=T0)
    original = [*generated, metric]
    path = write(tmp_path / name, "".join(encode(e).decode() + "\n" for e in original))
    assert events_only(read(path)) == original


def test_passthrough_objects_take_key_and_time_renames(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.jsonl",
        '{"kind": "trade", "ticker": "AAPL", "ts": 1767623400000, "price": 1, "size": 2}\n'
        '{"kind": "metric", "ts": "2026-01-05T14:30:01Z", "values": {"x": 1}}\n',
    )
    trade, keyless = read(path, key="ticker", time="ts")
    assert isinstance(trade, Trade) and (trade.symbol, trade.time) == ("AAPL", T0)
    assert isinstance(keyless, InvalidRow) and keyless.reason == "missing_field"
    assert "ticker" in keyless.detail


def test_a_fixed_key_fills_only_missing_entities(tmp_path: Path) -> None:
    path = write(
        tmp_path / "e.jsonl",
        '{"kind": "metric", "time": 1767623400, "values": {"x": 1}}\n'
        '{"kind": "metric", "entity": "db", "time": 1767623400, "values": {"x": 2}}\n',
    )
    assert [e.entity for e in events_only(read(path, fixed_key="host"))] == ["host", "db"]


def test_plain_objects_are_mapped_like_csv_rows(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl",
        '{"timestamp": 1767623400, "value": 1.5, "host": "a", "label": 1}\n'
        '{"timestamp": "2026-01-05T14:30:01", "value": 2, "flag": true}\n',
    )
    first, second = events_only(read(path, fixed_key="cpu"))
    assert first == Metric(entity="cpu", values={"value": 1.5}, time=T0)
    assert second == Metric(entity="cpu", values={"value": 2.0}, time=T0 + timedelta(seconds=1))


def test_bad_json_lines_become_invalid_rows(tmp_path: Path) -> None:
    good = encode(Trade(symbol="AAPL", price=1, size=1, time=T0)).decode()
    path = write(
        tmp_path / "e.jsonl",
        f"{good}\n"
        "{not json\n"
        "[1, 2]\n"
        '{"kind": "trade", "symbol": "AAPL", "price": -1, "size": 1, "time": 0}\n'
        '{"kind": "order", "symbol": "AAPL", "time": 0}\n'
        '{"kind": "trade", "symbol": "AAPL", "price": 1, "size": 1, "time": "soon"}\n'
        "\n"
        f"{good}\n",
    )
    items = read(path)
    assert isinstance(items[0], Trade) and isinstance(items[-1], Trade)
    assert [(r.line, r.reason) for r in items if isinstance(r, InvalidRow)] == [
        (2, "not_json"),
        (3, "not_an_object"),
        (4, "out_of_range"),
        (5, "unknown_kind"),
        (6, "bad_time"),
    ]
    assert isinstance(items[1], InvalidRow) and items[1].raw == "{not json"


def test_mapping_errors_in_the_first_object_name_the_flag(tmp_path: Path) -> None:
    plain = write(tmp_path / "m.jsonl", '{"timestamp": 1, "value": 2}\n')
    with pytest.raises(ValueError, match="--key NAME or --key-column COLUMN"):
        read_events(plain, ColumnMapping())
    with pytest.raises(ValueError, match="--time-column"):
        read_events(plain, ColumnMapping(fixed_key="m", time="ts"))
    with pytest.raises(ValueError, match="--key-column"):
        read_events(plain, ColumnMapping(key="host"))


def test_a_half_read_file_is_closed(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "timestamp,value\n" + "1,1\n" * 100)
    items = read_events(path, ColumnMapping(fixed_key="m"))
    assert isinstance(next(items), Metric)
    items.close()  # type: ignore[attr-defined]  # a ResourceWarning would fail the test run


# -- times and counting -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        1767623400,
        1767623400.0,
        "1767623400",
        1767623400000,  # milliseconds
        "1767623400000",
        1767623400000000,  # microseconds
        "2026-01-05T14:30:00Z",
        "2026-01-05T14:30:00+00:00",
        "2026-01-05T15:30:00+01:00",
        "2026-01-05 14:30:00",  # naive is UTC
        " 2026-01-05T14:30:00.000Z ",
    ],
)
def test_times_are_read_from_rfc3339_and_epoch_numbers(value: object) -> None:
    moment = parse_time(value)
    assert moment == T0
    assert moment.utcoffset() == timedelta(0)


def test_epoch_milliseconds_keep_their_fraction() -> None:
    assert parse_time(1767623400123) == T0 + timedelta(milliseconds=123)
    assert parse_time(1767623400.5) == T0 + timedelta(milliseconds=500)
    # seconds up to 2e10 (as pydantic reads the wire), milliseconds above
    assert parse_time(20_000_000_000) == datetime(2603, 10, 11, 11, 33, 20, tzinfo=UTC)
    assert parse_time(99_999_999_999) == datetime(1973, 3, 3, 9, 46, 39, 999000, tzinfo=UTC)


@pytest.mark.parametrize("value", ["", "tomorrow", "nan", float("inf"), True, None, 1e30])
def test_bad_times_raise_value_error(value: object) -> None:
    with pytest.raises(ValueError):
        parse_time(value)


def test_count_rows_counts_data_lines(tmp_path: Path) -> None:
    assert count_rows(write(tmp_path / "a.csv", "timestamp,value\n1,1\n2,2\n")) == 2
    assert count_rows(write(tmp_path / "b.csv", "timestamp,value\n1,1\n2,2")) == 2
    assert count_rows(write(tmp_path / "c.csv", "")) == 0
    assert count_rows(write(tmp_path / "d.csv.gz", "timestamp,value\n1,1\n")) == 1
    assert count_rows(write(tmp_path / "e.jsonl", "{}\n{}\n{}\n")) == 3
