"""Authentication, authorization and rate limiting for the native protocol.

A connection is anonymous until it sends `login` (user and password, or a token from
an earlier login) or presents a client certificate naming a user. The token is checked
again before every op, so a password change, a deleted user or the token's expiry
ends the connection's rights. Which permissions an op needs is decided from the same
argument fields the op's handler reads (`accord.api.wire.bytes_field`, `parse_txn`).
Leases are their owner's: `lease_ttl`, `lease_keepalive`, `lease_revoke` and a put
(or a transaction's put) attaching a key to another user's lease get 404
`lease_not_found`, as for a lease that does not exist. The user becomes the
request's owner (`REQUEST_OWNER`) for the per-user bounds.
"""

from __future__ import annotations

from typing import Any

from accord.api.http import PEER_AUTHORIZATION
from accord.api.native import GuardedSession
from accord.api.wire import bytes_field, int_field, parse_txn
from accord.node.authstore import READ, WRITE
from accord.node.service import REQUEST_OWNER
from accord.security.errors import RateLimited, Unauthenticated
from accord.security.http_guard import txn_leases
from accord.security.ratelimit import RateLimiter
from accord.security.rbac import Need, txn_needs
from accord.security.service import AuthService
from accord.security.tls import certificate_user

Args = dict[str, Any]
PUBLIC_OPS = frozenset({"health", "ready", "login"})
USER_OPS = frozenset({"status", "shards", "lease_grant"})
CALLS_PER_SHARD = frozenset({"lease_grant", "lease_keepalive", "lease_revoke", "watch", "range"})
"""Ops a sharded node may serve with calls to other nodes (a shard it holds no
replica of): they carry the user's own credentials."""
LEASE_OPS = frozenset({"lease_keepalive", "lease_ttl"})
"""Any user, for their own leases."""


def _remote(session: GuardedSession) -> str:
    peer = session.writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class NativeGuard:
    def __init__(self, auth: AuthService | None, limiter: RateLimiter | None) -> None:
        self.auth = auth
        self.limiter = limiter

    def connected(self, session: GuardedSession) -> None:
        if self.auth is None:
            return
        name = certificate_user(session.writer.get_extra_info("peercert"))
        if name is not None and name in self.auth.state.auth.users:
            session.user = name

    async def login(self, session: GuardedSession, args: Args) -> dict[str, Any]:
        self._limit(session)
        if self.auth is None:
            return {"user": None}
        if "token" in args:
            token = args["token"]
            if not isinstance(token, str):
                raise Unauthenticated("token must be a string")
            session.user, session.token = self.auth.user_of_token(token), token
            return {"user": session.user}
        remote = _remote(session)
        token, expires_ms = await self.auth.login(
            args.get("user"), args.get("password"), remote, remote.rpartition(":")[0]
        )
        session.user, session.token = self.auth.user_of_token(token), token
        return {"token": token, "expires_at_ms": expires_ms, "user": session.user}

    def check(self, session: GuardedSession, op: str, args: Args) -> None:
        self._limit(session)
        if self.auth is None or op in PUBLIC_OPS:
            return
        user = self._user(session)
        REQUEST_OWNER.set(user)  # this request's task (a watch: until the next op)
        if op in CALLS_PER_SHARD:  # the node may call other nodes for it, as this user
            PEER_AUTHORIZATION.set(f"Bearer {session.token or self.auth.token_for(user)}")
        if op in USER_OPS:
            return
        what, remote = f"native {op}", _remote(session)
        if op not in LEASE_OPS:
            needs = self._needs(op, args)
            if needs is None:
                self.auth.require_root(user, what, remote)
            else:
                self.auth.check(user, needs, what, remote)
        self.auth.check_lease_owner(user, self._leases_named(op, args), what, remote)

    @staticmethod
    def _leases_named(op: str, args: Args) -> list[int]:
        if op in LEASE_OPS or op == "lease_revoke":
            return [int_field(args, "id")]
        if op == "put":
            return [int_field(args, "lease")]
        if op == "txn":
            body = {k: v for k, v in args.items() if k not in ("client_id", "seq")}
            return txn_leases(parse_txn(body))
        return []

    def _limit(self, session: GuardedSession) -> None:
        if self.limiter is not None:
            wait_s = self.limiter.acquire(
                session.user or f"ip:{_remote(session).rpartition(':')[0]}"
            )
            if wait_s > 0:
                raise RateLimited(wait_s)

    def _user(self, session: GuardedSession) -> str:
        assert self.auth is not None
        if session.token is not None:  # re-checked: expiry, password change, deletion
            try:
                return self.auth.user_of_token(session.token)
            except Unauthenticated:
                session.user = session.token = None
                raise
        if session.user is not None and session.user in self.auth.state.auth.users:
            return session.user
        raise Unauthenticated("log in first (op login) or present a client certificate")

    def _needs(self, op: str, args: Args) -> list[Need] | None:
        """The key permissions `op` needs; None for an op only root may use."""
        if op == "put":
            return [(WRITE, bytes_field(args, "key"), b"")]
        if op == "delete":
            return [(WRITE, bytes_field(args, "key"), bytes_field(args, "range_end", False))]
        if op == "get":
            return [(READ, bytes_field(args, "key"), b"")]
        if op in ("range", "watch"):
            return [(READ, bytes_field(args, "key"), bytes_field(args, "range_end", False))]
        if op == "txn":
            body = {k: v for k, v in args.items() if k not in ("client_id", "seq")}
            return list(txn_needs(parse_txn(body)))
        if op == "lease_revoke":
            assert self.auth is not None
            info = self.auth.state.lease_ttl(int_field(args, "id"), keys=True)
            return [(WRITE, key, b"") for key in (info.keys if info else ())]
        return None
