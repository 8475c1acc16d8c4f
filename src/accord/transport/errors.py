"""Typed errors for the transport.

h11's split, kept here: `ProtocolError` means *the peer* broke the wire protocol (bad
bytes, an oversized frame, a wrong handshake); the transport closes that one
connection and carries on. Misuse of the API by the caller (sending before `start()`,
a message whose `src` is not this node) is a bug and raises `InvariantError` from
`accord.invariant` instead.
"""

from __future__ import annotations

from accord.errors import AccordError


class TransportError(AccordError):
    """Base class of transport failures."""

    code = "transport_error"


class ProtocolError(TransportError):
    """Bytes from a peer do not follow the wire protocol; `reason` says how."""

    code = "transport_protocol_error"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class FrameTooLarge(ProtocolError):
    """A frame header announced more bytes than the receiver accepts.

    Raised from the 4-byte header alone, before any of the payload is buffered.
    """

    code = "transport_frame_too_large"

    def __init__(self, size_bytes: int, limit_bytes: int) -> None:
        self.size_bytes = size_bytes
        self.limit_bytes = limit_bytes
        super().__init__(f"frame of {size_bytes} bytes exceeds the limit of {limit_bytes} bytes")


class HandshakeRejected(ProtocolError):
    """The other side of a connection refused our handshake, or we refused theirs
    (another protocol version, another cluster, or a different node than expected)."""

    code = "transport_handshake_rejected"
