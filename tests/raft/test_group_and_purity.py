"""Group ids on messages, and the sans-I/O rule: `accord.raft` does no I/O, reads no
clock and draws no randomness except from the injected `random.Random`."""

from __future__ import annotations

import ast
import pkgutil
from dataclasses import replace
from pathlib import Path

import pytest

import accord.raft
from accord.invariant import InvariantError
from accord.raft import Message, MessageType
from accord.testing.raftnet import RaftNetwork

from .helpers import drain, new_core

FORBIDDEN_MODULES = {"asyncio", "os", "socket", "time", "threading"}


def test_every_message_carries_the_group() -> None:
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, group=7))
    net.elect(1)
    net.propose(1, b"x")
    net.core(2).read_index(b"r")
    net.tick_all(2)
    assert net.sent
    assert {m.group for m in net.sent} == {7}
    assert net.nodes[3].applied_data() == [b"x"]


def test_stepping_a_message_of_another_group_raises() -> None:
    core = new_core(1, group=7)
    drain(core)
    stray = Message(MessageType.HEARTBEAT, group=8, src=2, dst=1, term=9, commit=1)
    with pytest.raises(InvariantError):
        core.step(stray)
    assert core.term == 1 and core.leader == 0, "the stray message changed nothing"


# ------------------------------------------------------------------ purity
def raft_modules() -> list[Path]:
    package = Path(accord.raft.__file__).parent
    names = [info.name for info in pkgutil.iter_modules([str(package)])]
    assert {"core", "log", "types"} <= set(names)
    return [package / "__init__.py"] + [package / f"{name}.py" for name in sorted(names)]


def impurities(source: str) -> list[str]:
    """Forbidden imports and uses of the module-level `random` functions."""
    found: list[str] = []
    random_aliases: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                root = alias.name.split(".")[0]
                if root in FORBIDDEN_MODULES:
                    found.append(f"import {alias.name}")
                if alias.name == "random":
                    random_aliases.add(alias.asname or "random")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            root = node.module.split(".")[0]
            if root in FORBIDDEN_MODULES:
                found.append(f"from {node.module} import ...")
            if node.module == "random":
                found.extend(
                    f"from random import {a.name}" for a in node.names if a.name != "Random"
                )
    for node in ast.walk(ast.parse(source)):
        # `random.Random` (the type of the injected generator) is fine; any other
        # attribute of the module is the shared global generator.
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in random_aliases
            and node.attr != "Random"
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_raft_package_imports_no_io_and_uses_no_global_random() -> None:
    problems = {
        path.name: found for path in raft_modules() if (found := impurities(path.read_text()))
    }
    assert problems == {}


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import os.path",
        "from asyncio import sleep",
        "import socket as s",
        "from threading import Lock",
        "import random\nx = random.random()",
        "import random as r\nr.shuffle([])",
        "from random import randrange",
    ],
)
def test_purity_check_catches_impure_source(source: str) -> None:
    assert impurities(source)


def test_purity_check_allows_the_injected_random_type() -> None:
    assert impurities("import random\ndef f(rng: random.Random) -> None: ...") == []
