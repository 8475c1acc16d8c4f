"""A driver that feeds commands to a `KVStateMachine` the way the runtime does."""

from __future__ import annotations

from typing import Any

import msgpack

from accord.kv import (
    Command,
    Envelope,
    ErrorResult,
    Event,
    KVLimits,
    KVStateMachine,
    Result,
    encode_command,
)


class Driver:
    """Applies commands at consecutive log indexes, each stamped with `now_ms`."""

    def __init__(self, machine: KVStateMachine | None = None, limits: KVLimits | None = None):
        self.machine = machine if machine is not None else KVStateMachine(limits)
        self.index = self.machine.applied_index
        self.now_ms = 0

    def send(
        self,
        command: Command,
        *,
        client: int = 0,
        seq: int = 0,
        now_ms: int | None = None,
        owner: str = "",
    ) -> tuple[Result, list[Event]]:
        if now_ms is not None:
            self.now_ms = now_ms
        self.index += 1
        data = encode_command(Envelope(client, seq, command, self.now_ms, owner))
        return self.machine.apply(self.index, data)

    def __call__(self, command: Command, **kwargs: Any) -> Result:
        return self.send(command, **kwargs)[0]

    def raw(self, data: bytes) -> tuple[Result, list[Event]]:
        self.index += 1
        return self.machine.apply(self.index, data)

    def error(self, command: Command, **kwargs: Any) -> ErrorResult:
        result = self(command, **kwargs)
        assert isinstance(result, ErrorResult), result
        return result


def state(machine: KVStateMachine) -> object:
    """The machine's whole state but its applied index (from its snapshot)."""
    fields = msgpack.unpackb(machine.snapshot())
    del fields[1]
    return fields
