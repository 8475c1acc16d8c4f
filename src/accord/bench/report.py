"""A benchmark's results as a table, as JSON, and as a PNG (latency distribution and
throughput over time)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from accord.bench.stats import Summary


def table(summaries: Sequence[Summary]) -> Table:
    out = Table(title="accord bench")
    for name in ("target", "workload", "conc.", "ops/s", "p50 ms", "p90 ms", "p99 ms"):
        out.add_column(name, justify="right" if name not in ("target", "workload") else "left")
    out.add_column("p99.9 ms", justify="right")
    out.add_column("max ms", justify="right")
    out.add_column("errors")
    for s in summaries:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(s.errors.items())) or "-"
        out.add_row(
            s.target,
            s.workload,
            str(s.concurrency),
            f"{s.ops_per_s:,.0f}",
            *(f"{s.latency_ms[k]:.2f}" for k in ("p50", "p90", "p99", "p99.9", "max")),
            errors,
        )
    return out


def print_table(summaries: Sequence[Summary], console: Console | None = None) -> None:
    (console or Console()).print(table(summaries))


def to_json(summaries: Sequence[Summary]) -> str:
    return json.dumps([dataclasses.asdict(s) for s in summaries], indent=2)


def plot(summaries: Sequence[Summary], path: Path) -> None:
    """Throughput per second and latency percentiles of every run, in one PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: render to a file
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError("plots need matplotlib: pip install 'accord[bench]'") from e
    figure, (throughput, latency) = plt.subplots(1, 2, figsize=(12, 4.5))
    for s in summaries:
        label = f"{s.target} {s.workload} c={s.concurrency}"
        throughput.plot(range(len(s.per_second)), s.per_second, label=label)
        names = ["p50", "p90", "p99", "p99.9", "max"]
        latency.plot(names, [s.latency_ms[n] for n in names], marker="o", label=label)
    throughput.set(title="throughput", xlabel="second", ylabel="operations / s")
    latency.set(title="latency", ylabel="ms", yscale="log")
    for axes in (throughput, latency):
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
