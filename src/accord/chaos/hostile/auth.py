"""Classes 4, 5 and 6, on a `--secure` cluster: tokens, logins, connections, leases.

Verdicts: a deleted user's token stays dead; logins are throttled and take as long
for an unknown user as for a known one; no password hash reaches a log and the log
is not world-readable; idle sockets do not lock a real client out; one user cannot
inspect, extend, revoke or attach to another user's lease.
"""

from __future__ import annotations

import contextlib
import re
import socket
import statistics
import time
from contextlib import ExitStack

import msgpack

from accord.chaos.hostile.outcome import Outcome, judge
from accord.chaos.hostile.requests import native_request
from accord.chaos.localup import UpCluster, UpNode
from accord.testing.cluster import wait_for
from accord.transport.framing import encode_frame

TIMING_ATTEMPTS = 12
HAMMER_ATTEMPTS = 100
TIMING_SAMPLES_MIN = 3
TIMING_RATIO_MIN = 0.5
"""The faster of unknown/known login medians must be at least this share of the slower."""
IDLE_SOCKETS = 20
"""Matches ACCORD_CONNECTIONS_MAX of the cluster these run against."""
CLIENT_WAIT_S = 5.0
_USER_OPS = (b"user_add", b"user_create", b"user_passwd")
"""How audit lines name creating a user (older and newer) and changing a password."""
_HASHY = re.compile(rb"scrypt\$|[A-Za-z0-9+/]{24,}={0,2}")


def _ok(cluster: UpCluster, method: str, path: str, body: object = None) -> None:
    response = cluster.http(cluster.nodes[0], method, path, body)  # type: ignore[arg-type]
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {response.body[:200]!r}")


def _add_user(cluster: UpCluster, name: str, password: str) -> None:
    _ok(cluster, "POST", "/v1/auth/users", {"name": name, "password": password})


# --- class 4 ------------------------------------------------------------------------


def token_resurrection(cluster: UpCluster) -> Outcome:
    _add_user(cluster, "alice", "first-password")
    old = cluster.login("alice", "first-password")
    _ok(cluster, "DELETE", "/v1/auth/users/alice")
    dead = cluster.http(cluster.nodes[0], "GET", "/v1/auth/whoami", token=old).status
    recreate = cluster.http(
        cluster.nodes[0], "POST", "/v1/auth/users", {"name": "alice", "password": "other-one"}
    ).status
    after = cluster.http(cluster.nodes[0], "GET", "/v1/auth/whoami", token=old)
    failures = []
    if dead == 200:
        failures.append("the token works after the user was deleted")
    if after.status == 200:
        failures.append(f"the old token works again: {after.body.decode(errors='replace')}")
    return judge(
        4,
        "token_resurrection",
        "login alice, delete alice, re-create alice with another password, old token",
        failures,
        after_delete=dead,
        recreate=recreate,
        old_token_after_recreate=after.status,
    )


# --- class 6 ------------------------------------------------------------------------


