"""Offline inspection and repair of a storage directory (`accord storage check|repair`).

Theory of operation
-------------------
`inspect()` reads the directory the way `FileHostStorage` recovers it, but read-only,
and reports instead of raising: every segment (format, batches and entry range per
group, damage), every snapshot file of every group (valid, or why not), and per group
the last hard state and the state recovery would produce, or why it would refuse to
start. Snapshot directories of groups that do not exist (left by a crash while a
group was created or destroyed) are listed; the next open removes them. A directory
written by a single-group version of Accord reads as group 0. `describe()` turns a
report into the lines the command prints.

`plan_repair()` picks the smallest change after which the directory opens: the WAL is
cut at its first damaged record (that segment is truncated there, or removed if not
even its header is valid, and every later segment is removed: records after a bad one
cannot be trusted to follow it), and corrupt snapshot files are moved away.
`apply_repair()` first copies every file it will change or remove into a backup
directory and syncs the copies, then changes the originals. The WAL is shared by all
groups, so a cut loses the later records of every group.

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
from accord.storage.model import LEGACY_GROUP, GroupBatch, GroupReplay, recover_state
from accord.storage.protocol import Cipher, RecoveredState
from accord.storage.record import Damage
from accord.storage.snapshots import (
    groups_with_snapshots,
    list_group_dirs,
    list_snapshots,
    read_snapshot,
)
from accord.storage.wal import Replayer, SegmentRead, iter_segments


@dataclass(frozen=True, slots=True)
class GroupSpan:
    """One group's batches in one segment."""

    group: int
    batches: int
    first_index: int | None
    last_index: int | None


@dataclass(frozen=True, slots=True)
class SegmentReport:
    path: Path
    size_bytes: int
    batches: int
    spans: tuple[GroupSpan, ...]
    sealed: bool
    valid_bytes: int
    damage: Damage | None
    version: int


@dataclass(frozen=True, slots=True)
class SnapshotReport:
    path: Path
    group: int
    index: int
    term: int
    size_bytes: int
    error: str | None


@dataclass(frozen=True, slots=True)
class GroupReport:
    group: int
    hard_state: HardState
    recovered: RecoveredState | None
    recovery_error: str | None


@dataclass(frozen=True, slots=True)
class Report:
    directory: Path
    segments: list[SegmentReport]
    snapshots: list[SnapshotReport]
    groups: list[GroupReport]
    """Every group that exists, ascending; empty when the log could not be read."""
    wal_error: str | None
    """Why the log as a whole cannot be recovered (damage before its tail)."""
    leftovers: list[Path] = field(default_factory=list)
    """Files in the snapshot directory of a group the log does not hold (left by a
    crash inside `create_group()` or `destroy_group()`: the next open removes them;
    or by a damaged log: a repair removes them, backed up)."""

    @property
    def corrupt(self) -> bool:
        """Damage that is not a torn tail anywhere, or a state recovery refuses."""
        return (
            any(s.damage is not None and not s.damage.torn for s in self.segments)
            or any(s.error is not None for s in self.snapshots)
            or self.wal_error is not None
            or any(g.recovery_error is not None for g in self.groups)
        )

    @property
    def torn(self) -> bool:
        return any(s.damage is not None and s.damage.torn for s in self.segments)


def inspect(directory: Path, cipher: Cipher | None = None) -> Report:
    """Read everything under `directory` without changing it (see module docstring)."""
    replayer = Replayer()
    segments: list[SegmentReport] = []
    wal_error: str | None = None
    for read in iter_segments(directory / WAL_DIRECTORY, cipher):
        segments.append(_segment_report(read))
        if wal_error is not None or read.valid_bytes == 0:
            continue  # recovery stops at the first corruption; so does the replay here
        try:
            replayer.segment(read)
        except CorruptionError as exc:
            wal_error = str(exc)
            continue
        if read.damage is not None and not read.damage.torn:
            wal_error = str(CorruptionError(str(read.path), read.damage.offset, read.damage.reason))
    # As FileHostStorage recovers: the groups the log holds (up to its first damage,
    # which is where a repair cuts it), or those with snapshots if it holds no record.
    existing: dict[int, GroupReplay] = dict(replayer.replay.groups) if replayer.replay else {}
    snap_root = directory / SNAPSHOT_DIRECTORY
    if replayer.records == 0:
        for group in groups_with_snapshots(snap_root):
            existing.setdefault(group, GroupReplay())
    group_dirs = list_group_dirs(snap_root) if snap_root.is_dir() else {}
    snapshots: list[SnapshotReport] = []
    candidates: dict[int, list[Snapshot | CorruptionError]] = {}
    leftovers: list[Path] = []
    for group, group_dir in sorted(group_dirs.items()):
        if group in existing:
            reports, candidates[group] = _inspect_snapshots(group_dir, group, cipher)
            snapshots.extend(reports)
        else:
            leftovers.extend(sorted(p for p in group_dir.iterdir() if p.is_file()))
    groups = []
    if wal_error is None:
        for group, replay in sorted(existing.items()):
            groups.append(_group_report(directory, group, replay, candidates.get(group, [])))
    return Report(directory, segments, snapshots, groups, wal_error, leftovers)


