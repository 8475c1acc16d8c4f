"""The simulator's replicated state machine: one register per key, plus a session
table that makes retried writes take effect exactly once.

Commands are msgpack lists `[client, seq, op, key, arg1, arg2]`. `apply()` is
deterministic and reads no clock, so every replica computes the same state.
"""

from __future__ import annotations

from typing import Any

import msgpack

WRITE = "w"
CAS = "c"


def encode_command(client: int, seq: int, op: str, key: str, arg1: Any, arg2: Any = None) -> bytes:
    return bytes(msgpack.packb([client, seq, op, key, arg1, arg2]))


class RegisterMachine:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        # client -> (latest seq applied, its result): a retry of that seq gets the
        # recorded result instead of being applied twice.
        self.sessions: dict[int, tuple[int, Any]] = {}
        self.applied_commands = 0

    def apply(self, data: bytes) -> Any:
        client, seq, op, key, arg1, arg2 = msgpack.unpackb(data)
        last = self.sessions.get(client)
        if last is not None and seq <= last[0]:
            return last[1] if seq == last[0] else None
        if op == WRITE:
            self.values[key] = arg1
            result: Any = True
        elif op == CAS:
            result = self.values.get(key) == arg1
            if result:
                self.values[key] = arg2
        else:
            raise ValueError(f"unknown register op {op!r}")
        self.sessions[client] = (seq, result)
        self.applied_commands += 1
        return result

    def read(self, key: str) -> Any:
        return self.values.get(key)

    def snapshot(self) -> bytes:
        sessions = [[c, s, r] for c, (s, r) in sorted(self.sessions.items())]
        return bytes(msgpack.packb([sorted(self.values.items()), sessions, self.applied_commands]))

    def restore(self, data: bytes) -> None:
        values, sessions, applied = msgpack.unpackb(data)
        self.values = {k: v for k, v in values}
        self.sessions = {c: (s, r) for c, s, r in sessions}
        self.applied_commands = applied