def leases_across_tenants(cluster: UpCluster) -> list[Outcome]:
    _ok(cluster, "POST", "/v1/auth/roles", {"name": "pub"})
    _ok(cluster, "POST", "/v1/auth/roles/pub/grant", {"prefix": "pub/", "permission": "readwrite"})
    _add_user(cluster, "dave", "dave-password")
    _ok(cluster, "PUT", "/v1/auth/users/dave/roles/pub")
    node = cluster.nodes[0]
    lease = cluster.http(node, "POST", "/v1/lease/grant", {"ttl": 600}).json()["id"]
    _ok(cluster, "PUT", f"/v1/kv/secret/root-only?lease={lease}", b"s")
    dave = cluster.login("dave", "dave-password")
    inspect = cluster.http(node, "GET", f"/v1/lease/{lease}", token=dave)
    keepalive = cluster.http(node, "POST", f"/v1/lease/{lease}/keepalive", token=dave).status
    attach = cluster.http(node, "PUT", f"/v1/kv/pub/mine?lease={lease}", b"x", token=dave).status
    revoke = cluster.http(node, "DELETE", f"/v1/lease/{lease}", token=dave).status
    root_key = cluster.http(node, "GET", "/v1/kv/secret/root-only").status
    leaked = b"secret" in inspect.body
    who = "user dave (readwrite on pub/ only)"
    return [
        judge(
            6,
            "lease_inspect_other",
            f"{who}: GET /v1/lease/ROOTS_LEASE",
            [f"answered 200{', with the key names' if leaked else ''}"]
            if inspect.status == 200
            else [],
            status=inspect.status,
            key_names_seen=leaked,
        ),
        judge(
            6,
            "lease_keepalive_other",
            f"{who}: keepalive of root's lease",
            ["root's lease was kept alive"] if keepalive == 200 else [],
            status=keepalive,
        ),
        judge(
            6,
            "lease_attach_other",
            f"{who}: PUT pub/mine?lease=ROOTS_LEASE",
            ["a key was attached to root's lease"] if attach == 200 else [],
            status=attach,
        ),
        judge(
            6,
            "lease_revoke_other",
            f"{who}: DELETE /v1/lease/ROOTS_LEASE",
            [f"root's lease was revoked (root's key now {root_key})"] if revoke == 200 else [],
            status=revoke,
            root_key_after=root_key,
        ),
    ]


# --- class 5 ------------------------------------------------------------------------


def _audit_failures(lines: list[bytes], hashy: list[bytes]) -> list[str]:
    if not lines:
        return ["no audit line about the user: nothing to check"]
    return [f"{len(hashy)} line(s) carry a hash/salt"] if hashy else []


def secrets_in_logs(cluster: UpCluster) -> list[Outcome]:
    """After a user is created and given a new password: hashes in node.log? Its mode?"""
    _add_user(cluster, "erin", "erin-password")
    _ok(cluster, "PUT", "/v1/auth/users/erin/password", {"password": "erin-new-password"})

    def audit_lines() -> list[bytes]:
        return [
            line
            for n in cluster.nodes
            for line in n.log.read_bytes().splitlines()
            if any(op in line for op in _USER_OPS)
        ]

    # Audit lines are written after the answer; none at all is judged a failure below.
    with contextlib.suppress(AssertionError):
        wait_for(lambda: any(b"user_passwd" in line for line in audit_lines()), "audit", 10)
    lines = audit_lines()
    hashy = [line for line in lines if _HASHY.search(line)]
    modes = {n.name: oct(n.log.stat().st_mode & 0o777) for n in cluster.nodes}
    readable = [name for name, mode in modes.items() if int(mode, 8) & 0o004]
    return [
        judge(
            5,
            "audit_password_hash",
            "user created + password changed, then node.log lines about them",
            _audit_failures(lines, hashy),
            lines=len(lines),
            with_hash=len(hashy),
            sample=(hashy[0][:120].decode(errors="replace") if hashy else ""),
        ),
        judge(
            5,
            "node_log_mode",
            "stat DIR/nK/node.log",
            [f"world-readable: {readable}"] if readable else [],
            modes=modes,
        ),
    ]


def _open_idle(cluster: UpCluster, stack: ExitStack, address: tuple[str, int], hello: bool) -> int:
    """IDLE_SOCKETS connections that complete TLS (on a secure cluster), and on the
    native port the hello, then send nothing: a TLS listener only sees a connection
    once its handshake is done."""
    opened = 0
    context = cluster.tls_context()
    for _ in range(IDLE_SOCKETS):
        try:
            sock = stack.enter_context(socket.create_connection(address, timeout=2))
            if context is not None:
                sock = stack.enter_context(context.wrap_socket(sock, server_hostname=address[0]))
            if hello:
                sock.sendall(encode_frame(msgpack.packb(["accord", 1])))
            opened += 1
        except OSError:
            break
    return opened


