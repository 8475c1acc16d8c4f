"""Short garbage-collector pauses on a large store.

Theory of operation
-------------------
CPython's cyclic collector walks every object it tracks in a full (oldest
generation) collection, and a node's key store is most of them: 100,000 keys are
about 400,000 objects, and a full collection of those takes about 55 ms on the
project's machine (over 140 ms seen at 200,000 writes), a pause every request in
flight waits out. Yet the store is long-lived and free of reference cycles: it never
needs the cyclic collector, reference counting frees what it drops.

So a node process checkpoints at quiet points of growth — after recovery and after
each snapshot it takes or installs: it collects what is not frozen, then freezes what
is alive (`gc.freeze()`, which moves it to a generation no collection walks). An
automatic collection then walks only what was created since the last checkpoint,
which a snapshot interval bounds.

CPython would still run automatic full collections between checkpoints: after the
freeze its "long-lived objects" count is nearly zero, so every tenth collection of
the middle generation becomes a full one, walking everything created since the
last checkpoint. Under load that was about one a second on a leader, 25 to 130 ms
each (the writers waiting through them). So the policy turns automatic full
collections off (the oldest generation's threshold), keeps the young ones, and
checkpoints at least every `CHECKPOINT_EVERY_S` besides (the ticker asks,
`maybe_checkpoint()`), so cyclic garbage that outlived the young generations waits
at most that long (or until the next snapshot) to be reclaimed.

The cost: an object frozen while alive that later becomes part of unreachable
cycles is not reclaimed until it is unfrozen. To bound that, every `FULL_EVERY_S`
a checkpoint unfreezes everything first, so its collection is a full one (the one
long pause, at a moment the node chose).

Only `accord node` processes enable this (`enable()`); in a process that merely
embeds a node (tests), `checkpoint()` and `maybe_checkpoint()` do nothing.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger("accord.node")

FULL_EVERY_S = 600.0
CHECKPOINT_EVERY_S = 60.0
NO_AUTOMATIC_FULL = 2**30
"""The oldest generation's threshold that keeps CPython from collecting it by itself
(it counts collections of the middle generation, a few per second at most)."""


class GcPolicy:
    def __init__(
        self,
        full_every_s: float = FULL_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
        checkpoint_every_s: float = CHECKPOINT_EVERY_S,
    ) -> None:
        self.full_every_s = full_every_s
        self.checkpoint_every_s = checkpoint_every_s
        self.clock = clock
        self.last_full = self.last_checkpoint = clock()
        self.checkpoints = 0
        self.full_collections = 0

    def maybe_checkpoint(self) -> None:
        """A checkpoint if none ran for `checkpoint_every_s`."""
        if self.clock() - self.last_checkpoint >= self.checkpoint_every_s:
            self.checkpoint()

    def checkpoint(self) -> None:
        """Collect what is not frozen (everything, when a full collection is due),
        then freeze what is alive."""
        started = time.perf_counter()
        full = self.clock() - self.last_full >= self.full_every_s
        if full:
            gc.unfreeze()
            self.last_full = self.clock()
            self.full_collections += 1
        gc.collect()
        gc.freeze()
        self.checkpoints += 1
        self.last_checkpoint = self.clock()
        log.debug(
            "gc checkpoint (%s): %.1f ms, %d objects frozen",
            "full" if full else "young",
            (time.perf_counter() - started) * 1000,
            gc.get_freeze_count(),
            extra={"event": "gc_checkpoint"},
        )


_policy: GcPolicy | None = None


def enable(policy: GcPolicy | None = None) -> None:
    """Make `checkpoint()` act in this process, and stop CPython's automatic full
    collections in it (the `accord node` entry point)."""
    global _policy
    _policy = policy or GcPolicy()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NO_AUTOMATIC_FULL)


def checkpoint() -> None:
    """A checkpoint if this process enabled the policy; else nothing."""
    if _policy is not None:
        _policy.checkpoint()


def maybe_checkpoint() -> None:
    """A checkpoint if this process enabled the policy and none ran for a while."""
    if _policy is not None:
        _policy.maybe_checkpoint()
