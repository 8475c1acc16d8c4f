"""`accord storage check|repair DIR`: inspect and repair a node's storage directory."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from accord.storage import fsck
from accord.storage._fsutil import DirectoryLock
from accord.storage.errors import StorageError
from accord.storage.record import Damage

_DIRECTORY = click.Path(exists=True, file_okay=False, path_type=Path)


@click.group("storage")
def storage() -> None:
    """Inspect and repair a node's storage directory (WAL and snapshots)."""


@storage.command("check")
@click.argument("directory", type=_DIRECTORY)
def check(directory: Path) -> None:
    """Report segments, index range, snapshots, hard state and any corruption.

    Read-only. Exits 1 when anything is corrupt. A torn tail (the last write of a
    crashed process) is not corruption: the next open truncates it.
    """
    if DirectoryLock.held(directory):
        click.echo("warning: a node holds this directory; the report may be stale", err=True)
    report = _inspect(directory)
    _print_report(report)
    raise SystemExit(1 if report.corrupt else 0)


@storage.command("repair")
@click.argument("directory", type=_DIRECTORY)
@click.option("--yes", is_flag=True, help="Apply without asking for confirmation.")
def repair(directory: Path, yes: bool) -> None:
    """Cut the WAL at its first bad record and move corrupt snapshots away.

    Every file changed or removed is first copied into DIR/repair-backup-<time>/.
    """
    try:
        lock = DirectoryLock(directory)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        report = _inspect(directory)
        plan = fsck.plan_repair(report)
        if plan.empty:
            _print_report(report)
            click.echo("nothing to repair")
            raise SystemExit(1 if report.corrupt else 0)
        click.echo("repair will:")
        for line in plan.describe():
            click.echo(f"  {line}")
        if report.corrupt:
            click.echo(
                "warning: the damage is not only a torn tail; entries this node acknowledged "
                "may be lost. Prefer wiping the node and letting it catch up from its peers.",
                err=True,
            )
        if not yes:
            click.confirm("apply these changes?", abort=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        backup = directory / f"repair-backup-{stamp}"
        fsck.apply_repair(plan, directory, backup)
        click.echo(f"backed up every changed file under {backup}")
        after = _inspect(directory)
        _print_report(after)
        raise SystemExit(1 if after.corrupt else 0)
    finally:
        lock.release()


def _inspect(directory: Path) -> fsck.Report:
    try:
        return fsck.inspect(directory)
    except (StorageError, OSError) as exc:
        raise click.ClickException(f"cannot read {directory}: {exc}") from exc


def _print_report(report: fsck.Report) -> None:
    click.echo(f"storage directory: {report.directory}")
    click.echo(f"WAL segments: {len(report.segments)}")
    for segment in report.segments:
        span = "no entries"
        if segment.first_index is not None:
            span = f"entries {segment.first_index}-{segment.last_index}"
        click.echo(
            f"  {segment.path.name}  {segment.size_bytes} bytes  {segment.batches} batches  "
            f"{span}{'  sealed' if segment.sealed else ''}  {_damage(segment.damage)}"
        )
    click.echo(f"snapshots: {len(report.snapshots)}")
    for snap in report.snapshots:
        status = "ok" if snap.error is None else f"CORRUPT: {snap.error}"
        click.echo(
            f"  {snap.path.name}  index {snap.index}  term {snap.term}  "
            f"{snap.size_bytes} bytes  {status}"
        )
    hs = report.hard_state
    click.echo(f"hard state: term {hs.term}, vote {hs.vote}, commit {hs.commit}")
    recovered = report.recovered
    if recovered is not None:
        base = "no snapshot"
        if recovered.snapshot is not None:
            base = f"snapshot at {recovered.snapshot.index} (term {recovered.snapshot.term})"
        span = f"entries {recovered.first_index}-{recovered.last_index}"
        if not recovered.entries:
            span = "no entries after it" if recovered.snapshot is not None else "no entries"
        click.echo(f"recovers to: {base}, {span}, commit {recovered.hard_state.commit}")
    else:
        click.echo(f"recovery refuses: {report.recovery_error}")
    click.echo(f"result: {_verdict(report)}")


def _damage(damage: Damage | None) -> str:
    if damage is None:
        return "ok"
    if damage.torn:
        return f"torn tail at byte {damage.offset} (truncated on next open): {damage.reason}"
    return f"CORRUPT at byte {damage.offset}: {damage.reason}"


def _verdict(report: fsck.Report) -> str:
    if report.corrupt:
        return "CORRUPT"
    return "OK (torn tail)" if report.torn else "OK"
