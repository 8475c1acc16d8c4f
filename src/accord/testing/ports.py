"""Loopback ports for the servers that tests and chaos runs start.

Ports are picked at random below the kernel's ephemeral range (32768 and up by
default) and checked by binding. The ephemeral range is where the kernel takes the
ports of every outgoing connection and of every listener bound to port 0 (such as
the chaos proxy's): a port picked there and released could be taken by one of those
before the server binds it (seen: a node that could not bind, and a proxy listener
holding its port that forwarded to itself until the harness ran out of file
descriptors).
"""

from __future__ import annotations

import random
import socket

LISTEN_PORTS = range(10_000, 32_000)
PICK_ATTEMPTS_MAX = 10_000


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports in `LISTEN_PORTS` that were free a moment ago,
    picked at random (so concurrent runs rarely try the same ones)."""
    rng = random.Random()
    chosen: list[int] = []
    attempts = 0
    while len(chosen) < count:
        attempts += 1
        if attempts > PICK_ATTEMPTS_MAX:
            raise RuntimeError(f"found only {len(chosen)} of {count} free ports in {LISTEN_PORTS}")
        port = rng.choice(LISTEN_PORTS)
        if port in chosen:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
        except OSError:
            continue
        chosen.append(port)
    return chosen
