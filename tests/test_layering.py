"""The packages of `accord` depend on each other only as the table below allows.

Theory of operation
-------------------
Every `.py` file under `src/accord` is parsed with `ast`; every `import` and
`from ... import` counts, wherever it is written (module level, inside a function,
under `if TYPE_CHECKING:`). An import is attributed to the *unit* it names: a
top-level package (`raft`, `node`, ...), a top-level module (`errors`, `limits`,
...), or `accord` itself (the root `__init__.py`). `LAYERS` says, for each unit,
which units (or single modules of them, `"raft.limits"`) it may import; the same
rules are written out in ARCHITECTURE.md ("Dependency rules").

On top of the table: the graph of units has no cycle (its strongly connected
components, by Tarjan's algorithm, are single units); the pure units import no
networking or event-loop module, directly or through any unit they reach, nor do
the root package's eager imports (which run whenever any `accord.*` is imported);
no unit imports a private (`_name`) module, class or function of another. And in a
fresh interpreter, importing a pure package loads none of those modules.

The checks are plain functions of a source tree, so the tests at the end run them on
small invented trees and see each one fail.
"""

from __future__ import annotations

import ast
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

import accord

SRC = Path(accord.__file__).resolve().parent

ANY = ("*",)
"""May import any unit (the command line: it starts everything)."""

LAYERS: dict[str, tuple[str, ...]] = {
    # cross-cutting, imported by everyone: import nothing of Accord
    "errors": (),
    "errorcodes": (),
    "invariant": (),
    "observability": (),
    # the pure core: no I/O, no event loop (see PURE)
    "raft": ("errors", "invariant"),
    "kv": ("raft.limits", "errors", "invariant"),
    "storage": ("raft.types", "raft.limits", "errors", "invariant"),
    "host": ("raft", "storage", "invariant"),
    "transport": ("raft.types", "raft.limits", "errors", "invariant"),
    "shard": ("raft.confchange", "raft.types", "invariant"),
    # one node: the runtime, the client protocols, security, and their assembly
    "node": (
        "raft", "kv", "storage", "host", "transport", "shard", "observability", "errors",
        "invariant",
    ),
    "api": ("node", "kv", "transport", "shard", "observability", "errors", "errorcodes"),
    "security": ("node", "api", "kv", "storage", "raft.limits", "errors"),
    "server": (
        "node", "api", "security", "raft", "kv", "storage", "transport", "shard.limits",
        "observability",
    ),
    # the client: the protocol bounds it shares with api, results, frames
    "client": (
        "api.limits", "kv.results", "kv.types", "shard.slots", "transport", "errors",
        "errorcodes", "invariant",
    ),
    "accord": ("client", "errors"),
    # tools above the server
    "limits": (
        "raft.limits", "storage.limits", "kv.limits", "transport.limits", "shard.limits",
        "api.limits", "node.limits", "node.replica", "security.limits", "client.limits",
    ),
    "sim": (
        "raft", "kv", "storage", "host", "shard", "chaos.history", "chaos.linearizability",
        "errors",
    ),
    "testing": ("raft", "node.address", "server.config", "security", "observability"),
    "chaos": (
        "client", "kv", "raft.types", "node.address", "server.config", "security", "testing",
        "transport", "observability", "errors", "invariant",
    ),
    "bench": ("client",),
    "cli": ANY,
}  # fmt: skip
"""Unit -> what it may import of Accord (besides itself): a unit, or one module of it."""

PURE = ("raft", "kv", "storage", "host", "shard")
"""Units that load no networking or event-loop module, even through other units."""

NETWORK_MODULES = ("asyncio", "aiohttp", "socket", "ssl", "uvloop")


@dataclass(frozen=True, slots=True)
class Import:
    path: str
    """The importing file, relative to the source root (`accord/api/http.py`)."""
    line: int
    source: str
    """The importing unit."""
    target: str
    """The imported module, dotted (`accord.raft.limits`, `asyncio`)."""
    names: tuple[str, ...]
    """The names a `from` import takes from it."""
    bound: str
    """The name the import binds in the importing module."""
    eager: bool
    """Runs when the module is imported (module level, not under TYPE_CHECKING)."""

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.target}"


def unit_of(dotted: str) -> str:
    """`accord.raft.core` -> `raft`; `accord` -> `accord`."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_module(root: Path, dotted: str) -> bool:
    path = root.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports_of(tree: ast.Module) -> Iterable[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, and whether it runs when the module is imported."""

    def walk(nodes: Iterable[ast.AST], eager: bool) -> Iterable[tuple[ast.AST, bool]]:
        for node in nodes:
            yield node, eager
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield from walk(ast.iter_child_nodes(node), False)
            elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                yield from walk(node.body, False)
                yield from walk(node.orelse, eager)
            else:
                yield from walk(ast.iter_child_nodes(node), eager)

    for node, eager in walk(tree.body, True):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node, eager


