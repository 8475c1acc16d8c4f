"""The benchmark's latency histogram against exact percentiles of the raw samples."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from accord.bench.stats import Stats, Summary

latencies = st.lists(st.floats(min_value=1e-6, max_value=30.0), min_size=1, max_size=400)


def exact(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(len(ordered) * percent / 100) - 1]


@given(latencies, st.sampled_from([50.0, 90.0, 99.0, 99.9, 100.0]))
def test_percentiles_are_within_one_percent(values: list[float], percent: float) -> None:
    stats = Stats()
    for i, value in enumerate(values):
        stats.record(value, i // 10)
    truth = exact(values, percent)
    assert truth * 0.989 <= stats.percentile_s(percent) <= truth * 1.011
    assert stats.max_s == max(values)


@given(latencies, latencies)
def test_merging_equals_recording_everything_in_one(a: list[float], b: list[float]) -> None:
    left, right, both = Stats(), Stats(), Stats()
    for i, value in enumerate(a):
        left.record(value, i % 3)
        both.record(value, i % 3)
    for i, value in enumerate(b):
        right.record(value, i % 5)
        both.record(value, i % 5)
    left.error("Timeout")
    right.error("Timeout")
    left.merge(Stats.from_wire(right.to_wire()))  # as a worker process would send it
    both.errors["Timeout"] = 2
    assert left == both


def test_the_summary_reports_rate_and_per_second_counts() -> None:
    stats = Stats()
    for second, count in ((0, 3), (2, 5)):
        for _ in range(count):
            stats.record(0.002, second)
    summary = Summary.of(stats, workload="write", target="accord", concurrency=4, seconds=4.0)
    assert summary.operations == 8 and summary.ops_per_s == 2.0
    assert summary.per_second == [3, 0, 5]
    assert 1.98 <= summary.latency_ms["p50"] <= 2.02
