"""What one core can answer over HTTP before Accord does any work: the floor under
the HTTP rows of docs/benchmarks.md.

Runs wrk (64 connections, 100-byte PUTs, as the comparison does) against three
servers in child processes, one after the other, each on uvloop and one core:

- `aiohttp-app`: an aiohttp application with one route whose handler reads the body
  and answers `{"revision": 1}`, as Accord's `PUT /v1/kv/{key}` does minus Raft;
- `aiohttp-server`: the same handler on aiohttp's low-level `web.Server` (no
  application, router or middleware);
- `bare-protocol`: an asyncio.Protocol that splits requests at the blank line and
  Content-Length and writes a fixed answer. Not a server (no HTTP parsing worth
  the name); it shows what the event loop and the socket calls cost alone.

Prints requests per second, the server's CPU share, and CPU microseconds per
request, in rounds that alternate the servers (the machine is shared).

    python bench/http_floor.py --seconds 5 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
SERVERS = ("aiohttp-app", "aiohttp-server", "bare-protocol")
LUA = (
    'request = function() return wrk.format("PUT", "/v1/kv/bench/" .. '
    'math.random(0, 99999), nil, string.rep("x", 100)) end\n'
)


def serve(kind: str, port: int) -> None:
    """The child process: one server of `kind` on 127.0.0.1:port until killed."""
    import asyncio

    import uvloop
    from aiohttp import web

    async def put(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.json_response({"revision": 1})

    class Bare(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.buffer = b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", self.buffer[:end])
                total = end + 4 + (int(length.group(1)) if length else 0)
                if len(self.buffer) < total:
                    return
                self.buffer = self.buffer[total:]
                body = json.dumps({"revision": 1}).encode()
                self.transport.write(  # type: ignore[attr-defined]
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if kind == "aiohttp-app":
            app = web.Application()
            app.router.add_put("/v1/kv/{key:.+}", put)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        elif kind == "aiohttp-server":
            await loop.create_server(web.Server(put, access_log=None), "127.0.0.1", port)
        else:
            await loop.create_server(Bare, "127.0.0.1", port, backlog=1024)
        await asyncio.Event().wait()

    uvloop.run(main())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def measure(kind: str, port: int, seconds: float, connections: int, script: Path) -> str:
    server = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)])
    try:
        wait_listening(port)
        before, began = cpu_seconds(server.pid), time.monotonic()
        out = subprocess.run(
            ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds:g}s", "-s",
             str(script), f"http://127.0.0.1:{port}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        cpu = (cpu_seconds(server.pid) - before) / (time.monotonic() - began)
    finally:
        server.kill()
        server.wait()
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    rate = float(match.group(1)) if match else float("nan")
    return (
        f"{kind:15} {rate:9,.0f} req/s  server CPU {100 * cpu:3.0f}%  "
        f"{1e6 * cpu / rate:6.1f} µs CPU per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--port", type=int, default=27100)
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "put.lua"
        script.write_text(LUA)
        for round_number in range(1, args.rounds + 1):
            for kind in SERVERS:
                line = measure(kind, args.port, args.seconds, args.connections, script)
                print(f"round {round_number}: {line}", flush=True)


if __name__ == "__main__":
    main()
