"""Builders and a reference model shared by the storage tests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from accord.raft.types import ConfState, Entry, HardState, Snapshot
from accord.storage.protocol import RecoveredState

CONF = ConfState(voters=frozenset({1, 2, 3}))


def entries(first: int, last: int, term: int = 1, size: int = 8) -> list[Entry]:
    """Entries first..last whose data is derived from (index, term)."""
    return [Entry(term, i, data=payload(i, term, size)) for i in range(first, last + 1)]


def payload(index: int, term: int, size: int = 8) -> bytes:
    seed = f"{index}:{term}:".encode()
    return (seed * (size // len(seed) + 1))[:size]


def snapshot(index: int, term: int = 1, data: bytes | None = None) -> Snapshot:
    return Snapshot(index, term, CONF, data if data is not None else f"state@{index}".encode())


@contextlib.contextmanager
def fast_directory() -> Iterator[Path]:
    """A fresh directory on tmpfs when there is one (fsync is nearly free there, which
    keeps property tests fast); the real-disk behaviour is covered by other tests."""
    parent = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="accord-storage-", dir=parent) as name:
        yield Path(name)


class XorCipher:
    """A reversible toy cipher for tests: XOR with a key-derived stream, plus a tag over
    key, associated data and plaintext so tampering and wrong keys are detected."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _stream(self, length: int) -> bytes:
        block = hashlib.sha256(self._key).digest()
        return (block * (length // len(block) + 1))[:length]

    def _tag(self, associated: bytes, plaintext: bytes) -> bytes:
        return hashlib.sha256(self._key + associated + plaintext).digest()[:16]

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        stream = int.from_bytes(self._stream(len(plaintext)), "little")
        body = (int.from_bytes(plaintext, "little") ^ stream).to_bytes(len(plaintext), "little")
        return body + self._tag(associated, plaintext)

    def open(self, ciphertext: bytes, associated: bytes) -> bytes:
        body, tag = ciphertext[:-16], ciphertext[-16:]
        stream = int.from_bytes(self._stream(len(body)), "little")
        plaintext = (int.from_bytes(body, "little") ^ stream).to_bytes(len(body), "little")
        if self._tag(associated, plaintext) != tag:
            raise ValueError("authentication failed")
        return plaintext


@dataclass
class Reference:
    """The state a Storage should hold, computed the most direct way."""

    snapshot_index: int = 0
    snapshot_term: int = 0
    log: list[Entry] = field(default_factory=list)  # entries after the snapshot
    hard_state: HardState = field(default_factory=HardState)

    @classmethod
    def of(cls, state: RecoveredState) -> Reference:
        snap = state.snapshot
        return cls(
            snap.index if snap else 0,
            snap.term if snap else 0,
            list(state.entries),
            state.hard_state,
        )

    @property
    def last_index(self) -> int:
        return self.snapshot_index + len(self.log)

    @property
    def last_term(self) -> int:
        return self.log[-1].term if self.log else self.snapshot_term

    def term_at(self, index: int) -> int:
        return self.log[index - self.snapshot_index - 1].term

    def copy(self) -> Reference:
        return Reference(self.snapshot_index, self.snapshot_term, list(self.log), self.hard_state)

    def save(self, hard_state: HardState | None, new: list[Entry], snap: Snapshot | None) -> None:
        if snap is not None:
            self.snapshot_index, self.snapshot_term, self.log = snap.index, snap.term, []
        if new:
            del self.log[new[0].index - self.snapshot_index - 1 :]
            self.log.extend(new)
        if hard_state is not None:
            self.hard_state = hard_state

    def local_snapshot(self, index: int, term: int) -> None:
        self.log = self.log[index - self.snapshot_index :]
        self.snapshot_index, self.snapshot_term = index, term

    def view(self) -> tuple[int, int, tuple[Entry, ...]]:
        return (self.snapshot_index, self.snapshot_term, tuple(self.log))

    def normalized_hard_state(self, snapshot_index: int) -> HardState:
        hs = self.hard_state
        return HardState(hs.term, hs.vote, max(hs.commit, snapshot_index))


def view_of(state: RecoveredState) -> tuple[int, int, tuple[Entry, ...]]:
    snap = state.snapshot
    return (snap.index if snap else 0, snap.term if snap else 0, tuple(state.entries))
