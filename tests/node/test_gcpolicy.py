"""The node's garbage-collector policy: checkpoints freeze what is alive, and a
full collection (everything unfrozen first) comes at most every `full_every_s`."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from accord.node import gcpolicy
from accord.node.gcpolicy import GcPolicy


class Node:
    """Something that can sit in a reference cycle and be watched by a weakref."""

    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> tuple[Node, weakref.ref[Node]]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a, weakref.ref(a)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()
    gcpolicy._policy = None
    gc.collect()


def test_a_checkpoint_collects_garbage_then_freezes_what_is_alive() -> None:
    policy = GcPolicy(full_every_s=600, clock=Clock())
    garbage, dead = cycle()
    del garbage
    kept = Node()
    policy.checkpoint()
    assert dead() is None  # collected before the freeze
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(kept)
    # Frozen: no generation of the collector holds it any more.
    assert all(kept is not o for g in range(3) for o in gc.get_objects(generation=g))


def test_a_frozen_cycle_is_reclaimed_only_by_the_next_full_checkpoint() -> None:
    clock = Clock()
    policy = GcPolicy(full_every_s=600, clock=clock)
    alive, ref = cycle()
    policy.checkpoint()  # frozen while alive
    del alive
    gc.collect()
    assert ref() is not None  # frozen: the collector does not see it
    clock.now = 599
    policy.checkpoint()
    assert ref() is not None and policy.full_collections == 0
    clock.now = 600
    policy.checkpoint()
    assert ref() is None and policy.full_collections == 1


def test_checkpoint_does_nothing_unless_the_process_enabled_the_policy() -> None:
    gcpolicy.checkpoint()
    assert gc.get_freeze_count() == 0
    gcpolicy.enable(GcPolicy(clock=Clock()))
    gcpolicy.checkpoint()
    assert gc.get_freeze_count() > 0
