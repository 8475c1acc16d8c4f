"""`accord.kv` is pure: no I/O, no clocks, no global randomness."""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import accord.kv

FORBIDDEN_MODULES = {"asyncio", "os", "socket", "time", "threading", "random", "datetime"}


def kv_modules() -> list[Path]:
    package = Path(accord.kv.__file__).parent
    names = [info.name for info in pkgutil.iter_modules([str(package)])]
    assert {"machine", "mvcc", "watch", "commands"} <= set(names)
    return [package / "__init__.py"] + [package / f"{name}.py" for name in sorted(names)]


def test_the_state_machine_does_no_io_and_reads_no_clock() -> None:
    found = []
    for path in kv_modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN_MODULES]
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "open":
                found.append(f"{path.name}: open()")
    assert found == []
