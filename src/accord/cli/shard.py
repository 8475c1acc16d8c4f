"""`accord shard list` and `accord shard move`: the shard map as a node reports it,
and moving a replica by hand.

`list` prints each shard with its slot ranges, its replicas (the first is its
preferred leader), its leader and key count where the answering node holds a replica
of it, the move under way on it, and every node's state in the metadata (`up`,
`down`, `leaving`) with its labels. `move` asks the metadata group to move one
replica of a shard (`POST /v1/cluster/shards/{id}/move`); the shard's leader carries
it out, and `list` shows it under way, then done.
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
        move = row.get("move")
        moving = f"  moving {move['source'] or '(new)'} -> {move['target']}" if move else ""
        click.echo(
            f"{row['id']:>6}  {_slots(row['slots']):<18} {row['leader'] or '-':<8} "
            f"{keys:>8}  {replicas}{moving}"
        )
    for node in doc.get("nodes", []):
        labels = ",".join(f"{k}={v}" for k, v in node["labels"].items()) or "no labels"
        click.echo(f"node {node['id']:>4}  {node['name']:<10} {node['state']:<8} {labels}")


@click.group("shard")
def shard() -> None:
    """The cluster's shards."""


@shard.command("list")
@endpoints_option
def shard_list(endpoints: str) -> None:
    """Every shard: slots, leader, keys, replicas."""
    _print_shards(call_api(endpoints, "GET", "/v1/cluster/shards"))


@shard.command("move")
@click.argument("shard_id", type=click.IntRange(min=1))
@click.option("--to", "target", required=True, type=click.IntRange(min=1), help="node id")
@click.option(
    "--from", "source", type=click.IntRange(min=1), help="node id (omit to add a replica)"
)
@endpoints_option
def shard_move(shard_id: int, target: int, source: int | None, endpoints: str) -> None:
    """Move a replica of SHARD_ID from one node to another (or add one)."""
    body = {"target": target, **({"source": source} if source else {})}
    answer = call_api(endpoints, "POST", f"/v1/cluster/shards/{shard_id}/move", body)
    click.echo(
        f"shard {shard_id}: moving {f'node {source}' if source else 'a new replica'} "
        f"to node {target} (map version {answer['version']}); "
        "`accord shard list` shows it under way"
    )
