"""Packets held back and let go later: delay, jitter and loss through NFQUEUE.

Theory of operation
-------------------
An iptables rule `-j NFQUEUE --queue-num Q` makes the kernel park each matching
packet and tell a netlink listener about it (its id only: the listener asks for
metadata, not the payload). `PacketDelay` is that listener: a thread with one
netlink socket bound to every queue it was given. Each queue has its own settings
(`set`): a packet on it is dropped with probability `loss`, or else accepted
`delay_s` (+ up to `jitter_s`) after it arrived, never before a packet that arrived
earlier on the same queue, so a TCP stream keeps its order (as the proxy keeps its
byte order). A dropped packet is retransmitted by the sender's TCP, so loss here is
delay for the stream, not a cut.

The kernel's side is the protocol of `linux/netfilter/nfnetlink_queue.h`; this module
speaks the four messages it needs (bind a queue, set copy mode and flags, receive a
packet, give a verdict) over a plain `AF_NETLINK` socket. Queues are bound with
`FAIL_OPEN`: if the harness falls behind and a queue fills up, the kernel lets
packets through rather than dropping them. The socket must be created in the network
namespace whose rules queue the packets (see `netns.in_namespace`).

The thread only reads the socket, keeps the held packets, and sends verdicts; the
settings are the only state it shares, under a lock (its counters are read
elsewhere, never written). `stop()` lets every held packet go and closes the socket.
"""

from __future__ import annotations

import logging
import random
import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

log = logging.getLogger("accord.chaos")

NETLINK_NETFILTER = 12
SO_RCVBUFFORCE = 33  # not in Python's socket module: a receive buffer over rmem_max
SOL_NETLINK = 270
NETLINK_NO_ENOBUFS = 5
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN, NFQA_CFG_F_GSO = 1, 4
NF_DROP, NF_ACCEPT = 0, 1

QUEUE_PACKETS_MAX = 8192
"""Packets the kernel parks per queue before FAIL_OPEN lets the next ones through."""
RECEIVE_BUFFER_BYTES = 8 << 20
RECEIVE_BYTES = 1 << 16
RECEIVES_PER_PASS_MAX = 256
"""Datagrams read before the held packets get a look, so that a flood cannot starve them."""
MESSAGES_PER_SEND_MAX = 1024
CONFIG_TIMEOUT_S = 2.0
IDLE_WAKE_S = 0.5
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id


@dataclass(slots=True)
class QueueState:
    delay_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    held: deque[tuple[float, int]] = field(default_factory=deque)
    """(due time, packet id), in arrival order; due times never decrease."""
    passed: int = 0
    dropped: int = 0


