"""Offline inspection and repair of a storage directory (`accord storage check|repair`).

Theory of operation
-------------------
`inspect()` reads the directory the way `FileStorage.load()` does, but read-only, and
reports instead of raising: every segment (batches, entry range, damage), every
snapshot file (valid, or why not), the last hard state, and the state recovery would
produce, or why it would refuse to start.

`plan_repair()` picks the smallest change after which the directory opens: the WAL is
cut at its first damaged record (that segment is truncated there, or removed if not
even its header is valid, and every later segment is removed: records after a bad one
cannot be trusted to follow it), and corrupt snapshot files are moved away.
`apply_repair()` first copies every file it will change or remove into a backup
directory and syncs the copies, then changes the originals.

Repairing damage that is not a torn tail can lose entries this node acknowledged. A
Raft node that forgot acknowledged entries can break the cluster's guarantees if it
votes or acknowledges as though it still had them, so the command says so; the safe
alternative is to wipe the node and let it catch up from its peers.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from accord.raft.types import HardState, Snapshot
from accord.storage._fsutil import make_dirs, sync_dir
from accord.storage.errors import CorruptionError
from accord.storage.file import SNAPSHOT_DIRECTORY, WAL_DIRECTORY
from accord.storage.model import LogModel, recover_state
from accord.storage.protocol import Cipher, RecoveredState
from accord.storage.record import Damage
from accord.storage.snapshots import list_snapshots, read_snapshot
from accord.storage.wal import iter_segments


@dataclass(frozen=True, slots=True)
class SegmentReport:
    path: Path
    size_bytes: int
    batches: int
    first_index: int | None
    last_index: int | None
    sealed: bool
    valid_bytes: int
    damage: Damage | None


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    path: Path
    index: int
    term: int
    size_bytes: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Report:
    directory: Path
    segments: list[SegmentReport]
    snapshots: list[SnapshotReport]
    hard_state: HardState
    recovered: RecoveredState | None
    recovery_error: str | None

    @property
    def corrupt(self) -> bool:
        """Damage that is not a torn tail anywhere, or a state recovery refuses."""
        return (
            any(s.damage is not None and not s.damage.torn for s in self.segments)
            or any(s.error is not None for s in self.snapshots)
            or self.recovery_error is not None
        )

    @property
    def torn(self) -> bool:
        return any(s.damage is not None and s.damage.torn for s in self.segments)


def inspect(directory: Path, cipher: Cipher | None = None) -> Report:
    """Read everything under `directory` without changing it (see module docstring)."""
    model = LogModel()
    hard_state = HardState()
    segments: list[SegmentReport] = []
    wal_error: str | None = None
    for read in iter_segments(directory / WAL_DIRECTORY, cipher):
        indexes = [b.entries[0].index for _, b in read.batches if b.entries]
        lasts = [b.entries[-1].index for _, b in read.batches if b.entries]
        segments.append(
            SegmentReport(
                read.path,
                read.size_bytes,
                len(read.batches),
                min(indexes, default=None),
                max(lasts, default=None),
                read.sealed,
                read.valid_bytes,
                read.damage,
            )
        )
        if wal_error is not None:
            continue  # recovery stops at the first corruption; so does the replay here
        for _, batch in read.batches:
            model.apply(batch)
            hard_state = batch.hard_state or hard_state
        if read.damage is not None and not read.damage.torn:
            wal_error = str(CorruptionError(str(read.path), read.damage.offset, read.damage.reason))
    snapshots, candidates = _inspect_snapshots(directory / SNAPSHOT_DIRECTORY, cipher)
    recovered = None
    recovery_error = wal_error
    if wal_error is None:
        try:
            recovered = recover_state(
                hard_state, model, candidates, log_name=str(directory / WAL_DIRECTORY)
            )
        except CorruptionError as exc:
            recovery_error = str(exc)
    return Report(directory, segments, snapshots, hard_state, recovered, recovery_error)


def _inspect_snapshots(
    directory: Path, cipher: Cipher | None
) -> tuple[list[SnapshotReport], list[Snapshot | CorruptionError]]:
    reports: list[SnapshotReport] = []
    candidates: list[Snapshot | CorruptionError] = []
    for file in list_snapshots(directory):
        error = None
        try:
            candidates.append(read_snapshot(file, cipher))
        except CorruptionError as exc:
            candidates.append(exc)
            error = f"{exc.reason}" + ("" if exc.offset is None else f" (byte {exc.offset})")
        size = file.path.stat().st_size
        reports.append(SnapshotReport(file.path, file.index, file.term, size, error))
    return reports, candidates


@dataclass(frozen=True, slots=True)
class RepairPlan:
    truncate: tuple[Path, int] | None = None
    """A segment to cut at a byte offset."""
    remove: list[Path] = field(default_factory=list)
    """Segments after the damage, and corrupt snapshot files."""

    @property
    def empty(self) -> bool:
        return self.truncate is None and not self.remove

    def describe(self) -> list[str]:
        lines = []
        if self.truncate is not None:
            path, offset = self.truncate
            lines.append(f"truncate {path} at byte {offset} (of {path.stat().st_size})")
        lines.extend(f"remove {path}" for path in self.remove)
        return lines


def plan_repair(report: Report) -> RepairPlan:
    truncate: tuple[Path, int] | None = None
    remove: list[Path] = []
    for position, segment in enumerate(report.segments):
        if segment.damage is None:
            continue
        if segment.valid_bytes == 0:
            remove.append(segment.path)
        else:
            truncate = (segment.path, segment.valid_bytes)
        remove.extend(later.path for later in report.segments[position + 1 :])
        break
    remove.extend(s.path for s in report.snapshots if s.error is not None)
    return RepairPlan(truncate, remove)


def apply_repair(plan: RepairPlan, directory: Path, backup: Path) -> None:
    """Back up every file the plan touches (synced), then carry the plan out."""
    touched = ([plan.truncate[0]] if plan.truncate is not None else []) + plan.remove
    for path in touched:
        copy = backup / path.relative_to(directory)
        make_dirs(copy.parent)
        shutil.copy2(path, copy)
        fd = os.open(copy, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for parent in {(backup / p.relative_to(directory)).parent for p in touched}:
        sync_dir(parent)
    if plan.truncate is not None:
        path, offset = plan.truncate
        fd = os.open(path, os.O_WRONLY)
        try:
            os.ftruncate(fd, offset)
            os.fsync(fd)
        finally:
            os.close(fd)
    for path in plan.remove:
        path.unlink()
    for parent in {path.parent for path in plan.remove}:
        sync_dir(parent)
