"""The lease storm against a real `accord up` cluster (see docs/chaos.md).

    python bench/lease_storm.py [--leases 100000] [--seconds 60] [--json FILE]

Grants LEASES leases of 10 years on native connections (pipelined), kills the leader
with SIGKILL and restarts it, then writes once every --write-interval-s for SECONDS
and reports writes attempted/succeeded, their latency, the elections seen and the
log growth (commit index before the kill and after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

from accord.chaos import leasestorm
from accord.chaos.localup import UpCluster


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leases", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--write-interval-s", type=float, default=leasestorm.WRITE_INTERVAL_S)
    parser.add_argument(
        "--grant-deadline-s", type=float, default=900.0, help="stop granting after this"
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--dir", type=Path, help="keep the cluster's directory here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="accord-storm-") as scratch:
        directory = args.dir or Path(scratch)
        with UpCluster(directory / "storm", env=dict(leasestorm.NODE_ENV)) as cluster:
            report = asyncio.run(
                leasestorm.run(
                    cluster,
                    args.leases,
                    args.seconds,
                    args.write_interval_s,
                    grant_deadline_s=args.grant_deadline_s,
                )
            )
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
