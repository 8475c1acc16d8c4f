"""Length-prefixed frames over a byte stream (pure, no I/O).

Theory of operation
-------------------
A frame is a 4-byte big-endian payload length followed by that many payload bytes.
TCP delivers a stream, not messages, so `FrameDecoder.feed()` accepts the stream cut
anywhere (a header split across reads, many frames in one read) and returns the
payloads completed so far, keeping at most one partial frame buffered.

The decoder checks each header against its `frame_bytes_max` as soon as the four
header bytes are in, before waiting for (or buffering, or allocating for) the payload.
A larger length raises `FrameTooLarge` and the decoder refuses all further input: the
stream cannot be resynchronised, so the connection must be closed. Memory per
connection is therefore bounded by `frame_bytes_max` plus one read.
"""

from __future__ import annotations

import struct

from accord.invariant import invariant
from accord.transport.errors import FrameTooLarge, ProtocolError
from accord.transport.limits import FRAME_BYTES_MAX, FRAME_HEADER_BYTES

_HEADER = struct.Struct(">I")
FRAME_BYTES_LIMIT = (1 << 32) - 1
"""The most a 4-byte header can express; no configured maximum may exceed it."""


def encode_frame(payload: bytes) -> bytes:
    """`payload` with its 4-byte big-endian length in front."""
    invariant(len(payload) <= FRAME_BYTES_LIMIT, "payload too large for a 4-byte length")
    return _HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental frame splitter for one connection (see the module docstring)."""

    __slots__ = ("_buffer", "_failed", "frame_bytes_max")

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX) -> None:
        if not 0 <= frame_bytes_max <= FRAME_BYTES_LIMIT:
            raise ValueError(f"frame_bytes_max must be in [0, {FRAME_BYTES_LIMIT}]")
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self._failed = False

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an incomplete frame held back for the next `feed()`."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Append `data` to the stream; return every payload it completes, in order.

        Raises `FrameTooLarge` for a header over the limit (then, and after any
        earlier failure, `ProtocolError` on every call).
        """
        if self._failed:
            raise ProtocolError("frame stream already failed; the connection must close")
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        position = 0
        oversized_bytes = -1
        available = len(buffer)
        with memoryview(buffer) as view:  # slices of a view copy once, not twice
            while available - position >= FRAME_HEADER_BYTES:
                (length,) = _HEADER.unpack_from(view, position)
                if length > self.frame_bytes_max:
                    oversized_bytes = length
                    break
                end = position + FRAME_HEADER_BYTES + length
                if end > available:
                    break
                frames.append(view[position + FRAME_HEADER_BYTES : end].tobytes())
                position = end
        if oversized_bytes >= 0:
            self._failed = True
            buffer.clear()
            raise FrameTooLarge(oversized_bytes, self.frame_bytes_max)
        if position:
            del buffer[:position]
        return frames
