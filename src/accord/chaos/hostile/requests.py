"""Classes 2, 7 and 8: requests that cost the node too much or that it misreads.

The verdicts are generic, so they hold whatever error code a fix chooses: a node
stays alive, answers no 5xx and logs no traceback; one request does not make the
leader's memory grow without bound or cost it its leadership; input the API does
not define is refused (any 4xx), not silently accepted.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import msgpack

from accord.chaos.hostile.outcome import Outcome, judge
from accord.chaos.localup import Response, UpCluster, UpNode
from accord.transport.framing import FrameDecoder, encode_frame

BIG_VALUE_BYTES = 1 << 20
BIG_VALUES = 5
RANGE_OPS = 128
RESPONSE_BYTES_MAX = 64 << 20
"""A response over this is unbounded work for one request."""
RSS_GROWTH_KIB_MAX = 256 << 10
"""Peak resident memory a single request may add to the leader."""
AMPLIFY_TIMEOUT_S = 60.0
HUGE_DIGITS = 5000
HUGE_INT = "9" * HUGE_DIGITS
CONTENT_LENGTH_HUGE = (1 << 64) - 1
URL_BYTES = 9000
RAW_TIMEOUT_S = 5.0


def _is_4xx(status: int) -> bool:
    return 400 <= status < 500


def _leader(cluster: UpCluster) -> tuple[UpNode, int]:
    found = cluster.leader(15.0)
    if found is None:
        raise RuntimeError("no leader")
    return cluster.node(found[0]), found[1]


# --- class 2 ------------------------------------------------------------------------


def read_amplification(cluster: UpCluster, value_bytes: int = BIG_VALUE_BYTES) -> Outcome:
    leader, term = _leader(cluster)
    for i in range(BIG_VALUES):
        status = cluster.put(f"big/{i}", bytes([65 + i]) * value_bytes)
        if status != 200:
            raise RuntimeError(f"storing big/{i}: {status}")
    rss_before, peak_before = cluster.rss_kib(leader)
    op = {"range": {"key_b64": "AA==", "range_end_b64": "AA=="}}  # every key
    body = {"success": [op] * RANGE_OPS}
    failures = []
    try:
        response = cluster.http(
            leader, "POST", "/v1/txn", body, timeout_s=AMPLIFY_TIMEOUT_S, read_bytes_max=4096
        )
        status, body_bytes, elapsed = (
            response.status,
            int(response.headers["x-body-bytes"]),
            response.elapsed_s,
        )
    except OSError as exc:
        status, body_bytes, elapsed = 0, 0, AMPLIFY_TIMEOUT_S
        failures.append(f"no answer: {exc}")
    _, peak_after = cluster.rss_kib(leader)
    after = cluster.leader(15.0)
    growth = peak_after - max(peak_before, rss_before)
    if status >= 500:
        failures.append(f"answered {status}")
    if body_bytes > RESPONSE_BYTES_MAX:
        failures.append(f"a {body_bytes / 2**20:.0f} MiB response")
    if growth > RSS_GROWTH_KIB_MAX:
        failures.append(f"leader peak RSS grew by {growth / 1024:.0f} MiB")
    if after != (leader.id, term):
        failures.append(f"leader/term went from {(leader.id, term)} to {after}")
    return judge(
        2,
        "txn_128_ranges",
        f"{BIG_VALUES} values of {value_bytes >> 10} KiB, POST /v1/txn with {RANGE_OPS} "
        f"ranges over every key ({len(json.dumps(body))} bytes)",
        failures,
        status=status,
        response_bytes=body_bytes,
        time_s=round(elapsed, 2),
        leader_rss_mib=round(rss_before / 1024),
        leader_peak_rss_mib=round(peak_after / 1024),
        leader_term_before=(leader.id, term),
        leader_term_after=after,
    )


# --- class 7 ------------------------------------------------------------------------


def _traceback_check(cluster: UpCluster, offsets: dict[str, int], failures: list[str]) -> int:
    tracebacks = cluster.log_since(offsets).count(b"Traceback")
    if tracebacks:
        failures.append(f"{tracebacks} traceback(s) in node.log")
    return tracebacks


def _status_only(response: Response | int) -> int:
    return response if isinstance(response, int) else response.status


def bad_input(cluster: UpCluster) -> list[Outcome]:
    """Each malformed request must get a 4xx and leave no traceback in node.log."""
    leader, _ = _leader(cluster)
    member = '"name": "x", "peer": "127.0.0.1:1", "client": "127.0.0.1:2"'
    cases: list[tuple[str, str, Any]] = [
        (
            "lease_grant_5000_digits",
            "POST /v1/lease/grant with a 5000-digit ttl",
            lambda: cluster.http(
                leader, "POST", "/v1/lease/grant", f'{{"ttl": {HUGE_INT}}}'.encode()
            ),
        ),
        (
            "txn_5000_digits",
            "POST /v1/txn with a 5000-digit revision",
            lambda: cluster.http(
                leader,
                "POST",
                "/v1/txn",
                f'{{"success": [{{"get": {{"key": "a", "revision": {HUGE_INT}}}}}]}}'.encode(),
            ),
        ),
        (
            "members_5000_digits",
            "POST /v1/members with a 5000-digit id",
            lambda: cluster.http(
                leader, "POST", "/v1/members", f'{{"id": {HUGE_INT}, {member}}}'.encode()
            ),
        ),
        (
            "member_id_2^64",
            "POST /v1/members with id 2^64",
            lambda: cluster.http(
                leader, "POST", "/v1/members", f'{{"id": {1 << 64}, {member}}}'.encode()
            ),
        ),
        (
            "native_binary_map_key",
            "native get whose args map has a binary key",
            lambda: native_request(cluster, leader, [1, "get", {b"key": b"x"}]),
        ),
        (
            "url_9000_bytes",
            f"GET of a {URL_BYTES}-byte URL",
            lambda: cluster.http(leader, "GET", "/v1/kv/" + "u" * URL_BYTES),
        ),
    ]
    outcomes = [_bad_case(cluster, *case) for case in cases]
    outcomes.append(content_length_huge(cluster, leader))
    return outcomes


def _bad_case(cluster: UpCluster, name: str, action: str, send: Any) -> Outcome:
    offsets = cluster.log_offsets()
    failures: list[str] = []
    try:
        status = _status_only(send())
    except OSError as exc:
        status = 0
        failures.append(f"no answer: {exc}")
    time.sleep(0.2)  # the log line of a failed request is written after the answer
    if status and not _is_4xx(status):
        failures.append(f"answered {status}")
    tracebacks = _traceback_check(cluster, offsets, failures)
    if not all(cluster.alive().values()):
        failures.append("a node exited")
    return judge(7, name, action, failures, status=status, tracebacks=tracebacks)


def native_request(cluster: UpCluster, node: UpNode, request: list[Any]) -> int:
    """The status of one request on a fresh native connection (after the hello)."""
    host, port = node.native_url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=RAW_TIMEOUT_S) as raw:
        context = cluster.tls_context()
        sock = raw if context is None else context.wrap_socket(raw, server_hostname=host)
        decoder = FrameDecoder(64 << 20)
        sock.sendall(encode_frame(msgpack.packb(["accord", 1])))
        _native_frame(sock, decoder)
        if cluster.token:
            login = [7, "login", {"token": cluster.token}]
            sock.sendall(encode_frame(msgpack.packb(login, use_bin_type=True)))
            _native_frame(sock, decoder)
        sock.sendall(encode_frame(msgpack.packb(request, use_bin_type=True)))
        answer = _native_frame(sock, decoder)
    return int(answer[1])


def _native_frame(sock: socket.socket | ssl.SSLSocket, decoder: FrameDecoder) -> Any:
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("native connection closed")
        frames = decoder.feed(data)
        if frames:
            return msgpack.unpackb(frames[0], raw=False, strict_map_key=False)


def raw_http(cluster: UpCluster, node: UpNode, head: bytes, body: bytes = b"") -> bytes:
    """Send hand-written request bytes; the answer's first line (b"" if closed)."""
    host, port = node.client_url.split("//", 1)[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=RAW_TIMEOUT_S) as raw:
        context = cluster.tls_context()
        sock = raw if context is None else context.wrap_socket(raw, server_hostname=host)
        sock.sendall(head + body)
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            return b"(no answer within the timeout)"
    return answer.split(b"\r\n", 1)[0]


