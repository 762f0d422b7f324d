"""The dependency rule (docs/ARCHITECTURE.md), checked on every module of the three packages.

- the core (``alerting/`` but the CLI and the wiring) never imports a Kafka client, an
  adapter package, the CLI or the wiring;
- the adapters (``consumers/``, ``producers/``) never import the CLI or the wiring;
- only the CLI reads the command line (``argparse``);
- the import graph has no cycle at any depth, function-level imports included.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("alerting", "consumers", "producers")
ADAPTERS = ("consumers", "producers")
KAFKA_CLIENTS = ("kafka", "confluent_kafka", "aiokafka")
#: the composition root: the only part of ``alerting/`` that may import the adapters
ROOTS = ("alerting.cli", "alerting.wiring")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {
    module_name(path): path
    for package in PACKAGES
    for path in sorted((ROOT / package).rglob("*.py"))
}


def imports(path: Path) -> Iterator[tuple[str, str | None]]:
    """``(module, name)`` for every import in ``path`` at any depth (function-level and
    ``TYPE_CHECKING`` imports included); ``name`` is what ``from module import name`` takes."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                yield node.module, alias.name


def imported(path: Path) -> set[str]:
    """Every module name ``path`` imports."""
    return {module for module, _ in imports(path)}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def project_imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, resolved to files: ``from pkg import mod`` is
    the module ``pkg.mod`` when that is a file, else ``pkg`` itself."""
    found = set()
    for module, name in imports(path):
        if name is not None and f"{module}.{name}" in MODULES:
            found.add(f"{module}.{name}")
        elif module in MODULES:
            found.add(module)
    return found


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as the path that closes it), or None."""
    done: set[str] = set()
    path: list[str] = []
    on_path: set[str] = set()

    def visit(node: str) -> list[str] | None:
        path.append(node)
        on_path.add(node)
        for nxt in sorted(graph[node]):
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done and (found := visit(nxt)) is not None:
                return found
        on_path.discard(path.pop())
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (found := visit(start)) is not None:
            return found
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_keeps_the_dependency_rule(name: str) -> None:
    names = imported(MODULES[name])
    roots = {n.split(".")[0] for n in names}
    if name.startswith("alerting"):
        assert not roots & set(KAFKA_CLIENTS), f"{name} imports a Kafka client"
    if within(name, ("alerting",)) and not within(name, ROOTS):
        assert not roots & set(ADAPTERS), f"{name} imports an adapter package"
    if within(name, ADAPTERS) or not within(name, ROOTS):
        wrong = sorted(n for n in names if within(n, ROOTS))
        assert not wrong, f"{name} imports the composition root: {wrong}"
    if not within(name, ("alerting.cli",)):
        assert "argparse" not in roots, f"{name} reads the command line: only alerting.cli may"
    if not within(name, ("alerting.cli",)):
        wrong = sorted(n for n in names if within(n, ("alerting.cli",)))
        assert not wrong, f"{name} imports the CLI: {wrong}"


def test_the_import_graph_has_no_cycle() -> None:
    graph = {name: project_imports(path) - {name} for name, path in MODULES.items()}
    found = cycle(graph)
    assert found is None, "import cycle: " + " → ".join(found or [])


def test_the_cycle_finder_finds_one() -> None:
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_rules_are_checked_on_something() -> None:
    assert len(MODULES) > 40
    assert {"alerting.cli", "alerting.wiring", "consumers.runner", "producers.replay"} <= set(
        MODULES
    )
    assert "producers" in {n.split(".")[0] for n in imported(MODULES["alerting.cli.replay"])}
    assert "consumers.kafka_python" in project_imports(MODULES["alerting.wiring"])
