"""`accord shard list`: the shard map as a node reports it.

Each shard with its slot ranges, its replicas (the first is its preferred leader),
its leader and key count where the answering node holds a replica of it.
"""

from __future__ import annotations

from typing import Any

import click

from accord.cli.kv import endpoints_option
from accord.cli.member import call_api


def _slots(ranges: list[list[int]]) -> str:
    return ",".join(f"{start}-{stop - 1}" for start, stop in ranges)


def _print_shards(doc: dict[str, Any]) -> None:
    if not doc["version"]:
        click.echo("one group, no shard map (accord up --shards S spreads the keys)")
    else:
        click.echo(f"shard map version {doc['version']}")
    click.echo(f"{'shard':>6}  {'slots':<18} {'leader':<8} {'keys':>8}  replicas")
    for row in doc["shards"]:
        replicas = ", ".join([*row["replicas"], *(f"{n} (learner)" for n in row["learners"])])
        keys = "-" if row["keys"] is None else str(row["keys"])
        click.echo(
            f"{row['id']:>6}  {_slots(row['slots']):<18} {row['leader'] or '-':<8} "
            f"{keys:>8}  {replicas}"
        )


@click.group("shard")
def shard() -> None:
    """The cluster's shards."""


@shard.command("list")
@endpoints_option
def shard_list(endpoints: str) -> None:
    """Every shard: slots, leader, keys, replicas."""
    _print_shards(call_api(endpoints, "GET", "/v1/cluster/shards"))
