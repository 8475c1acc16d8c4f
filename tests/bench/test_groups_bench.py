"""`bench/groups.py` end to end, briefly: three real node processes per K, both modes,
and nothing left behind (no process, no data directory)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "groups.py"


def groups_bench(tmp_path: Path, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", "--tmpdir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=40,
    )
    assert out.returncode == 0, out.stderr
    document: dict[str, Any] = json.loads(out.stdout)
    assert list(tmp_path.iterdir()) == []  # every data directory removed
    for result in document["results"]:
        for pid in result["pids"]:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            raise AssertionError(f"node process {pid} still runs")
    return document


@pytest.mark.parametrize("leaders", ["elected", "spread"])
def test_write_mode_reports_writes_fsyncs_and_latency(tmp_path: Path, leaders: str) -> None:
    document = groups_bench(
        tmp_path, "write", "--groups", "2", "--seconds", "1", "--concurrency", "4",
        "--leaders", leaders,
    )  # fmt: skip
    [result] = document["results"]
    assert result["groups"] == 2 and result["written_groups"] == 2
    assert result["leaders_s"] is not None
    if leaders == "spread":  # groups 1 and 2 moved to nodes 1 and 2
        assert result["written_groups_led"] == [1, 1, 0]
    assert result["writes"] > 0 and result["writes_per_s"] > 0
    assert len(result["fsyncs_per_s"]) == 3 and all(f > 0 for f in result["fsyncs_per_s"])
    assert result["writes_per_fsync"] > 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert document["ratios"] == []  # one K: nothing to compare with


def test_idle_mode_reports_cpu_memory_and_messages(tmp_path: Path) -> None:
    document = groups_bench(tmp_path, "idle", "--groups", "3", "--seconds", "1", "--settle", "1")
    [result] = document["results"]
    assert result["groups"] == 3 and result["groups_with_leader"] == 4
    assert result["leaders_s"] is not None and sum(result["groups_led"]) == 4
    assert len(result["cpu_percent"]) == 3 and all(c >= 0 for c in result["cpu_percent"])
    assert all(kib > 0 for kib in result["rss_kib"])
    assert all(rate > 0 for rate in result["messages_sent_per_s"])  # heartbeats or answers
    assert len(result["leader_changes"]) == 3
    assert result["memory_per_group_kib"] is None  # no K = 0 run to compare with
