"""The workload checkers on hand-written histories: each accepts a correct history
and names what is wrong in a broken one (a lost write, a wrong total, a missed or
repeated event, a doubly granted lock)."""

from __future__ import annotations

from accord.chaos.record import Recorder
from accord.chaos.workloads.bank import ACCOUNTS, BankWorkload
from accord.chaos.workloads.lock import Hold, LockWorkload
from accord.chaos.workloads.register import RegisterWorkload
from accord.chaos.workloads.set import SetWorkload
from accord.chaos.workloads.watch import WatchWorkload


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 0.01
        return self.t


def recorder() -> Recorder:
    return Recorder(clock=FakeClock())


# --- register ------------------------------------------------------------------------
def test_register_stale_read_is_not_linearizable() -> None:
    rec = recorder()
    rec.ok(rec.invoke(0, "write", "reg/0", 1))
    rec.ok(rec.invoke(0, "write", "reg/0", 2))
    rec.ok(rec.invoke(1, "read", "reg/0", None), 1)  # after the write of 2 completed
    verdict = RegisterWorkload().check(rec)
    assert not verdict.valid and "reg/0" in verdict.summary


def test_register_unknown_write_may_explain_a_read() -> None:
    rec = recorder()
    rec.unknown(rec.invoke(0, "write", "reg/0", 7), "timeout")
    rec.ok(rec.invoke(1, "read", "reg/0", None), 7)
    rec.fail(rec.invoke(1, "write", "reg/0", 8), "refused")
    rec.ok(rec.invoke(1, "cas", "reg/0", [7, 9]), True)
    assert RegisterWorkload().check(rec).valid


# --- set -----------------------------------------------------------------------------
def set_history(final: set[str]) -> tuple[SetWorkload, Recorder]:
    rec = recorder()
    rec.ok(rec.invoke(0, "add", "set/a", "a"))
    rec.unknown(rec.invoke(0, "add", "set/b", "b"), "timeout")
    rec.fail(rec.invoke(1, "add", "set/c", "c"), "refused")
    workload = SetWorkload()
    workload.final = final
    return workload, rec


def test_set_accepts_acknowledged_and_unknown_adds() -> None:
    workload, rec = set_history({"a", "b"})
    assert workload.check(rec).valid
    workload, rec = set_history({"a"})
    assert workload.check(rec).valid


def test_set_reports_lost_and_unexpected_elements() -> None:
    workload, rec = set_history({"b"})
    verdict = workload.check(rec)
    assert not verdict.valid and verdict.summary == "INVALID: 1 lost"
    workload, rec = set_history({"a", "c"})
    verdict = workload.check(rec)
    assert not verdict.valid and "1 unexpected" in verdict.summary


# --- bank ----------------------------------------------------------------------------
def test_bank_reads_must_keep_the_total_and_stay_non_negative() -> None:
    rec = recorder()
    good = {f"bank/{i}": 100 for i in range(ACCOUNTS)}
    rec.ok(rec.invoke(0, "read", "bank/", None), good)
    assert BankWorkload().check(rec).valid
    rec.ok(rec.invoke(0, "read", "bank/", None), {**good, "bank/0": 90})
    assert not BankWorkload().check(rec).valid
    rec2 = recorder()
    rec2.ok(rec2.invoke(0, "read", "bank/", None), {**good, "bank/0": -10, "bank/1": 210})
    verdict = BankWorkload().check(rec2)
    assert not verdict.valid and "negative" in verdict.details[1]


# --- watch ---------------------------------------------------------------------------
def watch_history(seen: list[tuple[int, str, str]]) -> tuple[WatchWorkload, Recorder]:
    rec = recorder()
    rec.ok(rec.invoke(1, "write", "watch/0", "1-1"), 11)
    rec.ok(rec.invoke(1, "write", "watch/1", "1-2"), 12)
    rec.unknown(rec.invoke(1, "write", "watch/0", "1-3"), "timeout")
    workload = WatchWorkload()
    workload.start_revision = 11
    workload.final = {"watch/0": (11, "1-1"), "watch/1": (12, "1-2")}
    workload.seen = {0: seen, 1: list(seen)}
    return workload, rec


