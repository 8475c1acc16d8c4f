"""A real local cluster of `accord up` processes for tests and examples.

`LocalCluster(directory)` picks free loopback ports, runs `accord up` as a child
process, and offers small HTTP helpers; `stop()` sends it SIGINT, which stops every
node it started. Nothing here sleeps for a fixed time: `wait_for` polls a condition
with a deadline.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

DEADLINE_S = 30.0


def free_port_base() -> int:
    """A base B such that B+1..B+3, B+101..B+103 and B+201..B+203 are free right now."""
    for _ in range(50):
        # Below the kernel's ephemeral range (32768+), where outgoing connections of
        # other tests could take a port between our check and the nodes' bind.
        base = random.randrange(10_000, 32_000, 300)
        ports = [base + i for i in (1, 2, 3, 101, 102, 103, 201, 202, 203)]
        try:
            for port in ports:
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def http(
    method: str,
    url: str,
    body: bytes | None = None,
    timeout: float = 5.0,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def wait_for(predicate: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class LocalCluster:
    """`secure=True` runs `accord up --secure`: https:// and accords:// URLs, and
    `context` trusts the cluster's CA once it has started."""

    def __init__(
        self,
        directory: Path,
        secure: bool = False,
        shards: int = 1,
        env: dict[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.shards = shards
        self.env = {**os.environ, **(env or {})}
        """The nodes' environment (`ACCORD_*` settings reach every node)."""
        self.base = free_port_base()
        self.up: subprocess.Popen[bytes] | None = None
        self.secure = secure
        self.context: ssl.SSLContext | None = None

    def url(self, node: int) -> str:
        return f"{'https' if self.secure else 'http'}://127.0.0.1:{self.base + node}"

    def native_url(self, node: int) -> str:
        return f"{'accords' if self.secure else 'accord'}://127.0.0.1:{self.base + 200 + node}"

    def start(self) -> None:
        self.up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "accord.cli.main",
                "up",
                "--nodes",
                "3",
                "--dir",
                str(self.directory),
                "--port-base",
                str(self.base),
                *(["--secure"] if self.secure else []),
                *(["--shards", str(self.shards)] if self.shards > 1 else []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
        )
        try:
            wait_for(lambda: (self.directory / "cluster.json").exists(), "cluster.json")
            if self.secure:
                self.context = ssl.create_default_context(
                    cafile=str(self.directory / "secure" / "ca.crt")
                )
            self.leader()
            if self.shards > 1 and not self.secure:  # (secure: the map needs a user)
                wait_for(self.shards_led, "a leader for every shard on every node")
        except AssertionError as e:
            self.up.kill()
            output = self.up.communicate()[0].decode(errors="replace")
            raise AssertionError(f"{e}; accord up printed:\n{output}") from None

    def shards_led(self) -> bool:
        """Every node knows the map and a leader for each of its shards (a restarted
        cluster's `cluster.json` is there before that)."""
        for node in (1, 2, 3):
            code, body, _ = http("GET", f"{self.url(node)}/v1/cluster/shards", context=self.context)
            doc = json.loads(body) if code == 200 else {}
            if not doc.get("version") or not all(s["leader"] for s in doc["shards"]):
                return False
        return True

    def pids(self) -> dict[int, int]:
        data = json.loads((self.directory / "cluster.json").read_text())
        return {n["id"]: n["pid"] for n in data["nodes"]}

    def status(self, node: int) -> dict[str, Any] | None:
        # Secure clusters need a user for /v1/cluster/status; /health names the leader.
        path = "/health" if self.secure else "/v1/cluster/status"
        code, body, _ = http("GET", f"{self.url(node)}{path}", timeout=1, context=self.context)
        return json.loads(body) if code == 200 else None

    def leader(self, exclude: int = 0) -> int:
        def find() -> int | None:
            for node in (1, 2, 3):
                if node == exclude:
                    continue
                status = self.status(node)
                if status and status["leader"] and status["leader"] != exclude:
                    return int(status["leader"])
            return None

        return int(wait_for(find, "a leader"))

    def agreed_leader(self) -> int:
        """Wait until every node names the same leader (a request to any node then
        reaches it), and return it."""

        def agreed() -> int | None:
            statuses = [self.status(node) for node in (1, 2, 3)]
            leaders = {int(st["leader"]) if st else 0 for st in statuses}
            return leaders.pop() if len(leaders) == 1 and 0 not in leaders else None

        return int(wait_for(agreed, "every node to name the same leader"))

    def add_node(self, node_id: int, voter: bool = False) -> subprocess.Popen[bytes]:
        """Add node `node_id` to the running cluster (`POST /v1/members`, as a learner
        of the primary group unless `voter`) and start it with a config written like
        its peers' (`join = true`, a peer certificate from the cluster's CA). The
        caller stops the process it gets."""
        from accord.server.config import load_config, render_config
        from accord.testing.peertls import with_peer_tls

        name, base = f"n{node_id}", self.base
        existing = load_config(self.directory / "n1" / "node.toml", env={})
        security = with_peer_tls(
            existing.security, self.directory, existing.cluster_id, {node_id: name}
        )
        config = dataclasses.replace(
            existing,
            name=name,
            id=node_id,
            data_dir=self.directory / name / "data",
            client=("127.0.0.1", base + node_id),
            peer=("127.0.0.1", base + 100 + node_id),
            native=("127.0.0.1", base + 200 + node_id),
            join=True,
            security=security[node_id],
        )
        (self.directory / name).mkdir()
        path = self.directory / name / "node.toml"
        path.write_text(render_config(config))
        member = {
            "id": node_id,
            "name": name,
            "peer": f"127.0.0.1:{base + 100 + node_id}",
            "client": f"127.0.0.1:{base + node_id}",
            "native": f"127.0.0.1:{base + 200 + node_id}",
            "voter": voter,
        }
        code, answer, _ = http(
            "POST", f"{self.url(1)}/v1/members", json.dumps(member).encode(), context=self.context
        )
        assert code == 200, answer
        command = [sys.executable, "-m", "accord.cli.main", "node", "--config", str(path)]
        with (self.directory / name / "node.log").open("ab") as log:  # as `accord up` does
            return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def stop(self) -> str:
        assert self.up is not None
        self.up.send_signal(signal.SIGINT)
        out, _ = self.up.communicate(timeout=DEADLINE_S)
        return out.decode()


class WatchReader:
    """Reads a watch stream's JSON lines on a thread (HTTP/1.0: no chunked framing, so
    each event line arrives as soon as the server writes it)."""

    def __init__(self, base_url: str, path: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.events: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self._sock = socket.create_connection((host, int(port)), timeout=DEADLINE_S)
        self._sock.sendall(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        self._file = self._sock.makefile("rb")
        status = self._file.readline()
        assert b" 200 " in status, status
        while self._file.readline() not in (b"\r\n", b""):
            pass
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for line in self._file:
                item = json.loads(line)
                if "error" in item:
                    self.errors.append(item["error"])
                self.events.extend(item.get("events", []))
        except (OSError, ValueError):
            return

    def close(self) -> None:
        self._sock.close()


def running_cluster(
    directory: Path, shards: int = 1, env: dict[str, str] | None = None
) -> Iterator[LocalCluster]:
    """A started cluster for a pytest fixture (`yield from running_cluster(path)`),
    stopped afterwards unless a test already stopped it."""
    cluster = LocalCluster(directory, shards=shards, env=env)
    cluster.start()
    try:
        yield cluster
    finally:
        if cluster.up is not None and cluster.up.poll() is None:
            cluster.stop()  # `accord up` stops every node it started that still runs
