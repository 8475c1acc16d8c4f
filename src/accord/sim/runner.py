"""One deterministic simulation run: a cluster of real Raft cores, simulated network,
disks and clocks, clients with a recorded history, and faults — all from one seed.

Theory of operation: everything happens through one event queue ordered by
(simulated time, insertion order), and every random choice comes from one
`random.Random(seed)`, so a seed replays exactly. The parameters themselves (network
delays and loss, fsync latency, batch limits, fault rates, snapshot frequency, ...)
are drawn from the seed too ("swarm testing"), so many seeds cover many regimes.

A run has two phases. In the *safety* phase clients issue operations while faults
strike (crashes with loss of unsynced writes, restarts, symmetric and one-way
partitions, loss, duplication, reordering, leadership transfers, membership
changes, replica moves driven by the placement executor's `Mover`); Raft's safety
properties are checked after every event. Then every fault
heals and the *liveness* phase must, within a stated bound, elect a leader and
complete every pending operation. Finally the history must be linearizable.
"""

from __future__ import annotations

import heapq
import random
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from accord.chaos.history import History
from accord.chaos.linearizability import check_register
from accord.raft import ConfChange, ConfChangeOp, DebugFlags, Message, RaftConfig
from accord.sim.client import SimClient
from accord.sim.moves import MOVE_RATE_CHOICES, SimMoves
from accord.sim.network import SimNetwork
from accord.sim.node import SimNode
from accord.sim.protocol import ClientReply, ClientRequest
from accord.sim.safety import SafetyChecker, SafetyViolation

CLIENT_ADDRESS_BASE = 1000
GROUPS_MAX = 64
"""Raft groups per simulated node at most (--groups)."""
CLIENTS_PER_GROUP_MAX = 10
"""Client addresses of group g are CLIENT_ADDRESS_BASE + g * this + 0, 1, ..."""
TRACE_LINES = 60
BUGGIFY_SITES = ("late_apply", "odd_snapshot")
"""Rare paths only the simulator takes (see `accord.sim.node`); a seed turns on some."""
LATER_BUGGIFY_SITES = ("tiny_batch", "split_frames")
"""Sites added later, drawn from `Simulation.later_rng`: a batch of one group's Ready,
and a send to a peer cut short (the tail lost, as when a connection breaks mid-batch)."""
BUGGIFY_CHANCE = 0.05
"""How often a site that is on fires when reached."""
QUIESCE_TICKS_CHOICES = (0, 0, 1, 3, 10)
"""Idle ticks before a group goes quiet, one drawn per seed: 0 keeps groups awake."""
LATER_SALT = 0x9E3779B9
"""Salts the stream of the choices added after the first seeds were recorded."""


@dataclass(frozen=True, slots=True)
class SimParams:
    nodes: int
    tick_base: int
    election_ticks: int
    heartbeat_ticks: int
    pre_vote: bool
    check_quorum: bool
    delay_max: int
    loss: float
    duplicate: float
    fsync_max: int
    compact_every: int
    compaction_keep: int
    snapshot_chunk_bytes: int
    append_entries_max: int
    inflight_max: int
    clients: int
    keys: int
    crash_rate: float
    partition_rate: float
    transfer_rate: float
    reconfig_rate: float
    leader_crash_rate: float
    """Chance that a leader crashes right after handling a Ready (just elected, just
    replicated, just committed): with `lost_on_crash` its last words may never arrive,
    the situations of the Raft paper's Figure 8."""
    leader_crashes_max: int
    """Budget of such crashes per seed: enough for Figure 8's chain of unlucky
    leaders, not so many that the cluster is never available to the clients."""
    lost_on_crash: float
    """Chance that a message still in flight when its sender crashes is lost."""
    op_deadline: int
    attempt_timeout: int
    safety_events: int
    liveness_bound: int
    debug: DebugFlags = field(default_factory=DebugFlags)
    groups: int = 1
    """Raft groups every node hosts, each with its own clients, keys and checks."""
    buggify: frozenset[str] = frozenset()
    """The BUGGIFY sites this seed turns on."""
    quiesce_ticks: int = 0
    """`RaftConfig.quiesce_ticks` of every group (0: groups never go quiet)."""

    @staticmethod
    def draw(
        rng: random.Random, nodes: int | None, steps: int, debug: DebugFlags, groups: int = 1
    ) -> SimParams:
        tick = 10
        election = rng.choice([5, 10, 20])
        return SimParams(
            groups=groups,
            nodes=nodes or rng.choice([3, 5]),
            tick_base=tick,
            election_ticks=election,
            heartbeat_ticks=rng.choice([1, 2]),
            pre_vote=rng.random() < 0.8,
            check_quorum=rng.random() < 0.8,
            delay_max=rng.choice([2, 5, 10, 30]),
            loss=rng.choice([0.0, 0.01, 0.05, 0.15]),
            duplicate=rng.choice([0.0, 0.02, 0.1]),
            fsync_max=rng.choice([1, 3, 10, 30]),
            compact_every=rng.choice([0, 5, 20, 100]),
            compaction_keep=rng.choice([0, 3]),
            snapshot_chunk_bytes=rng.choice([16, 64, 1 << 20]),
            append_entries_max=rng.choice([1, 3, 64]),
            inflight_max=rng.choice([1, 4, 64]),
            clients=rng.randint(2, 6),
            keys=rng.randint(1, 3),
            crash_rate=rng.choice([0.0, 0.002, 0.01]),
            partition_rate=rng.choice([0.0, 0.002, 0.01]),
            transfer_rate=rng.choice([0.0, 0.001, 0.005]),
            reconfig_rate=rng.choice([0.0, 0.001, 0.004]),
            leader_crash_rate=rng.choice([0.0, 0.0, 0.02, 0.1, 0.3]),
            leader_crashes_max=rng.choice([3, 8, 20]),
            lost_on_crash=rng.choice([0.0, 0.5, 1.0]),
            op_deadline=tick * election * 6,
            attempt_timeout=tick * election,
            safety_events=steps,
            liveness_bound=tick * election * 60,
            debug=debug,
            buggify=frozenset(site for site in BUGGIFY_SITES if rng.random() < 0.25),
        )


