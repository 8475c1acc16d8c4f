"""`accord chaos run`: a Jepsen-style test of a real local cluster (see accord.chaos)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from accord.chaos.cluster import BUGS

SHARDED_WORKLOADS = ("register", "set")
"""Workloads whose checkers hold over shards (bank moves money between keys of
several shards, lock needs leases and one revision order, watch one revision order)."""


@click.group("chaos")
def chaos() -> None:
    """Fault-injection tests against real node processes."""


@chaos.command("run")
@click.option(
    "--workload",
    type=click.Choice(["register", "set", "bank", "watch", "lock"]),
    default="register",
    show_default=True,
    help="what the clients do and what is checked (see the README)",
)
@click.option(
    "--faults",
    default="kill,pause,partition,latency",
    show_default=True,
    help="comma-separated: kill, pause, partition, latency, move (or 'none'); "
    "move needs --shards 2 or more and more nodes than --replicas",
)
@click.option("--nodes", type=click.IntRange(3, 5), default=3, show_default=True)
@click.option(
    "--shards",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="spread the keys over this many shards (register and set workloads)",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 5),
    default=3,
    show_default=True,
    help="voters of each shard, at most one per node (with --shards)",
)
@click.option(
    "--time",
    "time_s",
    type=click.FloatRange(1, 3600),
    default=60,
    show_default=True,
    help="seconds of faults and client operations",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="seeds the faults and the clients"
)
@click.option("--clients", type=click.IntRange(1, 64), default=None, help="client tasks")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="output directory [default: ./chaos-WORKLOAD-SEED]",
)
@click.option(
    "--client", "client_kind", default="http", show_default=True, help="client kind: http or native"
)
@click.option(
    "--bug",
    "bugs",
    multiple=True,
    type=click.Choice(sorted(BUGS)),
    help="switch on a DELIBERATE bug in every node (to see the checkers catch it)",
)
@click.option("--aggressive", is_flag=True, help="faults more often")
@click.option(
    "--variant",
    "variant_specs",
    multiple=True,
    metavar="FAMILY=V,...",
    help="draw a fault family's variants only from these (e.g. kill=all,stranded-leader); "
    "kill also has followers and stranded-leader, not drawn by default",
)
@click.option(
    "--network",
    type=click.Choice(["proxy", "netns"]),
    default="proxy",
    show_default=True,
    help="where partitions and latency happen: a TCP proxy on 127.0.0.1, or network "
    "namespaces with iptables (netns: needs root, ip and iptables)",
)
def run_command(
    workload: str,
    faults: str,
    nodes: int,
    shards: int,
    replicas: int,
    time_s: float,
    seed: int,
    clients: int | None,
    out: Path | None,
    client_kind: str,
    bugs: tuple[str, ...],
    aggressive: bool,
    variant_specs: tuple[str, ...],
    network: str,
) -> None:
    """Run WORKLOAD under FAULTS; print the verdict; exit 0 if valid, 1 if not."""
    from accord.chaos.clients import CLIENT_KINDS
    from accord.chaos.faults import AGGRESSIVE, FAMILIES, NORMAL, VARIANTS, move_refusal
    from accord.chaos.network import NetworkUnavailable
    from accord.chaos.runner import RunOptions, run

    if client_kind not in CLIENT_KINDS:
        kinds = ", ".join(sorted(CLIENT_KINDS))
        raise click.BadParameter(f"unknown client kind (known: {kinds})", param_hint="--client")

    if shards > 1 and workload not in SHARDED_WORKLOADS:
        raise click.BadParameter(
            f"{workload} is not run over shards yet: its checker reads one revision order "
            f"(over shards: {', '.join(SHARDED_WORKLOADS)})",
            param_hint="--shards",
        )
    families = [] if faults == "none" else [f.strip() for f in faults.split(",") if f.strip()]
    bad = [f for f in families if f not in FAMILIES]
    if bad:
        raise click.BadParameter(f"unknown fault(s): {', '.join(bad)}", param_hint="--faults")
    if replicas > nodes:
        raise click.BadParameter(
            f"{replicas} replicas of each shard need as many nodes (--nodes {nodes})",
            param_hint="--replicas",
        )
    refusal = move_refusal(shards, nodes, replicas)
    if "move" in families and refusal is not None:
        raise click.BadParameter(refusal, param_hint="--faults")
    variants: dict[str, list[str]] = {}
    for spec in variant_specs:
        family, _, names = spec.partition("=")
        chosen = [n.strip() for n in names.split(",") if n.strip()]
        known = VARIANTS.get(family.strip())
        if known is None or not chosen or any(n not in known for n in chosen):
            listed = "; ".join(f"{f}={','.join(v)}" for f, v in VARIANTS.items())
            raise click.BadParameter(f"{spec!r} (known: {listed})", param_hint="--variant")
        variants[family.strip()] = chosen
    options = RunOptions(
        workload=workload,
        faults=families,
        nodes=nodes,
        shards=shards,
        replicas=replicas,
        time_s=time_s,
        seed=seed,
        out=out or Path(f"chaos-{workload}-{seed}"),
        client_kind=client_kind,
        bugs=frozenset(bugs),
        pace=AGGRESSIVE if aggressive else NORMAL,
        clients=clients,
        network=network,
        variants=variants,
    )
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    logging.getLogger("accord.client").setLevel(logging.WARNING)
    click.echo(
        f"chaos run: {workload}, faults {families or 'none'}, seed {seed}, {time_s:g}s, "
        f"network {network}"
    )
    try:
        result = run(options)
    except NetworkUnavailable as e:
        click.echo(f"Error: --network {network}: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted; every node process was stopped", err=True)
        sys.exit(130)
    ops = result.operations
    click.echo(
        f"{workload}: {sum(ops.values())} operations ({ops['ok']} ok, {ops['fail']} failed, "
        f"{ops['unknown']} unknown), {sum(result.faults.values())} faults "
        f"{result.faults}, {result.duration_s:.0f}s"
    )
    if "move" in families:
        moves = result.moves
        click.echo(
            f"replica moves: {moves['asked']} asked, {moves['accepted']} accepted "
            f"({moves['done']} done, {moves['given up']} given up, {moves['under way']} "
            f"still under way), {moves['refused']} refused, {moves['unanswered']} unanswered"
        )
    click.echo(f"results in {result.out}/ (report.html, history.jsonl, faults.jsonl)")
    if not result.valid:
        for line in result.verdict.details:
            click.echo(line)
    click.echo(result.verdict.summary)
    sys.exit(0 if result.valid else 1)
