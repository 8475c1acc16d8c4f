"""`accord storage check|repair DIR`: inspect and repair a node's storage directory.

DIR is the node's `data_dir` as its node.toml names it (or the `raft/` directory in
it); `--config node.toml` takes it, and the encryption key, from the configuration.
An encrypted directory needs its key: `--key-file`, the configuration's, or
ACCORD_ENCRYPTION_KEY; it is checked against the directory's key canary first, so a
wrong key is one clear error, not every record reported corrupt.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from accord.node.address import ConfigError
from accord.security.atrest import read_only_cipher
from accord.security.errors import SecurityError
from accord.security.keys import KEY_ENV, Keyring, load_keyring
from accord.server.config import load_config
from accord.storage import DirectoryLock, fsck
from accord.storage.errors import StorageError
from accord.storage.file import SNAPSHOT_DIRECTORY, WAL_DIRECTORY
from accord.storage.protocol import Cipher

RAFT_DIRECTORY = "raft"
"""Where a node keeps its storage inside `data_dir` (`accord.server.assembly`)."""
_DIRECTORY = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)


@dataclass(frozen=True, slots=True)
class Target:
    storage_dir: Path
    """The directory holding wal/ and snap/."""
    cipher: Cipher | None


def _target(directory: Path | None, key_file: Path | None, config_file: Path | None) -> Target:
    keyring: Keyring | None = None
    if config_file is not None:
        try:
            config = load_config(config_file)
            keyring = load_keyring(
                config.security.encryption_key_file, config.security.encryption_key
            )
        except (ConfigError, SecurityError) as exc:
            raise click.ClickException(str(exc)) from exc
        directory = directory or config.data_dir
    if directory is None:
        raise click.UsageError("give DIRECTORY (the node's data_dir) or --config node.toml")
    try:
        if key_file is not None:
            keyring = load_keyring(key_file, None)
        elif keyring is None:
            keyring = load_keyring(None, os.environ.get(KEY_ENV))
        storage_dir, data_dir = _storage_dir(directory)
        return Target(storage_dir, read_only_cipher(data_dir, keyring))
    except SecurityError as exc:
        raise click.ClickException(str(exc)) from exc


def _storage_dir(directory: Path) -> tuple[Path, Path]:
    """(storage directory, data_dir) for the node's data_dir or its raft/ directory."""
    if not directory.is_dir():
        raise click.ClickException(f"{directory}: no such directory")
    if (directory / RAFT_DIRECTORY).is_dir():
        return directory / RAFT_DIRECTORY, directory
    if (directory / WAL_DIRECTORY).is_dir() or (directory / SNAPSHOT_DIRECTORY).is_dir():
        return directory, directory.parent
    raise click.ClickException(
        f"{directory} is not a node's data directory: it has no {RAFT_DIRECTORY}/ "
        f"(nor {WAL_DIRECTORY}/ and {SNAPSHOT_DIRECTORY}/) in it"
    )


def _key_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--config",
        "config_file",
        type=_FILE,
        help="The node's configuration: its data_dir and encryption key.",
    )(command)
    return click.option(
        "--key-file", type=_FILE, help="Encryption key file of an encrypted data directory."
    )(command)


@click.group("storage")
def storage() -> None:
    """Inspect and repair a node's storage directory (WAL and snapshots)."""


@storage.command("check")
@click.argument("directory", type=_DIRECTORY, required=False)
@_key_options
def check(directory: Path | None, key_file: Path | None, config_file: Path | None) -> None:
    """Report segments, index range, snapshots, hard state and any corruption.

    DIRECTORY is the node's data_dir (or --config node.toml names it). Read-only.
    Exits 1 when anything is corrupt. A torn tail (the last write of a crashed
    process) is not corruption: the next open truncates it.
    """
    target = _target(directory, key_file, config_file)
    if DirectoryLock.held(target.storage_dir):
        click.echo("warning: a node holds this directory; the report may be stale", err=True)
    report = _inspect(target)
    _print_report(report)
    raise SystemExit(1 if report.corrupt else 0)


@storage.command("repair")
@click.argument("directory", type=_DIRECTORY, required=False)
@_key_options
@click.option("--yes", is_flag=True, help="Apply without asking for confirmation.")
def repair(
    directory: Path | None, key_file: Path | None, config_file: Path | None, yes: bool
) -> None:
    """Cut the WAL at its first bad record and move corrupt snapshots away.

    Every file changed or removed is first copied into
    DATA_DIR/raft/repair-backup-<time>/.
    """
    target = _target(directory, key_file, config_file)
    directory = target.storage_dir
    try:
        lock = DirectoryLock(directory)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        report = _inspect(target)
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
        after = _inspect(target)
        _print_report(after)
        raise SystemExit(1 if after.corrupt else 0)
    finally:
        lock.release()


def _inspect(target: Target) -> fsck.Report:
    try:
        return fsck.inspect(target.storage_dir, target.cipher)
    except (StorageError, OSError) as exc:
        raise click.ClickException(f"cannot read {target.storage_dir}: {exc}") from exc


def _print_report(report: fsck.Report) -> None:
    for line in fsck.describe(report):
        click.echo(line)
