"""The move state machine: the steps in order, refusals, timeouts and aborts."""

from __future__ import annotations

import pytest

from accord.shard.mover import (
    RETRY_TICKS,
    AddLearner,
    HandOver,
    InvalidTransition,
    Membership,
    Mover,
    MoveState,
    Progress,
    ProposeMetadata,
    Recorded,
    RemoveLearner,
    Swap,
    Tick,
)
from accord.shard.placement import AddReplica, MoveReplica


def conf(voters: set[int], learners: set[int] = frozenset(), joint: bool = False) -> Membership:  # type: ignore[assignment]
    return Membership(frozenset(voters), frozenset(learners), joint)


def test_a_move_off_a_follower_goes_learner_catch_up_swap_record() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"))
    assert m.start() == [ProposeMetadata("move", (7, 3, 4))]
    assert m.step(Recorded(True)) == [AddLearner(4)]
    assert m.step(conf({1, 2, 3})) == []  # the change is not applied yet
    assert m.step(conf({1, 2, 3}, {4})) == [] and m.state is MoveState.CATCHING_UP
    assert m.step(Progress(leader=1, target_match=3, commit=50)) == []  # behind
    assert m.step(Progress(leader=1, target_match=49, commit=60)) == []  # still behind 50
    assert m.step(Progress(leader=1, target_match=50, commit=61)) == [Swap(4, 3)]
    assert m.step(conf({1, 2, 3, 4}, joint=True)) == []  # joint: not done
    assert m.step(conf({1, 2, 4})) == [ProposeMetadata("members", (7, [1, 2, 4], []))]
    assert m.step(Recorded(True)) == [ProposeMetadata("moved", (7, 3, 4))]
    assert m.state is MoveState.DONE and m.finished
    assert m.step(Recorded(True)) == []  # the answer to `moved`


def test_moving_off_the_leader_hands_leadership_to_another_voter_first() -> None:
    m = Mover(MoveReplica(7, 1, 4, "node 1 is leaving"))
    m.start()
    m.step(Recorded(True))
    m.step(conf({1, 2, 3}, {4}))
    assert m.step(Progress(leader=1, target_match=10, commit=10)) == [HandOver(2)]
    assert m.step(Progress(leader=0, target_match=10, commit=10)) == []  # election
    assert m.step(Progress(leader=2, target_match=10, commit=11)) == [Swap(4, 1)]


def test_an_add_promotes_only() -> None:
    m = Mover(AddReplica(5, 9, "2 of 3 replicas"))
    assert m.start() == [ProposeMetadata("move", (5, 0, 9))]
    m.step(Recorded(True))
    m.step(conf({1, 2}, {9}))
    assert m.step(Progress(leader=1, target_match=5, commit=5)) == [Swap(9, None)]
    assert m.step(conf({1, 2, 9})) == [ProposeMetadata("members", (5, [1, 2, 9], []))]


def test_a_stale_map_at_the_end_records_the_members_again() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"))
    m.start()
    m.step(Recorded(True))
    m.step(conf({1, 2, 3}, {4}))
    m.step(Progress(leader=1, target_match=5, commit=5))
    m.step(conf({1, 2, 4}))
    assert m.step(Recorded(False)) == [ProposeMetadata("members", (7, [1, 2, 4], []))]
    assert m.state is MoveState.FINISHING


def test_a_refused_move_ends_at_once() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"))
    m.start()
    assert m.step(Recorded(False)) == [] and m.state is MoveState.ABORTED


def test_a_learner_that_never_catches_up_is_removed() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"), catch_up_ticks=5)
    m.start()
    m.step(Recorded(True))
    m.step(conf({1, 2, 3}, {4}))
    for _ in range(4):
        assert m.step(Tick()) == []
    # Recorded as being given up first, so no later leader promotes the learner.
    assert m.step(Tick()) == [ProposeMetadata("abort", (7, 3, 4))]
    assert m.state is MoveState.ABORT_RECORDING and "did not catch up" in m.reason
    assert m.step(Recorded(True)) == [RemoveLearner(4)] and m.state is MoveState.ABORTING
    assert m.step(conf({1, 2, 3}, {4})) == []  # not removed yet
    assert m.step(conf({1, 2, 3})) == [ProposeMetadata("moved", (7, 3, 4))]
    assert m.state is MoveState.ABORTED


