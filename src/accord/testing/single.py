"""One real `accord node` process (a one-member cluster) for tests that need to
restart a node with different settings: keys, certificates, users.

`SingleNode(directory)` picks free loopback ports and writes `node.toml` (with any
extra `[security]` settings, and a peer certificate unless they set one or
`insecure_peers`); `start(env)` runs the node and waits until it serves,
`run_to_exit(env)` runs it expecting it to refuse to start, `stop()` sends SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

from accord.node.address import Member
from accord.observability.logs import open_log_file
from accord.security.config import SecurityConfig
from accord.server.config import NodeConfig, render_config
from accord.testing.cluster import DEADLINE_S, http, wait_for
from accord.testing.peertls import with_peer_tls
from accord.testing.ports import free_ports


class SingleNode:
    def __init__(self, directory: Path, security: SecurityConfig | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        ports = free_ports(3)
        me = Member(
            1,
            "n1",
            peer=("127.0.0.1", ports[0]),
            client=("127.0.0.1", ports[1]),
            native=("127.0.0.1", ports[2]),
        )
        security = security or SecurityConfig()
        if security.peer_tls_files is None and not security.insecure_peers:
            security = with_peer_tls(security, directory, "accord-single", {1: "n1"})[1]
        self.config = NodeConfig(
            name="n1",
            id=1,
            data_dir=directory / "data",
            client=me.client,
            peer=me.peer,
            native=me.native,
            members={1: me},
            cluster_id="accord-single",
            tick_ms=20,
            snapshot_entries=5,
            security=security,
        )
        self.config_path = directory / "node.toml"
        self.config_path.write_text(render_config(self.config))
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.config.security.tls else "http"
        return f"{scheme}://{self.config.client[0]}:{self.config.client[1]}"

    @property
    def native_address(self) -> tuple[str, int]:
        assert self.config.native is not None
        return self.config.native

    @property
    def log_path(self) -> Path:
        return self.directory / "node.log"

    def _spawn(
        self, env: Mapping[str, str] | None, output: int | IO[bytes] = subprocess.PIPE
    ) -> subprocess.Popen[bytes]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ACCORD_")}
        return subprocess.Popen(
            [sys.executable, "-m", "accord.cli.main", "node", "--config", str(self.config_path)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**clean, **(env or {})},
        )

    def start(
        self, env: Mapping[str, str] | None = None, ready: Callable[[], Any] | None = None
    ) -> None:
        """Run the node; wait until `ready()` is true (default: /ready over plain HTTP,
        i.e. the node knows a leader and has caught up)."""
        # A file, not a pipe: a pipe nobody reads while the node runs fills up, and then
        # the node blocks in its next log write.
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open_log_file(self.log_path) as log_file:
            self.proc = self._spawn(env, log_file)
        proc = self.proc

        def serving() -> Any:
            if proc.poll() is not None:
                raise AssertionError(f"node exited with {proc.returncode}:\n{self._output()}")
            if ready is not None:
                return ready()
            return http("GET", f"{self.url}/ready", timeout=1)[0] == 200

        wait_for(serving, "the node to serve")

    def run_to_exit(self, env: Mapping[str, str] | None = None) -> tuple[int, str]:
        """Run the node expecting it to exit by itself; (exit code, output)."""
        proc = self._spawn(env)
        try:
            out, _ = proc.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise AssertionError(f"node kept running:\n{out.decode(errors='replace')}") from None
        return proc.returncode, out.decode(errors="replace")

    def _output(self) -> str:
        with open(self.log_path, "rb") as file:
            file.seek(self._log_offset)
            return file.read().decode(errors="replace")

    def stop(self) -> str:
        """Stop the node; what it logged since `start()`."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=DEADLINE_S)
        self.proc = None
        return self._output()
