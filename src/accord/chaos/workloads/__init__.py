"""The workloads of `accord chaos run`, by name."""

from __future__ import annotations

from collections.abc import Callable

from accord.chaos.workloads.base import Workload
from accord.chaos.workloads.register import RegisterWorkload


def _register(clients: int | None) -> Workload:
    return RegisterWorkload(clients or 6)


WORKLOADS: dict[str, Callable[[int | None], Workload]] = {
    "register": _register,
}
