"""The workloads of `accord chaos run`, by name."""

from __future__ import annotations

from collections.abc import Callable

from accord.chaos.workloads.bank import BankWorkload
from accord.chaos.workloads.base import Workload
from accord.chaos.workloads.lock import LockWorkload
from accord.chaos.workloads.register import RegisterWorkload
from accord.chaos.workloads.set import SetWorkload
from accord.chaos.workloads.watch import WatchWorkload

WORKLOADS: dict[str, Callable[[int | None], Workload]] = {
    "register": lambda clients: RegisterWorkload(clients or 6),
    "set": lambda clients: SetWorkload(clients or 6),
    "bank": lambda clients: BankWorkload(clients or 6),
    "watch": lambda clients: WatchWorkload(clients or 6),
    "lock": lambda clients: LockWorkload(clients or 5),
}
"""Workload factories; the argument is the number of client tasks (None: default)."""
