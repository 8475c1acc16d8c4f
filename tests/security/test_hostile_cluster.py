"""Every class of hostile peer and client, against real `accord up` clusters.

The CI version of `bench/hostile.py` (accord.chaos.hostile): the same reproducers,
with smaller figures where the attack scales (values of 128 KiB instead of 1 MiB,
1,000 leases instead of 5,000), judged by the same generic criteria: every node
alive, no 5xx, the leader kept, memory bounded, no data of another user, refused.
A test fails with the table of what broke.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.chaos.hostile import Outcome, table
from accord.chaos.hostile import auth as auth_repro
from accord.chaos.hostile import peer as peer_repro
from accord.chaos.hostile import requests as request_repro
from accord.chaos.hostile.suite import CONNECTIONS_MAX, lease_storm_short
from accord.chaos.leasestorm import NODE_ENV
from accord.chaos.localup import UpCluster, pid_alive

pytestmark = pytest.mark.slow

VALUE_BYTES = 128 << 10
STORM_LEASES = 1_000
STORM_SECONDS = 6.0
STORM_WRITE_INTERVAL_S = 1.0


def _cluster(directory: Path, **settings: object) -> Iterator[UpCluster]:
    cluster = UpCluster(directory, **settings)  # type: ignore[arg-type]
    with cluster:
        yield cluster
    for node in cluster.nodes:
        assert not pid_alive(node.pid), f"{node.name} (pid {node.pid}) still runs"


@pytest.fixture(scope="module")
def peer_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    yield from _cluster(tmp_path_factory.mktemp("peer") / "c")


@pytest.fixture(scope="module")
def insecure_peer_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    # Plaintext peers, so that a forged message reaches the decoder's bounds.
    env = {"ACCORD_INSECURE_PEERS": "1"}
    yield from _cluster(tmp_path_factory.mktemp("insecure") / "c", env=env)


@pytest.fixture(scope="module")
def plain_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    yield from _cluster(tmp_path_factory.mktemp("plain") / "c", env=dict(NODE_ENV))


@pytest.fixture(scope="module")
def secure_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpCluster]:
    env = {"ACCORD_CONNECTIONS_MAX": str(CONNECTIONS_MAX)}
    yield from _cluster(tmp_path_factory.mktemp("secure") / "c", secure=True, env=env)


def assert_held(outcomes: list[Outcome]) -> None:
    assert all(o.held for o in outcomes), "\n" + table(outcomes)


def test_peer_port_refuses_outsiders(peer_cluster: UpCluster) -> None:
    outcomes = [
        peer_repro.plaintext_hello(peer_cluster),
        peer_repro.refused_hello_leak(peer_cluster),
        peer_repro.heartbeat_depose(peer_cluster),
        peer_repro.forged_append(peer_cluster),
        peer_repro.cert_claims_other_id(peer_cluster),
    ]
    assert_held(outcomes)


def test_no_peer_message_overflows_a_node(insecure_peer_cluster: UpCluster) -> None:
    assert_held([peer_repro.term_overflow(insecure_peer_cluster)])


def test_one_request_does_bounded_work(plain_cluster: UpCluster) -> None:
    assert_held([request_repro.read_amplification(plain_cluster, VALUE_BYTES)])


def test_bad_input_gets_4xx(plain_cluster: UpCluster) -> None:
    assert_held(request_repro.bad_input(plain_cluster))


def test_small_points(plain_cluster: UpCluster) -> None:
    assert_held(request_repro.small_points(plain_cluster))


def test_leases_cannot_storm(plain_cluster: UpCluster) -> None:
    # Kills the leader: after the other tests on this cluster.
    outcome = lease_storm_short(plain_cluster, STORM_LEASES, STORM_SECONDS, STORM_WRITE_INTERVAL_S)
    assert_held([outcome])


def test_deleted_users_token_stays_dead(secure_cluster: UpCluster) -> None:
    assert_held([auth_repro.token_resurrection(secure_cluster)])


def test_leases_belong_to_their_user(secure_cluster: UpCluster) -> None:
    assert_held(auth_repro.leases_across_tenants(secure_cluster))


def test_logins_and_connections(secure_cluster: UpCluster) -> None:
    # Last on this cluster: a lockout may refuse later logins from this address.
    outcomes = [
        *auth_repro.secrets_in_logs(secure_cluster),
        *auth_repro.idle_sockets(secure_cluster),
        auth_repro.login_timing(secure_cluster),
        auth_repro.login_hammer(secure_cluster),
    ]
    assert_held(outcomes)
