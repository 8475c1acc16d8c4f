"""Bounds of the two client protocols (HTTP/JSON and native msgpack frames), shared by
the node that serves them and the client that speaks them; named with units last.

The request bounds are what a node accepts; the answer bounds are the largest answer a
node may send, derived from the largest `response_bytes_max` a node accepts, so a
client that accepts them accepts every answer and no more. This module imports only
the state machine's bounds (a client may import it; api/ never imports the Raft core).
"""

from __future__ import annotations

from accord.kv.limits import COMMAND_BYTES_MAX, RESPONSE_BYTES_CEILING

KIB = 1024
MIB = 1024 * KIB

REQUEST_BYTES_MAX = COMMAND_BYTES_MAX
"""Largest HTTP request body (413 `request_too_large` beyond, before any of it is
read): the largest command, since no request is proposed as anything smaller than its
own payload. Its JSON form is larger than the command for binary values (base64: 4/3),
so the very largest commands are written over the native protocol."""

NATIVE_REQUEST_FRAME_BYTES_MAX = REQUEST_BYTES_MAX
"""Largest native request frame a node accepts (a larger header closes the connection
with an error before any of the payload is buffered); the client refuses to send one."""

NATIVE_ANSWER_ENVELOPE_BYTES = 64 * KIB
"""What an answer may hold beyond its charged key-values and ops: `[id, status, body]`,
a result's own fields (a transaction's revision and outcome), an error answer whose
message quotes a key (up to 4 characters per byte of a 4 KiB key), a status document."""

NATIVE_ANSWER_FRAME_BYTES_MAX = RESPONSE_BYTES_CEILING + NATIVE_ANSWER_ENVELOPE_BYTES
"""Largest native answer frame a node sends and the client accepts: the largest
`response_bytes_max` (the charges cover the native encoding) plus the envelope. A node
answers `response_too_large` instead of sending a larger one (a lease with more keys
than fit)."""

JSON_EXPANSION_MAX = 6
"""Most JSON bytes per byte of key or value: a control character is written `\\u00XX`
(ASCII-only JSON); base64 takes 4/3, other text at most 6. A key-value's JSON framing
(at most 163 bytes) is below 6 times its charged overhead."""

HTTP_WATCH_LINE_BYTES_MAX = (
    JSON_EXPANSION_MAX * RESPONSE_BYTES_CEILING + NATIVE_ANSWER_ENVELOPE_BYTES
)
"""Longest line (one batch of events, at most `response_bytes_max` of them) an HTTP
watch stream may carry; the client accepts no longer one."""

NATIVE_INFLIGHT_MAX = 512
"""Requests in progress per native connection before the node stops reading from it."""

NATIVE_WATCHES_MAX = 64
"""Open watches per native connection (413 `limit_exceeded` beyond)."""

NATIVE_WRITE_BUFFER_BYTES_HIGH = 1 * MIB
"""Answer bytes a connection's transport may hold unsent (a slow reader's) before the
node stops writing answers to it and stops reading its requests. An answer is written
only below this mark, one at a time, so a connection holds at most this plus one
answer (at most `response_bytes_max` of key-values) unsent."""

LISTEN_BACKLOG_MAX = 1024
"""Connections the kernel queues before a client port (HTTP or native) accepts them.
The usual 128 overflows when hundreds of clients connect at once, and a dropped SYN
costs its client a second (the first retransmission)."""

FORWARD_TIMEOUT_MARGIN_S = 5.0
"""Time a follower gives a write it forwards to the leader beyond the request's own
deadline (`request_timeout_s`): the hop there and back, so the leader's answer, even
`deadline_exceeded`, reaches the client rather than a timeout of the follower's."""
