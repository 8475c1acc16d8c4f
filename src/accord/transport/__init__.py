"""Peer transport: Raft messages as length-prefixed msgpack frames over TCP or TLS.

- `codec`: the wire encoding of `Message`, of a frame's batch of messages and of the
  handshake (pure).
- `framing`: 4-byte length-prefixed frames and an incremental decoder (pure).
- `peer`: `PeerTransport`, the asyncio side: bounded per-peer queues, lazy
  connections with backoff, handshake, messages of every group packed into shared
  frames, inbound dispatch.
- `limits`: every bound the transport enforces.
"""

from accord.transport.codec import (
    PROTOCOL_VERSION,
    decode_batch,
    decode_message,
    encode_batch,
    encode_message,
)
from accord.transport.errors import FrameTooLarge, HandshakeRejected, ProtocolError, TransportError
from accord.transport.framing import FrameDecoder, encode_frame
from accord.transport.peer import PeerStats, PeerTransport, TransportStats

__all__ = [
    "PROTOCOL_VERSION",
    "FrameDecoder",
    "FrameTooLarge",
    "HandshakeRejected",
    "PeerStats",
    "PeerTransport",
    "ProtocolError",
    "TransportError",
    "TransportStats",
    "decode_batch",
    "decode_message",
    "encode_batch",
    "encode_frame",
    "encode_message",
]