@dataclass(frozen=True, slots=True)
class SimResult:
    seed: int
    ok: bool
    prop: str = ""
    detail: str = ""
    trace: tuple[str, ...] = ()
    events: int = 0
    ops_completed: int = 0
    ops_unknown: int = 0
    faults: int = 0
    fingerprint: int = 0
    params: SimParams | None = None
    ops_completed_by_group: tuple[int, ...] = ()
    moves_done: int = 0
    """Replica moves (`accord.sim.moves`) that ran to the end."""


class Simulation:
    def __init__(
        self,
        seed: int,
        nodes: int | None = None,
        steps: int = 3000,
        debug: DebugFlags | None = None,
        groups: int = 1,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        params = SimParams.draw(self.rng, nodes, steps, debug or DebugFlags(), groups)
        # Choices added later are drawn apart from the main stream, so every earlier
        # choice of a seed stays what it was (and a recorded seed replays as before).
        self.later_rng = random.Random(seed ^ LATER_SALT)
        quiet = self.later_rng.choice(QUIESCE_TICKS_CHOICES)
        later_sites = {s for s in LATER_BUGGIFY_SITES if self.later_rng.random() < 0.25}
        self.params = replace(
            params, quiesce_ticks=quiet, buggify=params.buggify | frozenset(later_sites)
        )
        self.idle_until: dict[int, int] = {}
        """Group -> until when its clients start nothing (see `SimClient._finish`)."""
        self.now = 0
        self._lease_ids = 0
        self._queue: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self.healing = False
        self.checkers = {group: SafetyChecker() for group in range(self.params.groups)}
        self.network = SimNetwork(self)
        self.network.loss = self.params.loss
        self.network.duplicate = self.params.duplicate
        self.network.delay_max = self.params.delay_max
        self.network.lost_on_crash = self.params.lost_on_crash
        self.fsync_max = self.params.fsync_max
        ids = list(range(1, self.params.nodes + 1))
        self.tick_interval = {i: self.params.tick_base + self.rng.randint(-1, 1) for i in ids}
        self.nodes: dict[int, SimNode] = {
            i: SimNode(self, i, self._config_maker(i, ids)) for i in ids
        }
        self.history = History()
        self.clients = {
            address: SimClient(self, address, self.history, group)
            for group in range(self.params.groups)
            for address in (
                CLIENT_ADDRESS_BASE + group * CLIENTS_PER_GROUP_MAX + c
                for c in range(self.params.clients)
            )
        }
        self.trace: deque[str] = deque(maxlen=TRACE_LINES)
        self.fingerprint = 0
        self.faults = 0
        self.leader_crashes = 0
        self.events = 0
        self.moves = SimMoves(self, self.later_rng, self.later_rng.choice(MOVE_RATE_CHOICES))

    def _config_maker(self, node_id: int, ids: list[int]) -> Callable[[int], RaftConfig]:
        p = self.params
        config = RaftConfig(
            id=node_id,
            bootstrap_voters=frozenset(ids),
            election_ticks=p.election_ticks,
            heartbeat_ticks=p.heartbeat_ticks,
            pre_vote=p.pre_vote,
            check_quorum=p.check_quorum,
            append_entries_max=p.append_entries_max,
            inflight_messages_max=p.inflight_max,
            snapshot_chunk_bytes=p.snapshot_chunk_bytes,
            compaction_keep_entries=p.compaction_keep,
            quiesce_ticks=p.quiesce_ticks,
            debug=p.debug,
        )
        return lambda group: replace(config, group=group)

    # --- scheduling ---------------------------------------------------------------
    def schedule(self, delay: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (self.now + delay, self._seq, fn, args))

    def buggify(self, site: str) -> bool:
        """Whether a rare path this seed turned on fires now."""
        return site in self.params.buggify and self.rng.random() < BUGGIFY_CHANCE

    def fsync_delay(self) -> int:
        return 1 + self.rng.randrange(self.fsync_max)

    def deliver(self, dst: int, payload: Any) -> None:
        if dst in self.nodes:
            node = self.nodes[dst]
            if node.alive:
                if isinstance(payload, Message):
                    self._note(
                        f"{payload.src}->{dst} {payload.type.name} t{payload.term} "
                        f"i{payload.index} n{len(payload.entries)} c{payload.commit}"
                        f"{' REJ' if payload.reject else ''}"
                    )
                node.receive(payload)
        elif dst in self.clients and isinstance(payload, ClientReply):
            self.clients[dst].receive(payload)

    def check_abandoned(self, session: int, write_seq: int) -> None:
        """The state machine refused (session, write_seq) as stale: a later write of
        that session applied first. Legitimate only for a copy of a write its client
        has finished with; refusing the write a client still waits for is a bug (a
        session that lost track of a retry)."""
        for client in self.clients.values():
            request = client.request
            if (
                request is not None
                and request.op != "r"
                and (request.session, request.write_seq)
                == (
                    session,
                    write_seq,
                )
            ):
                raise AssertionError(
                    f"state machine refused as stale write {write_seq} of session "
                    f"{session}, which client {client.address} still waits for"
                )

    def _note(self, line: str) -> None:
        self.trace.append(f"[{self.now:>7}] {line}")

    # --- running --------------------------------------------------------------------
    def run(self) -> SimResult:
        try:
            self._run_phases()
        except SafetyViolation as v:
            return self._result(False, v.prop, v.detail)
        except AssertionError as e:  # includes InvariantError from the core
            return self._result(False, "invariant", f"{type(e).__name__}: {e}")
        return self._check_history()

    def _run_phases(self) -> None:
        for node in self.nodes.values():
            node.start()
        for client in self.clients.values():
            self.schedule(self.rng.randrange(50), client.start_next)
        while self.events < self.params.safety_events and self._queue:
            self._step()
            self._maybe_fault()
        self._heal()
        deadline = self.now + self.params.liveness_bound
        while self._queue and self.now < deadline:
            self._step()
            self.moves.drive(self.now)  # a move started under faults goes on to its end
            if self._settled():
                return
        raise SafetyViolation(
            "liveness",
            f"after healing, no leader and idle clients within {self.params.liveness_bound} "
            f"time units (leader: {self._leader()}, busy clients: "
            f"{[c.address for c in self.clients.values() if c.busy]})",
        )

    def _step(self) -> None:
        when, _, fn, args = heapq.heappop(self._queue)
        self.now = when
        self.events += 1
        fn(*args)
        for group, checker in self.checkers.items():
            checker.check_cluster([node.replica(group) for node in self.nodes.values()])
        self.fingerprint = zlib.crc32(when.to_bytes(8, "big"), self.fingerprint)

    def _settled(self) -> bool:
        return all(self._leader(g) is not None for g in self.checkers) and not any(
            c.busy for c in self.clients.values()
        )

    def _leader(self, group: int = 0) -> int | None:
        leaders = [n.replica(group) for n in self.nodes.values() if n.replica(group).is_leader]
        if not leaders:
            return None
        return max(leaders, key=lambda r: r.core.term).id

    def _random_group(self) -> int:
        return self.rng.randrange(self.params.groups) if self.params.groups > 1 else 0

    def _heal(self) -> None:
        self._note("heal: restart every node, reconnect the network, stop new operations")
        self.healing = True
        self.network.heal()
        self.network.loss = 0.0
        self.network.duplicate = 0.0
        # Raft promises progress only when a round trip plus an fsync is well inside an
        # election timeout; after healing the network and disks are timely again.
        timely = max(1, self.params.tick_base * self.params.election_ticks // 10)
        self.network.delay_max = min(self.network.delay_max, timely)
        self.fsync_max = min(self.fsync_max, timely)
        for node in self.nodes.values():
            if not node.alive:
                node.start()
        for client in self.clients.values():
            client.active = False

    # --- faults -------------------------------------------------------------------------
    def _maybe_fault(self) -> None:
        p, rng = self.params, self.rng
        if rng.random() < p.crash_rate:
            self._crash_random()
        if rng.random() < p.partition_rate:
            self._partition_random()
        if rng.random() < p.transfer_rate:
            self._transfer_random()
        if rng.random() < p.reconfig_rate:
            self._reconfigure_random()
        self.moves.maybe_start()
        self.moves.drive(self.now)

    def next_lease_id(self) -> int:
        """A lease id no leader has used yet in this run."""
        self._lease_ids += 1
        return self._lease_ids

    def after_leader_ready(self, node: SimNode) -> None:
        if self.healing or self.leader_crashes >= self.params.leader_crashes_max:
            return
        if self.rng.random() < self.params.leader_crash_rate:
            self.leader_crashes += 1
            self._crash(node)

    def _crash_random(self) -> None:
        alive = [n for n in self.nodes.values() if n.alive]
        # Prefer the leader now and then: that is where the interesting bugs are.
        leader = self._leader(self._random_group())
        if leader is not None and self.rng.random() < 0.4:
            victim = self.nodes[leader]
        elif alive:
            victim = self.rng.choice(alive)
        else:
            return
        if victim.alive:
            self._crash(victim)

    def _crash(self, victim: SimNode) -> None:
        self.faults += 1
        self._note(f"crash node {victim.id}")
        victim.crash()
        downtime = self.rng.randint(1, 4) * self.params.tick_base * self.params.election_ticks
        self.schedule(downtime, self._restart, victim.id)

    def _restart(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if not node.alive:
            self._note(f"restart node {node_id}")
            node.start()

    def _partition_random(self) -> None:
        self.faults += 1
        ids = sorted(self.nodes)
        self.rng.shuffle(ids)
        if self.rng.random() < 0.3:
            src, dst = ids[0], ids[1]
            self._note(f"one-way cut {src} -/-> {dst}")
            self.network.cut_one_way(src, dst)
        else:
            split = self.rng.randint(1, len(ids) - 1)
            groups = [set(ids[:split]), set(ids[split:])]
            self._note(f"partition {groups}")
            self.network.partition(groups, set(self.clients))
        heal_after = self.rng.randint(1, 6) * self.params.tick_base * self.params.election_ticks
        self.schedule(heal_after, self._heal_partition)

    def _heal_partition(self) -> None:
        if not self.healing:
            self._note("partition healed")
            self.network.heal()

    def _transfer_random(self) -> None:
        group = self._random_group()
        leader = self._leader(group)
        if leader is None:
            return
        self.faults += 1
        target = self.rng.choice([n for n in self.nodes if n != leader])
        self._note(f"group {group}: transfer leadership {leader} -> {target}")
        self.nodes[leader].transfer_leadership(group, target)

    def _reconfigure_random(self) -> None:
        group = self._random_group()
        leader = self._leader(group)
        if leader is None:
            return
        conf = self.nodes[leader].replica(group).core.conf
        if conf.joint:
            return
        removed = [n for n in self.nodes if n not in conf.members()]
        if removed:
            change = ConfChange(((ConfChangeOp.ADD_LEARNER, self.rng.choice(removed)),))
        elif conf.learners:
            change = ConfChange(((ConfChangeOp.ADD_VOTER, min(conf.learners)),))
        elif len(conf.voters) > 2:
            change = ConfChange(((ConfChangeOp.REMOVE, self.rng.choice(sorted(conf.voters))),))
        else:
            return
        self.faults += 1
        self._note(f"group {group}: membership change via {leader}: {change.changes}")
        self.nodes[leader].propose_conf_change(group, change)

    # --- verdict -------------------------------------------------------------------------
    def _check_history(self) -> SimResult:
        result = check_register(self.history.operations())
        if result.ok:
            return self._result(True)
        prop = (
            "linearizability (undecided: search bound hit)"
            if result.exhausted
            else ("linearizability")
        )
        return self._result(False, prop, f"key {result.key}: {result.message}")

    def _result(self, ok: bool, prop: str = "", detail: str = "") -> SimResult:
        return SimResult(
            seed=self.seed,
            ok=ok,
            prop=prop,
            detail=detail,
            trace=tuple(self.trace),
            events=self.events,
            ops_completed=sum(c.completed for c in self.clients.values()),
            ops_unknown=sum(c.unknown for c in self.clients.values()),
            faults=self.faults,
            fingerprint=self.fingerprint,
            params=self.params,
            moves_done=self.moves.done,
            ops_completed_by_group=tuple(
                sum(c.completed for c in self.clients.values() if c.group == g)
                for g in range(self.params.groups)
            ),
        )


def run_seed(
    seed: int,
    nodes: int | None = None,
    steps: int = 3000,
    debug: DebugFlags | None = None,
    groups: int = 1,
) -> SimResult:
    return Simulation(seed, nodes, steps, debug, groups).run()


__all__ = ["GROUPS_MAX", "ClientRequest", "SimParams", "SimResult", "Simulation", "run_seed"]
