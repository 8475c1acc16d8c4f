"""The pure parts of auth: the replicated store, prefix coverage, tokens."""

from __future__ import annotations

import msgpack
import pytest

from accord.kv.commands import Compare, CompareOp, CompareTarget, DeleteRange, Get, Put, Range, Txn
from accord.kv.types import prefix_end
from accord.node.authstore import READ, READWRITE, WRITE, AuthStore, encode_auth_payload
from accord.security.errors import Unauthenticated
from accord.security.rbac import allowed, covers, txn_needs
from accord.security.tokens import issue_token, verify_token


def store_with_alice() -> AuthStore:
    store = AuthStore()
    for op, *args in [
        ("init", "roothash", b"k" * 32),
        ("user_add", "alice", "hash"),
        ("role_add", "app"),
        ("role_grant", "app", b"app/", READWRITE),
        ("role_add", "reader"),
        ("role_grant", "reader", b"pub/", READ),
        ("user_grant", "alice", "app"),
        ("user_grant", "alice", "reader"),
    ]:
        assert store.apply(encode_auth_payload(op, *args)).ok, op
    return store


@pytest.mark.parametrize(
    ("key", "end", "expected"),
    [
        (b"app/x", b"", True),
        (b"app", b"", False),
        (b"ap", b"", False),
        (b"app/", prefix_end(b"app/"), True),
        (b"app/a", b"app/b", True),
        (b"app/a", b"app0", True),  # prefix_end(b"app/") == b"app0"
        (b"app/a", b"app0\x00", False),  # one key past the prefix
        (b"app/a", b"b", False),
        (b"app/a", b"\x00", False),  # no upper bound
        (b"app/z", b"app/a", True),  # empty range, but the start is inside
        (b"apq", b"app/z", False),  # empty range starting outside
        (b"", b"\x00", False),
    ],
)
def test_prefix_coverage(key: bytes, end: bytes, expected: bool) -> None:
    assert covers(b"app/", key, end) is expected


def test_empty_prefix_covers_everything() -> None:
    assert covers(b"", b"", b"\x00") and covers(b"", b"zzz", b"")


def test_transactions_need_every_compare_and_both_branches() -> None:
    store = store_with_alice()
    grants = store.grants_of("alice")
    ok = Txn(
        (Compare(b"app/c", CompareTarget.VERSION, CompareOp.EQUAL, 0),),
        (Put(b"app/x", b"1"),),
        (Get(b"pub/y"), Range(b"app/", prefix_end(b"app/"))),
    )
    assert allowed("alice", grants, txn_needs(ok))
    for bad in [
        Txn((Compare(b"secret", CompareTarget.VALUE, CompareOp.EQUAL, b"x"),), (), ()),
        Txn((), (Put(b"app/x", b"1"),), (Put(b"pub/y", b"w"),)),  # read-only prefix
        Txn((), (), (DeleteRange(b"app/", b"\x00"),)),
        Txn((), (Get(b"other"),), ()),
    ]:
        assert not allowed("alice", grants, txn_needs(bad)), bad
    assert allowed("root", [], txn_needs(bad))


def test_write_only_and_read_only_grants() -> None:
    grants = [(b"w/", WRITE), (b"r/", READ)]
    assert allowed("u", grants, [(WRITE, b"w/a", b"")])
    assert not allowed("u", grants, [(READ, b"w/a", b"")])
    assert allowed("u", grants, [(READ, b"r/a", b"")])
    assert not allowed("u", grants, [(WRITE, b"r/a", b"")])


def test_store_snapshot_round_trip_and_deterministic_errors() -> None:
    store = store_with_alice()
    again = AuthStore()
    again.restore(msgpack.unpackb(msgpack.packb(store.snapshot())))
    assert again.describe() == store.describe() and again.secret == store.secret
    assert not store.apply(encode_auth_payload("user_del", "root")).ok
    assert not store.apply(encode_auth_payload("user_add", "alice", "h")).ok
    assert not store.apply(encode_auth_payload("user_grant", "alice", "nope")).ok
    assert not store.apply(encode_auth_payload("role_grant", "app", "str", 9)).ok
    assert not store.apply(b"\xc1Agarbage").ok
    assert store.apply(encode_auth_payload("init", "other", b"x")).ok  # ignored
    assert store.users["root"].password_hash == "roothash"


def test_tokens_expire_and_die_with_a_password_change() -> None:
    store = store_with_alice()
    token, expires_ms = issue_token(store, "alice", now_ms=1000, ttl_s=10)
    assert verify_token(store, token, 1000) == "alice"
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(store, token, expires_ms)
    _payload, signature = token.split(".")
    forged = issue_token(store, "root", 1000, 10)[0].split(".")[0] + "." + signature
    with pytest.raises(Unauthenticated):
        verify_token(store, forged, 1000)
    store.apply(encode_auth_payload("user_passwd", "alice", "newhash"))
    with pytest.raises(Unauthenticated, match="revoked"):
        verify_token(store, token, 1000)


def test_the_auth_store_rides_in_the_node_snapshot() -> None:
    from accord.kv import KVStateMachine
    from accord.node.members import NodeState
    from accord.node.registry import AuthCommand, encode

    state = NodeState(KVStateMachine(), {})
    commands = [
        ("init", "roothash", b"k" * 32),
        ("user_add", "alice", "hash"),
        ("role_add", "app"),
        ("role_grant", "app", b"app/", READWRITE),
        ("user_grant", "alice", "app"),
    ]
    for index, (op, *args) in enumerate(commands, 1):
        result, events = state.apply(index, encode(AuthCommand(op, tuple(args))))
        assert result.ok and events == []
    restored = NodeState(KVStateMachine(), {})
    restored.restore(state.snapshot())
    assert restored.auth.describe() == state.auth.describe()
    assert restored.auth.secret == state.auth.secret
    # A snapshot taken before auth existed (four parts) restores to an empty store.
    plain = NodeState(KVStateMachine(), {})
    assert len(msgpack.unpackb(plain.snapshot())) == 4
    restored.restore(plain.snapshot())
    assert not restored.auth.initialized and restored.auth.users == {}
