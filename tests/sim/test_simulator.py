"""The simulator over many seeds, its determinism, and proof that it catches bugs."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

import pytest

from accord.raft import DebugFlags
from accord.sim.__main__ import BUGS, chosen_for_determinism, main, replay_command
from accord.sim.protocol import ClientRequest
from accord.sim.runner import SimResult, Simulation, run_seed

CI_SEEDS = 500
STEPS = 3000
JOBS = 2


def _run(seed: int) -> SimResult:
    return run_seed(seed, steps=STEPS)


def test_ci_seeds_have_no_violation() -> None:
    with ProcessPoolExecutor(max_workers=JOBS) as pool:
        results = list(pool.map(_run, range(1, CI_SEEDS + 1), chunksize=8))
    failures = [r for r in results if not r.ok]
    assert not failures, "\n".join(
        f"seed {r.seed}: {r.prop}: {r.detail}\n  {replay_command(r.seed, None, STEPS, None)}"
        for r in failures[:5]
    )
    # The seeds really exercised the cluster: operations completed and faults struck.
    assert sum(r.ops_completed for r in results) > CI_SEEDS * 10
    assert sum(r.faults for r in results) > CI_SEEDS * 5
    assert sum(r.moves_done for r in results) > CI_SEEDS // 20  # replica moves ran


def test_a_follower_serves_reads_from_what_its_machine_applied() -> None:
    # Found far from the CI seeds: a follower installed a snapshot in its core (whose
    # `log.applied` jumps to the snapshot's index at once) while an earlier Ready was
    # still being synced, then served a read from the machine before restoring it.
    result = run_seed(145412958, nodes=3, steps=STEPS)
    assert result.ok, f"{result.prop}: {result.detail}"


GROUP_SEEDS = 40


def test_seeds_with_eight_groups_per_node_have_no_violation() -> None:
    seeds = range(1, GROUP_SEEDS + 1)
    with ProcessPoolExecutor(max_workers=JOBS) as pool:
        results = list(
            pool.map(
                run_seed,
                seeds,
                [None] * len(seeds),
                [STEPS] * len(seeds),
                [None] * len(seeds),
                [8] * len(seeds),
            )
        )
    failures = [r for r in results if not r.ok]
    assert not failures, "\n".join(
        f"seed {r.seed}: {r.prop}: {r.detail}\n  {replay_command(r.seed, None, STEPS, None, 8)}"
        for r in failures[:5]
    )
    # Every group served its own clients, on most seeds.
    served = [all(n > 0 for n in r.ops_completed_by_group) for r in results]
    assert all(len(r.ops_completed_by_group) == 8 for r in results)
    assert sum(served) > GROUP_SEEDS * 3 // 4


def test_the_executor_bug_is_caught_with_many_groups() -> None:
    caught = _first_caught(BUGS["send-before-persist"], range(1, 101), groups=4)
    assert caught is not None, "send-before-persist survived 100 seeds of 4 groups"


def test_the_determinism_check_covers_a_different_share_each_time() -> None:
    seeds = range(1, 20_001)
    first = {s for s in seeds if chosen_for_determinism(s, salt=1)}
    second = {s for s in seeds if chosen_for_determinism(s, salt=2)}
    assert 300 < len(first) < 500 and 300 < len(second) < 500  # about one in 50
    assert len(first & second) < len(first) // 5


def test_a_late_copy_of_an_answered_write_is_refused_as_stale() -> None:
    # Found far from the CI seeds: the network delivered a duplicate of a client's
    # write to a leader after the client's next write applied; the state machine
    # rightly refused it as stale, which the simulator used to take for a session bug.
    result = run_seed(859337684, nodes=3, steps=STEPS)
    assert result.ok, f"{result.prop}: {result.detail}"


def test_clients_do_not_livelock_when_the_log_outgrows_replication() -> None:
    # One entry per AppendEntries, one in flight, 30-unit delays and sends cut short:
    # the log grew faster than it replicated, and clients that took only their
    # latest attempt's answer retried behind themselves forever.
    result = run_seed(91230325, nodes=3, steps=STEPS)
    assert result.ok, f"{result.prop}: {result.detail}"
    assert result.ops_completed >= 20


def test_a_leader_removed_by_a_joint_change_hands_over_before_stepping_down() -> None:
    # Found once replica moves ran in the simulator: a move's joint change removed
    # the leader, which stepped down as soon as the change committed. The remaining
    # voters did not know yet that it had, so they still needed the outgoing
    # majority, this node included; with its longer log it refused them its vote,
    # and no leader could ever be elected. A removed leader now leads on, taking no
    # proposals, until a voter has its whole log, and then hands over to it.
    result = run_seed(5523524, steps=STEPS)
    assert result.ok, f"{result.prop}: {result.detail}"
    assert result.moves_done >= 1


def test_refusing_the_write_a_client_waits_for_as_stale_is_a_violation() -> None:
    sim = Simulation(1)
    client = next(iter(sim.clients.values()))
    client.request = ClientRequest(client.address, 4, 1, "w", "k0", 7, None, 5000, 3)
    with pytest.raises(AssertionError, match="still waits for"):
        sim.check_abandoned(5000, 3)
    sim.check_abandoned(5000, 2)  # a write the client has finished with
    sim.check_abandoned(5001, 3)  # another session's


def test_a_seed_replays_exactly() -> None:
    first, second = run_seed(7, steps=1500), run_seed(7, steps=1500)
    assert first.fingerprint == second.fingerprint
    assert (first.events, first.ops_completed, first.trace) == (
        second.events,
        second.ops_completed,
        second.trace,
    )
    other = run_seed(8, steps=1500)
    assert other.fingerprint != first.fingerprint


def _first_caught(debug: DebugFlags, seeds: range, groups: int = 1) -> SimResult | None:
    with ProcessPoolExecutor(max_workers=JOBS) as pool:
        for result in pool.map(
            run_seed,
            seeds,
            [None] * len(seeds),
            [STEPS] * len(seeds),
            [debug] * len(seeds),
            [groups] * len(seeds),
            chunksize=4,
        ):
            if not result.ok:
                return result
    return None


@pytest.mark.parametrize(
    ("bug", "seed_bound", "expected"),
    [
        # A previous-term commit needs a chain of unlucky leader crashes (Figure 8);
        # seeds whose groups pause to go quiet make fewer such chains.
        (
            "commit-previous-term",
            2000,
            {
                "leader completeness",
                "state machine safety",
                "linearizability",
                "log matching",
                # A configuration the bug let commit can leave a node outside the group
                # that the others no longer hear; with replica moves at seed 67 a client
                # waiting on it was the first symptom seen.
                "liveness",
            },
        ),
        (
            "forget-vote",
            400,
            {
                "invariant",  # storage refuses a second vote in one term
                "election safety",
                "leader completeness",
                "state machine safety",
                "linearizability",
                "log matching",
            },
        ),
        (
            "ack-before-persist",
            200,
            {
                "invariant",
                "election safety",  # a candidate's own vote, counted before it is durable
                "leader completeness",
                "state machine safety",
                "linearizability",
                "log matching",
                "durable commit",
            },
        ),
        (
            "send-before-persist",
            200,
            {
                "invariant",  # e.g. a follower told of a commit beyond the log it kept
                "election safety",
                "leader completeness",
                "state machine safety",
                "linearizability",
                "log matching",
                "durable commit",
            },
        ),
    ],
)
def test_injected_bug_is_caught(bug: str, seed_bound: int, expected: set[str]) -> None:
    caught = _first_caught(BUGS[bug], range(1, seed_bound + 1))
    assert caught is not None, f"{bug} survived {seed_bound} seeds"
    assert caught.prop in expected, f"{bug} caught as unexpected {caught.prop}: {caught.detail}"


def test_command_line_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--seeds", "3", "--steps", "800"]) == 0
    assert "3 seeds passed" in capsys.readouterr().out
    failing = _first_caught(BUGS["ack-before-persist"], range(1, 201))
    assert failing is not None
    code = main(
        [
            "--seeds",
            "1",
            "--start",
            str(failing.seed),
            "--steps",
            str(STEPS),
            "--bug",
            "ack-before-persist",
        ]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert f"seed {failing.seed}: VIOLATION of {failing.prop}" in out
    assert f"--start {failing.seed}" in out and "--bug ack-before-persist" in out


def test_a_replica_computing_its_own_lease_deadlines_is_caught(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deadlines must come from the log alone: a replica whose renewal adds something
    of its own (here, every other renewal is a millisecond late) is a determinism
    violation, found without any client noticing."""
    from accord.kv import leases

    renew_all = leases.LeaseTable.renew_all
    calls = iter(range(1 << 30))

    def drifting(self: leases.LeaseTable, now_ms: int) -> int:
        renewed = renew_all(self, now_ms)
        if next(calls) % 2:
            for lease_id in self.ids():
                lease = self.get(lease_id)
                assert lease is not None
                lease.deadline_ms += 1
        return renewed

    monkeypatch.setattr(leases.LeaseTable, "renew_all", drifting)
    results = [run_seed(seed, steps=STEPS) for seed in range(1, 6)]
    caught = [r for r in results if not r.ok]
    assert caught and caught[0].prop == "replica determinism", [r.prop for r in results]
