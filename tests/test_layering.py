"""The layering of the packages (docs: README "How it works"): imports only go down.

- ``ledger`` imports nothing of ours; ``projections`` imports only ``ledger``; only ``api``
  imports litestar;
- only an adapter (a module under a ``sqlite/`` or ``postgres/`` package) imports a database
  driver (``sqlite3``, ``psycopg``), and an adapter never imports another engine's adapter;
- no module imports a private name (``_x``) of another module of ours.

Read from the installed packages' sources (what the tests run against), without importing them.
"""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

OURS = ("ledger", "projections", "api", "migrations")
MAY_IMPORT = {"ledger": {"ledger"}, "projections": {"ledger", "projections"}}
"""Of our packages, what each layer may import (``api`` may import every one)."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None
    assert spec.submodule_search_locations is not None
    return Path(next(iter(spec.submodule_search_locations)))


def _modules() -> Iterator[tuple[str, str, ast.Module]]:
    """(package, path relative to the packages' parent, parsed source) of every module."""
    for package in OURS:
        root = _package_dir(package)
        for path in sorted(root.rglob("*.py")):
            relative = path.relative_to(root.parent).as_posix()
            yield package, relative, ast.parse(path.read_text("utf-8"), relative)


MODULES = list(_modules())


def _imports(tree: ast.Module, relative: str) -> Iterator[tuple[str, list[str]]]:
    """(module imported, names imported from it) of every import in ``tree``."""
    package = relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                up = parts[
                    : len(parts) - node.level + (1 if relative.endswith("__init__.py") else 0)
                ]
                base = ".".join([*up, base] if base else up)
            yield base, [alias.name for alias in node.names]


def test_the_sources_are_found() -> None:
    found = {relative for _, relative, _ in MODULES}
    assert "ledger/store.py" in found
    assert "projections/read_model.py" in found
    assert "api/app.py" in found


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_a_layer_imports_only_the_layers_below_it(layer: str) -> None:
    crossing = [
        f"{relative} imports {module}"
        for package, relative, tree in MODULES
        if package == layer
        for module, _ in _imports(tree, relative)
        if module.split(".")[0] in OURS and module.split(".")[0] not in MAY_IMPORT[layer]
    ]
    assert crossing == []


def test_only_api_imports_litestar() -> None:
    crossing = [
        f"{relative} imports {module}"
        for package, relative, tree in MODULES
        if package != "api"
        for module, _ in _imports(tree, relative)
        if module.split(".")[0] == "litestar"
    ]
    assert crossing == []


DRIVERS = ("sqlite3", "sqlite_utils", "psycopg", "psycopg_pool")
ADAPTERS = ("/sqlite/", "/postgres/")


def in_adapter(relative: str) -> bool:
    """Whether the module at ``relative`` belongs to a storage adapter."""
    return any(adapter in relative for adapter in ADAPTERS)


def test_only_adapters_import_the_driver() -> None:
    importing = {
        relative
        for _, relative, tree in MODULES
        if not in_adapter(relative)
        and any(module.split(".")[0] in DRIVERS for module, _ in _imports(tree, relative))
    }
    assert importing == set()


def test_the_domain_does_not_name_its_adapter() -> None:
    """``ledger`` and ``projections`` outside their adapters import no adapter: the pure code
    asks the ports for what it needs."""
    naming = [
        f"{relative} imports {module}"
        for package, relative, tree in MODULES
        if package in ("ledger",) and not in_adapter(relative)
        for module, _ in _imports(tree, relative)
        if ".sqlite" in module or ".postgres" in module
    ]
    assert naming == []


def test_an_adapter_never_imports_another_engines() -> None:
    crossing = [
        f"{relative} imports {module}"
        for _, relative, tree in MODULES
        for mine, other in (("/sqlite/", ".postgres"), ("/postgres/", ".sqlite"))
        if mine in relative
        for module, _ in _imports(tree, relative)
        if other in module
    ]
    assert crossing == []


def test_projections_outside_the_adapter_hold_no_sql() -> None:
    holding = [
        relative
        for package, relative, tree in MODULES
        if package == "projections" and not in_adapter(relative)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in {"execute", "executemany"}
    ]
    assert holding == []


def test_no_module_imports_a_private_name_of_another() -> None:
    private = [
        f"{relative} imports {name} from {module}"
        for _, relative, tree in MODULES
        for module, names in _imports(tree, relative)
        if module.split(".")[0] in OURS
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert private == []


def test_nothing_outside_an_adapter_holds_a_connection() -> None:
    """Outside the adapters, code reads and writes through the ports: no one asks the store for
    a connection or a raw transaction (the STYLE of ports and adapters)."""
    raw = {"reader", "write_transaction", "trial_transaction", "append_built"}
    holding = [
        f"{relative} calls .{node.func.attr}()"
        for _, relative, tree in MODULES
        if not in_adapter(relative)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in raw
    ]
    assert holding == []
