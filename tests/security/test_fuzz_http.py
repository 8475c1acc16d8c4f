"""Hypothesis against a real node's HTTP API, guided by its OpenAPI document: every
operation with arbitrary path parameters, query strings and bodies, with auth on and a
valid token. No answer may be a 5xx, and the node keeps serving."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.testing.single import SingleNode

from .authnode import ROOT_PASSWORD, call, login, setup_alice, start_auth_node

texts = st.text(max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = start_auth_node(tmp_path_factory.mktemp("fuzzhttp") / "node")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def setup(node: SingleNode) -> dict[str, Any]:
    root = login(node.url, "root", ROOT_PASSWORD)
    alice = setup_alice(node.url, root)
    status, document = call("GET", f"{node.url}/v1/openapi.json")
    assert status == 200
    operations = sorted(
        (method.upper(), path)
        for path, ops in document["paths"].items()
        for method in ops
        # Not the streaming watch, nor membership changes (removing the only member
        # would take the node's availability, not test its input handling).
        if method in ("get", "put", "post", "delete")
        and path != "/v1/watch"
        and not (path.startswith("/v1/members") and method != "get")
    )
    return {"tokens": [root, alice], "operations": operations}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_no_5xx_for_arbitrary_input(node: SingleNode, setup: dict[str, Any], data: Any) -> None:
    method, path = data.draw(st.sampled_from(setup["operations"]))
    for name in ("{key}", "{id}", "{name}", "{role}"):
        if name in path:
            value = data.draw(texts.filter(bool) | st.integers(min_value=0).map(str))
            path = path.replace(name, urllib.parse.quote(value, safe=""))
    query = data.draw(st.dictionaries(st.sampled_from(
        ["key", "range_end", "prefix", "limit", "revision", "consistency", "lease", "x"]
    ), texts, max_size=3))  # fmt: skip
    if query:
        path += "?" + urllib.parse.urlencode(query)
    token = data.draw(st.sampled_from([*setup["tokens"], None]))
    raw = data.draw(st.one_of(st.none(), st.binary(max_size=200)))
    body = None if raw is not None else data.draw(json_values)
    if method in ("GET", "DELETE"):
        raw, body = None, None
    status, answer = call(method, node.url + path, body, token=token, raw=raw)
    assert status < 500, (method, path, body, raw, answer)


# Numbers JSON can carry but Python's own int() refuses (over 4300 digits) or that
# overflow 64 bits, in every integer field of every body; and wrong types there too.
numbers = st.one_of(
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2).map(str),
    st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=19, max_value=6000).map(lambda n: "-" + "9" * n),
    st.sampled_from(["-1", "0", "1e400", "NaN", "Infinity", "true", '"7"', "[1]", "{}", "null"]),
)
INT_BODIES = [
    ("/v1/lease/grant", '{{"ttl": {n}}}'),
    ("/v1/txn", '{{"success": [{{"get": {{"key": "a", "revision": {n}}}}}]}}'),
    ("/v1/txn", '{{"failure": [{{"range": {{"key": "a", "limit": {n}}}}}]}}'),
    ("/v1/txn", '{{"success": [{{"put": {{"key": "a", "value": "v", "lease": {n}}}}}]}}'),
    ("/v1/txn", '{{"compare": [{{"key": "a", "target": "mod", "op": "<", "value": {n}}}]}}'),
    # An address that does not parse: a valid id adds no member.
    ("/v1/members", '{{"id": {n}, "name": "x", "peer": "nowhere", "client": "127.0.0.1:2"}}'),
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(template=st.sampled_from(INT_BODIES), number=numbers)
def test_no_5xx_for_any_number_in_an_integer_field(
    node: SingleNode, setup: dict[str, Any], template: tuple[str, str], number: str
) -> None:
    path, body = template
    raw = body.format(n=number).encode()
    status, answer = call("POST", node.url + path, token=setup["tokens"][0], raw=raw)
    assert status < 500, (path, raw[:80], answer)
    if not number.isdigit() or len(number) > 19 or int(number) >= 2**63:
        assert 400 <= status < 500, (path, raw[:80], answer)  # out of range: refused


def test_still_serving(node: SingleNode) -> None:
    assert call("GET", f"{node.url}/health")[0] == 200
