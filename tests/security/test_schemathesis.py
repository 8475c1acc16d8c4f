"""Schemathesis against a real node with auth on, from the OpenAPI document it serves:
generated requests for every operation (as root and as a user with grants), and no
answer may be a server error."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402

from accord.api.openapi import spec  # noqa: E402
from accord.security.openapi import with_auth  # noqa: E402
from accord.testing.single import SingleNode  # noqa: E402

from .authnode import ROOT_PASSWORD, login, setup_alice, start_auth_node  # noqa: E402

# Not the streaming watch, nor membership changes (removing the only member takes the
# node's availability: a 503, by design, not a failure to handle input).
schema = (
    schemathesis.openapi.from_dict(with_auth(spec()))
    .exclude(path="/v1/watch")
    .exclude(path_regex="^/v1/members", method=["POST", "DELETE"])
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = start_auth_node(tmp_path_factory.mktemp("schemathesis") / "node")
    yield n
    n.stop()


@pytest.fixture(scope="module")
def tokens(node: SingleNode) -> list[str]:
    root = login(node.url, "root", ROOT_PASSWORD)
    return [root, setup_alice(node.url, root)]


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: Any, node: SingleNode, tokens: list[str]) -> None:
    for token in tokens:
        response = case.call(base_url=node.url, headers={"Authorization": f"Bearer {token}"})
        case.validate_response(response, checks=[not_a_server_error])
