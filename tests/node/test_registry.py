"""The command registry: one tag per kind, one dispatch table, old entries still apply."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import msgpack
import pytest

from accord.kv import Envelope, KVStateMachine, LeaseGrant, Put, encode_command
from accord.kv.errors import BadCommand
from accord.kv.results import ErrorResult, PutResult, encode_result
from accord.node.address import Member
from accord.node.authstore import AuthResult
from accord.node.members import NodeState
from accord.node.registry import (
    TAG_MARKER,
    AuthCommand,
    Command,
    Frame,
    Kind,
    KVCommand,
    decode,
    encode,
)

V1_LOG = Path(__file__).parent / "data" / "v1_mixed_log.msgpack"
"""Written by the version before tags: KV envelopes (`encode_command`), auth commands
(`b"\\xc1A"` + msgpack), malformed and foreign entries, as one log; with the result
of each entry and the `NodeState.snapshot()` after the last, as that version applied
them to `state()`."""
UNTAGGED_JUNK = (b"\xc1Xsomething", b"\xc1")
"""Entries of the old log that the old version refused as undecodable KV bytes and
this one refuses as an unknown kind: the same state, a clearer message."""


def state() -> NodeState:
    return NodeState(KVStateMachine(), {1: Member(1, "n1", ("127.0.0.1", 1), ("127.0.0.1", 2))})


def result_form(result: Any) -> list[Any]:
    if isinstance(result, AuthResult):
        return ["auth", result.ok, result.message, result.code]
    return encode_result(result)


def test_a_log_written_before_tags_applies_identically() -> None:
    old = msgpack.unpackb(V1_LOG.read_bytes())
    s = state()
    for index, (data, (expected, events)) in enumerate(
        zip(old["entries"], old["results"], strict=True), 1
    ):
        result, produced = s.apply(index, data)
        assert len(produced) == events, index
        if data in UNTAGGED_JUNK:
            assert isinstance(result, ErrorResult) and result.code == expected[1] == "bad_command"
        else:
            assert result_form(result) == expected, index
    assert s.snapshot() == old["snapshot"]


def test_auth_commands_keep_the_bytes_they_always_had() -> None:
    data = encode(AuthCommand("role_add", ("app",)))
    assert data == b"\xc1A" + msgpack.packb(["role_add", "app"])
    assert decode(data) == Frame(Kind.AUTH, msgpack.packb(["role_add", "app"]))


def test_kv_commands_are_tagged_and_the_untagged_envelope_is_legacy_kv() -> None:
    envelope = Envelope(7, 1, Put(b"k", b"v"), 5, "alice")
    data = encode(KVCommand(envelope))
    assert data[:2] == bytes((TAG_MARKER, ord("K")))
    assert decode(data) == Frame(Kind.KV, encode_command(envelope))
    assert decode(encode_command(envelope)) == Frame(Kind.KV, encode_command(envelope), True)


def test_a_tagged_kv_command_applies_as_its_legacy_form() -> None:
    envelopes = [
        Envelope(1, 1, Put(b"a", b"1"), 10),
        Envelope(2, 1, LeaseGrant(9, 5_000), 20, "bob"),
        Envelope(2, 2, Put(b"b", b"2", 9), 30, "bob"),
        Envelope(1, 1, Put(b"a", b"again"), 40),  # a retry: answered from the session
    ]
    legacy, tagged = state(), state()
    for index, envelope in enumerate(envelopes, 1):
        old = legacy.apply(index, encode_command(envelope))
        assert tagged.apply(index, encode(KVCommand(envelope))) == old
    assert tagged.snapshot() == legacy.snapshot()
    assert tagged.kv.get(b"a").kv.value == b"1"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"\xc1\x00payload", b"\xc1Zpayload", bytes((TAG_MARKER, Kind.QUEUE)) + b"x"],
    ids=["no kind", "kind 0", "unknown letter", "reserved kind"],
)
def test_an_unknown_kind_is_refused_alike_on_every_replica(data: bytes) -> None:
    replicas = [state(), state()]
    outcomes = [r.apply(1, data) for r in replicas]
    assert outcomes[0] == outcomes[1]
    result, events = outcomes[0]
    assert isinstance(result, ErrorResult) and result.code == "bad_command" and events == []
    assert isinstance(result.exception(), BadCommand)
    assert "kind" in result.message
    for r in replicas:  # the entry is recorded; the next one applies
        assert r.kv.applied_index == 1
        put = r.apply(2, encode(KVCommand(Envelope(0, 0, Put(b"k", b"v")))))[0]
        assert isinstance(put, PutResult)
    assert replicas[0].snapshot() == replicas[1].snapshot()


def test_every_command_kind_a_node_proposes_has_a_state_machine() -> None:
    variants = typing.get_args(Command)
    assert {v.kind for v in variants} <= state().commands.kinds
    assert len({v.kind for v in variants}) == len(variants)  # one class per kind


def test_tags_are_distinct_letters_and_never_start_a_msgpack_value() -> None:
    assert len({int(k) for k in Kind}) == len(Kind)
    assert all(chr(k).isalpha() for k in Kind)
    with pytest.raises(msgpack.UnpackException):  # 0xc1 is "never used" in msgpack
        msgpack.unpackb(bytes((TAG_MARKER,)) + b"K")
