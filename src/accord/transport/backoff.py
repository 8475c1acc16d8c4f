"""Reconnect delays: capped exponential backoff with full jitter (pure).

"Full jitter" draws each delay uniformly from zero up to the current ceiling, and the
ceiling doubles with every consecutive failure up to a cap. Peers that lost the same
node at the same moment therefore spread their reconnects out instead of arriving in
waves, and a node that comes back is found again within about one cap. The RNG is
passed in, so tests choose the delays.
"""

from __future__ import annotations

import random

from accord.invariant import invariant

_DOUBLINGS_MAX = 60
"""Past this many doublings every sane cap has been reached; stops float overflow."""


def backoff_delay_s(
    failures: int, rng: random.Random, delay_s_min: float, delay_s_max: float
) -> float:
    """Delay before the next attempt after `failures` consecutive failed attempts
    (0 after a connection that worked): uniform in `[0, min(max, min * 2**failures)]`."""
    invariant(failures >= 0, "failures must be >= 0")
    invariant(0 < delay_s_min <= delay_s_max, "need 0 < delay_s_min <= delay_s_max")
    ceiling_s = min(delay_s_max, delay_s_min * 2.0 ** min(failures, _DOUBLINGS_MAX))
    return rng.uniform(0.0, ceiling_s)
