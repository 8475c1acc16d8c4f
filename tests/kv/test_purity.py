"""`accord.kv` is pure: no I/O, no clocks, no global randomness."""

from __future__ import annotations

import ast
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import accord.kv

FORBIDDEN_MODULES = {"asyncio", "os", "socket", "time", "threading", "random", "datetime"}


def kv_modules() -> list[Path]:
    package = Path(accord.kv.__file__).parent
    names = [info.name for info in pkgutil.iter_modules([str(package)])]
    assert {"machine", "mvcc", "watch", "commands"} <= set(names)
    return [package / "__init__.py"] + [package / f"{name}.py" for name in sorted(names)]


def imported_modules(path: Path) -> Iterator[tuple[ast.AST, list[str]]]:
    """Every node of the module's tree, with the modules it imports (if an import)."""
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        yield node, names


def test_the_state_machine_does_no_io_and_reads_no_clock() -> None:
    found = []
    for path in kv_modules():
        for node, names in imported_modules(path):
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open":
                found.append(f"{path.name}: open()")
    assert found == []


BELOW_KV = ("accord.kv", "accord.errors", "accord.invariant", "accord.limits", "accord.raft.limits")
"""What `accord.kv` may import of Accord: itself, the cross-cutting modules and the
Raft layer's bounds (which the kv bounds derive from). The command registry and the
auth store sit above it (`accord.node.registry` tags KV commands; kv knows nothing of
other kinds)."""


def test_the_state_machine_imports_nothing_above_it() -> None:
    found = []
    for path in kv_modules():
        for _, names in imported_modules(path):
            for name in names:
                inside = name == "accord" or name.startswith("accord.")
                if inside and not any(name == m or name.startswith(m + ".") for m in BELOW_KV):
                    found.append(f"{path.name}: {name}")
    assert found == []