class PacketDelay:
    def __init__(self, sock: socket.socket, queues: list[int], rng: random.Random) -> None:
        """`sock`: a fresh netlink socket (NETLINK_NETFILTER) in the namespace whose
        rules name `queues`; binds them all (OSError if the kernel refuses)."""
        self.rng = rng
        self.queues = {q: QueueState() for q in queues}
        self._sock = sock
        self._lock = threading.Lock()
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._sequence = 0
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER_BYTES)
        sock.setsockopt(SOL_NETLINK, NETLINK_NO_ENOBUFS, 1)
        sock.bind((0, 0))
        sock.settimeout(CONFIG_TIMEOUT_S)
        for queue in queues:
            self._configure(queue)
        sock.setblocking(False)

    def start(self) -> None:
        self._wake = socket.socketpair()
        self._thread = threading.Thread(
            target=self._run, args=(self._wake[0],), name="nfqueue-delay", daemon=True
        )
        self._thread.start()

    def set(self, queue: int, delay_s: float, jitter_s: float, loss: float) -> None:
        """New settings for packets arriving from now on (held ones keep their time)."""
        with self._lock:
            state = self.queues[queue]
            state.delay_s, state.jitter_s, state.loss = delay_s, jitter_s, loss

    def stop(self) -> None:
        """Let every held packet go, end the thread, close the socket; never raises."""
        self._stopping = True
        if self._thread is not None and self._wake is not None:
            self._wake[1].send(b"x")
            self._thread.join()
        for sock in (self._sock, *(self._wake or ())):
            sock.close()

    # --- the thread ----------------------------------------------------------------------
    def _run(self, wake: socket.socket) -> None:
        try:
            while not self._stopping:
                timeout = min(max(self._next_due() - time.monotonic(), 0.0), IDLE_WAKE_S)
                readable, _, _ = select.select([self._sock, wake], [], [], timeout)
                if self._sock in readable:
                    self._receive()
                self._release(time.monotonic())
            self._release(float("inf"))
        except OSError as e:
            # Closing the socket unbinds the queues; their rules' --queue-bypass then
            # lets packets through instead of parking them with no one to let them go.
            log.error("packet delay stopped, its packets now pass undelayed: %s", e)
            self._sock.close()

    def _next_due(self) -> float:
        heads = [s.held[0][0] for s in self.queues.values() if s.held]
        return min(heads, default=time.monotonic() + IDLE_WAKE_S)

    def _receive(self) -> None:
        """Every packet notice waiting on the socket: hold it, or drop it at once."""
        drops: list[bytes] = []
        for _ in range(RECEIVES_PER_PASS_MAX):
            try:
                data = self._sock.recv(RECEIVE_BYTES)
            except BlockingIOError:
                break
            now = time.monotonic()
            for queue, packet_id in _packets(data):
                state = self.queues.get(queue)
                if state is None:
                    continue
                with self._lock:
                    delay_s, jitter_s, loss = state.delay_s, state.jitter_s, state.loss
                if loss and self.rng.random() < loss:
                    state.dropped += 1
                    drops.append(self._verdict(queue, packet_id, NF_DROP))
                    continue
                due = now + delay_s + (self.rng.random() * jitter_s if jitter_s else 0.0)
                if state.held and state.held[-1][0] > due:
                    due = state.held[-1][0]
                state.held.append((due, packet_id))
        self._send(drops)

    def _release(self, now: float) -> None:
        verdicts: list[bytes] = []
        for queue, state in self.queues.items():
            while state.held and state.held[0][0] <= now:
                _, packet_id = state.held.popleft()
                state.passed += 1
                verdicts.append(self._verdict(queue, packet_id, NF_ACCEPT))
        self._send(verdicts)

    # --- messages ------------------------------------------------------------------------
    def _send(self, messages: list[bytes]) -> None:
        """Many netlink messages in few datagrams, each well under the socket's buffer."""
        for at in range(0, len(messages), MESSAGES_PER_SEND_MAX):
            self._sock.send(b"".join(messages[at : at + MESSAGES_PER_SEND_MAX]))

    def _verdict(self, queue: int, packet_id: int, verdict: int) -> bytes:
        hdr = _attribute(NFQA_VERDICT_HDR, struct.pack("!II", verdict, packet_id))
        return self._message(NFQNL_MSG_VERDICT, queue, hdr, NLM_F_REQUEST)

    def _configure(self, queue: int) -> None:
        """Bind `queue`, ask for metadata only, set FAIL_OPEN and GSO; wait for each ack."""
        flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
        steps = [
            _attribute(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, socket.AF_INET)),
            _attribute(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))
            + _attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_PACKETS_MAX))
            + _attribute(NFQA_CFG_MASK, struct.pack("!I", flags))
            + _attribute(NFQA_CFG_FLAGS, struct.pack("!I", flags)),
        ]
        for attrs in steps:
            message = self._message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK)
            self._sock.send(message)
            data = self._sock.recv(RECEIVE_BYTES)
            (error,) = struct.unpack_from("=i", data, _HEADER.size)
            if error:
                raise OSError(-error, f"binding netfilter queue {queue}: errno {-error}")

    def _message(self, msg_type: int, queue: int, attrs: bytes, flags: int) -> bytes:
        self._sequence += 1
        body = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + attrs  # nfgenmsg
        kind = NFNL_SUBSYS_QUEUE << 8 | msg_type
        return _HEADER.pack(_HEADER.size + len(body), kind, flags, self._sequence, 0) + body


def _attribute(kind: int, value: bytes) -> bytes:
    length = 4 + len(value)
    return struct.pack("=HH", length, kind) + value + b"\0" * (-length % 4)


def _packets(data: bytes) -> list[tuple[int, int]]:
    """(queue, packet id) of each packet notice in one netlink datagram; other
    messages (errors about verdicts on packets already gone) are skipped."""
    out = []
    offset = 0
    while offset + _HEADER.size <= len(data):
        length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
        if length < _HEADER.size:
            break
        if kind == NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET:
            (queue,) = struct.unpack_from("!H", data, offset + _HEADER.size + 2)
            at = offset + _HEADER.size + 4  # after nfgenmsg: the attributes
            while at + 4 <= offset + length:
                size, attr = struct.unpack_from("=HH", data, at)
                if size < 4:
                    break
                if attr & 0x3FFF == NFQA_PACKET_HDR:
                    out.append((queue, struct.unpack_from("!I", data, at + 4)[0]))
                    break
                at += (size + 3) & ~3
        offset += (length + 3) & ~3
    return out
