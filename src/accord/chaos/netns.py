"""The `netns` network: every node a host of its own, faults made in the network.

Theory of operation
-------------------
Each node runs in a network namespace of its own (`accord-<pid>-<n>-n<i>`), as if it
were a separate machine: its own interfaces, its own ports, its own address. One more
namespace, the router (`accord-<pid>-<n>-net`), stands for the network: every node's
only interface (`eth0`) is one end of a veth pair whose other end is in the router,
on a /30 of its own, and the router forwards between them. A last veth pair joins the
router to the root namespace, where the harness stays (clients, status polls): the
root namespace gets one interface (`acc<pid>-<n>`) and, through it, a route to the
run's /24, which is picked per run among 10.213.0.0/16 so that nothing on the machine
uses it yet.

Faults are iptables rules in the router's FORWARD chain, so they happen between the
hosts: neither the sender's kernel nor the receiver's knows. Raft connections are
one-way (A dials B's peer port and sends its A→B messages on it; B only answers the
handshake), so the direction A→B is every packet from A's address to B's address
and B's peer port:

- block A→B: `-I FORWARD -s A -d B -p tcp --dport PEER -j DROP`. Packets of open
  connections are lost as well: A's TCP retransmits with exponential backoff until
  the rule is gone, and a new connection's SYN goes unanswered. B→A traffic is not
  matched, including the acknowledgements A sends for it (they leave from A's peer
  port, not to B's), so a one-way cut leaves the other direction working.
- slow A→B: `-A FORWARD ... -j NFQUEUE --queue-num Q`: the kernel parks those packets
  and `nfqueue.PacketDelay`, a thread of the harness, lets each one go after the
  delay (plus jitter, in order) or drops it with the given probability (TCP then
  retransmits it: a loss costs time, not the connection). `tc netem` would do the
  same inside the kernel, but some kernels are built without it, this project's CI
  machine's among them, while distribution kernels all have NFQUEUE. Block rules
  are inserted before the queue rules, so a cut wins over a delay.

Clients (the root namespace to a node's client port) and a follower forwarding a
request to the leader over HTTP are never matched: as with the proxy, only Raft
traffic is hurt.

Why a router rather than a bridge in the root namespace: bridged frames go through
the root namespace's iptables FORWARD chain when `bridge-nf-call-iptables` is set,
and other software (Docker) sets that chain to DROP; routing in a namespace of the
run's own keeps every rule the run adds out of the machine's own firewall.

Names are unique per run (PID and a counter, checked unused). `stop()`, also after
a failed `place()`, deletes the root-side interface (its route goes with it) and
every namespace the run created; the rules and the other veths go with them.
Setting up and changing faults runs `ip` and `iptables` (about 10 ms a call).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import functools
import ipaddress
import itertools
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from accord.chaos.network import Address, LinkFaults, NetworkUnavailable
from accord.chaos.nfqueue import NETLINK_NETFILTER, PacketDelay, QueueState
from accord.node.address import Member

CLIENT_PORT, PEER_PORT, NATIVE_PORT = 7001, 7101, 7201
"""The same on every node: each has an address of its own."""
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")
COMMAND_TIMEOUT_S = 10.0
CLONE_NEWNET = 0x40000000
NETNS_DIR = "/run/netns"
SBIN_PATH = "/usr/sbin:/sbin"

T = TypeVar("T")
_runs = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)
log = logging.getLogger("accord.chaos")


def unavailable() -> str | None:
    """Why the `netns` network cannot run here, or None if it can."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "needs root (it creates network namespaces and iptables rules)"
    missing = [name for name in ("ip", "iptables") if tool(name) is None]
    if missing:
        return f"{' and '.join(missing)} not found (Debian packages iproute2, iptables)"
    return None


@functools.cache
def tool(name: str) -> str | None:
    """Where the command `name` is: on PATH, or in the sbin directories a non-root
    PATH often leaves out."""
    return shutil.which(name) or shutil.which(name, path=SBIN_PATH)


def _ip() -> str:
    return tool("ip") or "ip"


