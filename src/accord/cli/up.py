"""`accord up`: a local cluster of N node processes on 127.0.0.1.

Each node is a separate `accord node --config DIR/nK/node.toml` process. The same
`--dir` brings the same cluster back with its data (the configs are reused). Peer
links always use mutual TLS, with a CA and node certificates made in `DIR/peers/`
(also for a directory made before that: its configs gain the peer settings). Nodes
that die are reported, not restarted. SIGINT/SIGTERM stop every node (SIGTERM first,
so each one hands over leadership and flushes; SIGKILL after a grace period).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from accord.node.address import Member
from accord.observability.logs import open_log_file
from accord.security.config import SecurityConfig
from accord.security.localcluster import (
    PEERS_DIR,
    create_peer_material,
    create_secure_material,
    write_client_env,
)
from accord.security.tls import client_tls
from accord.server.config import (
    LOG_FORMATS,
    LOG_LEVELS,
    TRACING_MODES,
    NodeConfig,
    load_config,
    render_config,
)
from accord.shard.limits import SHARD_REPLICAS_MAX, SHARDS_PER_CLUSTER_MAX

STOP_GRACE_S = 10.0
LEADER_WAIT_S = 30.0


def _cluster_configs(
    nodes: int,
    directory: Path,
    port_base: int,
    secure: bool = False,
    shards: int = 1,
    replicas: int = 3,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(directory.glob("n*/node.toml"))
    if existing:
        if len(existing) != nodes:
            raise click.UsageError(
                f"{directory} holds a cluster of {len(existing)} nodes; use --nodes "
                f"{len(existing)} or another --dir"
            )
        first = load_config(existing[0], env={})
        if secure and not first.security.tls:
            raise click.UsageError(f"{directory} holds a cluster made without --secure")
        if first.shards != shards:
            raise click.UsageError(
                f"{directory} holds a cluster of {first.shards} shard(s); use --shards "
                f"{first.shards} or another --dir"
            )
        _add_peer_material(directory, existing)
        return existing
    members = {
        i: Member(
            i,
            f"n{i}",
            peer=("127.0.0.1", port_base + 100 + i),
            client=("127.0.0.1", port_base + i),
            native=("127.0.0.1", port_base + 200 + i),
        )
        for i in range(1, nodes + 1)
    }
    security: dict[str, SecurityConfig] = {}
    if secure:
        security, password = create_secure_material(directory, [m.name for m in members.values()])
        members = {i: dataclasses.replace(m, tls=True) for i, m in members.items()}
        env_file = write_client_env(directory, [m.client_url for m in members.values()], password)
        click.echo(f"root password (shown once; also in {directory / 'secure/root.password'}):")
        click.echo(f"  {password}")
        click.echo(f"client settings: source {env_file}")
    cluster_id = f"accord-{directory.resolve().name}"
    peer_files = create_peer_material(
        directory, cluster_id, {i: m.name for i, m in members.items()}
    )
    paths = []
    for member in members.values():
        peer_ca, peer_cert, peer_key = peer_files[member.id]
        node_security = dataclasses.replace(
            security.get(member.name, SecurityConfig()),
            peer_ca=peer_ca,
            peer_cert=peer_cert,
            peer_key=peer_key,
        )
        node_dir = directory / member.name
        node_dir.mkdir(parents=True, exist_ok=True)
        config = NodeConfig(
            name=member.name,
            id=member.id,
            data_dir=node_dir / "data",
            client=member.client,
            peer=member.peer,
            native=member.native,
            members=members,
            cluster_id=cluster_id,
            shards=shards,
            replicas=min(replicas, nodes),
            security=node_security,
        )
        path = node_dir / "node.toml"
        path.write_text(render_config(config))
        paths.append(path)
    return paths


def _add_peer_material(directory: Path, paths: list[Path]) -> None:
    """A cluster made before peers were authenticated: give every node a peer
    certificate now, and point its config at it."""
    configs = [load_config(path, env={}) for path in paths]
    if all(c.security.peer_ca is not None or c.security.insecure_peers for c in configs):
        return
    nodes = {c.id: c.name for c in configs}
    peer_files = create_peer_material(directory, configs[0].cluster_id, nodes)
    for config, path in zip(configs, paths, strict=True):
        peer_ca, peer_cert, peer_key = peer_files[config.id]
        security = dataclasses.replace(
            config.security, peer_ca=peer_ca, peer_cert=peer_cert, peer_key=peer_key
        )
        path.write_text(render_config(dataclasses.replace(config, security=security)))
    click.echo(f"peer links now use mutual TLS (certificates in {directory / PEERS_DIR})")


def _status(url: str, context: ssl.SSLContext | None = None) -> dict[str, Any] | None:
    # /health is public (with auth on, /v1/cluster/status needs a user) and names the leader.
    path = "/health" if context is not None else "/v1/cluster/status"
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=1, context=context) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (OSError, ValueError, urllib.error.URLError):
        return None


def _wait_for_leader(configs: list[NodeConfig], procs: list[subprocess.Popen[bytes]]) -> int:
    tls = configs[0].security
    context = client_tls(tls.tls_ca) if tls.tls and tls.tls_ca else None
    deadline = time.monotonic() + LEADER_WAIT_S
    while time.monotonic() < deadline:
        _check_running(configs, procs)
        for config in configs:
            status = _status(config.client_url, context)
            if status and status.get("leader"):
                return int(status["leader"])
        time.sleep(0.1)
    raise click.ClickException(f"no leader elected within {LEADER_WAIT_S:g}s")


def _wait_for_shards(configs: list[NodeConfig], procs: list[subprocess.Popen[bytes]]) -> None:
    """Until the map is bootstrapped and every shard has a leader (every node's
    answer, so a client may start on any of them)."""
    tls = configs[0].security
    context = client_tls(tls.tls_ca) if tls.tls and tls.tls_ca else None
    deadline = time.monotonic() + LEADER_WAIT_S
    while time.monotonic() < deadline:
        _check_running(configs, procs)
        if all(_shards_led(config.client_url, config.name, context) for config in configs):
            return
        time.sleep(0.1)
    raise click.ClickException(f"the shards had no leaders within {LEADER_WAIT_S:g}s")


def _shards_led(url: str, name: str, context: ssl.SSLContext | None) -> bool:
    """The node at `url` knows the map and a leader for each shard it holds a
    replica of (of the others it knows no leader: with more nodes than replicas,
    every node lacks some)."""
    if context is not None:  # /v1/cluster/shards needs a user there: /ready is public
        return _status(url, context) is not None
    try:
        with urllib.request.urlopen(f"{url}/v1/cluster/shards", timeout=1) as response:
            data = json.loads(response.read())
    except (OSError, ValueError, urllib.error.URLError):
        return False
    mine = [s for s in data.get("shards", []) if name in s.get("replicas", [])]
    return data.get("version", 0) > 0 and all(s.get("leader") for s in mine)


def _check_running(configs: list[NodeConfig], procs: list[subprocess.Popen[bytes]]) -> None:
    for config, proc in zip(configs, procs, strict=True):
        if proc.poll() is not None:
            raise click.ClickException(
                f"node {config.name} exited with code {proc.returncode}; "
                f"see {config.data_dir.parent / 'node.log'}"
            )


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in procs:
        remaining = max(0.1, deadline - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@click.command("up")
@click.option("--nodes", default=3, show_default=True, type=click.IntRange(1, 9))
@click.option("--dir", "directory", default="accord-data", show_default=True, type=click.Path())
@click.option(
    "--port-base",
    default=7000,
    show_default=True,
    type=click.IntRange(1024, 64000),
    help=(
        "node K serves HTTP clients on PORT_BASE+K, Raft peers on PORT_BASE+100+K "
        "and native-protocol clients on PORT_BASE+200+K"
    ),
)
@click.option(
    "--secure",
    is_flag=True,
    help="TLS on the client ports, encryption at rest and auth with a root user; "
    "the CA, certificates, key and root password go to DIR/secure/ (peer links use "
    "mutual TLS with or without it, certificates in DIR/peers/)",
)
@click.option(
    "--shards",
    default=1,
    show_default=True,
    type=click.IntRange(1, SHARDS_PER_CLUSTER_MAX),
    help="Raft groups the keys are spread over (1: one group holds every key)",
)
@click.option(
    "--replicas",
    default=3,
    show_default=True,
    type=click.IntRange(1, SHARD_REPLICAS_MAX),
    help="voters of each shard, at most one per node (min(REPLICAS, NODES))",
)
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="of every node's node.log")
@click.option("--log-level", type=click.Choice(LOG_LEVELS))
@click.option("--tracing", type=click.Choice(TRACING_MODES), help="where request spans go")
def up(
    nodes: int,
    directory: str,
    port_base: int,
    log_format: str | None,
    log_level: str | None,
    tracing: str | None,
    secure: bool,
    shards: int,
    replicas: int,
) -> None:
    """Start a local cluster and run it until Ctrl-C."""
    root = Path(directory).resolve()  # configs hold absolute paths: any cwd works
    paths = _cluster_configs(nodes, root, port_base, secure, shards, replicas)
    configs = [load_config(p, env={}) for p in paths]
    # Passed as ACCORD_* variables, which override each node's file for this run only.
    settings = {"log_format": log_format, "log_level": log_level, "tracing": tracing}
    node_env = {f"ACCORD_{k.upper()}": v for k, v in settings.items() if v is not None}
    procs: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for path in paths:
            log_file = open_log_file(path.parent / "node.log")  # owned by the child
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "accord.cli.main", "node", "--config", str(path)],
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **node_env, "PYTHONUNBUFFERED": "1"},
                )
            )
        leader = _wait_for_leader(configs, procs)
        if shards > 1:
            _wait_for_shards(configs, procs)
        _write_cluster_file(root, configs, paths, procs)
        _print_cluster(configs, leader)
        reported: set[int] = set()
        while not stopping:
            for config, proc in zip(configs, procs, strict=True):
                if proc.poll() is not None and config.id not in reported:
                    reported.add(config.id)
                    click.echo(f"node {config.name} exited with code {proc.returncode}", err=True)
            time.sleep(0.2)
        click.echo("stopping the cluster ...")
    finally:
        _stop(procs)
    click.echo("stopped")


def _write_cluster_file(
    root: Path, configs: list[NodeConfig], paths: list[Path], procs: list[subprocess.Popen[bytes]]
) -> None:
    data = {
        "nodes": [
            {
                "name": c.name,
                "id": c.id,
                "pid": p.pid,
                "client_url": c.client_url,
                "native_url": c.native_url,
                "peer_address": f"{c.peer[0]}:{c.peer[1]}",
                "config": str(path),
            }
            for c, path, p in zip(configs, paths, procs, strict=True)
        ]
    }
    (root / "cluster.json").write_text(json.dumps(data, indent=2) + "\n")


def _print_cluster(configs: list[NodeConfig], leader: int) -> None:
    click.echo(f"Accord cluster of {len(configs)} nodes is up (leader: n{leader})")
    for config in configs:
        native = f"  {config.native_url}" if config.native_url else ""
        click.echo(
            f"  {config.name}  {config.client_url}{native}"
            f"  (peers: {config.peer[0]}:{config.peer[1]})"
        )
    click.echo(f"Dashboard: {configs[0].client_url}/  (every node serves it; metrics at /metrics)")
    click.echo("Ctrl-C stops every node.")
