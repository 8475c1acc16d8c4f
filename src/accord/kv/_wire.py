"""Strict msgpack helpers shared by the command, result and snapshot codecs.

Everything is packed as msgpack arrays with `bin` for bytes and `str` only for text.
Decoding checks the exact Python type of every field (a `bool` is not an int, a `str`
is not bytes) and raises the caller's error class with a short reason.
"""

from __future__ import annotations

from typing import Any

import msgpack

from accord.kv.limits import INT64_MAX

UNPACK_ERRORS = (ValueError, TypeError, OverflowError, msgpack.UnpackException)


class WireError(ValueError):
    """A decoded value does not have the expected shape; callers re-raise it typed."""


def pack(obj: object) -> bytes:
    packed: bytes = msgpack.packb(obj, use_bin_type=True)
    return packed


def pack_array_head(length: int) -> bytes:
    """The msgpack header of an array of `length` items (the items follow it)."""
    if length < 16:
        return bytes([0x90 | length])
    if length < 1 << 16:
        return b"\xdc" + length.to_bytes(2, "big")
    return b"\xdd" + length.to_bytes(4, "big")


def pack_items(items: list[Any]) -> bytes:
    """The packed items of `items` without the array header: `pack(whole)` equals
    `pack_array_head(n)` followed by the `pack_items` of its parts, in order."""
    return pack(items)[len(pack_array_head(len(items))) :]


def unpack(data: bytes) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except UNPACK_ERRORS as exc:
        raise WireError(f"not msgpack: {exc}") from exc
    except RecursionError as exc:  # pragma: no cover - the C unpacker has its own limit
        raise WireError("nested too deeply") from exc


def array(value: object, what: str, length: int | None = None) -> list[Any]:
    if type(value) is not list:
        raise WireError(f"{what}: expected an array, got {type(value).__name__}")
    if length is not None and len(value) != length:
        raise WireError(f"{what}: expected {length} fields, got {len(value)}")
    return value


def uint(value: object, what: str, maximum: int = INT64_MAX) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise WireError(f"{what}: expected an integer in [0, {maximum}], got {value!r:.40}")
    return value


def blob(value: object, what: str) -> bytes:
    if type(value) is not bytes:
        raise WireError(f"{what}: expected bytes, got {type(value).__name__}")
    return value


def text(value: object, what: str) -> str:
    if type(value) is not str:
        raise WireError(f"{what}: expected a string, got {type(value).__name__}")
    return value


def flag(value: object, what: str) -> bool:
    if type(value) is not bool:
        raise WireError(f"{what}: expected a boolean, got {type(value).__name__}")
    return value
