"""A simulated network: per-message delay (hence reordering), loss, duplication, and
partitions (any set of cut directed links, so symmetric and one-way alike)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord.sim.runner import Simulation


class SimNetwork:
    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.cut: set[tuple[int, int]] = set()
        self.loss = 0.0
        self.duplicate = 0.0
        self.delay_max = 1
        self.lost_on_crash = 0.0
        self.delivered = 0
        self.dropped = 0

    def send(self, src: int, dst: int, payload: Any) -> None:
        rng = self.sim.rng
        copies = 2 if rng.random() < self.duplicate else 1
        for _ in range(copies):
            if (src, dst) in self.cut or rng.random() < self.loss:
                self.dropped += 1
                continue
            delay = 1 + rng.randrange(self.delay_max)
            sender = self.sim.nodes.get(src)
            incarnation = sender.incarnation if sender else 0
            self.sim.schedule(delay, self._deliver, src, dst, payload, incarnation)

    def _deliver(self, src: int, dst: int, payload: Any, incarnation: int) -> None:
        # A partition that starts while a message is in flight drops it too.
        if (src, dst) in self.cut:
            self.dropped += 1
            return
        sender = self.sim.nodes.get(src)
        crashed = sender is not None and (not sender.alive or sender.incarnation != incarnation)
        if crashed and self.sim.rng.random() < self.lost_on_crash:
            # Its socket buffers died with the process.
            self.dropped += 1
            return
        self.delivered += 1
        self.sim.deliver(dst, payload)

    def partition(self, groups: list[set[int]], clients: set[int]) -> None:
        """Cut every link between different groups; clients reach every node."""
        self.cut.clear()
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))

    def cut_one_way(self, src: int, dst: int) -> None:
        self.cut.add((src, dst))

    def heal(self) -> None:
        self.cut.clear()
