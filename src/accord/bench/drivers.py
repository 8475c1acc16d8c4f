"""The systems a benchmark can drive, behind one small interface.

`accord` goes through `accord.AsyncClient` — the real client, with its leader routing,
sessions and retries — over the native protocol (`accord://` endpoints) or HTTP
(`http://`). `etcd` goes through etcd's JSON gateway (`/v3/kv/...`) with aiohttp, so
the same load generator can drive etcd side by side.
"""

from __future__ import annotations

import base64
import itertools
from typing import Protocol

import aiohttp

from accord.client import AsyncClient, Compare, Op


class Driver(Protocol):
    async def put(self, key: bytes, value: bytes) -> None: ...

    async def get(self, key: bytes, serializable: bool) -> None: ...

    async def cas(self, key: bytes, value: bytes) -> bool:
        """Read the key's mod revision, then write `value` only if it is unchanged;
        False if another writer came in between."""
        ...

    async def close(self) -> None: ...


class AccordDriver:
    def __init__(self, endpoints: list[str]) -> None:
        self.client = AsyncClient(endpoints)

    async def put(self, key: bytes, value: bytes) -> None:
        await self.client.put(key, value)

    async def get(self, key: bytes, serializable: bool) -> None:
        await self.client.get(key, serializable=serializable)

    async def cas(self, key: bytes, value: bytes) -> bool:
        current = await self.client.get(key)
        revision = current.mod_revision if current else 0
        result = await self.client.txn(
            compare=[Compare.mod_revision(key) == revision], success=[Op.put(key, value)]
        )
        return result.succeeded

    async def close(self) -> None:
        await self.client.aclose()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class EtcdGatewayError(Exception):
    """etcd's gateway answered with an error status."""


class EtcdDriver:
    """etcd v3 through its gRPC-JSON gateway, round robin over the endpoints (etcd
    forwards writes to its leader itself)."""

    def __init__(self, endpoints: list[str]) -> None:
        self._urls = itertools.cycle([e.rstrip("/") for e in endpoints])
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def _post(self, path: str, body: dict[str, object]) -> dict[str, object]:
        async with self._session.post(next(self._urls) + path, json=body) as response:
            data: dict[str, object] = await response.json(content_type=None)
            if response.status != 200:
                raise EtcdGatewayError(f"{response.status}: {data}")
            return data

    async def put(self, key: bytes, value: bytes) -> None:
        await self._post("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    async def get(self, key: bytes, serializable: bool) -> None:
        await self._post("/v3/kv/range", {"key": _b64(key), "serializable": serializable})

    async def cas(self, key: bytes, value: bytes) -> bool:
        got = await self._post("/v3/kv/range", {"key": _b64(key)})
        kvs = got.get("kvs")
        revision = int(kvs[0]["mod_revision"]) if isinstance(kvs, list) and kvs else 0
        answer = await self._post(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": _b64(key),
                        "target": "MOD",
                        "result": "EQUAL",
                        "mod_revision": revision,
                    }
                ],
                "success": [{"request_put": {"key": _b64(key), "value": _b64(value)}}],
            },
        )
        return bool(answer.get("succeeded"))

    async def close(self) -> None:
        await self._session.close()


TARGETS = ("accord", "etcd")


def make_driver(target: str, endpoints: list[str]) -> Driver:
    if target == "etcd":
        return EtcdDriver(endpoints)
    return AccordDriver(endpoints)
