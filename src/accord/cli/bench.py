"""`accord bench`: load a running cluster (Accord, or etcd for comparison) and report
throughput and latency percentiles."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.live import Live
from rich.text import Text

from accord.bench import report
from accord.bench.drivers import TARGETS
from accord.bench.runner import WORKLOADS, BenchError, Plan, run
from accord.bench.stats import Summary


@click.command("bench")
@click.option(
    "--workload",
    "workloads",
    type=click.Choice(sorted(WORKLOADS)),
    multiple=True,
    default=["write"],
    show_default=True,
    help="repeat to run several, one after another",
)
@click.option(
    "--endpoints",
    default="accord://127.0.0.1:7201,accord://127.0.0.1:7202,accord://127.0.0.1:7203",
    show_default=True,
    help="comma-separated: accord:// (native) or http:// for Accord, http:// for etcd",
)
@click.option("--target", type=click.Choice(TARGETS), default="accord", show_default=True)
@click.option(
    "--concurrency",
    "concurrencies",
    type=click.IntRange(1),
    multiple=True,
    default=[16],
    show_default=True,
    help="concurrent requests in flight; repeat for several runs",
)
@click.option("--seconds", type=click.FloatRange(0.5), default=10.0, show_default=True)
@click.option("--keys", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--value-bytes", type=click.IntRange(0), default=100, show_default=True)
@click.option(
    "--processes",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="load-generating processes (a Python client is CPU-bound)",
)
@click.option(
    "--prefill",
    type=click.IntRange(0),
    default=None,
    help="keys written before a run with reads, which read among them [default: 1000]",
)
@click.option("--json", "as_json", is_flag=True, help="print the results as JSON")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="save a PNG")
def bench(
    workloads: tuple[str, ...],
    endpoints: str,
    target: str,
    concurrencies: tuple[int, ...],
    seconds: float,
    keys: int,
    value_bytes: int,
    processes: int,
    prefill: int | None,
    as_json: bool,
    plot: Path | None,
) -> None:
    """Run workloads against a cluster and print throughput and latency."""
    console = Console(stderr=True)
    urls = tuple(e.strip() for e in endpoints.split(",") if e.strip())
    summaries: list[Summary] = []
    for name in workloads:
        workload = WORKLOADS[name]
        for concurrency in concurrencies:
            plan = Plan(
                workload=workload,
                target=target,
                endpoints=urls,
                concurrency=concurrency,
                seconds=seconds,
                keys=keys,
                value_bytes=value_bytes,
                processes=min(processes, concurrency),
                prefill=(1000 if prefill is None else prefill) if workload.read_share else 0,
            )
            summaries.append(_run_one(plan, console))
    if as_json:
        click.echo(report.to_json(summaries))
    else:
        report.print_table(summaries)
    if plot is not None:
        report.plot(summaries, plot)
        console.print(f"plot saved to {plot}")


def _run_one(plan: Plan, console: Console) -> Summary:
    title = f"{plan.target} {plan.workload.name} c={plan.concurrency}"
    with Live(Text(f"{title}: prefilling ..."), console=console, transient=True) as live:

        def progress(operations: int, errors: int, elapsed_s: float) -> None:
            rate = operations / elapsed_s if elapsed_s > 0 else 0.0
            live.update(
                Text(
                    f"{title}: {elapsed_s:5.1f}/{plan.seconds:g}s  {operations:,} ops  "
                    f"{rate:,.0f} ops/s  {errors:,} errors"
                )
            )

        try:
            return run(plan, progress)
        except BenchError as e:
            raise click.ClickException(str(e)) from e
