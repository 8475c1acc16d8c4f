"""Socket helpers shared by the connection-limit tests."""

from __future__ import annotations

import socket
import time

import pytest


def closed_within(s: socket.socket, seconds: float) -> float:
    """How long until the node closed `s` (fails if it stays open `seconds`)."""
    started = time.monotonic()
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {seconds}s")
    return time.monotonic() - started
