"""Reconnect delays: full jitter under a doubling, capped ceiling."""

from __future__ import annotations

import random

import pytest

from accord.invariant import InvariantError
from accord.transport.backoff import backoff_delay_s


class CeilingRng(random.Random):
    """Returns the top of the range asked for, so tests see the ceiling itself."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_ceiling_doubles_then_caps() -> None:
    rng = CeilingRng()
    ceilings = [backoff_delay_s(n, rng, 0.05, 1.0) for n in range(8)]
    assert ceilings == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0])


def test_delays_are_jittered_within_the_ceiling() -> None:
    rng = random.Random(7)
    delays = [backoff_delay_s(3, rng, 0.05, 1.0) for _ in range(200)]
    assert all(0.0 <= d <= 0.4 for d in delays)
    assert len(set(delays)) == len(delays)  # full jitter: no two reconnects in lockstep
    assert min(delays) < 0.1 < 0.3 < max(delays)


def test_many_failures_do_not_overflow() -> None:
    assert backoff_delay_s(10_000, CeilingRng(), 0.05, 2.0) == 2.0


def test_same_seed_same_delays() -> None:
    first = [backoff_delay_s(n, random.Random(1), 0.1, 5.0) for n in range(10)]
    second = [backoff_delay_s(n, random.Random(1), 0.1, 5.0) for n in range(10)]
    assert first == second


def test_rejects_nonsense() -> None:
    with pytest.raises(InvariantError):
        backoff_delay_s(-1, random.Random(), 0.1, 1.0)
    with pytest.raises(InvariantError):
        backoff_delay_s(0, random.Random(), 2.0, 1.0)
