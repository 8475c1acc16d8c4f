"""`invariant()`: assertions for programmer errors that survive `python -O`."""

from __future__ import annotations


class InvariantError(AssertionError):
    """A broken internal invariant: a bug in Accord, never an operating condition."""


def invariant(condition: bool, message: str = "invariant violated") -> None:
    if not condition:
        raise InvariantError(message)
