"""Length-prefixed framing: any split of the stream, and the size limit."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.transport.errors import FrameTooLarge, ProtocolError
from accord.transport.framing import FrameDecoder, encode_frame


def test_encode_frame_prefixes_a_big_endian_length() -> None:
    assert encode_frame(b"abc") == b"\x00\x00\x00\x03abc"
    assert encode_frame(b"") == b"\x00\x00\x00\x00"


@given(
    st.lists(st.binary(max_size=300), max_size=20),
    st.lists(st.integers(0, 10_000), max_size=30),
)
def test_any_split_of_the_stream_yields_the_same_frames(
    payloads: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(encode_frame(p) for p in payloads)
    points = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    decoder = FrameDecoder(frame_bytes_max=300)
    out: list[bytes] = []
    for start, end in itertools.pairwise(points):
        out.extend(decoder.feed(stream[start:end]))
    assert out == payloads
    assert decoder.buffered_bytes == 0


def test_byte_at_a_time() -> None:
    stream = encode_frame(b"hello") + encode_frame(b"") + encode_frame(b"world")
    decoder = FrameDecoder()
    out = [frame for i in range(len(stream)) for frame in decoder.feed(stream[i : i + 1])]
    assert out == [b"hello", b"", b"world"]


def test_incomplete_frame_is_held_back() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(encode_frame(b"abcdef")[:7]) == []
    assert decoder.buffered_bytes == 7
    assert decoder.feed(b"def") == [b"abcdef"]


def test_frame_at_the_limit_is_accepted() -> None:
    decoder = FrameDecoder(frame_bytes_max=8)
    assert decoder.feed(encode_frame(b"x" * 8)) == [b"x" * 8]


def test_oversized_header_fails_at_once_without_buffering() -> None:
    decoder = FrameDecoder(frame_bytes_max=8)
    with pytest.raises(FrameTooLarge) as raised:
        decoder.feed(b"\x00\x00\x00\x09")  # only the header: the payload is never awaited
    assert raised.value.size_bytes == 9 and raised.value.limit_bytes == 8
    assert decoder.buffered_bytes == 0


def test_huge_header_after_good_frames_still_fails() -> None:
    decoder = FrameDecoder(frame_bytes_max=1024)
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(b"ok") + b"\xff\xff\xff\xff" + b"junk")
    assert decoder.buffered_bytes == 0


def test_a_failed_decoder_refuses_more_input() -> None:
    decoder = FrameDecoder(frame_bytes_max=1)
    with pytest.raises(FrameTooLarge):
        decoder.feed(encode_frame(b"xx"))
    with pytest.raises(ProtocolError, match="already failed"):
        decoder.feed(encode_frame(b"x"))


@pytest.mark.parametrize("limit", [-1, 1 << 32])
def test_limit_must_fit_the_header(limit: int) -> None:
    with pytest.raises(ValueError):
        FrameDecoder(frame_bytes_max=limit)
