"""The leader's keepalive memory: real deadlines, what expires, what is checkpointed."""

from __future__ import annotations

from accord.node.lessor import LeasePlan, Lessor


def test_a_keepalive_moves_the_real_deadline_past_the_replicated_one() -> None:
    lessor = Lessor()
    assert lessor.deadline_ms(1, 5_000) == 5_000
    assert lessor.keepalive(1, 1_000, 4_500) == 5_500
    assert lessor.keepalive(1, 1_000, 4_000) == 5_500, "an older keepalive never shortens"
    assert lessor.deadline_ms(1, 5_000) == 5_500
    assert lessor.deadline_ms(1, 9_000) == 9_000


def test_plan_expires_by_the_real_deadline_and_checkpoints_within_half_a_ttl() -> None:
    lessor = Lessor()
    lessor.keepalive(1, 1_000, 900)  # real 1_900; replicated 1_000: due within 500
    lessor.keepalive(2, 10_000, 900)  # real 10_900; replicated 9_000: far from due
    lessor.keepalive(4, 1_000, 0)  # a lease that is gone
    table = {1: (1_000, 1_000), 2: (10_000, 9_000), 3: (1_000, 950)}
    plan = lessor.plan([3], table.get, now_ms=960)
    assert plan == LeasePlan(expired=[3], checkpoints=[(1, 1_900)])
    assert len(lessor) == 2, "lease 4 forgotten"
    # Lease 1 past its replicated deadline is alive by its keepalive, and not expired.
    table = {1: (1_000, 1_000), 2: (10_000, 10_900)}
    plan = lessor.plan([1], table.get, now_ms=1_200)
    assert plan == LeasePlan(expired=[], checkpoints=[(1, 1_900)])
    assert len(lessor) == 1, "lease 2's replicated deadline caught up"
    assert lessor.plan([1], table.get, now_ms=1_900).expired == [1]


def test_reset_forgets_every_keepalive() -> None:
    lessor = Lessor()
    lessor.keepalive(1, 1_000, 0)
    lessor.reset()
    assert lessor.deadline_ms(1, 10) == 10 and len(lessor) == 0


def test_a_short_ttl_is_checkpointed_a_margin_ahead_not_only_half_a_ttl() -> None:
    table = {1: (1_000, 1_000)}
    lessor = Lessor()
    lessor.keepalive(1, 1_000, 500)  # real 1_500; replicated 1_000: half a TTL away
    assert lessor.plan([], table.get, now_ms=500).checkpoints == []
    assert lessor.plan([], table.get, now_ms=500, margin_ms=2_000).checkpoints == [(1, 1_500)]
