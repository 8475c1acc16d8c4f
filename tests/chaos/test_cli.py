"""`accord chaos run` from the command line: verdict, exit status, output files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from accord.chaos import runner
from accord.cli.main import cli


def test_unknown_fault_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["chaos", "run", "--faults", "kill,meteor", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "unknown fault(s): meteor" in result.output
    result = CliRunner().invoke(cli, ["chaos", "run", "--client", "carrier-pigeon"])
    assert result.exit_code == 2 and "unknown client kind (known: http, native)" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "move needs a sharded cluster (--shards 2 or more)"),
        (["--shards", "3"], "move needs a node free of each shard: --nodes (3) above"),
        (["--shards", "3", "--nodes", "4", "--replicas", "4"], "--nodes (4) above the"),
        (["--shards", "3", "--nodes", "4", "--replicas", "5"], "5 replicas of each shard need"),
    ],
)
def test_moves_need_shards_and_a_node_free_of_each(
    args: list[str], message: str, tmp_path: Path
) -> None:
    command = ["chaos", "run", "--faults", "kill,move", *args, "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, command)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "cluster").exists()  # refused before anything started


def test_run_options_refuse_moves_without_a_free_node(tmp_path: Path) -> None:
    options = runner.RunOptions("set", ["move"], nodes=3, shards=3, out=tmp_path)
    with pytest.raises(ValueError, match="a node free of each shard"):
        runner.run(options)


@pytest.mark.slow
def test_a_short_run_prints_the_verdict_and_writes_its_files(tmp_path: Path) -> None:
    # Longer than the longest gap before a fault (`Pace.gap_s`), with room to spare, so
    # the run always holds one (seed 3's first pause comes 3.97 s in).
    args = ["chaos", "run", "--workload", "set", "--faults", "pause", "--time", "6"]
    result = CliRunner().invoke(cli, [*args, "--seed", "3", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "valid"
    for name in ("history.jsonl", "faults.jsonl", "verdict.json", "report.html"):
        assert (tmp_path / name).stat().st_size > 0, name
    summary = json.loads((tmp_path / "verdict.json").read_text())
    assert summary["valid"] and summary["workload"] == "set" and summary["seed"] == 3


def test_a_network_that_cannot_run_here_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "unavailable", lambda: "needs root (on purpose)")
    args = ["chaos", "run", "--network", "netns", "--time", "1", "--out", str(tmp_path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == "Error: --network netns: needs root (on purpose)"
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["chaos", "run", "--network", "carrier-pigeon"])
    assert result.exit_code == 2 and "Invalid value for '--network'" in result.output
