"""A local cluster started with `accord up`, driven from outside as an attacker would.

Theory of operation
-------------------
`UpCluster.start()` runs `accord up` for three nodes (its own `--dir`, a
`--port-base` whose nine ports were free a moment ago) and waits for the
`cluster.json` it writes once a leader is elected. Everything else goes through the
cluster's public surfaces: HTTP requests (`http()`, raw bytes in and out, with TLS
and a token when the cluster is `--secure`), the node processes' PIDs
(`/proc/PID/status` for memory, signals for kill -9) and their `node.log` files.
`accord up` reports a node that exits on its stderr ("node nK exited with code C");
`exit_codes()` reads those lines.

`stop()` always ends what was started, by PID only: SIGTERM to `accord up` (which
stops its nodes), then SIGKILL to any node or restarted node still alive.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.server.config import load_config
from accord.testing.cluster import free_port_base

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 10.0
_EXIT_LINE = re.compile(rb"node n(\d+) exited with code (-?\d+)")


@dataclass
class UpNode:
    id: int
    name: str
    pid: int
    client_url: str
    native_url: str
    peer: tuple[str, int]
    config: Path

    @property
    def log(self) -> Path:
        return self.config.parent / "node.log"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed_s: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class UpCluster:
    """One `accord up` cluster under `directory` (see the module docstring). Unlike
    `accord.testing.cluster.LocalCluster` it logs in as root on a secure cluster,
    passes `env` to the nodes, reads their memory, logs and exit codes, and kills
    and restarts nodes."""

    directory: Path
    secure: bool = False
    env: dict[str, str] = field(default_factory=dict)
    shards: int = 1
    """`accord up --shards`: the keys spread over this many Raft groups."""
    nodes: list[UpNode] = field(default_factory=list)
    cluster_id: str = ""
    token: str | None = None
    _up: subprocess.Popen[bytes] | None = None
    _restarted: list[subprocess.Popen[bytes]] = field(default_factory=list)

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> UpCluster:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> UpCluster:
        self.directory.mkdir(parents=True, exist_ok=True)
        port_base = free_port_base()
        command = [sys.executable, "-m", "accord.cli.main", "up", "--nodes", "3"]
        command += ["--dir", str(self.directory)]
        command += ["--port-base", str(port_base)] + (["--secure"] if self.secure else [])
        command += ["--shards", str(self.shards)] if self.shards > 1 else []
        out = open(self.directory / "up.out", "wb")  # noqa: SIM115 - owned by the child
        self._up = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
        )
        cluster_file = self.directory / "cluster.json"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not cluster_file.exists():
            if self._up.poll() is not None or time.monotonic() > deadline:
                tail = (self.directory / "up.out").read_bytes()[-2000:].decode(errors="replace")
                raise RuntimeError(f"accord up did not bring a cluster up:\n{tail}")
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written in one call; let it land
        self._load(json.loads(cluster_file.read_text()))
        if self.secure:
            self.token = self._root_login(deadline)
        return self

    def _root_login(self, deadline: float) -> str:
        # The leader bootstraps root a moment after its election: retry until then.
        while True:
            try:
                return self.login("root", self.root_password())
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.2)

    def _load(self, data: dict[str, Any]) -> None:
        for row in data["nodes"]:
            host, port = row["peer_address"].rsplit(":", 1)
            self.nodes.append(
                UpNode(
                    row["id"],
                    row["name"],
                    row["pid"],
                    row["client_url"],
                    row["native_url"],
                    (host, int(port)),
                    Path(row["config"]),
                )
            )
        self.cluster_id = load_config(self.nodes[0].config, env={}).cluster_id

    def stop(self) -> None:
        """End every process this cluster started, by PID; safe to call twice."""
        if self._up is not None and self._up.poll() is None:
            self._up.send_signal(signal.SIGTERM)
            try:
                self._up.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._up.kill()
                self._up.wait()
        for proc in self._restarted:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for node in self.nodes:
            if pid_alive(node.pid):
                os.kill(node.pid, signal.SIGKILL)

    def __enter__(self) -> UpCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kill9(self, node: UpNode) -> None:
        os.kill(node.pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while pid_alive(node.pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self, node: UpNode) -> None:
        """Run `accord node` again for `node` (as `accord up` would), logging to node.log."""
        log = open(node.log, "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "accord.cli.main", "node", "--config", str(node.config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env, "PYTHONUNBUFFERED": "1"},
        )
        self._restarted.append(proc)
        node.pid = proc.pid

    # --- what an observer sees -------------------------------------------------------

    def root_password(self) -> str:
        return (self.directory / "secure" / "root.password").read_text().strip()

    @property
    def ca(self) -> Path:
        return self.directory / "secure" / "ca.crt"

    def tls_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca)) if self.secure else None

    def node(self, node_id: int) -> UpNode:
        return next(n for n in self.nodes if n.id == node_id)

    def exit_codes(self) -> dict[str, int]:
        """Nodes `accord up` saw exit, by name, with their exit codes."""
        text = (self.directory / "up.out").read_bytes()
        return {f"n{m[1].decode()}": int(m[2]) for m in _EXIT_LINE.finditer(text)}

    def alive(self) -> dict[str, bool]:
        return {n.name: pid_alive(n.pid) for n in self.nodes}

    def status(self, node: UpNode, timeout_s: float = 2.0) -> dict[str, Any] | None:
        try:
            response = self.http(node, "GET", "/v1/cluster/status", timeout_s=timeout_s)
        except OSError:
            return None
        return response.json() if response.status == 200 else None

    def leader(self, timeout_s: float = 0.0) -> tuple[int, int] | None:
        """(leader id, term) as the nodes report them, within `timeout_s`; None when
        no node names a leader by then."""
        deadline = time.monotonic() + timeout_s
        while True:
            for node in self.nodes:
                status = self.status(node)
                if status and status.get("leader") and status.get("role") == "leader":
                    return int(status["id"]), int(status["term"])
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)

    def rss_kib(self, node: UpNode) -> tuple[int, int]:
        """(VmRSS, VmHWM) of `node` in KiB: its resident memory now and at its peak."""
        values = {"VmRSS": 0, "VmHWM": 0}
        try:
            for line in Path(f"/proc/{node.pid}/status").read_text().splitlines():
                name, _, rest = line.partition(":")
                if name in values:
                    values[name] = int(rest.split()[0])
        except OSError:
            pass
        return values["VmRSS"], values["VmHWM"]

    def log_offsets(self) -> dict[str, int]:
        return {n.name: n.log.stat().st_size if n.log.exists() else 0 for n in self.nodes}

    def log_since(self, offsets: dict[str, int]) -> bytes:
        chunks = []
        for n in self.nodes:
            with open(n.log, "rb") as file:
                file.seek(offsets.get(n.name, 0))
                chunks.append(file.read())
        return b"".join(chunks)

    # --- HTTP --------------------------------------------------------------------------

    def http(
        self,
        node: UpNode,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        timeout_s: float = HTTP_TIMEOUT_S,
        read_bytes_max: int | None = None,
    ) -> Response:
        """One request on a new connection. `token` defaults to root's on a secure
        cluster; pass "" for none. With `read_bytes_max`, a longer body is counted
        while it streams in, not kept (the length is in `headers["x-body-bytes"]`)."""
        host, port = node.client_url.split("//", 1)[1].rsplit(":", 1)
        context = self.tls_context()
        if context is not None:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, int(port), timeout=timeout_s, context=context
            )
        else:
            conn = http.client.HTTPConnection(host, int(port), timeout=timeout_s)
        all_headers = dict(headers or {})
        token = self.token if token is None else token
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        started = time.monotonic()
        try:
            conn.request(method, path, body=data, headers=all_headers)
            answer = conn.getresponse()
            kept, total = _read_body(answer, read_bytes_max)
            result_headers = {k.lower(): v for k, v in answer.getheaders()}
            result_headers["x-body-bytes"] = str(total)
            return Response(answer.status, result_headers, kept, time.monotonic() - started)
        finally:
            conn.close()

    def login(self, user: str, password: str) -> str:
        response = self.http(
            self.nodes[0], "POST", "/v1/auth/login", {"user": user, "password": password}, token=""
        )
        if response.status != 200:
            raise RuntimeError(f"login as {user}: {response.status} {response.body[:200]!r}")
        token: str = response.json()["token"]
        return token

    def put(self, key: str, value: bytes, timeout_s: float = HTTP_TIMEOUT_S) -> int:
        """PUT through any node that answers (followers forward); the status, or 0."""
        for node in self.nodes:
            try:
                return self.http(node, "PUT", f"/v1/kv/{key}", value, timeout_s=timeout_s).status
            except OSError:
                continue
        return 0


def _read_body(answer: http.client.HTTPResponse, read_bytes_max: int | None) -> tuple[bytes, int]:
    if read_bytes_max is None:
        body = answer.read()
        return body, len(body)
    kept = bytearray()
    total = 0
    while chunk := answer.read(1 << 20):
        total += len(chunk)
        if len(kept) < read_bytes_max:
            kept += chunk[: read_bytes_max - len(kept)]
    return bytes(kept), total


def pid_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
