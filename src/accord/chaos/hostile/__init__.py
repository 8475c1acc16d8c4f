"""Reproducers of hostile peers and clients against real `accord up` clusters: each
attack class is run and judged by generic criteria (nodes alive, no 5xx, leader kept,
memory bounded, no data of another user, refused). See docs/chaos.md."""

from accord.chaos.hostile.outcome import Outcome, table
from accord.chaos.hostile.suite import CLASSES, run

__all__ = ["CLASSES", "Outcome", "run", "table"]
