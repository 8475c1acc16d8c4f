"""The client's shard-map cache: keys to shards, shards to leaders, misses."""

from __future__ import annotations

from accord.client.routes import ShardRoutes
from accord.shard.slots import slot_of

DOC = {
    "version": 3,
    "shards": [
        {"id": 1, "slots": [[0, 500_000]], "replicas": ["a", "b"], "leader": "a"},
        {"id": 2, "slots": [[500_000, 1 << 20]], "replicas": ["a", "b"], "leader": "b"},
    ],
}
URLS = {"a": "accord://h:1", "b": "accord://h:2"}


def key_on(shard: int) -> bytes:
    return next(
        k for i in range(1000) if (slot_of(k := f"k{i}".encode()) < 500_000) == (shard == 1)
    )


def test_a_key_goes_to_its_shards_leader() -> None:
    routes = ShardRoutes()
    assert routes.shard_of(b"k") is None  # no map yet: the ordinary route
    routes.learn(DOC, URLS)
    for shard in (1, 2):
        key = key_on(shard)
        assert routes.shard_of(key) == shard
        assert routes.leader_url(shard) == URLS["a" if shard == 1 else "b"]
    assert routes.shard_of(b"a", b"z") is None  # may span shards
    assert routes.shard_of(b"{t}x", b"{t}y") == routes.shard_of(b"t")


def test_a_miss_moves_one_shards_leader_or_asks_for_the_map_again() -> None:
    routes = ShardRoutes()
    routes.learn(DOC, URLS)
    routes.set_leader(1, "accord://h:2")
    assert routes.leader_url(1) == "accord://h:2" and routes.leader_url(2) == URLS["b"]
    assert not routes.stale
    routes.set_leader(2, None)
    assert routes.leader_url(2) is None and routes.stale
    routes.learn(DOC, URLS)
    assert not routes.stale and routes.leader_url(2) == URLS["b"]


def test_older_or_malformed_maps_change_nothing() -> None:
    routes = ShardRoutes()
    routes.learn(DOC, URLS)
    routes.learn({**DOC, "version": 2, "shards": []}, URLS)
    assert routes.version == 3 and routes.shard_of(key_on(1)) == 1
    for bad in ({"version": "x"}, {"version": 4, "shards": [{"id": "1"}]}, {"version": 5}):
        routes.learn(bad, URLS)
        assert routes.version == 3
    single = ShardRoutes()
    single.learn({"version": 0, "shards": [{"id": 0, "slots": [[0, 1 << 20]]}]}, URLS)
    assert single.shard_of(b"k") is None  # a cluster of one group: no routing
