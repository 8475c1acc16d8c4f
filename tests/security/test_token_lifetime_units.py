"""Tokens stay dead: user ids are never reused, across deletion, re-creation, snapshots
and snapshots of the form before user ids (the pure auth store and NodeState)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from accord.kv import KVStateMachine
from accord.node.authstore import AuthStore, encode_auth_payload
from accord.node.members import SNAPSHOT_FORMAT, NodeState
from accord.security.errors import Unauthenticated
from accord.security.tokens import _b64, _sign, issue_token, verify_token

NOW_MS = 1_000_000


def apply(store: AuthStore, op: str, *args: Any) -> None:
    result = store.apply(encode_auth_payload(op, *args))
    assert result.ok, (op, result)


def initialized() -> AuthStore:
    store = AuthStore()
    apply(store, "init", "roothash", b"k" * 32)
    return store


def token(store: AuthStore, user: str) -> str:
    return issue_token(store, user, NOW_MS, 3600)[0]


def test_a_recreated_user_gets_a_new_id_and_the_old_token_stays_dead() -> None:
    store = initialized()
    apply(store, "user_create", "alice", "hash-1")
    old = token(store, "alice")
    assert verify_token(store, old, NOW_MS) == "alice"
    apply(store, "user_del", "alice")
    with pytest.raises(Unauthenticated, match="revoked"):
        verify_token(store, old, NOW_MS)
    apply(store, "user_create", "alice", "hash-2")
    assert store.users["alice"].epoch == 0  # the epoch alone would match again
    with pytest.raises(Unauthenticated, match="revoked"):
        verify_token(store, old, NOW_MS)
    assert verify_token(store, token(store, "alice"), NOW_MS) == "alice"


def test_ids_only_grow_and_a_failed_create_takes_none() -> None:
    store = initialized()
    apply(store, "user_create", "a", "h")
    apply(store, "user_create", "b", "h")
    assert not store.apply(encode_auth_payload("user_create", "a", "h")).ok  # exists
    apply(store, "user_del", "b")
    apply(store, "user_create", "b", "h")
    assert [store.users[n].uid for n in ("a", "b")] == [1, 3]
    assert store.next_uid == 4


def test_a_password_change_ends_the_users_tokens() -> None:
    store = initialized()
    apply(store, "user_create", "alice", "hash-1")
    old = token(store, "alice")
    apply(store, "user_passwd", "alice", "hash-2")
    with pytest.raises(Unauthenticated, match="revoked"):
        verify_token(store, old, NOW_MS)
    assert verify_token(store, token(store, "alice"), NOW_MS) == "alice"


def test_the_counter_survives_a_snapshot_and_restore() -> None:
    store = initialized()
    apply(store, "user_create", "alice", "hash-1")
    old = token(store, "alice")
    apply(store, "user_del", "alice")
    restored = AuthStore()
    restored.restore(msgpack.unpackb(msgpack.packb(store.snapshot())))
    apply(restored, "user_create", "alice", "hash-2")
    assert restored.users["alice"].uid == 2
    with pytest.raises(Unauthenticated, match="revoked"):
        verify_token(restored, old, NOW_MS)


def test_replicas_that_apply_the_same_commands_agree() -> None:
    commands = [("user_create", "a", "h"), ("user_add", "old", "h"), ("user_del", "a")]
    commands += [("user_create", "a", "h2"), ("user_passwd", "a", "h3")]
    first, second = initialized(), initialized()
    for store in (first, second):
        for op, *args in commands:
            apply(store, op, *args)
    assert msgpack.packb(first.snapshot()) == msgpack.packb(second.snapshot())


def _legacy_node_snapshot() -> bytes:
    """A node snapshot of the form before user ids: users [hash, roles, epoch]."""
    kv = KVStateMachine()
    users = {"root": ["roothash", [], 0], "alice": ["hash-1", ["app"], 2]}
    auth = [True, b"k" * 32, users, {"app": [[b"app/", 3]]}]
    return bytes(msgpack.packb([SNAPSHOT_FORMAT, kv.snapshot(), [], [], auth]))


def test_a_snapshot_from_before_user_ids_loads() -> None:
    state = NodeState(KVStateMachine(), {})
    state.restore(_legacy_node_snapshot())
    store = state.auth
    assert store.users["alice"].uid == 0 and store.users["alice"].epoch == 2
    assert store.grants_of("alice") == [(b"app/", 3)]
    assert store.next_uid == 1
    fresh = token(store, "alice")
    assert verify_token(store, fresh, NOW_MS) == "alice"
    apply(store, "user_del", "alice")
    apply(store, "user_create", "alice", "hash-2")
    with pytest.raises(Unauthenticated):
        verify_token(store, fresh, NOW_MS)
    again = NodeState(KVStateMachine(), {})
    again.restore(state.snapshot())
    assert again.auth.users["alice"].uid == 1 and again.auth.next_uid == 2


def test_tokens_of_the_form_before_user_ids_are_refused() -> None:
    store = initialized()
    apply(store, "user_add", "alice", "hash-1")
    payload = msgpack.packb(["alice", 0, NOW_MS + 60_000])  # [user, epoch, expires_ms]
    legacy = f"{_b64(payload)}.{_b64(_sign(store.secret, payload))}"
    with pytest.raises(Unauthenticated, match="invalid token"):
        verify_token(store, legacy, NOW_MS)
