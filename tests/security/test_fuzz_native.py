"""Hypothesis against a real node's native protocol: arbitrary frames and requests
never get a 5xx, never crash the node and never hang a connection (each example ends
with a health request that must be answered, or the connection closed, in time)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accord.security.config import SecurityConfig
from accord.testing.cluster import http
from accord.testing.single import SingleNode
from accord.transport.framing import FrameDecoder, encode_frame

OPS = [
    "put", "delete", "txn", "get", "range", "lease_grant", "lease_keepalive",
    "lease_revoke", "lease_ttl", "status", "health", "watch", "cancel", "login", "nope",
]  # fmt: skip
PROBE_ID = 2**40
DEADLINE_S = 8.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True),
    st.binary(max_size=40),
    st.text(max_size=40),
)
map_keys = st.one_of(st.text(max_size=12), st.binary(max_size=12))  # msgpack allows both
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(map_keys, inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["key", "value", "range_end", "lease", "id", "ttl", "revision", "limit", "compare",
     "success", "failure", "client_id", "seq", "serializable", "count_only", "user",
     "password", "token", "start_revision", "key_b64"]
)  # fmt: skip
requests = st.tuples(
    st.one_of(st.integers(min_value=0, max_value=2**63), values),
    st.one_of(st.sampled_from(OPS), values),
    st.one_of(
        st.dictionaries(field_names, values, max_size=6),
        st.dictionaries(field_names | field_names.map(str.encode), values, max_size=6),
        values,
    ),
)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNode]:
    n = SingleNode(tmp_path_factory.mktemp("fuzz") / "node", SecurityConfig(read_timeout_s=1.0))
    n.start()
    yield n
    n.stop()


async def _exchange(address: tuple[str, int], frames: list[bytes]) -> list[Any]:
    """Send the hello, `frames`, then a health probe; the answers until the probe's
    (or until the node closes the connection)."""
    reader, writer = await asyncio.open_connection(*address)
    decoder = FrameDecoder(8 << 20)
    answers: list[Any] = []
    try:
        writer.write(encode_frame(msgpack.packb(["accord", 1])))
        for frame in frames:
            writer.write(frame)
        writer.write(encode_frame(msgpack.packb([PROBE_ID, "health", {}])))
        async with asyncio.timeout(DEADLINE_S):
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    answers.append(msgpack.unpackb(frame, strict_map_key=False))
                if any(isinstance(a, list) and a and a[0] == PROBE_ID for a in answers):
                    break
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return answers


def _check(answers: list[Any]) -> None:
    for answer in answers[1:]:  # the first is the hello's answer
        assert isinstance(answer, list) and len(answer) == 3, answer
        assert answer[1] < 500, answer


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=st.lists(requests, min_size=1, max_size=5))
def test_arbitrary_requests(node: SingleNode, batch: list[tuple[Any, Any, Any]]) -> None:
    frames = [encode_frame(msgpack.packb(list(r))) for r in batch]
    answers = asyncio.run(_exchange(node.native_address, frames))
    _check(answers)
    # Every request got an answer (or, for a watch, its stream started): no hang.
    assert any(isinstance(a, list) and a and a[0] == PROBE_ID for a in answers) or any(
        isinstance(a, list) and a[1] == 400 for a in answers[1:]
    ), answers


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    payloads=st.lists(st.binary(max_size=64), min_size=1, max_size=4), raw=st.binary(max_size=16)
)
def test_arbitrary_frames_and_bytes(node: SingleNode, payloads: list[bytes], raw: bytes) -> None:
    frames = [encode_frame(p) for p in payloads] + [raw]
    _check(asyncio.run(_exchange(node.native_address, frames)))


def test_oversized_frame_header_is_refused(node: SingleNode) -> None:
    with socket.create_connection(node.native_address, timeout=DEADLINE_S) as s:
        s.sendall(encode_frame(msgpack.packb(["accord", 1])) + struct.pack(">I", 2**31))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    answers = [msgpack.unpackb(f) for f in FrameDecoder(8 << 20).feed(data)]
    assert answers[-1][1] == 400, answers


def test_the_node_is_still_healthy(node: SingleNode) -> None:
    assert http("GET", f"{node.url}/health")[0] == 200