def _segment_report(read: SegmentRead) -> SegmentReport:
    per_group: dict[int, list[tuple[int, int] | None]] = {}
    for _, record in read.records:
        for op in record.ops:
            if isinstance(op, GroupBatch):
                entries = op.batch.entries
                span = (entries[0].index, entries[-1].index) if entries else None
                per_group.setdefault(op.group, []).append(span)
    spans = []
    for group, found in sorted(per_group.items()):
        ranges = [span for span in found if span is not None]
        spans.append(
            GroupSpan(
                group,
                len(found),
                min((first for first, _ in ranges), default=None),
                max((last for _, last in ranges), default=None),
            )
        )
    return SegmentReport(
        read.path,
        read.size_bytes,
        sum(span.batches for span in spans),
        tuple(spans),
        read.sealed,
        read.valid_bytes,
        read.damage,
        read.version,
    )


def _group_report(
    directory: Path, group: int, replay: GroupReplay, candidates: list[Snapshot | CorruptionError]
) -> GroupReport:
    try:
        recovered = recover_state(
            replay.hard_state, replay.model, candidates, log_name=str(directory / WAL_DIRECTORY)
        )
    except CorruptionError as exc:
        return GroupReport(group, replay.hard_state, None, str(exc))
    return GroupReport(group, replay.hard_state, recovered, None)


def _inspect_snapshots(
    directory: Path, group: int, cipher: Cipher | None
) -> tuple[list[SnapshotReport], list[Snapshot | CorruptionError]]:
    reports: list[SnapshotReport] = []
    candidates: list[Snapshot | CorruptionError] = []
    for file in list_snapshots(directory):
        error = None
        try:
            candidates.append(read_snapshot(file, cipher, group))
        except CorruptionError as exc:
            candidates.append(exc)
            error = f"{exc.reason}" + ("" if exc.offset is None else f" (byte {exc.offset})")
        size = file.path.stat().st_size
        reports.append(SnapshotReport(file.path, group, file.index, file.term, size, error))
    return reports, candidates


def describe(report: Report) -> list[str]:
    """The lines `accord storage check` prints for `report`."""
    lines = [f"storage directory: {report.directory}", f"WAL segments: {len(report.segments)}"]
    for segment in report.segments:
        legacy = "  format 1" if segment.version == 1 else ""
        lines.append(
            f"  {segment.path.name}  {segment.size_bytes} bytes  {segment.batches} batches  "
            f"{_spans(segment.spans)}{'  sealed' if segment.sealed else ''}{legacy}  "
            f"{_damage(segment.damage)}"
        )
    lines.append(f"snapshots: {len(report.snapshots)}")
    for snap in report.snapshots:
        status = "ok" if snap.error is None else f"CORRUPT: {snap.error}"
        name = snap.path.name if snap.group == LEGACY_GROUP else f"{snap.group}/{snap.path.name}"
        lines.append(
            f"  {name}  index {snap.index}  term {snap.term}  {snap.size_bytes} bytes  {status}"
        )
    if report.wal_error is not None:
        lines.append(f"recovery refuses: {report.wal_error}")
    else:
        lines.append(f"groups: {len(report.groups)}")
        for group in report.groups:
            lines.extend(_group_lines(group))
    lines.extend(f"  not in any group the log holds: {path}" for path in report.leftovers)
    lines.append(f"result: {_verdict(report)}")
    return lines


def _group_lines(group: GroupReport) -> list[str]:
    hs = group.hard_state
    lines = [
        f"  group {group.group}",
        f"    hard state: term {hs.term}, vote {hs.vote}, commit {hs.commit}",
    ]
    recovered = group.recovered
    if recovered is None:
        return [*lines, f"    recovery refuses: {group.recovery_error}"]
    base = "no snapshot"
    if recovered.snapshot is not None:
        base = f"snapshot at {recovered.snapshot.index} (term {recovered.snapshot.term})"
    span = f"entries {recovered.first_index}-{recovered.last_index}"
    if not recovered.entries:
        span = "no entries after it" if recovered.snapshot is not None else "no entries"
    return [*lines, f"    recovers to: {base}, {span}, commit {recovered.hard_state.commit}"]


def _spans(spans: tuple[GroupSpan, ...]) -> str:
    def entries(span: GroupSpan) -> str:
        if span.first_index is None:
            return "no entries"
        return f"entries {span.first_index}-{span.last_index}"

    if not spans:
        return "no entries"
    if len(spans) == 1 and spans[0].group == LEGACY_GROUP:
        return entries(spans[0])
    return ", ".join(f"group {span.group}: {entries(span)}" for span in spans)


def _damage(damage: Damage | None) -> str:
    if damage is None:
        return "ok"
    if damage.torn:
        return f"torn tail at byte {damage.offset} (truncated on next open): {damage.reason}"
    return f"CORRUPT at byte {damage.offset}: {damage.reason}"


def _verdict(report: Report) -> str:
    if report.corrupt:
        return "CORRUPT"
    return "OK (torn tail)" if report.torn else "OK"


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
    remove.extend(report.leftovers)
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
