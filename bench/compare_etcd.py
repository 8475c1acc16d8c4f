"""Accord side by side with etcd (and Redis and a bare fsync loop) on this machine.

What it does, in one run:

1. installs Debian's etcd-server, etcd-client, wrk and redis-server when missing
   (needs root and the package registry);
2. starts a 3-member etcd and a 3-node Accord on loopback, both fsyncing every write,
   in fresh data directories;
3. writes 10,000 keys into each (100-byte values) so reads find data;
4. drives both with the same load generators at 1, 16, 64 and 256 connections, 100-byte
   values over 100,000 keys (reads over the 10,000 written ones):
   (a) wrk with Lua scripts against etcd's JSON gateway (`/v3/kv/put`, `/v3/kv/range`)
       and Accord's HTTP API, both at the leader;
   (b) each system's own Python client from several processes: etcd through the
       `etcd3` package (in a virtual environment of its own, bench/etcd3_load.py),
       Accord through its native client (`accord bench`);
5. runs Redis with `appendfsync always` under redis-benchmark and a bare
   `fdatasync` loop, to show how far each system is from the disk;
6. prints one table with the Accord/etcd ratio per row, the CPU use of each
   process group during the row (which tells what bounds it), each node's peak RSS,
   and writes the table as Markdown and JSON to `--out`. Everything it started is
   stopped (by PID), also on Ctrl-C.

    python bench/compare_etcd.py --seconds 10 --out bench-results
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accord.observability.logs import open_log_file
from accord.testing.cluster import wait_for

REPO = Path(__file__).resolve().parent.parent
KEYS = 100_000
READ_KEYS = 10_000
VALUE = b"x" * 100
PACKAGES = {
    "etcd": "etcd-server",
    "etcdctl": "etcd-client",
    "wrk": "wrk",
    "redis-server": "redis-server",
}
TICKS = os.sysconf("SC_CLK_TCK")


# --- processes ---------------------------------------------------------------------------
class Started:
    """Every process this script started, stopped by PID at the end."""

    def __init__(self) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
        out = open_log_file(log)  # owned by the child
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)
        self.procs[name] = proc
        return proc

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its children that were waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def http_json(url: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=5) as r:
        return json.loads(r.read())


# --- the systems -----------------------------------------------------------------------------
def ensure_packages() -> None:
    missing = [pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}; install them (apt-get install) or run as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


@dataclass
class System:
    name: str
    pids: list[int]
    leader_url: str
    """Where wrk sends its requests (the leader)."""
    python_endpoints: list[str] = field(default_factory=list)
    leader_pid: int = 0
    find_leader: Callable[[], tuple[str, int]] | None = None
    """(the current leader's URL, its term): rows follow the leader, and count the
    elections that happened during them."""

    def follow_leader(self) -> int:
        """Point wrk at the current leader; returns the current term."""
        if self.find_leader is None:
            return 0
        self.leader_url, term = wait_for(self._leader_or_none, f"a {self.name} leader")
        return term

    def _leader_or_none(self) -> tuple[str, int] | None:
        assert self.find_leader is not None
        try:
            return self.find_leader()
        except (OSError, ValueError, KeyError, StopIteration):
            return None


def start_etcd(started: Started, root: Path, base: int) -> System:
    names = [f"e{i}" for i in (1, 2, 3)]
    cluster = ",".join(f"{n}=http://127.0.0.1:{base + 10 + i}" for i, n in enumerate(names, 1))
    clients = [f"http://127.0.0.1:{base + i}" for i in (1, 2, 3)]
    for i, name in enumerate(names, 1):
        started.start(
            name,
            [
                "etcd",
                "--name", name,
                "--data-dir", str(root / name),
                "--listen-client-urls", clients[i - 1],
                "--advertise-client-urls", clients[i - 1],
                "--listen-peer-urls", f"http://127.0.0.1:{base + 10 + i}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{base + 10 + i}",
                "--initial-cluster", cluster,
                "--initial-cluster-state", "new",
                "--initial-cluster-token", "bench",
                "--quota-backend-bytes", str(4 << 30),
            ],
            root / f"{name}.log",
        )  # fmt: skip

    def leader() -> tuple[str, int] | None:
        for url in clients:
            status = http_json(f"{url}/v3/maintenance/status", {})
            if status.get("leader") and status["leader"] == status["header"]["member_id"]:
                return url, int(status["raftTerm"])
        return None

    def find_leader() -> tuple[str, int]:
        found = leader()
        if found is None:
            raise ValueError("no etcd leader")
        return found

    leader_url = wait_for(leader, "an etcd leader")[0]
    pids = [started.procs[n].pid for n in names]
    endpoints = [u.removeprefix("http://") for u in clients]
    return System("etcd", pids, leader_url, endpoints, find_leader=find_leader)


def start_accord(started: Started, root: Path, base: int) -> System:
    started.start(
        "accord",
        [sys.executable, "-m", "accord.cli.main", "up", "--nodes", "3",
         "--dir", str(root / "accord"), "--port-base", str(base)],
        root / "accord-up.log",
    )  # fmt: skip
    cluster_file = root / "accord" / "cluster.json"
    wait_for(cluster_file.exists, "accord up")
    nodes = json.loads(cluster_file.read_text())["nodes"]
    status = wait_for(
        lambda: (s := http_json(f"{nodes[0]['client_url']}/v1/cluster/status"))["leader"] and s,
        "an Accord leader",
    )
    leader = next(n for n in nodes if n["id"] == status["leader"])

    def find_leader() -> tuple[str, int]:
        for node in nodes:
            try:
                status = http_json(f"{node['client_url']}/v1/cluster/status")
            except OSError:
                continue
            if status["leader"]:
                current = next(n for n in nodes if n["id"] == status["leader"])
                return current["client_url"], int(status["term"])
        raise ValueError("no Accord leader")

    return System(
        "accord",
        [n["pid"] for n in nodes],
        leader["client_url"],
        [n["native_url"] for n in nodes],
        leader["pid"],
        find_leader,
    )


# --- load generators ---------------------------------------------------------------------------
_LUA_BASE64 = """
local b64chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
local function b64(data)
  return ((data:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if #x < 6 then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#data % 3 + 1])
end
"""


def lua_script(system: str, op: str, keys: int) -> str:
    value = VALUE.decode()
    value_b64 = base64.b64encode(VALUE).decode()
    pick = f'local k = string.format("bench/%08d", math.random(0, {keys - 1}))'
    seed = "math.randomseed(os.time() + math.floor(os.clock() * 1e6))"
    if system == "accord":
        if op == "put":
            body = f'return wrk.format("PUT", "/v1/kv/" .. k, nil, "{value}")'
        else:
            query = "?consistency=serializable" if op == "get-serializable" else ""
            body = f'return wrk.format("GET", "/v1/kv/" .. k .. "{query}")'
        return f"{seed}\nrequest = function()\n  {pick}\n  {body}\nend\n"
    headers = 'wrk.headers["Content-Type"] = "application/json"'
    if op == "put":
        doc = f'\'{{"key": "\' .. b64(k) .. \'", "value": "{value_b64}"}}\''
        path = "/v3/kv/put"
    else:
        serializable = ', "serializable": true' if op == "get-serializable" else ""
        doc = f"'{{\"key\": \"' .. b64(k) .. '\"{serializable}}}'"
        path = "/v3/kv/range"
    return (
        f"{_LUA_BASE64}\n{seed}\n{headers}\nrequest = function()\n  {pick}\n"
        f'  return wrk.format("POST", "{path}", nil, {doc})\nend\n'
    )


def _ms(text: str) -> float:
    """A wrk duration (`863.00us`, `2.10ms`, `1.02s`, `1.10m`) in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        return float("nan")
    number, unit = match.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s", "--latency",
         "--timeout", "10s", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    # Anchored: "97.50%" in the thread stats also ends in "50%".
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE)
    if rate is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(g) for g in socket.groups()) if socket else 0
    return {
        "ops_per_s": float(rate.group(1)),
        "p50": _ms(p50.group(1)),
        "p99": _ms(p99.group(1)),
        "errors": errors,
    }


def run_accord_python(
    endpoints: list[str], op: str, connections: int, seconds: float
) -> dict[str, Any]:
    workload = {"put": "write", "get": "read", "get-serializable": "read-serializable"}[op]
    out = subprocess.run(
        [sys.executable, "-m", "accord.cli.main", "bench", "--endpoints", ",".join(endpoints),
         "--workload", workload, "--concurrency", str(connections), "--seconds", f"{seconds:g}",
         "--keys", str(KEYS if op == "put" else READ_KEYS), "--processes", str(min(4, connections)),
         "--prefill", "0", "--json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    [summary] = json.loads(out)
    latency = summary["latency_ms"]
    errors = sum(summary["errors"].values())
    return {
        "ops_per_s": summary["ops_per_s"],
        "p50": latency["p50"],
        "p99": latency["p99"],
        "errors": errors,
    }


def etcd3_python(venv: Path) -> Path:
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "etcd3==0.12.0", "protobuf<4"], check=True
        )
    return python


def run_etcd_python(
    python: Path, endpoint: str, op: str, connections: int, seconds: float
) -> dict[str, Any]:
    out = subprocess.run(
        [str(python), str(REPO / "bench" / "etcd3_load.py"), "--endpoint", endpoint, "--op", op,
         "--concurrency", str(connections), "--processes", str(min(4, connections)),
         "--seconds", f"{seconds:g}", "--keys", str(KEYS if op == "put" else READ_KEYS)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


def prefill(system: System) -> None:
    """Write the keys reads will ask for, with the project's async drivers."""
    import asyncio

    from accord.bench.drivers import make_driver
    from accord.bench.runner import key_name

    endpoints = system.python_endpoints
    if system.name == "etcd":
        endpoints = [f"http://{e}" for e in endpoints]

    async def fill() -> None:
        driver = make_driver(system.name, endpoints)
        todo = iter(range(READ_KEYS))

        async def worker() -> None:
            for i in todo:
                await driver.put(key_name(i), VALUE)

        try:
            await asyncio.gather(*(worker() for _ in range(64)))
        finally:
            await driver.close()

    asyncio.run(fill())


def fsync_loop(directory: Path, seconds: float = 3.0) -> float:
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        count, began = 0, time.monotonic()
        while time.monotonic() - began < seconds:
            os.write(fd, VALUE)
            os.fdatasync(fd)
            count += 1
        return count / (time.monotonic() - began)
    finally:
        os.close(fd)
        path.unlink()


def run_redis(
    started: Started, root: Path, port: int, connections: list[int], seconds: float
) -> list[dict[str, Any]]:
    started.start(
        "redis",
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
         "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
        root / "redis.log",
    )  # fmt: skip
    ping = ["redis-cli", "-p", str(port), "ping"]
    wait_for(lambda: subprocess.run(ping, capture_output=True).returncode == 0, "redis")
    rows = []
    for c in connections:
        requests = max(1000, int(seconds * 2000 * max(1, c // 8)))
        out = subprocess.run(
            ["redis-benchmark", "-p", str(port), "-t", "set", "-c", str(c), "-n", str(requests),
             "-d", "100", "-r", str(KEYS), "--csv"],
            capture_output=True, text=True, check=True, timeout=seconds * 20 + 60,
        ).stdout  # fmt: skip
        last = [line for line in out.splitlines() if line.startswith('"SET"')][-1]
        cells = [cell.strip('"') for cell in last.split(",")]
        rows.append(
            {
                "connections": c,
                "ops_per_s": float(cells[1]),
                "p50": float(cells[5]),
                "p99": float(cells[7]),
            }
        )
    return rows


def measure(
    system: System,
    client: str,
    op: str,
    connections: int,
    seconds: float,
    scripts: dict[tuple[str, str], Path],
    etcd3: Path | None,
) -> dict[str, Any]:
    """One row's figures for one system, with the CPU its nodes and the load generator
    used meanwhile (percent of one core)."""
    term = system.follow_leader()
    before = {pid: cpu_seconds(pid) for pid in system.pids}
    own = os.times()
    began = time.monotonic()
    if client == "wrk/HTTP":
        figures = run_wrk(system.leader_url, scripts[system.name, op], connections, seconds)
    elif system.name == "accord":
        figures = run_accord_python(system.python_endpoints, op, connections, seconds)
    else:
        assert etcd3 is not None
        endpoint = system.python_endpoints[0]
        figures = run_etcd_python(etcd3, endpoint, op, connections, seconds)
    wall = time.monotonic() - began
    mine = os.times()
    load = mine.children_user + mine.children_system - own.children_user - own.children_system
    figures["cpu_nodes"] = [round((cpu_seconds(p) - before[p]) / wall * 100) for p in system.pids]
    figures["cpu_load"] = round(load / wall * 100)
    figures["elections"] = system.follow_leader() - term
    return figures


# --- the table ------------------------------------------------------------------------------------
OPS = [
    ("put", "durable writes"),
    ("get", "linearizable reads"),
    ("get-serializable", "serializable reads"),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per row")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--skip-python", action="store_true", help="only the wrk rows")
    parser.add_argument(
        "--plot-only",
        action="store_true",
        help="redraw compare_etcd.png from the compare_etcd.json in --out, run nothing",
    )
    parser.add_argument(
        "--ops", nargs="+", choices=[op for op, _ in OPS], default=[op for op, _ in OPS]
    )
    args = parser.parse_args()
    if args.plot_only:
        report = json.loads((args.out / "compare_etcd.json").read_text())
        plot(report, args.out / "compare_etcd.png")
        return
    ensure_packages()
    args.out.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="accord-vs-etcd-", dir=args.out.resolve()))
    started = Started()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    rows: list[dict[str, Any]] = []
    try:
        disk = fsync_loop(root)
        print(f"bare fdatasync loop: {disk:,.0f}/s (100-byte appends)", flush=True)
        etcd = start_etcd(started, root, 23700)
        accord = start_accord(started, root, 24000)
        systems = {"etcd": etcd, "accord": accord}
        for system in systems.values():
            prefill(system)
        scripts = {}
        for name in systems:
            for op, _ in OPS:
                path = root / f"{name}-{op}.lua"
                path.write_text(lua_script(name, op, KEYS if op == "put" else READ_KEYS))
                scripts[name, op] = path
        etcd3 = None if args.skip_python else etcd3_python(args.out.resolve() / ".venv-etcd3")
        for op, label in (o for o in OPS if o[0] in args.ops):
            for c in args.connections:
                for client in ("wrk/HTTP", "python"):
                    if client == "python" and etcd3 is None:
                        continue
                    result: dict[str, Any] = {"workload": label, "connections": c, "client": client}
                    for name, system in systems.items():
                        result[name] = measure(system, client, op, c, args.seconds, scripts, etcd3)
                    ratio = result["accord"]["ops_per_s"] / max(result["etcd"]["ops_per_s"], 1e-9)
                    result["ratio"] = ratio
                    rows.append(result)
                    print(_row_text(result), flush=True)
        redis = run_redis(started, root, 24600, args.connections, args.seconds)
        rss = {name: [round(peak_rss_mib(pid)) for pid in s.pids] for name, s in systems.items()}
    finally:
        started.stop()
    report = {"disk_fdatasync_per_s": disk, "rows": rows, "redis": redis, "peak_rss_mib": rss}
    (args.out / "compare_etcd.json").write_text(json.dumps(report, indent=2))
    (args.out / "compare_etcd.md").write_text(_markdown(report))
    plot(report, args.out / "compare_etcd.png")
    print()
    print(_markdown(report))
    shutil.rmtree(root, ignore_errors=True)


def _row_text(r: dict[str, Any]) -> str:
    e, a = r["etcd"], r["accord"]
    return (
        f"{r['workload']:<20} c={r['connections']:<4} {r['client']:<9} "
        f"etcd {e['ops_per_s']:>9,.0f}/s "
        f"p99 {e['p99']:7.2f}ms | accord {a['ops_per_s']:>9,.0f}/s p99 {a['p99']:7.2f}ms | "
        f"ratio {r['ratio']:.2f} | cpu% etcd {e['cpu_nodes']} load {e['cpu_load']}, "
        f"accord {a['cpu_nodes']} load {a['cpu_load']} | elections e/a "
        f"{e.get('elections', 0)}/{a.get('elections', 0)}"
    )


def _markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Bare `fdatasync` loop: {report['disk_fdatasync_per_s']:,.0f}/s.",
        "",
        "| workload | conns | client | etcd ops/s | etcd p50/p99 ms | Accord ops/s "
        "| Accord p50/p99 ms | Accord/etcd | CPU% etcd nodes / load gen "
        "| CPU% Accord nodes / load gen | errors e/a | elections e/a |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["rows"]:
        e, a = r["etcd"], r["accord"]
        lines.append(
            f"| {r['workload']} | {r['connections']} | {r['client']} | {e['ops_per_s']:,.0f} | "
            f"{e['p50']:.2f} / {e['p99']:.2f} | {a['ops_per_s']:,.0f} | "
            f"{a['p50']:.2f} / {a['p99']:.2f} | **{r['ratio']:.2f}** | "
            f"{'/'.join(map(str, e['cpu_nodes']))} / {e['cpu_load']} | "
            f"{'/'.join(map(str, a['cpu_nodes']))} / {a['cpu_load']} | "
            f"{e['errors']} / {a['errors']} | "
            f"{e.get('elections', 0)} / {a.get('elections', 0)} |"
        )
    lines += ["", "Redis, `appendfsync always`, redis-benchmark SET (single node):", ""]
    lines += ["| conns | ops/s | p50 ms | p99 ms |", "|---|---|---|---|"]
    for r in report["redis"]:
        lines.append(
            f"| {r['connections']} | {r['ops_per_s']:,.0f} | {r['p50']:.2f} | {r['p99']:.2f} |"
        )
    lines += ["", f"Peak RSS per node (MiB): {report['peak_rss_mib']}"]
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Throughput and p99 per row, both systems side by side, one panel per client."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a file
    import matplotlib.pyplot as plt

    clients = sorted({r["client"] for r in report["rows"]}, reverse=True)
    figure, axes = plt.subplots(2, len(clients), figsize=(7 * len(clients), 8), squeeze=False)
    for column, client in enumerate(clients):
        rows = [r for r in report["rows"] if r["client"] == client]
        short = {"durable writes": "write", "linearizable reads": "lin. read"}
        labels = [f"{short.get(r['workload'], 'ser. read')}\nc={r['connections']}" for r in rows]
        positions = range(len(rows))
        for row, (metric, title, scale) in enumerate(
            [("ops_per_s", "operations / s", "linear"), ("p99", "p99 latency, ms", "log")]
        ):
            ax = axes[row][column]
            for offset, name in ((-0.2, "etcd"), (0.2, "accord")):
                values = [r[name][metric] for r in rows]
                ax.bar([p + offset for p in positions], values, width=0.4, label=name)
            ax.set_xticks(list(positions), labels, fontsize="x-small")
            ax.set(title=f"{client}: {title}", yscale=scale)
            ax.grid(alpha=0.3, axis="y")
            ax.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    main()
