"""The client's cache of the shard map: which shard owns a key, and where its leader is.

Theory of operation
-------------------
On a sharded cluster every node accepts every request and forwards it to the shard's
leader (HTTP) or names that leader (`not_leader`, native protocol). A client that
knows the map saves that hop: `ShardRoutes` keeps the slot ranges of each shard from
`GET /v1/cluster/shards` (or the native `shards` operation) and the URL of each
shard's leader, resolved through the members' names. A request about one key (or a
range within one hash tag) goes straight to its shard's leader; a `not_leader`
answer about a shard moves that shard's leader, not the cluster's; a miss with no
hint, or a map older than `ROUTES_REFRESH_S`, makes the client fetch the map again.

A cluster of one group reports version 0 and the cache stays empty: every request
takes the ordinary route (the cluster's leader).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from typing import Any

from accord.shard.slots import range_slot


class ShardRoutes:
    def __init__(self) -> None:
        self.version = 0
        """The map version learned last (0: none, or a cluster of one group)."""
        self._starts: list[int] = []
        self._owners: list[int] = []
        self.leaders: dict[int, str] = {}
        """Shard id -> its leader's URL, as last learned."""
        self.stale = False
        """A miss was seen: fetch the map again before the next routed request."""

    def learn(self, doc: Mapping[str, Any], urls: Mapping[str, str]) -> None:
        """Adopt the map of a `shards` answer; `urls` maps member names to URLs. A
        malformed answer (or one older than the map held) changes nothing."""
        version = doc.get("version")
        rows = doc.get("shards")
        if not isinstance(version, int) or not isinstance(rows, list) or version < self.version:
            return
        ranges: list[tuple[int, int]] = []
        leaders: dict[int, str] = {}
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), int):
                return
            for pair in row.get("slots") or []:
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], int)):
                    return
                ranges.append((pair[0], row["id"]))
            url = urls.get(row.get("leader") or "")
            if url:
                leaders[row["id"]] = url
        ranges.sort()
        self.version = version
        self._starts = [start for start, _ in ranges]
        self._owners = [owner for _, owner in ranges]
        self.leaders = leaders
        self.stale = False

    def shard_of(self, key: bytes, range_end: bytes = b"") -> int | None:
        """The one shard `[key, range_end)` lives on; None without a map, or for a
        range that may span shards."""
        if not self.version or not self._starts:
            return None
        slot = range_slot(key, range_end)
        if slot is None:
            return None
        return self._owners[bisect_right(self._starts, slot) - 1]

    def leader_url(self, shard: int) -> str | None:
        return self.leaders.get(shard)

    def set_leader(self, shard: int, url: str | None) -> None:
        """A `not_leader` answer about `shard`: its leader is `url` (None: unknown,
        so the map is fetched again)."""
        if url:
            self.leaders[shard] = url
        else:
            self.leaders.pop(shard, None)
            self.stale = True
