"""`GroupView`: one group of a `HostStorage` as the single-group `Storage` protocol.

Existing single-group callers (the node runtime, `FileStorage`, `MemoryStorage`) keep
calling `load()` / `save()` / ...; each call becomes the host's call for that group:
a `save()` is a host save of one `GroupWrite`, with one record and one fsync. Closing
a view detaches it and leaves the host (and every other group) open.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from accord.invariant import invariant
from accord.raft.types import Entry, HardState, Snapshot
from accord.storage.protocol import GroupWrite, HostStorage, RecoveredState, Storage


class GroupView:
    """`Storage` for `group` of `host` (see the module docstring)."""

    __slots__ = ("_closed", "_group", "_host")

    def __init__(self, host: HostStorage, group: int) -> None:
        self._host = host
        self._group = group
        self._closed = False

    @property
    def group(self) -> int:
        return self._group

    def load(self) -> RecoveredState:
        self._check_open()
        return self._host.load(self._group)

    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry],
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        self._check_open()
        write = GroupWrite(self._group, hard_state, tuple(entries), snapshot)
        self._host.save((write,), sync=sync)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self._check_open()
        self._host.save_snapshot(self._group, snapshot)

    def compact(self, index: int) -> None:
        self._check_open()
        self._host.compact(self._group, index)

    def close(self) -> None:
        """Detach from the host (which stays open). Idempotent."""
        self._closed = True

    def _check_open(self) -> None:
        invariant(not self._closed, f"use of the closed view of group {self._group}")


if TYPE_CHECKING:  # the class implements the protocol (checked by mypy, not at run time)

    def _single(view: GroupView) -> Storage:
        return view