def _address(url: str) -> tuple[str, int]:
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    return host, int(port)


def idle_sockets(cluster: UpCluster) -> list[Outcome]:
    node = cluster.nodes[-1]
    outcomes = []
    for port, url in (("http", node.client_url), ("native", node.native_url)):
        with ExitStack() as stack:
            opened = _open_idle(cluster, stack, _address(url), hello=port == "native")
            started = time.monotonic()
            try:
                status = _client_request(cluster, node, port)
            except OSError as exc:
                status, error = 0, f"{type(exc).__name__}"
            else:
                error = ""
            took = time.monotonic() - started
        outcomes.append(
            judge(
                5,
                f"idle_sockets_{port}",
                f"{opened} idle connections (TLS done{', hello sent' if port == 'native' else ''})"
                f" to n{node.id}'s {port} port "
                f"(connections_max={IDLE_SOCKETS}), then a real request",
                [] if status == 200 else [f"the real client got {status or error}"],
                status=status,
                error=error,
                time_s=round(took, 2),
            )
        )
    return outcomes


def _client_request(cluster: UpCluster, node: UpNode, port: str) -> int:
    if port == "http":
        return cluster.http(node, "GET", "/health", timeout_s=CLIENT_WAIT_S).status
    return native_request(cluster, node, [1, "health", {}])


def login_timing(cluster: UpCluster) -> Outcome:
    """Medians of wrong logins (401) for a known and an unknown user; answers that a
    rate limit refused (429) are not compared: they tell nothing about the user."""
    _add_user(cluster, "bob", "bob-password")
    known: list[float] = []
    unknown: list[float] = []
    statuses: dict[int, int] = {}
    node = cluster.nodes[0]
    for i in range(TIMING_ATTEMPTS):
        for user, times in (("bob", known), (f"nobody{i}", unknown)):
            body = {"user": user, "password": "wrong-password"}
            response = cluster.http(node, "POST", "/v1/auth/login", body, token="")
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status == 401:
                times.append(response.elapsed_s)
    failures = []
    figures: dict[str, object] = {"statuses": statuses}
    if len(known) >= TIMING_SAMPLES_MIN and len(unknown) >= TIMING_SAMPLES_MIN:
        known_ms, unknown_ms = statistics.median(known) * 1000, statistics.median(unknown) * 1000
        figures.update(known_ms=round(known_ms, 1), unknown_ms=round(unknown_ms, 1))
        if min(known_ms, unknown_ms) < TIMING_RATIO_MIN * max(known_ms, unknown_ms):
            failures.append(f"unknown {unknown_ms:.1f} ms vs known {known_ms:.1f} ms: names leak")
    else:
        failures.append(f"inconclusive: {len(known)} known and {len(unknown)} unknown 401s")
    return judge(
        5,
        "login_timing",
        f"{TIMING_ATTEMPTS} wrong logins each for a known and unknown users, medians",
        failures,
        **figures,
    )


def login_hammer(cluster: UpCluster) -> Outcome:
    _add_user(cluster, "carol", "carol-password")
    node = cluster.nodes[0]
    counts: dict[int, int] = {}
    retry_after = ""
    started = time.monotonic()
    for _ in range(HAMMER_ATTEMPTS):
        body = {"user": "carol", "password": "wrong-password"}
        response = cluster.http(node, "POST", "/v1/auth/login", body, token="")
        counts[response.status] = counts.get(response.status, 0) + 1
        retry_after = retry_after or response.headers.get("retry-after", "")
    took = time.monotonic() - started
    return judge(
        5,
        "login_rate_limit",
        f"{HAMMER_ATTEMPTS} wrong logins for one user as fast as possible",
        [] if counts.get(429) else ["no 429: no rate limit or lockout"],
        statuses=counts,
        retry_after=retry_after,
        rate_per_s=round(HAMMER_ATTEMPTS / took, 1),
    )
