"""The key-value commands of `accord`, run with click's CliRunner against a cluster."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from accord.cli.main import cli
from accord.testing.cluster import LocalCluster

from .helpers import dead_url, urls


@pytest.fixture
def accord(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ACCORD_ENDPOINTS", ",".join(urls(cluster)))
    return CliRunner()


def ok(result: Result) -> str:
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_put_get_del(accord: CliRunner) -> None:
    assert ok(accord.invoke(cli, ["put", "cli/k", "hello"])).startswith("revision ")
    assert ok(accord.invoke(cli, ["get", "cli/k"])) == "hello\n"
    assert ok(accord.invoke(cli, ["get", "--serializable", "cli/k"])) in ("hello\n", "")
    revision = int(ok(accord.invoke(cli, ["put", "cli/k", "again"])).split()[1])
    assert ok(accord.invoke(cli, ["get", "cli/k", "--revision", str(revision - 1)])) == "hello\n"
    assert ok(accord.invoke(cli, ["del", "cli/k"])).startswith("deleted 1 ")
    missing = accord.invoke(cli, ["get", "cli/k"])
    assert missing.exit_code == 1 and missing.stdout == ""
    assert missing.stderr.startswith("error: not_found: ")


def test_range(accord: CliRunner) -> None:
    for name in ("a", "b", "c"):
        ok(accord.invoke(cli, ["put", f"clr/{name}", name.upper()]))
    assert ok(accord.invoke(cli, ["range", "--prefix", "clr/"])) == "clr/a\tA\nclr/b\tB\nclr/c\tC\n"
    assert ok(accord.invoke(cli, ["range", "clr/a", "clr/c"])) == "clr/a\tA\nclr/b\tB\n"
    limited = accord.invoke(cli, ["range", "--prefix", "clr/", "--limit", "1"])
    assert ok(limited) == "clr/a\tA\n" and "2 more keys" in limited.stderr
    assert accord.invoke(cli, ["range", "--prefix", "x", "k"]).exit_code == 2  # usage


def test_txn_from_a_file_and_stdin(accord: CliRunner, tmp_path: object) -> None:
    ok(accord.invoke(cli, ["put", "clt/k", "v1"]))
    body = {
        "compare": [{"key": "clt/k", "target": "value", "op": "==", "value": "v1"}],
        "success": [{"put": {"key": "clt/k", "value": "v2"}}, {"get": {"key": "clt/k"}}],
        "failure": [],
    }
    out = json.loads(ok(accord.invoke(cli, ["txn", "-"], input=json.dumps(body))))
    assert out["succeeded"] and out["responses"][1]["kv"]["value"] == "v2"
    again = json.loads(ok(accord.invoke(cli, ["txn", "-"], input=json.dumps(body))))
    assert again["succeeded"] is False and again["responses"] == []
    bad = accord.invoke(cli, ["txn", "-"], input='{"success": [{"put": {"key": "clt/k"}}], "x": 1}')
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")
    not_json = accord.invoke(cli, ["txn", "-"], input="{nope")
    assert not_json.exit_code == 1 and not_json.stderr.startswith("error: bad_request: ")


def test_leases(accord: CliRunner) -> None:
    lease = ok(accord.invoke(cli, ["lease", "grant", "30"])).strip()
    assert lease.isdigit()
    ok(accord.invoke(cli, ["put", "cll/k", "v", "--lease", lease]))
    assert "keys: cll/k" in ok(accord.invoke(cli, ["lease", "ttl", lease]))
    assert "ttl 30s" in ok(accord.invoke(cli, ["lease", "keepalive", lease]))
    assert "revoked" in ok(accord.invoke(cli, ["lease", "revoke", lease]))
    assert accord.invoke(cli, ["get", "cll/k"]).exit_code == 1
    gone = accord.invoke(cli, ["lease", "ttl", lease])
    assert gone.exit_code == 1 and gone.stderr.startswith("error: lease_not_found: ")


def test_watch_prints_one_line_per_event(accord: CliRunner) -> None:
    first = int(ok(accord.invoke(cli, ["put", "clw/a", "1"])).split()[1])
    ok(accord.invoke(cli, ["del", "clw/a"]))
    out = ok(
        accord.invoke(
            cli, ["watch", "--prefix", "clw/", "--start-revision", str(first), "--count", "2"]
        )
    )
    assert out == f"{first} PUT clw/a 1\n{first + 1} DELETE clw/a\n"


def test_status_table(accord: CliRunner, cluster: LocalCluster) -> None:
    out = ok(accord.invoke(cli, ["status"]))
    for node in (1, 2, 3):
        assert cluster.url(node) in out and f"n{node} ({node})" in out
    assert out.count("leader") >= 2 and "*" in out  # the column and the leader's row
    assert "follower" in out


def test_errors_exit_1(accord: CliRunner) -> None:
    too_long = accord.invoke(cli, ["put", "k" * 5000, "v"])
    assert too_long.exit_code == 1 and too_long.stderr.startswith("error: limit_exceeded: ")
    nobody = accord.invoke(cli, ["get", "--endpoints", dead_url(), "k"])
    assert nobody.exit_code == 1 and nobody.stderr.startswith("error: unavailable: ")