def test_watch_accepts_every_write_once_in_order() -> None:
    workload, rec = watch_history([(11, "watch/0", "1-1"), (12, "watch/1", "1-2")])
    assert workload.check(rec).valid


def test_watch_reports_missed_repeated_and_reordered_events() -> None:
    workload, rec = watch_history([(12, "watch/1", "1-2")])
    assert "missed acknowledged put watch/0=1-1" in workload.check(rec).summary
    repeated = [(11, "watch/0", "1-1"), (11, "watch/0", "1-1"), (12, "watch/1", "1-2")]
    workload, rec = watch_history(repeated)
    assert "repeated" in workload.check(rec).summary
    workload, rec = watch_history([(12, "watch/1", "1-2"), (11, "watch/0", "1-1")])
    assert "out of order" in workload.check(rec).summary
    workload, rec = watch_history([(11, "watch/0", "1-1"), (12, "watch/1", "9-9")])
    assert not workload.check(rec).valid


# --- lock ----------------------------------------------------------------------------
def test_lock_reports_a_token_granted_twice_and_overlapping_holders() -> None:
    rec = recorder()
    rec.ok(rec.invoke(0, "acquire", "lock/x", 1), 50)
    rec.ok(rec.invoke(1, "acquire", "lock/x", 2), 60)
    workload = LockWorkload()
    workload.holds = [Hold(0, 50, 1.0, 2.0, 3.0), Hold(1, 60, 2.5, 3.0, 5.0)]
    assert workload.check(rec).valid
    rec.ok(rec.invoke(2, "acquire", "lock/x", 3), 60)
    verdict = workload.check(rec)
    assert not verdict.valid and "granted twice" in verdict.summary
    rec2 = recorder()
    rec2.ok(rec2.invoke(0, "acquire", "lock/x", 1), 50)
    workload.holds = [Hold(0, 50, 1.0, 4.0, 4.0), Hold(1, 60, 2.5, 3.0, 5.0)]
    verdict = workload.check(rec2)
    assert not verdict.valid and "both certainly held" in verdict.summary


def test_lock_tokens_must_grow_in_real_time() -> None:
    rec = recorder()
    rec.ok(rec.invoke(0, "acquire", "lock/x", 1), 60)
    rec.ok(rec.invoke(1, "acquire", "lock/x", 2), 50)  # began after token 60 was granted
    verdict = LockWorkload().check(rec)
    assert not verdict.valid and "after client 0 had token 60" in verdict.summary


def test_only_a_final_refusal_counts_as_not_applied() -> None:
    from accord.chaos.record import definitely_not_applied
    from accord.client.errors import (
        InvalidRequest,
        LeaseNotFound,
        ServerError,
        SessionExpired,
        StaleRequest,
        Unavailable,
    )
    from accord.errors import DeadlineExceeded, NotLeader, ProposalDropped

    assert definitely_not_applied(LeaseNotFound("gone", status=404))
    assert definitely_not_applied(InvalidRequest("bad ttl"))  # refused before sending
    for error in (
        DeadlineExceeded("timeout"),
        NotLeader(0),
        ProposalDropped("replaced"),
        Unavailable("no node"),
        ConnectionResetError(),
        ServerError("internal", status=500),
        SessionExpired("forgotten", status=409),
        StaleRequest("later write seen", status=409),
    ):
        assert not definitely_not_applied(error), error
    rec = recorder()
    op = rec.invoke(0, "write", "k", 1)
    rec.failed(op, DeadlineExceeded("timeout"), has_effect=True)
    assert op.status == "unknown"
    op = rec.invoke(0, "read", "k", None)
    rec.failed(op, DeadlineExceeded("timeout"), has_effect=False)
    assert op.status == "fail"  # a read changes nothing: it just drops out
