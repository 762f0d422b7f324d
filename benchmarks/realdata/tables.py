"""Markdown tables of a ``benchmarks/realdata/run.py`` results log, for the README.

    .venv/bin/python benchmarks/realdata/tables.py results.json [before.json]

With a second log (an earlier version's defaults on the same corpus), each cell of the
per-series table is ``before → after``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLUMNS = (
    ("windows", "win", ""),
    ("NAB", "nab", ".1f"),
    ("notifications / 10k", "per_10k", ".1f"),
    ("outside / 1k", "outside_per_1k", ".2f"),
    ("per incident", "per_incident", ".2f"),
    ("episodes / incident", "episodes_per_incident", ".2f"),
    ("delay", "median_delay", ".0f"),
)
AGGREGATES = ("dev/labelled", "test/labelled", "dev/unlabelled", "test/unlabelled", "overall")


def _num(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _cell(f: dict[str, Any], key: str, spec: str) -> str:
    if key == "win":
        return f"{f['detected']}/{f['windows']}" if f["windows"] else "–"
    return _num(f[key], spec)


def _before(before: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if before is None:
        return None
    found: dict[str, Any] | None = (
        before.get(name) if name in AGGREGATES else before["series"].get(name)
    )
    return found


def table(run: dict[str, Any], before: dict[str, Any] | None) -> str:
    head = "| series | split | events | " + " | ".join(c[0] for c in COLUMNS) + " |"
    lines = [head, "|" + " --- |" * (3 + len(COLUMNS))]
    rows = list(run["series"].items()) + [(k, run[k]) for k in AGGREGATES if k in run]
    for name, f in rows:
        old = _before(before, name)
        cells = []
        for _, key, spec in COLUMNS:
            now = _cell(f, key, spec)
            was = None if old is None else _cell(old, key, spec)
            cells.append(now if was is None or was == now else f"{was} → {now}")
        split = name.split("/")[0] if "/" in name else f.get("split", "all")
        label = f"**{name}**" if name in AGGREGATES else f"`{name}`"
        lines.append(f"| {label} | {split} | {f['events']:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    doc = json.loads(Path(sys.argv[1]).read_text())
    before = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else None
    for name, run in doc["runs"].items():
        print(f"### {name}\n")
        old = None
        if before is not None and not name.startswith("reference"):
            old = next(iter(before["runs"].values()))
        print(table(run, old))
        if "classes" in run:
            print("\n| class | detected | median delay (events) |\n| --- | --- | --- |")
            for what, c in run["classes"].items():
                delay = _num(c["median_delay"], ".0f")
                print(f"| {what} | {c['detected']}/{c['injected']} | {delay} |")
        checks = [f"- {'met' if c['met'] else 'not met'}: {c['target']} ({c['value']})"
                  for c in run["checks"]]  # fmt: skip
        print("\n" + "\n".join(checks) + "\n")


if __name__ == "__main__":
    main()
