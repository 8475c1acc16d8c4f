"""`AuthService`: authentication and authorization for one node, over the replicated
auth store (`NodeState.auth`), plus the bootstrap of the root user.

Reads of the auth store are local (like etcd's): a node applies grants in log order,
so a revoked permission stops working on each node as soon as it applies the revoke.
Changes are proposed through Raft and take effect once committed.

Bootstrap: with `auth = true`, the leader proposes `init` (root's password hash and a
fresh token key) whenever it finds the store uninitialised; every node applies the
first one, later ones are no-ops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any

from accord.node.authstore import (
    PERMISSIONS,
    ROOT,
    AuthResult,
    valid_name,
)
from accord.node.members import NodeState
from accord.node.registry import AuthCommand, encode
from accord.node.runtime import Node
from accord.security.audit import audit
from accord.security.config import SecurityConfig
from accord.security.errors import (
    AuthRequestError,
    LeaseNotOwned,
    PermissionDenied,
    SecurityError,
    Unauthenticated,
)
from accord.security.limits import PASSWORD_BYTES_MAX
from accord.security.loginlimit import LoginLimiter
from accord.security.passwords import hash_password, verify_password
from accord.security.rbac import Need, first_denied
from accord.security.tokens import issue_token, verify_token

log = logging.getLogger("accord.security")
BOOTSTRAP_INTERVAL_S = 0.5
_LOGGED_ARGS = {"user_create": 1, "user_passwd": 1}
"""How many leading arguments of these commands the audit log may show: the user's
name, not the salted password hash that follows it."""


def now_ms() -> int:
    return int(time.time() * 1000)


def _shown_args(op: str, args: tuple[Any, ...]) -> list[Any]:
    """The arguments of an admin command as the audit log shows them: never a hash."""
    kept = args[: _LOGGED_ARGS.get(op, len(args))]
    return [a.decode("utf-8", "backslashreplace") if isinstance(a, bytes) else a for a in kept]


def _locked(locked_s: float) -> dict[str, float]:
    return {"locked_for_s": round(locked_s, 3)} if locked_s > 0 else {}


def read_root_password(config: SecurityConfig) -> str | None:
    """The bootstrap password for root: ACCORD_ROOT_PASSWORD, else root_password_file;
    None when neither is set (fine once the cluster has bootstrapped auth)."""
    if config.root_password:
        return config.root_password
    if config.root_password_file is None:
        return None
    try:
        password = config.root_password_file.read_text().strip()
    except OSError as exc:
        raise SecurityError(f"cannot read root_password_file: {exc}") from exc
    if not password:
        raise SecurityError(f"{config.root_password_file} is empty")
    return password


class AuthService:
    def __init__(self, node: Node, state: NodeState, config: SecurityConfig) -> None:
        self.node = node
        self.state = state
        self.config = config
        self._root_password = read_root_password(config)
        self._bootstrap: asyncio.Task[None] | None = None
        self.limiter = LoginLimiter(config.login_limits)
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._bootstrap = asyncio.create_task(self._bootstrap_loop(), name="accord-auth-init")

    async def stop(self) -> None:
        if self._bootstrap is not None:
            self._bootstrap.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._bootstrap

    async def _bootstrap_loop(self) -> None:
        warned = False
        while not self.state.auth.initialized:
            if self.node.is_leader and self._root_password is None and not warned:
                warned = True
                log.error(
                    "auth is not bootstrapped and this node has no root password: set "
                    "root_password_file in [security] or ACCORD_ROOT_PASSWORD"
                )
            elif self.node.is_leader and self._root_password is not None:
                root_hash = await asyncio.to_thread(hash_password, self._root_password)
                command = encode(AuthCommand("init", (root_hash, secrets.token_bytes(32))))
                try:
                    await self.node.propose(command)
                    audit("auth_bootstrap", node=self.node.core.id)
                except Exception as exc:  # lost leadership, timeout: try again
                    log.info("auth bootstrap not committed yet: %r", exc)
            await asyncio.sleep(BOOTSTRAP_INTERVAL_S)
        self._root_password = None  # not needed any more

    # --- authentication -------------------------------------------------------------------
    async def login(self, user: Any, password: Any, remote: str, source: str) -> tuple[str, int]:
        """A token for `user`; `source` (the caller's address) keys the login limits."""
        store = self.state.auth
        if not isinstance(user, str) or not isinstance(password, str):
            raise Unauthenticated("login needs a user and a password (strings)")
        if not store.initialized:
            raise Unauthenticated("auth is not bootstrapped yet; retry shortly")
        name = user if valid_name(user) else ""  # the limits' key; no user has such a name
        self.limiter.admit(name, source)
        record = store.users.get(user)
        # An unknown user is checked against a dummy hash of the same cost, so the
        # answer takes as long as for a known user and does not tell them apart.
        stored = record.password_hash if record is not None else self._dummy_hash
        ok = len(password.encode()) <= PASSWORD_BYTES_MAX and await asyncio.to_thread(
            verify_password, password, stored
        )
        current = self.state.auth.users.get(user)  # deleted or changed while hashing?
        unchanged = (
            record is not None
            and current is not None
            and (current.uid, current.password_hash) == (record.uid, record.password_hash)
        )
        if not (ok and unchanged):
            locked_s = self.limiter.failed(name, source)
            audit("login_failed", user=user, remote=remote, **_locked(locked_s))
            raise Unauthenticated("wrong user name or password")
        self.limiter.succeeded(name, source)
        audit("login", user=user, remote=remote)
        return issue_token(self.state.auth, user, now_ms(), self.config.token_ttl_s)

    def user_of_token(self, token: str) -> str:
        return verify_token(self.state.auth, token, now_ms())

    def user_of_certificate(self, name: str) -> str:
        if name not in self.state.auth.users:
            raise Unauthenticated(f"client certificate names an unknown user {name!r}")
        return name

    def token_for(self, user: str) -> str:
        """A short-lived token for `user`, for a request forwarded to the leader."""
        return issue_token(self.state.auth, user, now_ms(), 60)[0]

    # --- authorization ------------------------------------------------------------------
    def check(self, user: str, needs: list[Need], what: str, remote: str) -> None:
        denied = first_denied(user, self.state.auth.grants_of(user), needs)
        if denied is not None:
            bit, key, end = denied
            audit(
                "permission_denied",
                user=user,
                request=what,
                key=key.decode("utf-8", "backslashreplace"),
                range_end=end.decode("utf-8", "backslashreplace"),
                remote=remote,
            )
            permission = "write" if bit == 2 else "read"
            shown = key.decode("utf-8", "backslashreplace")
            if end:
                shown = f"[{shown}, {end.decode('utf-8', 'backslashreplace')})"
            raise PermissionDenied(f"user {user!r} may not {permission} {shown!r}")

    def check_lease_owner(self, user: str, lease_ids: list[int], what: str, remote: str) -> None:
        """Only a lease's owner (and root) may inspect it, keep it alive, revoke it or
        attach keys to it; to anyone else it does not exist (`LeaseNotOwned`, 404).
        Lease id 0 ("no lease") and unknown ids pass: the handler answers for them.
        Checked on this node's applied state: owners never change, and a follower
        forwards writes to the leader, whose guard checks them again."""
        if user == ROOT:
            return
        for lease_id in lease_ids:
            info = self.state.lease_ttl(lease_id) if lease_id else None
            if info is not None and info.owner != user:
                audit("permission_denied", user=user, request=what, lease=lease_id, remote=remote)
                raise LeaseNotOwned(lease_id)

    def require_root(self, user: str, what: str, remote: str) -> None:
        if user != ROOT:
            audit("permission_denied", user=user, request=what, remote=remote)
            raise PermissionDenied(f"{what} needs the root user")

    # --- administration (root only; the caller checks) ----------------------------------
    async def _propose(self, user: str, op: str, *args: Any) -> None:
        result = await self.node.propose(encode(AuthCommand(op, args)))
        shown = _shown_args(op, args)
        if not isinstance(result, AuthResult) or not result.ok:
            message = result.message if isinstance(result, AuthResult) else repr(result)
            audit("admin_failed", user=user, op=op, args=shown, reason=message)
            raise AuthRequestError(message, result.code if isinstance(result, AuthResult) else "")
        audit("admin", user=user, op=op, args=shown)

    async def add_user(self, actor: str, name: Any, password: Any) -> None:
        if not valid_name(name) or not isinstance(password, str) or not password:
            raise AuthRequestError("a user needs a valid name and a non-empty password")
        if len(password.encode()) > PASSWORD_BYTES_MAX:
            raise AuthRequestError("password too long")
        await self._propose(
            actor, "user_create", name, await asyncio.to_thread(hash_password, password)
        )

    async def set_password(self, actor: str, name: str, password: Any) -> None:
        if not isinstance(password, str) or not password:
            raise AuthRequestError("password must be a non-empty string")
        if len(password.encode()) > PASSWORD_BYTES_MAX:
            raise AuthRequestError("password too long")
        hashed = await asyncio.to_thread(hash_password, password)
        await self._propose(actor, "user_passwd", name, hashed)

    async def delete_user(self, actor: str, name: str) -> None:
        await self._propose(actor, "user_del", name)

    async def grant_role(self, actor: str, name: str, role: Any) -> None:
        if not isinstance(role, str):
            raise AuthRequestError("role must be a string")
        await self._propose(actor, "user_grant", name, role)

    async def revoke_role(self, actor: str, name: str, role: str) -> None:
        await self._propose(actor, "user_revoke", name, role)

    async def add_role(self, actor: str, role: Any) -> None:
        if not valid_name(role):
            raise AuthRequestError(f"bad role name {role!r}")
        await self._propose(actor, "role_add", role)

    async def delete_role(self, actor: str, role: str) -> None:
        await self._propose(actor, "role_del", role)

    async def grant_permission(self, actor: str, role: str, prefix: bytes, permission: Any) -> None:
        bits = PERMISSIONS.get(permission) if isinstance(permission, str) else None
        if bits is None:
            raise AuthRequestError("permission must be read, write or readwrite")
        await self._propose(actor, "role_grant", role, prefix, bits)

    async def revoke_permission(self, actor: str, role: str, prefix: bytes) -> None:
        await self._propose(actor, "role_revoke", role, prefix)
