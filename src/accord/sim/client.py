"""Simulated clients: each runs one operation at a time (read, write or
compare-and-swap on a small set of keys) with per-attempt timeouts, retries towards
the leader, and an overall deadline. Every invocation and completion goes into the
history; an operation whose outcome the client cannot know is recorded as unknown.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from accord.chaos.history import History, OpKind
from accord.sim.protocol import ClientReply, ClientRequest

if TYPE_CHECKING:
    from accord.sim.runner import Simulation

_KINDS = {"r": OpKind.READ, "w": OpKind.WRITE, "c": OpKind.CAS}


QUIET_PAUSE_CHANCE = 0.05
"""With groups that can go quiet: how often an operation's end pauses its group."""


class SimClient:
    def __init__(self, sim: Simulation, address: int, history: History, group: int = 0) -> None:
        self.sim = sim
        self.address = address
        self.group = group
        self._key_prefix = f"g{group}/" if group else ""
        self.history = history
        self.seq = 0
        self.session = address * 1000
        self.write_seq = 0
        self.attempt = 0
        self.op_id: int | None = None
        self.request: ClientRequest | None = None
        self.deadline = 0
        self.target = 0
        self.active = True
        self.last_read: Any = None
        self.completed = 0
        self.unknown = 0

    @property
    def busy(self) -> bool:
        return self.op_id is not None

    def start_next(self) -> None:
        if not self.active or self.busy:
            return
        rng = self.sim.rng
        self.seq += 1
        key = f"{self._key_prefix}k{rng.randrange(self.sim.params.keys)}"
        roll = rng.random()
        if roll < 0.45:
            op, arg1, arg2 = "r", None, None
        elif roll < 0.8:
            op, arg1, arg2 = "w", self.address * 1_000_000 + self.seq, None
        else:
            expected = self.last_read if rng.random() < 0.7 else None
            op, arg1, arg2 = "c", expected, self.address * 1_000_000 + self.seq
        kind = _KINDS[op]
        value: Any = None if op == "r" else (arg1 if op == "w" else (arg1, arg2))
        self.op_id = self.history.invoke(self.address, key, kind, value, self.sim.now)
        if op != "r":
            self.write_seq += 1
        self.request = ClientRequest(
            self.address,
            self.seq,
            0,
            op,
            key,
            arg1,
            arg2,
            session=self.session,
            write_seq=self.write_seq,
            group=self.group,
        )
        self.deadline = self.sim.now + self.sim.params.op_deadline
        self.attempt = 0
        self._send()

    def _send(self) -> None:
        assert self.request is not None
        self.attempt += 1
        if self.target not in self.sim.nodes or self.sim.rng.random() < 0.1:
            self.target = self.sim.rng.choice(sorted(self.sim.nodes))
        req = replace(self.request, attempt=self.attempt)
        self.sim.network.send(self.address, self.target, req)
        attempt = self.attempt
        self.sim.schedule(self.sim.params.attempt_timeout, self._on_timeout, self.seq, attempt)

    def _on_timeout(self, seq: int, attempt: int) -> None:
        if seq == self.seq and attempt == self.attempt and self.busy:
            self.target = 0
            self._retry()

    def _retry(self) -> None:
        if self.sim.now >= self.deadline and not self.sim.healing:
            self._give_up()
            return
        self._send()

    def _give_up(self) -> None:
        assert self.op_id is not None
        self.history.unknown(self.op_id)
        self.unknown += 1
        self._finish()

    def _finish(self) -> None:
        self.op_id = None
        self.request = None
        backoff = 1 + self.sim.rng.randrange(5)
        sim = self.sim
        if sim.params.quiesce_ticks and sim.later_rng.random() < QUIET_PAUSE_CHANCE:
            # Every client of the group pauses, long enough for the group to go quiet
            # and for faults to find it so.
            p = sim.params
            pause = p.tick_base * p.election_ticks * sim.later_rng.randint(2, 8)
            sim.idle_until[self.group] = max(sim.idle_until.get(self.group, 0), sim.now + pause)
        idle_until = sim.idle_until.get(self.group, 0)
        if idle_until > sim.now:
            backoff = idle_until - sim.now + backoff
        sim.schedule(backoff, self.start_next)

    def receive(self, reply: ClientReply) -> None:
        if reply.seq != self.seq or not self.busy:
            return  # a late answer to an operation already ended
        # Every attempt of an operation is the same request (a write carries the same
        # session and sequence number, applied at most once), so the success of any
        # attempt is the operation's, and its outcome fell within the operation's
        # span. Waiting for the latest attempt's own answer instead livelocks once the
        # log grows faster than it replicates: each retry queues behind the last.
        # A refusal only moves things on if it answers the attempt now in flight.
        if not reply.ok and reply.attempt != self.attempt:
            return
        assert self.op_id is not None and self.request is not None
        if reply.ok:
            if self.request.op == "r":
                self.last_read = reply.value
            self.history.complete(
                self.op_id, reply.value if self.request.op != "w" else None, self.sim.now
            )
            self.completed += 1
            self._finish()
            return
        if reply.error == "session_expired":
            # Our session never opened (its first write was given up on and never
            # applied); this request was refused, so retry it in a new session.
            self.session += 1
            self.write_seq = 1
            self.request = replace(self.request, session=self.session, write_seq=1)
        if reply.leader_hint:
            self.target = reply.leader_hint
        else:
            self.target = 0
        # Back off briefly before retrying, so a leaderless cluster is not hammered.
        attempt = self.attempt
        self.sim.schedule(1 + self.sim.rng.randrange(10), self._retry_if_current, self.seq, attempt)

    def _retry_if_current(self, seq: int, attempt: int) -> None:
        if seq == self.seq and attempt == self.attempt and self.busy:
            self._retry()