def test_a_target_seen_as_a_voter_only_goes_forward_in_any_state() -> None:
    """A swap another leader of the shard proposed shows up late: the learner the
    mover was catching up, or giving up, is a voter now, and is never removed."""
    for steps in ([], [Tick()] * 5, [Tick()] * 5 + [Recorded(True)]):
        m = Mover(MoveReplica(7, 3, 4, "balance"), catch_up_ticks=5)
        m.resume(conf({1, 2, 3}, {4}))
        for step in steps:
            m.step(step)
        assert m.step(conf({1, 2, 3, 4}, joint=True)) == [], steps
        assert m.state is MoveState.SWAPPING and not m.reason
        assert m.step(conf({1, 2, 4})) == [ProposeMetadata("members", (7, [1, 2, 4], []))]


def test_resuming_a_move_given_up_removes_the_learner_and_never_adds_it() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    assert m.resume(conf({1, 2, 3}, {4}), aborting=True) == [RemoveLearner(4)]
    assert m.step(conf({1, 2, 3})) == [ProposeMetadata("moved", (7, 3, 4))]
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    m.resume(conf({1, 2, 3}), aborting=True)  # the learner is already gone
    assert m.step(conf({1, 2, 3})) == [ProposeMetadata("moved", (7, 3, 4))]


def test_once_swapping_the_move_only_goes_forward() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"), catch_up_ticks=1)
    m.start()
    m.step(Recorded(True))
    m.step(conf({1, 2, 3}, {4}))
    m.step(Progress(leader=1, target_match=5, commit=5))
    assert m.state is MoveState.SWAPPING
    assert m.step(Tick()) == [] and m.state is MoveState.SWAPPING  # no abort now
    # The leader asked may have lost leadership and dropped the change: ask again.
    asked = [m.step(Tick()) for _ in range(RETRY_TICKS)]
    assert [Swap(4, 3)] in asked and m.state is MoveState.SWAPPING


def test_without_a_leader_the_catch_up_is_not_judged() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"))
    m.start()
    m.step(Recorded(True))
    m.step(conf({1, 2, 3}, {4}))
    assert m.step(Progress(leader=0, target_match=0, commit=0)) == []
    assert m.step(Progress(leader=2, target_match=0, commit=9)) == []
    assert m.state is MoveState.CATCHING_UP


def test_events_out_of_order_are_refused() -> None:
    m = Mover(MoveReplica(7, 3, 4, "balance"))
    m.start()
    m.step(Recorded(True))
    with pytest.raises(InvalidTransition):
        m.step(Recorded(True))  # no metadata command is pending while adding


# --- a new shard leader takes a recorded move over -------------------------------------
def test_resuming_before_the_learner_was_added_adds_it() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    assert m.resume(conf({1, 2, 3})) == [AddLearner(4)]
    assert m.state is MoveState.ADDING


def test_resuming_with_the_learner_in_place_waits_for_its_catch_up() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    assert m.resume(conf({1, 2, 3}, {4})) == [] and m.state is MoveState.CATCHING_UP
    assert m.step(Progress(leader=2, target_match=9, commit=9)) == [Swap(4, 3)]


def test_resuming_a_joint_swap_only_waits_for_its_outcome() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    assert m.resume(conf({1, 2, 3, 4}, joint=True)) == [] and m.state is MoveState.SWAPPING
    assert m.step(conf({1, 2, 4})) == [ProposeMetadata("members", (7, [1, 2, 4], []))]


def test_resuming_a_finished_swap_records_the_members() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    assert m.resume(conf({1, 2, 4})) == [ProposeMetadata("members", (7, [1, 2, 4], []))]
    assert m.step(Recorded(True)) == [ProposeMetadata("moved", (7, 3, 4))]
    assert m.state is MoveState.DONE


def test_resuming_when_the_source_left_without_the_target_gives_up() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    assert m.resume(conf({1, 2})) == [ProposeMetadata("abort", (7, 3, 4))]
    assert m.state is MoveState.ABORT_RECORDING and "left" in m.reason


def test_resuming_twice_is_refused() -> None:
    m = Mover(AddReplica(7, 4, "recorded"))
    m.resume(conf({1, 2}))
    with pytest.raises(InvalidTransition):
        m.resume(conf({1, 2}))


def test_a_members_record_that_got_no_answer_is_asked_again() -> None:
    m = Mover(MoveReplica(7, 3, 4, "recorded"))
    record = m.resume(conf({1, 2, 4}))
    assert [m.step(Tick()) for _ in range(RETRY_TICKS - 1)] == [[]] * (RETRY_TICKS - 1)
    assert m.step(Tick()) == record and m.state is MoveState.FINISHING
