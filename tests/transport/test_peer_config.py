"""PeerTransport's checks on its arguments and on how it is called (no sockets)."""

from __future__ import annotations

import pytest

from accord.invariant import InvariantError
from accord.transport.peer import PeerTransport

from .helpers import CLUSTER, LOCALHOST, heartbeat


def test_send_before_start_or_from_another_node_is_a_bug() -> None:
    transport = PeerTransport(1, CLUSTER, (LOCALHOST, 0), {2: (LOCALHOST, 1)}, print)
    with pytest.raises(InvariantError):
        transport.send(heartbeat(1, 2))
    transport._state = type(transport._state).RUNNING
    with pytest.raises(InvariantError):
        transport.send(heartbeat(3, 2))


@pytest.mark.parametrize(
    "options",
    [
        {"queue_messages_max": 0},
        {"frame_bytes_max": 0},
        {"frame_bytes_max": 1 << 30},
        {"backoff_s_min": 2.0, "backoff_s_max": 1.0},
        {"handshake_timeout_s": 0},
    ],
)
def test_bad_configuration_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        PeerTransport(1, CLUSTER, (LOCALHOST, 0), {}, print, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("node_id", "cluster_id", "peers"),
    [(0, CLUSTER, {}), (1, "", {}), (1, "x" * 256, {}), (1, CLUSTER, {2: (LOCALHOST, 0)})],
)
def test_bad_identity_or_peers_are_refused(
    node_id: int, cluster_id: str, peers: dict[int, tuple[str, int]]
) -> None:
    with pytest.raises(ValueError):
        PeerTransport(node_id, cluster_id, (LOCALHOST, 0), peers, print)
