"""The replicated commands of a node: one tagged union, one codec, one dispatch table.

Theory of operation
-------------------
Every normal log entry a node applies is one command of some *kind*: a KV request
(`accord.kv`), a change to the auth store (`accord.node.authstore`), and later
membership, queue, transaction and shard commands. An entry is the command's tag
followed by its kind's payload:

    0xc1, kind (one byte: an ASCII letter, see `Kind`), payload

0xc1 is the one byte msgpack never uses, so a tagged entry cannot be mistaken for a
msgpack document. Auth commands have been written as `0xc1 'A' payload` from the
start, which is exactly the tagged form of kind AUTH: their bytes do not change. KV
commands used to be the bare msgpack envelope; an entry that does not begin with 0xc1
is that legacy form and decodes as KV. `decode()` is the one place that recognises it.

`Registry.apply()` decodes the tag once and hands the payload to the handler
registered for the kind: the payload is the kind's own business, and its handler
turns a malformed payload into its own error result, as before tags. An entry whose
tag names no kind, or a kind this node has no handler for (one a newer version
writes), is refused the way undecodable KV bytes always were: `refuse(index, error)`
records it with a `bad_command` error result, so every replica skips it alike and
the apply loop goes on.

`encode()` is the other direction: the typed `Command` union (one dataclass per kind
with a payload today) to the bytes a node proposes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

from accord.kv.commands import Envelope, encode_command
from accord.kv.errors import BadCommand
from accord.node.authstore import encode_auth_payload

TAG_MARKER = 0xC1
"""The first byte of every tagged entry (never the first byte of a msgpack value)."""


class Kind(IntEnum):
    """What a command is, as its tag names it."""

    KV = ord("K")
    AUTH = ord("A")
    MEMBERSHIP = ord("M")
    """Reserved. Membership changes are Raft configuration entries today (`ConfChange`,
    applied by `NodeState.apply_conf_change`): the core itself must read them."""
    QUEUE = ord("Q")
    """Reserved for the queue state machine."""
    TXN = ord("T")
    """Reserved for cross-shard transactions."""
    SHARD = ord("S")
    """The shard map and placement state (`accord.shard.metadata`), in group 0."""


def tag(kind: Kind) -> bytes:
    return bytes((TAG_MARKER, kind))


_TAGS = {kind: tag(kind) for kind in Kind}


@dataclass(frozen=True, slots=True)
class KVCommand:
    envelope: Envelope
    kind: ClassVar[Kind] = Kind.KV

    def payload(self) -> bytes:
        return encode_command(self.envelope)


@dataclass(frozen=True, slots=True)
class AuthCommand:
    op: str
    args: tuple[Any, ...] = ()
    kind: ClassVar[Kind] = Kind.AUTH

    def payload(self) -> bytes:
        return encode_auth_payload(self.op, *self.args)


@dataclass(frozen=True, slots=True)
class ShardCommand:
    """A metadata command (`accord.shard.metadata.encode_metadata_command`)."""

    encoded: bytes
    kind: ClassVar[Kind] = Kind.SHARD

    def payload(self) -> bytes:
        return self.encoded


Command = KVCommand | AuthCommand | ShardCommand
"""Every command a node proposes as a normal log entry."""


def encode(command: Command) -> bytes:
    """The bytes to propose for `command`: its tag, then its payload."""
    return _TAGS[command.kind] + command.payload()


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded tag: the entry's kind and the payload its handler decodes."""

    kind: Kind
    payload: bytes
    legacy: bool = False
    """An untagged KV envelope, as written before tags."""


def decode(data: bytes) -> Frame:
    """The kind and payload of a log entry; `BadCommand` if the tag names no kind."""
    if not data or data[0] != TAG_MARKER:
        return Frame(Kind.KV, data, legacy=True)
    if len(data) < 2:
        raise BadCommand("a tagged command without its kind")
    try:
        kind = Kind(data[1])
    except ValueError:
        raise BadCommand(f"unknown command kind {data[1]:#04x}") from None
    return Frame(kind, data[2:])


Outcome = tuple[Any, list[Any]]
Handler = Callable[[int, bytes], Outcome]
"""`handler(index, payload)`: apply one entry's payload, return (result, events)."""


class Registry:
    """Kind -> handler: the dispatch table of a node's state machines."""

    def __init__(
        self, handlers: Mapping[Kind, Handler], refuse: Callable[[int, BadCommand], Outcome]
    ) -> None:
        self._handlers = dict(handlers)
        self._refuse = refuse

    @property
    def kinds(self) -> frozenset[Kind]:
        return frozenset(self._handlers)

    def apply(self, index: int, data: bytes) -> Outcome:
        """Apply the committed entry at `index`; an unknown kind is refused, never
        raised (see the module docstring)."""
        try:
            frame = decode(data)
            handler = self._handlers.get(frame.kind)
            if handler is None:
                raise BadCommand(f"no state machine for command kind {frame.kind.name}")
        except BadCommand as exc:
            return self._refuse(index, exc)
        return handler(index, frame.payload)
