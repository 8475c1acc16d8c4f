"""Golden interaction transcripts: fixed scenarios with every message rendered on one
line, compared against `golden/<scenario>.txt`.

A change in the protocol shows up as a reviewable diff of who sent what. After an
intended change, regenerate with `pytest tests/raft --rewrite-golden` and review the
diff before committing it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from accord.raft import ConfChange, Entry, EntryType, Message, MessageType, Role
from accord.testing.raftnet import RaftNetwork

GOLDEN_DIR = Path(__file__).parent / "golden"
T = MessageType


def render_entry(e: Entry) -> str:
    if e.type == EntryType.CONF_CHANGE:
        ops = " ".join(
            f"{op.name.lower()}:{node}" for op, node in ConfChange.decode(e.data).changes
        )
        return f"{e.term}/{e.index} conf({ops or 'leave-joint'})"
    if not e.data:
        return f"{e.term}/{e.index}"
    return f"{e.term}/{e.index} {e.data.decode(errors='backslashreplace')!r}"


def render_context(m: Message) -> list[str]:
    if not m.context:
        return []
    if m.type in (T.HEARTBEAT, T.HEARTBEAT_RESP):  # a ReadIndex round id
        return [f"read_round={int.from_bytes(m.context, 'big')}"]
    return [f"context={m.context.decode(errors='backslashreplace')}"]


def render_message(m: Message) -> str:
    parts = [f"{m.src}->{m.dst}", m.type.name, f"term={m.term}"]
    if m.type == T.APPEND:
        entries = ", ".join(render_entry(e) for e in m.entries)
        parts += [f"index={m.index}", f"log_term={m.log_term}", f"commit={m.commit}"]
        parts.append(f"entries=[{entries}]")
    elif m.type == T.APPEND_RESP:
        parts.append(f"index={m.index}")
        if m.reject:
            parts += ["reject", f"hint={m.reject_hint}", f"hint_term={m.log_term}"]
    elif m.type == T.HEARTBEAT:
        parts.append(f"commit={m.commit}")
    elif m.type in (T.VOTE, T.PRE_VOTE):
        parts += [f"index={m.index}", f"log_term={m.log_term}"]
    elif m.type == T.SNAPSHOT and m.chunk is not None:
        c = m.chunk
        parts += [f"index={c.index}", f"snap_term={c.term}", f"offset={c.offset}"]
        parts.append(f"bytes={len(c.data)}/{c.total_bytes}")
    elif m.type == T.SNAPSHOT_RESP:
        parts += [f"index={m.index}", f"offset={m.offset}"]
    elif m.type == T.READ_INDEX_RESP:
        parts.append(f"index={m.index}")
    if m.type in (T.VOTE_RESP, T.PRE_VOTE_RESP, T.READ_INDEX_RESP) and m.reject:
        parts.append("reject")
    parts += render_context(m)
    return " ".join(parts)


class Transcript:
    """Runs commands on a network and records every message each one caused."""

    def __init__(self, net: RaftNetwork, title: str) -> None:
        self.net = net
        self.lines: list[str] = [
            f"# {title}",
            "# '> command', then every message it caused in send order",
            "# (src->dst TYPE term ...; DROPPED = lost on a cut link), then each node's state.",
            "",
        ]

    def run(self, command: str, action: Callable[[], object]) -> None:
        mark = len(self.net.sent)
        result = action()
        self.lines.append(f"> {command}")
        if isinstance(result, str):
            self.lines.append(f"# {result}")
        for m in self.net.sent[mark:]:
            lost = (m.src, m.dst) in self.net.cut or m.type in self.net.drop_types
            self.lines.append(render_message(m) + (" DROPPED" if lost else ""))
        self.lines.extend(self.state())
        self.lines.append("")

    def state(self) -> list[str]:
        out = []
        for node, mem in sorted(self.net.nodes.items()):
            s = mem.core.status()
            applied = b",".join(mem.applied_data()).decode()
            out.append(
                f"  {node}: {s.role.name} term={s.term} vote={s.vote} leader={s.leader} "
                f"commit={s.commit} last={s.last_index} applied=[{applied}]"
            )
        return out

    def text(self) -> str:
        return "\n".join(self.lines).rstrip("\n") + "\n"


def tick_until_campaign(net: RaftNetwork, node: int) -> str:
    ticks = 0
    while net.core(node).role == Role.FOLLOWER:
        net.tick(node)
        ticks += 1
        assert ticks < 100
    return f"election timeout fired after {ticks} ticks"


def cut(net: RaftNetwork, src: int, dst: int) -> None:
    net.cut.add((src, dst))


def transfer(net: RaftNetwork, leader: int, target: int) -> None:
    net.core(leader).transfer_leadership(target)
    net.settle()


def scenario_election() -> Transcript:
    net = RaftNetwork([1, 2, 3], seed=1)
    t = Transcript(net, "election: node 1 times out, wins PreVote then the vote (3 nodes, seed 1)")
    t.run("tick 1 until it campaigns", lambda: tick_until_campaign(net, 1))
    t.run("tick 1", lambda: net.tick(1))
    t.run("propose 1 'x'", lambda: net.propose(1, b"x"))
    t.run("tick 1", lambda: net.tick(1))
    return t


def scenario_replication_with_a_lost_message() -> Transcript:
    net = RaftNetwork([1, 2, 3], seed=1)
    t = Transcript(net, "replication: an append to node 3 is lost; the next one repairs it")
    t.run("campaign 1", lambda: net.elect(1))
    t.run("propose 1 'a'", lambda: net.propose(1, b"a"))
    t.run("cut 1->3", lambda: cut(net, 1, 3))
    t.run("propose 1 'b'", lambda: net.propose(1, b"b"))
    t.run("heal", net.heal)
    t.run("propose 1 'c'", lambda: net.propose(1, b"c"))
    t.run("tick 1", lambda: net.tick(1))
    return t


def scenario_leadership_transfer() -> Transcript:
    net = RaftNetwork([1, 2, 3], seed=1)
    t = Transcript(net, "leadership transfer from 1 to an up-to-date node 2 (TimeoutNow)")
    t.run("campaign 1", lambda: net.elect(1))
    t.run("propose 1 'x'", lambda: net.propose(1, b"x"))
    t.run("transfer 1 -> 2", lambda: transfer(net, 1, 2))
    t.run("propose 2 'y'", lambda: net.propose(2, b"y"))
    t.run("tick 2", lambda: net.tick(2))
    return t


SCENARIOS: dict[str, Callable[[], Transcript]] = {
    "election": scenario_election,
    "replication_lost_message": scenario_replication_with_a_lost_message,
    "leadership_transfer": scenario_leadership_transfer,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_interaction_transcript_matches_golden(name: str, rewrite_golden: bool) -> None:
    text = SCENARIOS[name]().text()
    path = GOLDEN_DIR / f"{name}.txt"
    if rewrite_golden:
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing; run pytest tests/raft --rewrite-golden"
    assert text == path.read_text()


def test_transcripts_are_deterministic() -> None:
    for build in SCENARIOS.values():
        assert build().text() == build().text()
