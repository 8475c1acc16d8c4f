"""The network between the nodes of a chaos run, as the fault schedule sees it.

Two backends implement `ClusterNetwork`:

- `proxy` (`proxy.NetProxy`): every node on 127.0.0.1; each dials the others through
  listeners of an asyncio TCP proxy in the harness, one per direction;
- `netns` (`netns.NetnsNetwork`): every node in a network namespace of its own, the
  namespaces joined by a router namespace whose iptables rules drop or delay packets.

Either way a fault acts on one direction src→dst of Raft traffic (what src sends on
its connection to dst's peer port); clients reach every node directly and are never
hurt by these faults.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from accord.node.address import Member

Address = tuple[str, int]


@dataclass(slots=True)
class LinkFaults:
    """What is done to one direction src→dst right now."""

    blocked: bool = False
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0


class NetworkUnavailable(Exception):
    """The backend cannot run here (not root, a tool missing, a setup step refused)."""


class Network(Protocol):
    """Per-direction faults between nodes: what the nemesis drives."""

    name: str
    """The backend's name, recorded with the run's results."""

    @property
    def links(self) -> Collection[tuple[int, int]]:
        """Every direction (src, dst) this network can hurt."""
        ...

    def block(self, src: int, dst: int) -> None:
        """Nothing src sends to dst arrives until `unblock`, open connections included."""
        ...

    def unblock(self, src: int, dst: int) -> None: ...

    def slow(self, src: int, dst: int, delay_s: float, jitter_s: float, loss: float) -> None:
        """src→dst traffic delayed by `delay_s` plus up to `jitter_s`, and lost with
        probability `loss`; all zero: back to normal."""
        ...

    def heal(self) -> None:
        """Every direction open and fast again."""
        ...


class ClusterNetwork(Network, Protocol):
    """A `Network` that also decides where the nodes listen and how they are run."""

    async def place(self, ids: list[int]) -> dict[int, Member]:
        """Make the network ready for nodes `ids`; where each one listens."""
        ...

    def dial(self, src: int, dst: int) -> Address | None:
        """Where src must dial to reach dst (its `[dial]` entry); None: dst's own address."""
        ...

    def command(self, node: int, argv: list[str]) -> list[str]:
        """The command line that runs `argv` as `node`."""
        ...

    async def stop(self) -> None:
        """Undo everything `place` did; safe to call more than once, and after a failed
        `place`."""
        ...
