"""`accord up --secure`: a 3-node cluster with TLS, mutual TLS between peers,
encryption at rest and auth, driven through followers (forwarding carries the user)."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator

import pytest

from accord import AsyncClient
from accord.client.errors import PermissionDenied
from accord.security.certs import issue
from accord.security.tls import client_tls
from accord.testing.cluster import LocalCluster, http, wait_for

from .authnode import call, login

MARKER = b"secure-cluster-plaintext-5b1e"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    c = LocalCluster(tmp_path_factory.mktemp("secure") / "cluster", secure=True)
    c.start()
    password = (c.directory / "secure" / "root.password").read_text().strip()
    body = {"user": "root", "password": password}

    def bootstrapped() -> bool:
        return call("POST", f"{c.url(1)}/v1/auth/login", body, context=c.context)[0] == 200

    wait_for(bootstrapped, "auth bootstrap")
    yield c
    if c.up is not None and c.up.poll() is None:
        c.stop()


def _follower(cluster: LocalCluster) -> int:
    leader = cluster.leader()
    return next(n for n in (1, 2, 3) if n != leader)


def test_secrets_are_private_and_plain_http_gets_nothing(cluster: LocalCluster) -> None:
    secure = cluster.directory / "secure"
    for name in ("root.password", "encryption.key", "ca.key", "node-n1.key"):
        assert stat.S_IMODE((secure / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE((cluster.directory / "client.env").stat().st_mode) == 0o600
    plain = cluster.url(1).replace("https://", "http://")
    with pytest.raises(OSError):
        http("GET", f"{plain}/health", timeout=2)


def test_root_writes_through_a_follower_and_reads_everywhere(cluster: LocalCluster) -> None:
    password = (cluster.directory / "secure" / "root.password").read_text().strip()
    follower = cluster.url(_follower(cluster))
    root = login(follower, "root", password, context=cluster.context)
    status, _ = call(
        "PUT", f"{follower}/v1/kv/app/m", raw=MARKER, token=root, context=cluster.context
    )
    assert status == 200
    for node in (1, 2, 3):
        status, body = call(
            "GET", f"{cluster.url(node)}/v1/kv/app/m", token=root, context=cluster.context
        )
        assert (status, body) == (200, MARKER)
    assert call("GET", f"{follower}/v1/kv/app/m", context=cluster.context)[0] == 401

    async def native() -> None:
        tls = client_tls(cluster.directory / "secure" / "ca.crt")
        urls = [cluster.native_url(n) for n in (1, 2, 3)]
        async with AsyncClient(urls, tls=tls, user="root", password=password) as client:
            await client.put(b"app/native", MARKER)
            got = await client.get(b"app/native")
            assert got is not None and got.value == MARKER

    asyncio.run(native())


def test_a_certificate_user_is_authorized_through_a_follower(cluster: LocalCluster) -> None:
    secure = cluster.directory / "secure"
    password = (secure / "root.password").read_text().strip()
    url = cluster.url(1)
    root = login(url, "root", password, context=cluster.context)
    for method, path, body in [
        ("POST", "/v1/auth/users", {"name": "carol", "password": "unused-pw"}),
        ("POST", "/v1/auth/roles", {"name": "carol-app"}),
        ("POST", "/v1/auth/roles/carol-app/grant", {"prefix": "carol/", "permission": "readwrite"}),
        ("PUT", "/v1/auth/users/carol/roles/carol-app", None),
    ]:
        assert call(method, url + path, body, token=root, context=cluster.context)[0] == 200
    cert, key = issue(secure, "carol", node=False)
    context = client_tls(secure / "ca.crt", cert, key)
    follower = cluster.url(_follower(cluster))
    assert call("PUT", f"{follower}/v1/kv/carol/x", raw=b"v", context=context)[0] == 200
    assert call("PUT", f"{follower}/v1/kv/app/x", raw=b"v", context=context)[0] == 403
    assert call("GET", f"{url}/v1/auth/whoami", context=context) == (200, {"user": "carol"})

    async def native() -> None:  # the certificate authenticates native connections too
        urls = [cluster.native_url(n) for n in (1, 2, 3)]
        async with AsyncClient(urls, tls=context) as client:
            await client.put(b"carol/native", b"v")
            with pytest.raises(PermissionDenied):
                await client.put(b"app/native", b"v")

    asyncio.run(native())


def test_no_plaintext_on_disk(cluster: LocalCluster) -> None:
    cluster.stop()
    files = [p for n in (1, 2, 3) for p in (cluster.directory / f"n{n}" / "data").rglob("*")]
    assert any(p.suffix == ".wal" for p in files)
    for path in files:
        if path.is_file():
            data = path.read_bytes()
            assert MARKER not in data and b"carol/x" not in data, path
