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
    events = _parse_line(
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
