"""The hostile reproducers, grouped by the cluster each runs against.

Four `accord up` clusters, each started for its group and stopped after it, always:

- `peer`: peer-port attacks by outsiders (plaintext) and by a holder of another
  node's certificate, which leave a cluster to observe (class 1);
- `overflow`: the term 2^64-1 heartbeat, which may take every node down, against a
  cluster with `insecure_peers` so that it reaches the decoder's bounds (class 1);
- `plain`: read amplification, bad input, small points, then the short lease storm,
  which kills the leader (classes 2, 7, 8, 3);
- `secure` (`--secure`, `ACCORD_CONNECTIONS_MAX=20`): tokens, leases across users,
  then logins and connections, the rate-limit hammer last because a lockout may
  refuse later logins (classes 4, 6, 5).

A reproducer that fails with an exception is reported as broken, with the error:
the cluster did not let it finish.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from pathlib import Path

from accord.chaos import leasestorm
from accord.chaos.hostile import auth, peer, requests
from accord.chaos.hostile.outcome import Outcome, judge
from accord.chaos.localup import UpCluster

STORM_LEASES = 5_000
STORM_SECONDS = 20.0
STORM_WRITE_INTERVAL_S = 2.0
STORM_WRITES_OK_SHARE_MIN = 0.9
STORM_ELECTIONS_MAX = 2
CONNECTIONS_MAX = auth.IDLE_SOCKETS

Reproducer = Callable[[UpCluster], Outcome | list[Outcome]]


def lease_storm_short(
    cluster: UpCluster,
    leases: int = STORM_LEASES,
    seconds: float = STORM_SECONDS,
    write_interval_s: float = STORM_WRITE_INTERVAL_S,
) -> Outcome:
    report = asyncio.run(leasestorm.run(cluster, leases, seconds, write_interval_s))
    failures = []
    if report.writes_ok < STORM_WRITES_OK_SHARE_MIN * report.writes_attempted:
        failures.append(f"{report.writes_ok} of {report.writes_attempted} writes succeeded")
    if report.elections > STORM_ELECTIONS_MAX:
        failures.append(f"{report.elections} elections in {report.seconds:.0f} s")
    if report.log_growth >= report.leases_granted > 0:
        failures.append(f"the log grew by {report.log_growth} entries after the kill")
    return judge(
        3,
        "lease_storm_short",
        f"{leases} leases of 10 years (native, pipelined), kill -9 + restart of the "
        f"leader, a write every {write_interval_s:g} s for {seconds:g} s",
        failures,
        leases=report.leases_granted,
        writes=f"{report.writes_ok}/{report.writes_attempted}",
        latency_median_s=report.write_latency_median_s,
        latency_max_s=report.write_latency_max_s,
        elections=report.elections,
        log_growth=report.log_growth,
    )


# (group, cluster settings, [(class, reproducer)]) in the order they run.
GROUPS: list[tuple[str, dict[str, object], list[tuple[int, Reproducer]]]] = [
    (
        "peer",
        {},
        [
            (1, peer.plaintext_hello),
            (1, peer.refused_hello_leak),
            (1, peer.heartbeat_depose),
            (1, peer.forged_append),
            (1, peer.cert_claims_other_id),
        ],
    ),
    ("overflow", {"env": {"ACCORD_INSECURE_PEERS": "1"}}, [(1, peer.term_overflow)]),
    (
        "plain",
        {"env": dict(leasestorm.NODE_ENV)},
        [
            (2, requests.read_amplification),
            (7, requests.bad_input),
            (8, requests.small_points),
            (3, lease_storm_short),
        ],
    ),
    (
        "secure",
        {"secure": True, "env": {"ACCORD_CONNECTIONS_MAX": str(CONNECTIONS_MAX)}},
        [
            (4, auth.token_resurrection),
            (6, auth.leases_across_tenants),
            (5, auth.secrets_in_logs),
            (5, auth.idle_sockets),
            (5, auth.login_timing),
            (5, auth.login_hammer),
        ],
    ),
]
CLASSES = frozenset(k for _, _, steps in GROUPS for k, _ in steps)


def run(
    only: set[int] | None = None,
    directory: Path | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the reproducers of the classes in `only` (all by default), each group on a
    cluster of its own under `directory` (a temporary one by default)."""
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="accord-hostile-") as scratch:
        base = Path(directory or scratch)
        for group, settings, steps in GROUPS:
            chosen = [(k, step) for k, step in steps if only is None or k in only]
            if not chosen:
                continue
            with UpCluster(base / group, **settings) as cluster:  # type: ignore[arg-type]
                for klass, step in chosen:
                    for outcome in _attempt(klass, step, cluster):
                        outcomes.append(outcome)
                        if on_outcome is not None:
                            on_outcome(outcome)
    return outcomes


def _attempt(klass: int, step: Reproducer, cluster: UpCluster) -> list[Outcome]:
    try:
        result = step(cluster)
    except Exception as exc:  # the cluster did not let the reproducer finish: a finding
        name = step.__name__
        return [Outcome(klass, name, name, False, f"reproducer error: {exc!r}"[:300])]
    return result if isinstance(result, list) else [result]
