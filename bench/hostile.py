"""Hostile reproducers against real `accord up` clusters (see docs/chaos.md).

    python bench/hostile.py [--only 1,5] [--json FILE] [--check] [--dir DIR]

Prints one row per reproducer: name, what was done, `held` or `BROKE: why`, figures.
`--check` exits 1 if any broke.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from accord.chaos.hostile import CLASSES, Outcome, run, table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated classes (1..8)")
    parser.add_argument("--json", type=Path, help="write the outcomes here")
    parser.add_argument("--check", action="store_true", help="exit 1 if any reproducer broke")
    parser.add_argument("--dir", type=Path, help="keep the clusters' directories here")
    args = parser.parse_args()
    only = {int(k) for k in args.only.split(",")} if args.only else None
    if only and not only <= CLASSES:
        parser.error(f"classes are {sorted(CLASSES)}")

    def progress(outcome: Outcome) -> None:
        print(f"  [{outcome.klass}] {outcome.name}: {outcome.verdict}", file=sys.stderr)

    started = time.monotonic()
    outcomes = run(only, args.dir, progress)
    print(table(outcomes))
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps([o.to_json() for o in outcomes], indent=2) + "\n")
    return 1 if args.check and not all(o.held for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
