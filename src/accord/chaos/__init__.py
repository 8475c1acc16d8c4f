"""Fault injection against real node processes (`accord chaos run`), client history
recording, and the checkers: linearizability and the workloads' invariants."""
