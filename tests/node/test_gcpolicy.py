"""The node's garbage-collector policy: checkpoints freeze what is alive, a full
collection (everything unfrozen first) comes at most every `full_every_s`, and once
enabled CPython starts no full collection by itself; checkpoints come at least every
`checkpoint_every_s`."""

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
    thresholds = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gcpolicy._policy = None
    gc.set_threshold(*thresholds)
    gc.collect()


def full_collections_while_allocating(count: int) -> int:
    """How many collections of the oldest generation CPython starts by itself while
    `count` new containers stay alive."""
    started: list[int] = []

    def note(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] == 2:
            started.append(1)

    gc.callbacks.append(note)
    try:
        kept = [[] for _ in range(count)]
    finally:
        gc.callbacks.remove(note)
    del kept
    return len(started)


def test_the_enabled_policy_stops_automatic_full_collections() -> None:
    gc.set_threshold(100, 2, 10)  # small, so a few thousand objects show the rule
    gc.collect()
    gc.freeze()
    gc.collect()  # as after a checkpoint: the oldest generation is empty
    assert full_collections_while_allocating(50_000) > 0  # CPython's own rule
    gc.unfreeze()
    gcpolicy.enable(GcPolicy(clock=Clock()))
    assert gc.get_threshold() == (100, 2, gcpolicy.NO_AUTOMATIC_FULL)
    gcpolicy.checkpoint()
    gc.collect()
    assert full_collections_while_allocating(50_000) == 0


def test_maybe_checkpoint_runs_one_only_after_the_interval() -> None:
    clock = Clock()
    policy = GcPolicy(clock=clock, checkpoint_every_s=60)
    policy.maybe_checkpoint()
    assert policy.checkpoints == 0
    clock.now = 59.9
    policy.maybe_checkpoint()
    assert policy.checkpoints == 0
    clock.now = 60
    policy.maybe_checkpoint()
    assert policy.checkpoints == 1
    clock.now = 100  # a snapshot's checkpoint restarts the interval
    policy.checkpoint()
    clock.now = 159
    policy.maybe_checkpoint()
    assert policy.checkpoints == 2
    clock.now = 160
    policy.maybe_checkpoint()
    assert policy.checkpoints == 3


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
