"""Client <-> node messages of the simulated service (the Raft messages travel as
`accord.raft.Message`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ClientRequest:
    client: int
    seq: int
    attempt: int
    op: str  # "r" read, "w" write, "c" compare-and-swap
    key: str
    arg1: Any = None
    arg2: Any = None
    session: int = 0
    write_seq: int = 0
    """The client's session and its sequence number (writes only; reads use none)."""
    group: int = 0
    """The Raft group the client talks to (each group has its own clients and keys)."""


@dataclass(frozen=True, slots=True)
class ClientReply:
    client: int
    seq: int
    attempt: int
    ok: bool
    value: Any = None
    error: str = ""  # "not_leader", "dropped", "read_rejected", "session_expired"
    leader_hint: int = 0
