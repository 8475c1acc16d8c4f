"""Fault injection, client history recording and history checkers (linearizability)."""
