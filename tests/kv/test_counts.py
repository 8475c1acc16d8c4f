"""The O(1) counts the metrics read (live keys, leases) agree with the store, through
every command and a snapshot round trip."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from accord.kv import Command, KVStateMachine

from .helpers import Driver
from .strategies import commands


def live_keys(machine: KVStateMachine) -> int:
    return machine.range(b"\x00", b"\x00", count_only=True).count  # every key


@settings(max_examples=300, deadline=None)
@given(st.lists(commands, max_size=40), st.lists(st.integers(0, 5_000), max_size=40))
def test_live_key_and_lease_counts_match_the_store(
    sequence: list[Command], clock: list[int]
) -> None:
    driver = Driver()
    now = 0
    for i, command in enumerate(sequence):
        now += clock[i] if i < len(clock) else 0
        driver.send(command, now_ms=now)
        assert driver.machine.keys_count == live_keys(driver.machine)
        assert driver.machine.leases_count == len(driver.machine.leases())
    restored = KVStateMachine()
    restored.restore(driver.machine.snapshot())
    assert restored.keys_count == driver.machine.keys_count
    assert restored.leases_count == driver.machine.leases_count
