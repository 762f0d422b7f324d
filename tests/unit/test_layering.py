"""The dependency rule (DESIGN.md): the core never imports a Kafka client, and only the
composition roots import the adapters (inside the commands that need them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "alerting"
#: ``alerting evaluate`` is a command of the CLI that lives in its own module
COMPOSITION_ROOTS = {"cli.py", "backtest.py"}
ADAPTERS = ("consumers", "producers")
KAFKA_CLIENTS = ("kafka", "confluent_kafka", "aiokafka")


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


MODULES = sorted(CORE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_module_keeps_the_dependency_rule(path: Path) -> None:
    roots = {name.split(".")[0] for name in imported(path)}
    assert not roots & set(KAFKA_CLIENTS), f"{path.name} imports a Kafka client"
    if path.name not in COMPOSITION_ROOTS:
        assert not roots & set(ADAPTERS), f"{path.name} imports an adapter package"


def test_the_rule_is_checked_on_something() -> None:
    assert len(MODULES) > 20
    assert "producers" in {n.split(".")[0] for n in imported(CORE / "cli.py")}
