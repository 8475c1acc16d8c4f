"""Node identities in certificates (`accord certs issue --node NAME --id --cluster-id`)
and the `[security]` settings of peer links: pure, no sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from accord.cli.main import cli
from accord.security.certs import certificate_identity, init_ca, issue, node_uri, parse_node_uri
from accord.security.config import parse_security
from accord.security.errors import SecurityError
from accord.security.nodetls import NodeTls


@given(st.text(min_size=1, max_size=40), st.integers(1, 1 << 62))
def test_node_uris_round_trip_any_cluster_id(cluster_id: str, node_id: int) -> None:
    assert parse_node_uri(node_uri(cluster_id, node_id)) == (cluster_id, node_id)


@pytest.mark.parametrize(
    "uri",
    [
        "https://c/node/1",
        "accord://c/node/0",
        "accord://c/node/-1",
        "accord://c/node/x",
        "accord://c/client/1",
        "accord://c/node/1?x=1",
        "accord://c/node/" + "9" * 20,
    ],
)
def test_other_uris_name_no_node(uri: str) -> None:
    assert parse_node_uri(uri) is None


def test_certs_issue_names_the_node_and_keeps_the_old_flags(tmp_path: Path) -> None:
    runner = CliRunner()
    pki = tmp_path / "pki"
    assert runner.invoke(cli, ["certs", "init", str(pki)]).exit_code == 0
    args = ["certs", "issue", "--dir", str(pki), "--node", "n7"]
    result = runner.invoke(cli, [*args, "--id", "7", "--cluster-id", "prod/eu"])
    assert result.exit_code == 0, result.output
    assert certificate_identity(pki / "node-n7.crt") == ("prod/eu", 7)
    old = runner.invoke(cli, ["certs", "issue", "--dir", str(pki), "--node", "n8"])
    assert old.exit_code == 0 and "names no node" in old.output
    assert certificate_identity(pki / "node-n8.crt") is None
    alone = runner.invoke(cli, [*args, "--id", "7"])
    assert alone.exit_code != 0 and "go together" in alone.output
    client = ["certs", "issue", "--dir", str(pki), "--client", "bob", "--id", "2"]
    assert runner.invoke(cli, [*client, "--cluster-id", "c"]).exit_code != 0


def test_peer_settings_go_together_and_come_from_the_environment() -> None:
    with pytest.raises(SecurityError, match="peer_ca, peer_cert and peer_key go together"):
        parse_security({"peer_ca": "/x/ca.crt"}, env={})
    assert parse_security({}, env={"ACCORD_INSECURE_PEERS": "1"}).insecure_peers
    assert parse_security({"insecure_peers": True}, env={}).insecure_peers


def test_peer_files_fall_back_to_the_tls_files_and_insecure_peers_wins() -> None:
    tls = {"tls_ca": "/t/ca", "tls_cert": "/t/c", "tls_key": "/t/k"}
    assert parse_security(tls, env={}).peer_tls_files == (Path("/t/ca"), Path("/t/c"), Path("/t/k"))
    peer = {"peer_ca": "/p/ca", "peer_cert": "/p/c", "peer_key": "/p/k"}
    both = parse_security({**tls, **peer}, env={})
    assert both.peer_tls_files == (Path("/p/ca"), Path("/p/c"), Path("/p/k"))
    assert both.tls  # client ports keep their own files
    assert parse_security({**peer, "insecure_peers": True}, env={}).peer_tls_files is None


def test_a_node_refuses_a_peer_certificate_of_another_node_or_cluster(tmp_path: Path) -> None:
    init_ca(tmp_path)
    cert, key = issue(tmp_path, "n1", node=True, node_id=1, cluster_id="c")
    files = {"peer_ca": str(tmp_path / "ca.crt"), "peer_cert": str(cert), "peer_key": str(key)}
    security = parse_security(files, env={})
    assert NodeTls.build(security, 1, "c").peers is not None
    with pytest.raises(SecurityError, match="names accord://c/node/1, but this node is"):
        NodeTls.build(security, 2, "c")
    with pytest.raises(SecurityError, match="accord://other/node/1"):
        NodeTls.build(security, 1, "other")
    with pytest.raises(SecurityError, match="peer links need mutual TLS"):
        NodeTls.build(parse_security({}, env={}), 1, "c")
