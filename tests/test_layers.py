"""The folder tree is the architecture: imports may only cross it one way (docs: README "How it
works"). Read from the installed package's sources, without importing them."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import ledger

LEDGER = Path(ledger.__file__).parent
DRIVERS = ("sqlite3", "sqlite_utils")


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _crossings(root: Path, forbidden: tuple[str, ...], skip: str | None = None) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        if skip is not None and path.is_relative_to(root / skip):
            continue
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(root.parent)} imports {name}")
    return found


def test_ledger_imports_nothing_of_ours_above_it_nor_the_web_framework() -> None:
    assert _crossings(LEDGER, ("projections", "api", "litestar")) == []


def test_only_the_sqlite_adapter_names_the_driver() -> None:
    assert _crossings(LEDGER, (*DRIVERS, "ledger.sqlite"), skip="sqlite") == []