def scan(root: Path) -> list[Import]:
    """Every import of every module under `root` (the `accord` package directory)."""
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        module_parts = parts[:-1] if is_package else parts
        source = unit_of(".".join(module_parts))
        for node, eager in _imports_of(ast.parse(path.read_text(), str(path))):
            line = node.lineno
            if isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    found.append(Import(str(rel), line, source, alias.name, (), bound, eager))
                continue
            base = node.module or ""
            if node.level:
                package = module_parts if is_package else module_parts[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([node.module] if node.module else [])])
            for alias in node.names:
                # `from accord.kv import errors` imports the module accord.kv.errors
                target = f"{base}.{alias.name}"
                if not (base.startswith("accord") and _is_module(root, target)):
                    target = base
                bound = alias.asname or alias.name
                found.append(Import(str(rel), line, source, target, (alias.name,), bound, eager))
    return found


def inside(imports: Iterable[Import]) -> list[Import]:
    """The imports of another unit of Accord."""
    return [
        i
        for i in imports
        if (i.target == "accord" or i.target.startswith("accord."))
        and unit_of(i.target) != i.source
    ]


def allowed(layers: Mapping[str, tuple[str, ...]], imp: Import) -> bool:
    rules = layers.get(imp.source, ())
    relative = imp.target.removeprefix("accord.") if imp.target != "accord" else "accord"
    return rules == ANY or any(relative == r or relative.startswith(r + ".") for r in rules)


def graph(imports: Iterable[Import]) -> dict[str, dict[str, list[Import]]]:
    """Unit -> unit it imports -> the imports that make the edge."""
    edges: dict[str, dict[str, list[Import]]] = {}
    for imp in inside(imports):
        edges.setdefault(imp.source, {}).setdefault(unit_of(imp.target), []).append(imp)
    return edges


def strongly_connected(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the strongly connected components of the graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in edges.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    nodes = set(edges) | {s for succs in edges.values() for s in succs}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def cycles(edges: Mapping[str, Mapping[str, list[Import]]]) -> list[str]:
    """One cycle per component of more than one unit, each edge with an import that
    makes it."""
    found = []
    for component in strongly_connected(edges):
        if len(component) < 2:
            continue
        members, start = set(component), component[0]
        paths = {start: [start]}
        queue = [start]
        cycle: list[str] = []
        while queue and not cycle:  # shortest way from start back to start
            node = queue.pop(0)
            for succ in sorted(edges.get(node, {})):
                if succ == start:
                    cycle = [*paths[node], start]
                    break
                if succ in members and succ not in paths:
                    paths[succ] = [*paths[node], succ]
                    queue.append(succ)
        steps = [f"{a} -> {b} ({edges[a][b][0]})" for a, b in itertools.pairwise(cycle)]
        found.append(f"cycle among {', '.join(component)}: " + "; ".join(steps))
    return found


def network_imports(imports: list[Import], unit: str) -> list[str]:
    """Networking imports in `unit` or any unit it reaches, each with the way it is
    reached. Every unit reaches `accord` (the root package runs first), and through it
    the units the root imports eagerly."""
    edges = {source: set(targets) for source, targets in graph(imports).items()}
    edges["accord"] = {
        unit_of(i.target) for i in inside(imports) if i.source == "accord" and i.eager
    }
    via = {unit: unit}
    todo = [unit]
    while todo:
        current = todo.pop()
        for succ in sorted(edges.get(current, set()) | {"accord"}):
            if succ not in via:
                via[succ] = f"{via[current]} -> {succ}"
                todo.append(succ)
    return [
        f"{via[i.source]}: {i}"
        for i in imports
        if i.source in via and i.target.split(".")[0] in NETWORK_MODULES
    ]


def private_uses(root: Path, imports: list[Import]) -> list[str]:
    """Imports of another unit's private modules or names, and `Name._private`
    attributes of names imported from another unit."""

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    found = [
        str(i) + (f" ({', '.join(i.names)})" if any(private(n) for n in i.names) else "")
        for i in inside(imports)
        if any(private(part) for part in i.target.split(".")) or any(private(n) for n in i.names)
    ]
    borrowed: dict[str, set[str]] = {}
    for i in inside(imports):
        borrowed.setdefault(i.path, set()).add(i.bound)
    for path, names in borrowed.items():
        for node in ast.walk(ast.parse((root.parent / path).read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in names
                and private(node.attr)
            ):
                found.append(f"{path}:{node.lineno} uses {node.value.id}.{node.attr}")
    return found


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return scan(SRC)


# --- the rules, on the real tree ---------------------------------------------------------------
def test_the_table_names_every_unit_and_is_itself_layered() -> None:
    units = {
        unit_of(".".join(p.relative_to(SRC.parent).with_suffix("").parts)) for p in SRC.glob("*.py")
    }
    units |= {p.name for p in SRC.iterdir() if p.is_dir() and any(p.rglob("*.py"))}
    units.discard("__init__")
    assert set(LAYERS) == units | {"accord"}
    table = {
        unit: {r.split(".")[0] for r in rules if rules != ANY} for unit, rules in LAYERS.items()
    }
    assert [c for c in strongly_connected(table) if len(c) > 1] == []


def test_every_import_is_one_the_table_allows(imports: list[Import]) -> None:
    found = [
        f"{i} ({i.source} may import: {', '.join(LAYERS.get(i.source, ())) or 'nothing'})"
        for i in inside(imports)
        if not allowed(LAYERS, i)
    ]
    assert found == [], "\n".join(found)


def test_no_cycles_between_packages(imports: list[Import]) -> None:
    found = cycles(graph(imports))
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("unit", PURE)
def test_pure_packages_import_no_networking_module(imports: list[Import], unit: str) -> None:
    found = network_imports(imports, unit)
    assert found == [], "\n".join(found)


def test_api_never_imports_the_raft_core(imports: list[Import]) -> None:
    found = [str(i) for i in inside(imports) if i.source == "api" and unit_of(i.target) == "raft"]
    assert found == []


def test_no_package_uses_a_private_name_of_another(imports: list[Import]) -> None:
    found = private_uses(SRC, imports)
    assert found == [], "\n".join(found)


def _fresh_interpreter(code: str) -> str:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(SRC.parent), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.parametrize("package", [f"accord.{unit}" for unit in PURE])
def test_importing_a_pure_package_loads_no_networking_module(package: str) -> None:
    loaded = _fresh_interpreter(
        "import sys\n"
        "before = set(sys.modules)\n"
        f"import {package}\n"
        f"assert {package}.__file__.startswith({str(SRC)!r}), {package}.__file__\n"
        f"network = {NETWORK_MODULES!r}\n"
        "print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in network))"
    )
    assert loaded == "[]"


def test_the_public_api_is_loaded_on_first_use() -> None:
    out = _fresh_interpreter(
        "import sys\n"
        "import accord\n"
        "print('asyncio' in sys.modules)\n"
        "from accord import Client, NotLeader\n"
        "import accord.client, accord.errors\n"
        "print(Client is accord.client.Client, NotLeader is accord.errors.NotLeader)\n"
        "print(all(getattr(accord, name) is not None for name in accord.__all__))"
    )
    assert out.split() == ["False", "True", "True", "True"]


# --- the checks catch what they should -----------------------------------------------------------
def _tree(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "accord"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_is_found_and_spelt_out(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "a/__init__.py": "from accord.b import x\n",
            "b/__init__.py": "def f():\n    from accord.c.m import y\n",  # deferred counts
            "c/__init__.py": "",
            "c/m.py": "from ..a import z\n",
            "d.py": "import accord.a\n",
        },
    )
    found = cycles(graph(scan(root)))
    assert len(found) == 1
    assert found[0].startswith("cycle among a, b, c: a -> b (accord/a/__init__.py:1 imports")
    assert "c -> a (accord/c/m.py:1 imports accord.a)" in found[0]


def test_a_networking_module_reached_through_another_package_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "raft/__init__.py": "from accord.errors import E\n",
            "errors.py": "import typing\nif typing.TYPE_CHECKING:\n    import accord.net\n",
            "net.py": "def f():\n    import asyncio\n",
        },
    )
    assert network_imports(scan(root), "raft") == [
        "raft -> errors -> net: accord/net.py:2 imports asyncio"
    ]


