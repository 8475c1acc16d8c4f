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


def test_still_serving(node: SingleNode) -> None:
    assert call("GET", f"{node.url}/health")[0] == 200