def content_length_huge(cluster: UpCluster, leader: UpNode) -> Outcome:
    offsets = cluster.log_offsets()
    host = leader.client_url.split("//", 1)[1]
    head = (
        f"PUT /v1/kv/hostile/cl HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Length: {CONTENT_LENGTH_HUGE}\r\nConnection: close\r\n\r\n"
    ).encode()
    line = raw_http(cluster, leader, head, b"abc")
    parts = line.split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    stored = cluster.http(leader, "GET", "/v1/kv/hostile/cl").status == 200
    failures = []
    if status and not _is_4xx(status):
        failures.append(f"answered {status}")
    if stored:
        failures.append("the key was stored")
    _traceback_check(cluster, offsets, failures)
    return judge(
        7,
        "content_length_2^64-1",
        "PUT with Content-Length 18446744073709551615 and a 3-byte body",
        failures,
        status=status or line.decode(errors="replace")[:60],
        stored=stored,
    )


# --- class 8 ------------------------------------------------------------------------


def small_points(cluster: UpCluster) -> list[Outcome]:
    leader, _ = _leader(cluster)
    cluster.put("hostile/small", b"v")
    outcomes = []
    status = cluster.http(leader, "GET", "/v1/kv/hostile/small?bogus=1").status
    outcomes.append(
        judge(
            8,
            "kv_unknown_query_param",
            "GET /v1/kv/KEY?bogus=1",
            [] if _is_4xx(status) else [f"answered {status} (the parameter was ignored)"],
            status=status,
        )
    )
    body = {"success": [{"delete": {"key": "hostile/none", "limit": 1}}]}
    status = cluster.http(leader, "POST", "/v1/txn", body).status
    outcomes.append(
        judge(
            8,
            "txn_delete_with_limit",
            "POST /v1/txn with a delete carrying 'limit'",
            [] if _is_4xx(status) else [f"answered {status} (limit ignored)"],
            status=status,
        )
    )
    response = cluster.http(leader, "PATCH", "/v1/kv/hostile/small", b"x")
    allow = response.headers.get("allow", "")
    failures = [] if response.status != 405 or allow else ["405 without an Allow header"]
    if response.status >= 500:
        failures.append(f"answered {response.status}")
    outcomes.append(
        judge(8, "405_allow", "PATCH /v1/kv/KEY", failures, status=response.status, allow=allow)
    )
    get0 = cluster.http(leader, "GET", "/v1/lease/0").status
    delete0 = cluster.http(leader, "DELETE", "/v1/lease/0").status
    outcomes.append(
        judge(
            8,
            "lease_id_0",
            "GET and DELETE /v1/lease/0",
            [] if get0 == delete0 else [f"GET answers {get0}, DELETE {delete0}"],
            get=get0,
            delete=delete0,
        )
    )
    return outcomes