def test_the_root_packages_eager_imports_count_for_everyone(tmp_path: Path) -> None:
    eager = _tree(
        tmp_path / "1",
        {"__init__.py": "import accord.client\n", "raft.py": "", "client.py": "import socket\n"},
    )
    lazy = _tree(
        tmp_path / "2",
        {
            "__init__.py": "def __getattr__(n):\n    import accord.client\n",
            "raft.py": "",
            "client.py": "import socket\n",
        },
    )
    assert network_imports(scan(eager), "raft") == [
        "raft -> accord -> client: accord/client.py:1 imports socket"
    ]
    assert network_imports(scan(lazy), "raft") == []


def test_an_import_outside_the_table_is_refused(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "api/__init__.py": "from accord.raft.limits import A\nfrom accord.kv.types import B\n",
            "raft/limits.py": "",
            "kv/types.py": "",
        },
    )
    refused = [str(i) for i in inside(scan(root)) if not allowed({"api": ("kv", "raft.types")}, i)]
    assert refused == ["accord/api/__init__.py:1 imports accord.raft.limits"]


def test_a_private_name_of_another_package_is_found(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "api/native.py": "class _Session: ...\nclass Server:\n    _hidden = 1\n",
            "security/guard.py": (
                "from accord.api.native import _Session, Server as S\n"
                "import accord.api.native as native\n"
                "S._hidden, native._Session\n"
            ),
            "cli/main.py": "from accord.storage._fsutil import lock\n",
            "storage/_fsutil.py": "lock = 1\n",
            "api/http.py": "from accord.api.native import _Session\n",  # its own package
        },
    )
    assert private_uses(root, scan(root)) == [
        "accord/cli/main.py:1 imports accord.storage._fsutil",
        "accord/security/guard.py:1 imports accord.api.native (_Session)",
        "accord/security/guard.py:3 uses S._hidden",
        "accord/security/guard.py:3 uses native._Session",
    ]