def in_namespace(name: str, action: Callable[[], T]) -> T:
    """`action()` run by a thread that has entered network namespace `name`: a socket
    it creates belongs to that namespace. The caller's own thread never moves."""

    def enter_and_act() -> T:
        fd = os.open(f"{NETNS_DIR}/{name}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"entering network namespace {name}: {os.strerror(errno)}")
        finally:
            os.close(fd)
        return action()

    # A fresh thread each time: it ends inside the namespace and is not reused.
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        return executor.submit(enter_and_act).result()


@dataclass(slots=True)
class Link(LinkFaults):
    """The state of one direction src→dst."""

    @property
    def slowed(self) -> bool:
        return bool(self.delay_s or self.jitter_s or self.loss)


class NetnsNetwork:
    name = "netns"

    def __init__(self, rng: random.Random) -> None:
        """`rng` draws the jitter and the losses."""
        self.rng = rng
        self.links: dict[tuple[int, int], Link] = {}
        self.addresses: dict[int, str] = {}
        self.subnet: ipaddress.IPv4Network | None = None
        pid, n = os.getpid(), _unused_run_number()
        self._run = f"accord-{pid}-{n}"
        self._subnet_start = 31 * pid + n  # runs of neighbouring PIDs try apart
        self.router = f"{self._run}-net"
        self.uplink = f"acc{pid}-{n}"
        assert len(self.uplink) <= 15, "the kernel's limit for an interface name"
        self._namespaces: list[str] = []
        self._uplink_added = False
        self._delay: PacketDelay | None = None

    def namespace(self, node: int) -> str:
        return f"{self._run}-n{node}"

    # --- as a chaos run's network --------------------------------------------------------
    async def place(self, ids: list[int]) -> dict[int, Member]:
        """Create the namespaces, the router and its links (see the module's comment)."""
        try:
            self._setup(ids)
        except BaseException:
            await self.stop()
            raise
        return {
            i: Member(
                i,
                f"n{i}",
                peer=(ip, PEER_PORT),
                client=(ip, CLIENT_PORT),
                native=(ip, NATIVE_PORT),
            )
            for i, ip in self.addresses.items()
        }

    def dial(self, src: int, dst: int) -> Address | None:
        return None  # every node is reachable at its own address

    def command(self, node: int, argv: list[str]) -> list[str]:
        # `ip netns exec` enters the namespace and execs: the PID stays the node's.
        return [_ip(), "netns", "exec", self.namespace(node), *argv]

    async def stop(self) -> None:
        """Delete everything `place` created; never raises (a step that fails is logged)."""
        if self._delay is not None:
            self._delay.stop()
            self._delay = None
        steps = [[_ip(), "netns", "del", name] for name in reversed(self._namespaces)]
        if self._uplink_added and os.path.exists(f"/sys/class/net/{self.uplink}"):
            steps.insert(0, [_ip(), "link", "del", self.uplink])
        for argv in steps:
            try:
                _run(argv)
            except NetworkUnavailable as e:
                log.error("taking the network down: %s", e)
        self._uplink_added = False
        self._namespaces.clear()

    # --- faults --------------------------------------------------------------------------
    def block(self, src: int, dst: int) -> None:
        link = self.links[(src, dst)]
        if not link.blocked:
            self._iptables("-I", "FORWARD", *self._match(src, dst), "-j", "DROP")
            link.blocked = True

    def unblock(self, src: int, dst: int) -> None:
        link = self.links[(src, dst)]
        if link.blocked:
            self._iptables("-D", "FORWARD", *self._match(src, dst), "-j", "DROP")
            link.blocked = False

    def slow(self, src: int, dst: int, delay_s: float, jitter_s: float, loss: float) -> None:
        assert self._delay is not None, "slow() before place()"
        link = self.links[(src, dst)]
        queue = self._queue(src, dst)
        self._delay.set(queue, delay_s, jitter_s, loss)  # before the first packet is queued
        slowed = bool(delay_s or jitter_s or loss)
        if slowed != link.slowed:
            action = "-A" if slowed else "-D"
            target = ["-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
            self._iptables(action, "FORWARD", *self._match(src, dst), *target)
        link.delay_s, link.jitter_s, link.loss = delay_s, jitter_s, loss

    def heal(self) -> None:
        for src, dst in self.links:
            self.slow(src, dst, 0.0, 0.0, 0.0)
            self.unblock(src, dst)

    def queue(self, src: int, dst: int) -> QueueState:
        """The delay's record of src→dst: packets passed and dropped so far."""
        assert self._delay is not None, "queue() before place()"
        return self._delay.queues[self._queue(src, dst)]

    def _match(self, src: int, dst: int) -> list[str]:
        """src's packets to dst's peer port: src's Raft messages to dst."""
        src_ip, dst_ip = self.addresses[src], self.addresses[dst]
        return ["-s", src_ip, "-d", dst_ip, "-p", "tcp", "--dport", str(PEER_PORT)]

    @staticmethod
    def _queue(src: int, dst: int) -> int:
        return 100 * src + dst

    def _iptables(self, *args: str) -> None:
        iptables = tool("iptables") or "iptables"
        _run([_ip(), "netns", "exec", self.router, iptables, "-w", *args])

    # --- setting up ----------------------------------------------------------------------
    def _setup(self, ids: list[int]) -> None:
        subnet = self.subnet = _unused_subnet(self._subnet_start)
        hosts = list(subnet.hosts())  # host k of the /30 number j is hosts[4 * j + k - 1]
        uplink_router, uplink_root = str(hosts[0]), str(hosts[1])
        for name in (self.router, *(self.namespace(i) for i in ids)):
            _run([_ip(), "netns", "add", name])
            self._namespaces.append(name)
        self._uplink_added = True
        _batch(
            None,
            [
                f"link add {self.uplink} type veth peer name uplink netns {self.router}",
                f"addr add {uplink_root}/30 dev {self.uplink}",
                f"link set {self.uplink} up",
            ],
        )
        router = ["link set lo up", f"addr add {uplink_router}/30 dev uplink", "link set uplink up"]
        nodes: dict[int, list[str]] = {}
        for j, i in enumerate(ids, start=1):
            gateway, address = str(hosts[4 * j]), str(hosts[4 * j + 1])
            self.addresses[i] = address
            router += [
                f"link add n{i} type veth peer name eth0 netns {self.namespace(i)}",
                f"addr add {gateway}/30 dev n{i}",
                f"link set n{i} up",
            ]
            nodes[i] = [
                "link set lo up",
                f"addr add {address}/30 dev eth0",
                "link set eth0 up",
                f"route add default via {gateway}",
            ]
        _batch(self.router, router)
        for i, commands in nodes.items():
            _batch(self.namespace(i), commands)
        _batch(None, [f"route add {subnet} via {uplink_router} dev {self.uplink}"])
        in_namespace(self.router, _enable_forwarding)
        self.links = {(s, d): Link() for s in ids for d in ids if s != d}
        self._delay = self._packet_delay()

    def _packet_delay(self) -> PacketDelay:
        """A running `PacketDelay` in the router, bound to a queue per direction."""
        sock = in_namespace(
            self.router,
            lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER),
        )
        try:
            delay = PacketDelay(sock, [self._queue(s, d) for s, d in self.links], self.rng)
        except OSError as e:
            sock.close()
            raise NetworkUnavailable(f"the kernel refused a netfilter queue (NFQUEUE): {e}") from e
        delay.start()
        return delay


def _enable_forwarding() -> None:
    with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
        f.write("1")


def _run(argv: list[str], *, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(
            argv, input=stdin, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetworkUnavailable(f"{' '.join(argv)}: {e}") from e
    if result.returncode != 0:
        raise NetworkUnavailable(f"{' '.join(argv)}: {result.stderr.strip()}")
    return result.stdout


def _batch(namespace: str | None, commands: list[str]) -> None:
    """Several `ip` commands in one process, in `namespace` (None: the root one)."""
    where = ["-n", namespace] if namespace else []
    _run([_ip(), *where, "-batch", "-"], stdin="\n".join(commands) + "\n")


def _unused_run_number() -> int:
    """The next n of this process for which no namespace accord-<pid>-<n>-* and no
    interface acc<pid>-<n> exist (a run that died with this PID may have left some)."""
    pid = os.getpid()
    taken = set(os.listdir(NETNS_DIR)) if os.path.isdir(NETNS_DIR) else set()
    for n in _runs:
        if not os.path.exists(f"/sys/class/net/acc{pid}-{n}") and not any(
            name.startswith(f"accord-{pid}-{n}-") for name in taken
        ):
            return n
    raise AssertionError("unreachable")


def _unused_subnet(start: int) -> ipaddress.IPv4Network:
    """A /24 of SUBNETS that no address or route of the root namespace overlaps,
    trying them from a point that differs between concurrent runs."""
    listing = _run([_ip(), "-4", "-o", "addr", "show"])
    listing += _run([_ip(), "-4", "route", "show", "table", "all"])
    used = [
        ipaddress.ip_network(token, strict=False)
        for token in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?\b", listing)
    ]
    candidates: list[ipaddress.IPv4Network] = list(SUBNETS.subnets(new_prefix=24))
    for k in range(len(candidates)):
        subnet = candidates[(start + k) % len(candidates)]
        if not any(subnet.overlaps(net) for net in used):
            return subnet
    raise NetworkUnavailable(f"every /24 of {SUBNETS} is in use on this machine")
