"""Latency and throughput bookkeeping of a benchmark run, bounded in memory.

Latencies go into a log-bucketed histogram (each bucket 1% wider than the one
before, from 1 µs), so a run of any length keeps at most a few thousand counters and
percentiles are exact to within 1%. Throughput is counted per whole second since the
start. Both merge by addition, which is how the worker processes' parts are combined.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_GROWTH = math.log(1.01)
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def _bucket(latency_s: float) -> int:
    return max(0, int(math.log(max(latency_s * 1e6, 1.0)) / _GROWTH))


def _bucket_upper_s(bucket: int) -> float:
    return math.exp((bucket + 1) * _GROWTH) / 1e6


@dataclass
class Stats:
    histogram: Counter[int] = field(default_factory=Counter)
    per_second: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    max_s: float = 0.0

    def record(self, latency_s: float, second: int) -> None:
        self.histogram[_bucket(latency_s)] += 1
        self.per_second[second] += 1
        if latency_s > self.max_s:
            self.max_s = latency_s

    def error(self, kind: str) -> None:
        self.errors[kind] += 1

    @property
    def count(self) -> int:
        return sum(self.histogram.values())

    def merge(self, other: Stats) -> None:
        self.histogram.update(other.histogram)
        self.per_second.update(other.per_second)
        self.errors.update(other.errors)
        self.max_s = max(self.max_s, other.max_s)

    def percentile_s(self, percent: float) -> float:
        """The latency below which `percent` of the operations completed (to 1%)."""
        total = self.count
        if not total:
            return 0.0
        rank = math.ceil(total * percent / 100)
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= rank:
                return min(_bucket_upper_s(bucket), self.max_s)
        return self.max_s

    def to_wire(self) -> dict[str, Any]:
        return {
            "histogram": dict(self.histogram),
            "per_second": dict(self.per_second),
            "errors": dict(self.errors),
            "max_s": self.max_s,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Stats:
        return cls(
            Counter({int(k): int(v) for k, v in data["histogram"].items()}),
            Counter({int(k): int(v) for k, v in data["per_second"].items()}),
            Counter({str(k): int(v) for k, v in data["errors"].items()}),
            float(data["max_s"]),
        )


@dataclass(frozen=True)
class Summary:
    """What a run reports: throughput, latency percentiles, errors by kind."""

    workload: str
    target: str
    concurrency: int
    seconds: float
    operations: int
    ops_per_s: float
    latency_ms: dict[str, float]
    errors: dict[str, int]
    per_second: list[int]

    @classmethod
    def of(
        cls, stats: Stats, *, workload: str, target: str, concurrency: int, seconds: float
    ) -> Summary:
        latency = {f"p{p:g}": stats.percentile_s(p) * 1000 for p in PERCENTILES}
        latency["max"] = stats.max_s * 1000
        last = max(stats.per_second, default=-1)
        return cls(
            workload=workload,
            target=target,
            concurrency=concurrency,
            seconds=seconds,
            operations=stats.count,
            ops_per_s=stats.count / seconds if seconds > 0 else 0.0,
            latency_ms=latency,
            errors=dict(stats.errors),
            per_second=[stats.per_second.get(s, 0) for s in range(last + 1)],
        )
