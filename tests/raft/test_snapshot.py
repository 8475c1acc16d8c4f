"""Log compaction and InstallSnapshot (Raft paper section 7), sent in chunks."""

from __future__ import annotations

from dataclasses import replace

from accord.raft import ConfChange, ConfChangeOp, Message, MessageType, Snapshot
from accord.testing.raftnet import RaftNetwork

from .helpers import of_type, pump_until

CHUNK_BYTES = 10
SNAPSHOT_DATA = bytes(range(35))  # four chunks: 10 + 10 + 10 + 5 bytes


def compact_leader(net: RaftNetwork, data: bytes = SNAPSHOT_DATA) -> Snapshot:
    """Snapshot the leader's state at its applied index, as its driver would: take the
    snapshot, persist it and drop the covered entries from its disk."""
    leader = net.core(1)
    snapshot = leader.compact(leader.status().applied, data)
    mem = net.nodes[1]
    mem.snapshot = snapshot
    mem.log = [e for e in mem.log if e.index > snapshot.index]
    return snapshot


def lagging_cluster(**limits: int) -> tuple[RaftNetwork, Snapshot]:
    """Node 3 misses five entries; the leader then compacts its log past them."""
    net = RaftNetwork(
        [1, 2, 3], configure=lambda c: replace(c, snapshot_chunk_bytes=CHUNK_BYTES, **limits)
    )
    net.elect(1)
    net.isolate(3)
    for i in range(5):
        net.propose(1, b"e%d" % i)
    snapshot = compact_leader(net)
    net.heal()
    return net, snapshot


def test_follower_too_far_behind_receives_the_snapshot_in_chunks() -> None:
    net, snapshot = lagging_cluster()
    assert net.core(1).status().first_index == snapshot.index + 1
    mark = len(net.sent)
    net.tick(1)
    chunks = [m.chunk for m in of_type(net.sent[mark:], MessageType.SNAPSHOT, dst=3)]
    assert [(c.offset, len(c.data)) for c in chunks if c] == [(0, 10), (10, 10), (20, 10), (30, 5)]
    assert all(c and c.index == snapshot.index and c.total_bytes == 35 for c in chunks)


def test_follower_ready_carries_the_snapshot() -> None:
    net, snapshot = lagging_cluster()
    net.tick(1)
    assert net.nodes[3].snapshot == snapshot  # set only from Ready.snapshot
    assert net.nodes[3].log == [], "the log is replaced by an empty one after the snapshot"
    status = net.core(3).status()
    assert status.commit == snapshot.index
    assert status.first_index == snapshot.index + 1
    assert status.conf == snapshot.conf


def test_follower_catches_up_on_the_log_after_the_snapshot() -> None:
    net, snapshot = lagging_cluster()
    net.tick(1)
    net.propose(1, b"after")
    net.tick_all(1)
    assert net.nodes[3].applied_data() == [b"after"]
    assert [e.index for e in net.nodes[3].log] == [snapshot.index + 1]
    assert net.core(3).status().commit == net.core(1).status().commit


def test_follower_within_compaction_keep_entries_catches_up_without_a_snapshot() -> None:
    net, snapshot = lagging_cluster(compaction_keep_entries=10)
    net.tick_all(2)
    assert not of_type(net.sent, MessageType.SNAPSHOT)
    assert net.nodes[3].applied_data() == [b"e%d" % i for i in range(5)]
    assert net.core(3).status().commit == snapshot.index


def test_restarted_nodes_recover_from_snapshot_entries_and_hard_state() -> None:
    net, snapshot = lagging_cluster()
    net.tick(1)
    net.propose(1, b"after")
    net.tick_all(1)
    before = {n: net.core(n).status() for n in (1, 3)}
    for node in (1, 3):  # node 1 compacted locally; node 3 installed the leader's snapshot
        assert net.nodes[node].snapshot == snapshot
        net.restart(node)
        status = net.core(node).status()
        assert (status.term, status.commit) == (before[node].term, before[node].commit)
        assert status.first_index == snapshot.index + 1
        assert status.last_index == before[node].last_index
        assert status.conf == snapshot.conf
    net.elect(2)
    net.propose(2, b"later")
    net.tick_all(2)
    commits = {net.core(n).status().commit for n in (1, 2, 3)}
    assert len(commits) == 1
    for node in (1, 3):  # re-applied from the snapshot onwards
        assert net.nodes[node].applied_data() == [b"after", b"later"]


def test_lost_snapshot_chunk_is_resent_after_a_heartbeat() -> None:
    net, snapshot = lagging_cluster()
    net.core(1).tick()  # heartbeat: the leader learns node 3 is back and starts sending
    lost: list[Message] = []

    def second_chunk_queued() -> bool:
        return any(
            m.type == MessageType.SNAPSHOT and m.chunk and m.chunk.offset == 10 for m in net.queue
        )

    pump_until(net, second_chunk_queued)
    for m in list(net.queue):
        if m.type == MessageType.SNAPSHOT:
            net.queue.remove(m)
            lost.append(m)
    net.settle()
    assert lost and net.nodes[3].snapshot is None, "the transfer stalls on the lost chunk"
    net.tick(1)
    assert net.nodes[3].snapshot == snapshot
    assert net.core(3).status().commit == snapshot.index


def test_node_added_after_compaction_starts_from_the_snapshot() -> None:
    net = RaftNetwork([1, 2, 3], configure=lambda c: replace(c, snapshot_chunk_bytes=CHUNK_BYTES))
    net.elect(1)
    for i in range(3):
        net.propose(1, b"e%d" % i)
    snapshot = compact_leader(net)
    net.core(1).propose_conf_change(ConfChange(((ConfChangeOp.ADD_LEARNER, 4),)))
    net.add_node(4)
    net.settle()
    net.propose(1, b"after")
    net.tick_all(2)
    assert net.nodes[4].snapshot == snapshot
    # The snapshot predates the change that added node 4; the log after it adds it.
    assert 4 not in snapshot.conf.members()
    assert net.core(4).status().conf.learners == {4}
    assert net.nodes[4].applied_data() == [b"after"]
    assert net.core(4).status().commit == net.core(1).status().commit
