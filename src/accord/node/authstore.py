"""The replicated auth store: users, roles, grants and the token signing key.

Theory of operation
-------------------
Auth state must be identical on every node and survive restarts, so it is part of
the replicated state machine, like the member registry: changes are commands in the
Raft log, applied in log order by every node, and the store is part of the node's
snapshot. Nothing here does I/O or reads a clock; the password hashes (salted, hence
random) and the signing key are computed by the node that proposes a command and
travel inside it, so `apply()` is deterministic.

A command's payload is msgpack `[op, args...]` (`encode_auth_payload`). The node's
command registry (`accord.node.registry`) tags it as kind AUTH (`0xc1 'A'`, the
prefix auth commands have always had) and hands the payload back to `apply()`.

The first command is `init` (proposed by the leader once auth is enabled): it creates
the `root` user and the token key. Later `init`s are ignored, so two leaders racing to
bootstrap are harmless. `root` holds every permission and cannot be deleted.

User ids: `user_create` gives each new user the next value of `next_uid`, a counter
that only grows and is part of the snapshot, so an id is never given twice, even to a
user re-created under the same name. Tokens name (user, uid, epoch), so a token of a
deleted user never works again. `user_add` is the form written before user ids
existed: log entries and snapshots of that time give their users uid 0, on every
replica alike (whatever snapshot it restored), so replay stays deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from accord.node.limits import (
    GRANTS_PER_ROLE_MAX,
    NAME_CHARS_MAX,
    PREFIX_BYTES_MAX,
    ROLES_MAX,
    USERS_MAX,
)

ROOT = "root"
READ = 1
WRITE = 2
READWRITE = READ | WRITE
PERMISSIONS = {"read": READ, "write": WRITE, "readwrite": READWRITE}


def valid_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= NAME_CHARS_MAX
        and all(c.isascii() and (c.isalnum() or c in "-_.@") for c in name)
    )


def permission_name(bits: int) -> str:
    return {READ: "read", WRITE: "write", READWRITE: "readwrite"}[bits]


@dataclass(slots=True)
class User:
    password_hash: str
    roles: set[str] = field(default_factory=set)
    epoch: int = 0
    """Bumped by a password change: tokens carry it, so older tokens stop working."""
    uid: int = 0
    """Never reused (see `AuthStore.next_uid`); 0 for users created before user ids."""


@dataclass(frozen=True, slots=True)
class AuthResult:
    ok: bool
    message: str = ""
    code: str = ""


_OK = AuthResult(True)


def _fail(message: str, code: str = "auth_error") -> AuthResult:
    return AuthResult(False, message, code)


def encode_auth_payload(op: str, *args: Any) -> bytes:
    """The payload of an auth command (the registry adds its tag)."""
    return bytes(msgpack.packb([op, *args], use_bin_type=True))


class AuthStore:
    def __init__(self) -> None:
        self.initialized = False
        self.secret = b""
        self.users: dict[str, User] = {}
        self.roles: dict[str, dict[bytes, int]] = {}
        self.next_uid = 1
        """The id of the next user created; only grows, survives deletions."""

    # --- reads ------------------------------------------------------------------------
    def grants_of(self, user: str) -> list[tuple[bytes, int]]:
        """Every (prefix, permission bits) the user's roles grant."""
        record = self.users.get(user)
        if record is None:
            return []
        return [
            (prefix, bits)
            for role in sorted(record.roles)
            for prefix, bits in self.roles.get(role, {}).items()
        ]

    def describe(self) -> dict[str, Any]:
        """Users and roles as a JSON-ready document (no password hashes)."""
        return {
            "users": {name: sorted(u.roles) for name, u in sorted(self.users.items())},
            "roles": {
                name: [
                    {
                        "prefix": p.decode("utf-8", "backslashreplace"),
                        "permission": permission_name(b),
                    }
                    for p, b in sorted(grants.items())
                ]
                for name, grants in sorted(self.roles.items())
            },
        }

    # --- apply ------------------------------------------------------------------------
    def apply(self, payload: bytes) -> AuthResult:
        """Apply one command's payload; a malformed one is a `bad_command` result."""
        try:
            op, *args = msgpack.unpackb(payload, raw=False)
            handler = _HANDLERS.get(op)
            if handler is None:
                return _fail(f"unknown auth command {op!r}", "bad_command")
            result: AuthResult = handler(self, *args)
            return result
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            return _fail(f"malformed auth command: {exc}", "bad_command")

    def _init(self, root_hash: str, secret: bytes) -> AuthResult:
        if self.initialized:
            return _OK
        self.initialized = True
        self.secret = bytes(secret)
        self.users[ROOT] = User(str(root_hash))
        return _OK

    def _user_create(self, name: str, password_hash: str) -> AuthResult:
        result = self._user_add(name, password_hash)
        if result.ok:
            self.users[name].uid = self.next_uid
            self.next_uid += 1
        return result

    def _user_add(self, name: str, password_hash: str) -> AuthResult:
        """The command before user ids (uid 0); still applied when replaying old logs."""
        if not valid_name(name):
            return _fail(f"bad user name {name!r}")
        if name in self.users:
            return _fail(f"user {name!r} exists", "user_exists")
        if len(self.users) >= USERS_MAX:
            return _fail(f"at most {USERS_MAX} users", "limit_exceeded")
        self.users[name] = User(str(password_hash))
        return _OK

    def _user_del(self, name: str) -> AuthResult:
        if name == ROOT:
            return _fail("the root user cannot be deleted")
        if self.users.pop(name, None) is None:
            return _fail(f"no user {name!r}", "user_not_found")
        return _OK

    def _user_passwd(self, name: str, password_hash: str) -> AuthResult:
        user = self.users.get(name)
        if user is None:
            return _fail(f"no user {name!r}", "user_not_found")
        user.password_hash = str(password_hash)
        user.epoch += 1
        return _OK

    def _user_grant(self, name: str, role: str) -> AuthResult:
        user = self.users.get(name)
        if user is None:
            return _fail(f"no user {name!r}", "user_not_found")
        if role not in self.roles:
            return _fail(f"no role {role!r}", "role_not_found")
        user.roles.add(role)
        return _OK

    def _user_revoke(self, name: str, role: str) -> AuthResult:
        user = self.users.get(name)
        if user is None or role not in user.roles:
            return _fail(f"user {name!r} does not have role {role!r}", "role_not_found")
        user.roles.discard(role)
        return _OK

    def _role_add(self, role: str) -> AuthResult:
        if not valid_name(role):
            return _fail(f"bad role name {role!r}")
        if role in self.roles:
            return _fail(f"role {role!r} exists", "role_exists")
        if len(self.roles) >= ROLES_MAX:
            return _fail(f"at most {ROLES_MAX} roles", "limit_exceeded")
        self.roles[role] = {}
        return _OK

    def _role_del(self, role: str) -> AuthResult:
        if self.roles.pop(role, None) is None:
            return _fail(f"no role {role!r}", "role_not_found")
        for user in self.users.values():
            user.roles.discard(role)
        return _OK

    def _role_grant(self, role: str, prefix: bytes, bits: int) -> AuthResult:
        grants = self.roles.get(role)
        if grants is None:
            return _fail(f"no role {role!r}", "role_not_found")
        if bits not in (READ, WRITE, READWRITE) or not isinstance(prefix, bytes):
            return _fail("a grant is a byte prefix and read, write or readwrite")
        if len(prefix) > PREFIX_BYTES_MAX or len(grants) >= GRANTS_PER_ROLE_MAX:
            return _fail("grant limits exceeded", "limit_exceeded")
        grants[prefix] = bits
        return _OK

    def _role_revoke(self, role: str, prefix: bytes) -> AuthResult:
        grants = self.roles.get(role)
        if grants is None or grants.pop(prefix, None) is None:
            return _fail(f"role {role!r} has no grant on {prefix!r}", "grant_not_found")
        return _OK

    # --- snapshot -----------------------------------------------------------------------
    def snapshot(self) -> list[Any]:
        users = {
            n: [u.password_hash, sorted(u.roles), u.epoch, u.uid] for n, u in self.users.items()
        }
        roles = {n: [[p, b] for p, b in sorted(g.items())] for n, g in self.roles.items()}
        return [self.initialized, self.secret, users, roles, self.next_uid]

    def restore(self, data: list[Any]) -> None:
        """Also the form before user ids: no `next_uid`, users without a uid (uid 0)."""
        initialized, secret, users, roles, *next_uid = data
        self.initialized = bool(initialized)
        self.secret = bytes(secret)
        self.users = {n: _restore_user(*fields) for n, fields in users.items()}
        self.roles = {n: {bytes(p): int(b) for p, b in g} for n, g in roles.items()}
        self.next_uid = int(next_uid[0]) if next_uid else 1


def _restore_user(password_hash: str, roles: list[str], epoch: int, uid: int = 0) -> User:
    return User(password_hash, set(roles), int(epoch), int(uid))


_HANDLERS: dict[str, Any] = {
    "init": AuthStore._init,
    "user_create": AuthStore._user_create,
    "user_add": AuthStore._user_add,
    "user_del": AuthStore._user_del,
    "user_passwd": AuthStore._user_passwd,
    "user_grant": AuthStore._user_grant,
    "user_revoke": AuthStore._user_revoke,
    "role_add": AuthStore._role_add,
    "role_del": AuthStore._role_del,
    "role_grant": AuthStore._role_grant,
    "role_revoke": AuthStore._role_revoke,
}
