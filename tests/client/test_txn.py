"""Transaction builders and the JSON the HTTP API takes and gives back."""

from __future__ import annotations

import json

import pytest

from accord.client import Compare, InvalidRequest, Op
from accord.client.results import BadAnswer, decode_event, decode_status
from accord.client.txn import compare_from_json, decode_txn, key_range, op_from_json, txn_body
from accord.kv.results import DeleteResult, GetResult, PutResult, RangeResult
from accord.kv.types import EventType, KeyValue


def test_comparisons_read_like_python() -> None:
    assert (Compare.value("k") == b"v") == Compare(b"k", "value", "==", b"v")
    assert (Compare.value(b"k") != "v").operator == "!="
    assert (Compare.version("k") > 0) == Compare(b"k", "version", ">", 0)
    assert (Compare.create_revision("k") < 5).target == "create_revision"
    assert (Compare.mod_revision("k") == 7).operand == 7


def test_comparisons_check_their_operand() -> None:
    with pytest.raises(TypeError):
        _ = Compare.value("k") == 3
    with pytest.raises(TypeError):
        _ = Compare.version("k") > "1"
    with pytest.raises(TypeError):
        _ = Compare.version("k") == True  # noqa: E712


def test_ops_and_comparisons_encode_as_the_api_expects() -> None:
    body = json.loads(
        txn_body(
            [Compare.value("k") == b"\xff", Compare.version("k") > 1],
            [Op.put("k", "v", lease=7), Op.get("k", revision=3)],
            [Op.delete(prefix="p/"), Op.range("a", "c", limit=2)],
        )
    )
    assert body == {
        "compare": [
            {"key": "k", "target": "value", "op": "==", "value_b64": "/w=="},
            {"key": "k", "target": "version", "op": ">", "value": 1},
        ],
        "success": [
            {"put": {"key": "k", "value": "v", "lease": 7}},
            {"get": {"key": "k", "revision": 3}},
        ],
        "failure": [
            {"delete": {"key": "p/", "range_end": "p0"}},
            {"range": {"key": "a", "range_end": "c", "limit": 2}},
        ],
    }


def test_the_json_form_reads_back_to_the_same_builders() -> None:
    compare = [Compare.value("k") == b"\xff\x00", Compare.mod_revision("k") < 9]
    ops = [Op.put("k", b"\x01"), Op.get("g"), Op.delete("d"), Op.range("a", "b", limit=1)]
    body = json.loads(txn_body(compare, ops, []))
    assert [compare_from_json(c) for c in body["compare"]] == compare
    assert [op_from_json(o) for o in body["success"]] == ops


@pytest.mark.parametrize(
    "raw",
    [
        {"put": {"key": "k"}, "get": {"key": "k"}},
        {"merge": {"key": "k"}},
        {"put": {"key": "k", "value": "v", "lease": "7"}},
        ["put"],
    ],
)
def test_bad_ops_are_invalid_requests(raw: object) -> None:
    with pytest.raises(InvalidRequest):
        op_from_json(raw)


def test_key_ranges() -> None:
    assert key_range("k", None, None) == (b"k", b"")
    assert key_range("a", "c", None) == (b"a", b"c")
    assert key_range(None, None, "ab") == (b"ab", b"ac")
    assert key_range(None, None, None) == (b"", b"\0")
    with pytest.raises(TypeError):
        key_range("k", None, "p")


def test_responses_are_decoded_by_the_ops_of_the_branch_that_ran() -> None:
    kv = {"key": "k", "value": "v", "create_revision": 2, "mod_revision": 4, "version": 2}
    answer = {
        "succeeded": False,
        "revision": 5,
        "responses": [
            {"revision": 5},
            {"revision": 5, "kv": kv},
            {"revision": 5, "deleted": 1},
            {"revision": 5, "count": 3, "more": True, "kvs": [kv]},
        ],
    }
    failure = [Op.put("k", "v"), Op.get("k"), Op.delete("d"), Op.range(prefix="k")]
    result = decode_txn(answer, [], failure)
    expected_kv = KeyValue(b"k", b"v", 2, 4, 2, 0)
    assert result.responses == (
        PutResult(5),
        GetResult(5, expected_kv),
        DeleteResult(5, 1),
        RangeResult(5, (expected_kv,), 3, True),
    )
    with pytest.raises(BadAnswer):
        decode_txn({**answer, "succeeded": True}, [], failure)  # 4 responses for 0 ops


def test_events_and_status_decode() -> None:
    tombstone = {"key_b64": "/w==", "value": "", "create_revision": 0, "mod_revision": 9}
    event = decode_event({"type": "delete", "kv": {**tombstone, "version": 0}, "prev_kv": None})
    assert event.type == EventType.DELETE and event.kv.key == b"\xff" and event.revision == 9
    status = decode_status(
        {
            "id": 1,
            "role": "follower",
            "leader": 2,
            "term": 3,
            "commit": 10,
            "applied": 10,
            "revision": 4,
            "members": [
                {"id": 1, "name": "n1", "url": "http://a", "peer": "a:1", "role": "voter"},
                {"id": 2, "name": "n2", "url": "http://b", "peer": "b:1", "role": "voter"},
            ],
        }
    )
    assert status.leader_url == "http://b"
    assert [m.name for m in status.members] == ["n1", "n2"]
