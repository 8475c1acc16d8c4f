"""Real local clusters for the client tests.

`cluster` is one 3-node cluster shared by the whole session (tests use their own
keys and never stop its nodes); `fresh_cluster` is a cluster of its own for a test
that kills nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.testing.cluster import LocalCluster, running_cluster


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path_factory.mktemp("client") / "cluster")


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    yield from running_cluster(tmp_path / "cluster")


@pytest.fixture(params=["http", "native"])
def protocol(request: pytest.FixtureRequest) -> str:
    """The client protocol a test runs over: the HTTP API or the native protocol."""
    return str(request.param)
