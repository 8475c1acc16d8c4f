"""How the watch reads the lines of a stream: events, resumable cancellations, errors."""

from __future__ import annotations

import json

import pytest

from accord.client import Compacted, LimitExceeded
from accord.client.results import BadAnswer
from accord.client.watch import _parse_line, _Resume
from accord.kv.types import EventType


def line(obj: object) -> bytes:
    return json.dumps(obj).encode()


def test_a_batch_becomes_events_in_order() -> None:
    kv = {"key": "k", "value": "v", "create_revision": 3, "mod_revision": 3, "version": 1}
    tomb = {"key": "j", "value": "", "create_revision": 0, "mod_revision": 4, "version": 0}
    shard, events = _parse_line(
        "http://n1",
        line(
            {
                "events": [
                    {"type": "put", "kv": kv, "prev_kv": None},
                    {"type": "delete", "kv": tomb, "prev_kv": {**kv, "key": "j"}},
                ]
            }
        ),
    )
    assert [(e.type, e.revision) for e in events] == [(EventType.PUT, 3), (EventType.DELETE, 4)]
    assert events[1].prev_kv is not None and events[1].prev_kv.key == b"j"
    assert shard == 0  # a cluster of one group names no shard


def test_a_sharded_batch_names_its_one_shard() -> None:
    kv = {"key": "k", "value": "v", "create_revision": 3, "mod_revision": 3, "version": 1}
    event = {"type": "put", "kv": kv, "prev_kv": None, "shard": 2}
    shard, events = _parse_line("u", line({"events": [event, {**event, "kv": {**kv, "key": "l"}}]}))
    assert shard == 2 and [e.kv.key for e in events] == [b"k", b"l"]
    with pytest.raises(BadAnswer):
        _parse_line("u", line({"events": [event, {**event, "shard": 3}]}))


def test_a_cancelled_watcher_is_resumed_and_other_errors_are_raised() -> None:
    with pytest.raises(_Resume):
        _parse_line("u", line({"error": {"code": "watch_cancelled", "message": "slow reader"}}))
    with pytest.raises(Compacted):
        _parse_line("u", line({"error": {"code": "compacted", "message": "gone"}}))
    with pytest.raises(LimitExceeded):
        _parse_line("u", line({"error": {"code": "limit_exceeded", "message": "big"}}))


@pytest.mark.parametrize("raw", [b"{not json", b"[1]", b'{"events": 3}', b'{"events": [{}]}'])
def test_garbage_is_a_bad_answer(raw: bytes) -> None:
    with pytest.raises(BadAnswer):
        _parse_line("u", raw)
