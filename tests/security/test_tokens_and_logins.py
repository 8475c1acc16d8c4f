"""Tokens and logins on a real node: a deleted user's token stays dead (also after the
name is re-created and after a restart from a snapshot), login lockout and rate limits
(429 with Retry-After, native retry_after_s), the same login time for unknown and
known users, and no password, hash, salt or token in the node's log."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from accord.testing.cluster import wait_for
from accord.testing.single import SingleNode
from accord.transport.framing import FrameDecoder, encode_frame

from .authnode import ROOT_PASSWORD, call, login, start_auth_node

NO_LOGIN_LIMITS = {"login_source_rps": 0.0, "login_user_rps": 0.0, "login_failures_max": 0}
TIMING_ATTEMPTS = 20


def _login(node: SingleNode, user: str, password: str) -> tuple[int, Any, str | None]:
    """(status, body, Retry-After) of one HTTP login."""
    body = json.dumps({"user": user, "password": password}).encode()
    request = urllib.request.Request(f"{node.url}/v1/auth/login", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers.get("Retry-After")


def _native_login(node: SingleNode, user: str, password: str) -> list[Any]:
    async def exchange() -> list[Any]:
        reader, writer = await asyncio.open_connection(*node.native_address)
        decoder = FrameDecoder(1 << 20)
        writer.write(encode_frame(msgpack.packb(["accord", 1])))
        writer.write(
            encode_frame(msgpack.packb([1, "login", {"user": user, "password": password}]))
        )
        frames: list[bytes] = []
        async with asyncio.timeout(10):
            while len(frames) < 2:  # the hello's answer, then the login's
                data = await reader.read(65536)
                assert data, "connection closed"
                frames += decoder.feed(data)
        writer.close()
        answer: list[Any] = msgpack.unpackb(frames[1])
        return answer

    return asyncio.run(exchange())


def _add_user(node: SingleNode, root: str, name: str, password: str) -> None:
    status, body = call(
        "POST", f"{node.url}/v1/auth/users", {"name": name, "password": password}, token=root
    )
    assert status == 200, body


@pytest.fixture(scope="module")
def open_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    """A node without login limits (for the timing and log checks)."""
    node = start_auth_node(tmp_path_factory.mktemp("logins") / "node", **NO_LOGIN_LIMITS)
    yield node
    node.stop()


def test_a_deleted_users_token_never_works_again(tmp_path: Path) -> None:
    node = start_auth_node(tmp_path / "node")
    try:
        root = login(node.url, "root", ROOT_PASSWORD)
        _add_user(node, root, "alice", "first-pw")
        old = login(node.url, "alice", "first-pw")
        assert call("GET", f"{node.url}/v1/auth/whoami", token=old) == (200, {"user": "alice"})
        assert call("DELETE", f"{node.url}/v1/auth/users/alice", token=root)[0] == 200
        assert call("GET", f"{node.url}/v1/auth/whoami", token=old)[0] == 401
        _add_user(node, root, "alice", "second-pw")
        assert call("GET", f"{node.url}/v1/auth/whoami", token=old)[0] == 401
        assert _login(node, "alice", "first-pw")[0] == 401
        new = login(node.url, "alice", "second-pw")
        for i in range(8):  # snapshot_entries is 5: the auth store goes into a snapshot
            assert call("PUT", f"{node.url}/v1/kv/k{i}", raw=b"v", token=root)[0] == 200
        node.stop()
        assert list((node.config.data_dir / "raft" / "snap").glob("*.snap"))
        node.start({})
        assert call("GET", f"{node.url}/v1/auth/whoami", token=old)[0] == 401
        assert call("GET", f"{node.url}/v1/auth/whoami", token=new) == (200, {"user": "alice"})
        status, _ = call(
            "PUT", f"{node.url}/v1/auth/users/alice/password", {"password": "third-pw"}, token=root
        )
        assert status == 200
        assert call("GET", f"{node.url}/v1/auth/whoami", token=new)[0] == 401
        assert _login(node, "alice", "second-pw")[0] == 401
        assert login(node.url, "alice", "third-pw")
    finally:
        node.stop()


def test_lockout_answers_429_with_retry_after_and_ends_after_its_period(tmp_path: Path) -> None:
    node = start_auth_node(
        tmp_path / "node",
        login_failures_max=3,
        login_lockout_s=3.0,  # long enough for both protocols to meet the lock
        login_lockout_max_s=12.0,
        login_source_rps=1000.0,
        login_source_burst=1000,
    )
    try:
        root = login(node.url, "root", ROOT_PASSWORD)
        _add_user(node, root, "alice", "alice-pw")
        assert [_login(node, "alice", "wrong")[0] for _ in range(3)] == [401, 401, 401]
        locked_at = time.monotonic()
        status, body, retry_after = _login(node, "alice", "alice-pw")  # right, but locked
        assert (status, body["error"]["code"]) == (429, "login_locked")
        assert retry_after in ("2", "3"), retry_after  # whole seconds left, rounded up
        answer = _native_login(node, "alice", "alice-pw")
        assert answer[1] == 429 and answer[2]["error"]["code"] == "login_locked"
        assert 0 < answer[2]["error"]["retry_after_s"] <= 3.0
        assert _login(node, "nobody", "wrong")[0] == 401  # the lock is alice's only
        wait_for(lambda: _login(node, "alice", "alice-pw")[0] == 200, "the lock to end")
        assert time.monotonic() - locked_at >= 2.9
    finally:
        node.stop()


def test_the_source_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    node = start_auth_node(
        tmp_path / "node", login_source_rps=0.1, login_source_burst=4, login_failures_max=0
    )
    try:
        # start_auth_node's login took one of the burst: root's takes another
        root = login(node.url, "root", ROOT_PASSWORD)
        assert [_login(node, f"guess{i}", "pw")[0] for i in range(2)] == [401, 401]
        status, body, retry_after = _login(node, "guess-more", "pw")
        assert (status, body["error"]["code"]) == (429, "rate_limited")
        assert retry_after is not None and 1 <= int(retry_after) <= 11
        answer = _native_login(node, "root", ROOT_PASSWORD)
        assert answer[1] == 429 and answer[2]["error"]["code"] == "rate_limited"
        assert 0 < answer[2]["error"]["retry_after_s"] <= 10
        assert call("GET", f"{node.url}/v1/auth/whoami", token=root)[0] == 200  # not a login
    finally:
        node.stop()


def test_unknown_and_known_users_take_as_long(open_node: SingleNode) -> None:
    root = login(open_node.url, "root", ROOT_PASSWORD)
    _add_user(open_node, root, "timed", "timed-pw")

    def timed(user: str) -> float:
        started = time.perf_counter()
        assert _login(open_node, user, "not-the-password")[0] == 401
        return time.perf_counter() - started

    known, unknown = [], []
    for i in range(TIMING_ATTEMPTS):  # interleaved: load on the machine hits both alike
        known.append(timed("timed"))
        unknown.append(timed(f"no-such-user-{i}"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 <= ratio <= 2.0, (statistics.median(known), statistics.median(unknown))


def test_no_secret_in_the_log_and_the_log_is_private(open_node: SingleNode) -> None:
    root = login(open_node.url, "root", ROOT_PASSWORD)
    passwords = ["carol-first-pw-9f3", "carol-second-pw-7d1"]
    _add_user(open_node, root, "carol", passwords[0])
    status, _ = call(
        "PUT",
        f"{open_node.url}/v1/auth/users/carol/password",
        {"password": passwords[1]},
        token=root,
    )
    assert status == 200
    assert _login(open_node, "carol", passwords[0])[0] == 401
    token = login(open_node.url, "carol", passwords[1])
    assert call("GET", f"{open_node.url}/v1/auth/whoami", token=token)[0] == 200

    def audit() -> list[dict[str, Any]]:
        lines = open_node.log_path.read_text().splitlines()
        records = [json.loads(line) for line in lines if line.startswith("{")]
        return [json.loads(r["msg"]) for r in records if r.get("logger") == "accord.audit"]

    wait_for(
        lambda: any(e["event"] == "login" and e["user"] == "carol" for e in audit()),
        "carol's login in the audit log",
    )
    ops = {e.get("op"): e.get("args") for e in audit() if e["event"] == "admin"}
    assert ops["user_create"] == ["carol"] and ops["user_passwd"] == ["carol"]

    hashes = set()
    for path in open_node.config.data_dir.rglob("*"):
        if path.is_file():
            pattern = rb"scrypt\$\d+\$\d+\$\d+\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)"
            for salt, digest in re.findall(pattern, path.read_bytes()):
                hashes |= {salt.decode(), digest.decode()}
    assert len(hashes) >= 6, "root's and carol's two hashes, as the log holds them"
    log = open_node.log_path.read_text()
    signature = token.split(".")[1]
    for secret in [*passwords, ROOT_PASSWORD, *hashes, token, signature, "scrypt$"]:
        assert secret not in log, secret
    assert open_node.log_path.stat().st_mode & 0o777 == 0o600
