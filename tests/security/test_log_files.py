"""Log files are readable by their owner only (0600): new ones, and ones made before."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from accord.observability.logs import open_log_file
from accord.testing.cluster import LocalCluster


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the widest: a file would be 0666 unless made 0600 on purpose
    yield
    os.umask(old)


def test_open_log_file_makes_new_and_old_files_private(tmp_path: Path, open_umask: None) -> None:
    new, old = tmp_path / "new.log", tmp_path / "old.log"
    old.write_bytes(b"line 1\n")
    old.chmod(0o644)
    for path in (new, old):
        with open_log_file(path) as file:
            file.write(b"appended\n")
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert old.read_bytes() == b"line 1\nappended\n"


def test_accord_up_writes_private_node_logs(tmp_path: Path) -> None:
    directory = tmp_path / "cluster"
    (directory / "n1").mkdir(parents=True)
    (directory / "n1" / "node.log").write_bytes(b"from an earlier run\n")
    (directory / "n1" / "node.log").chmod(0o644)
    cluster = LocalCluster(directory)
    cluster.start()
    try:
        modes = {p.parent.name: p.stat().st_mode & 0o777 for p in directory.glob("n*/node.log")}
    finally:
        cluster.stop()
    assert modes == {"n1": 0o600, "n2": 0o600, "n3": 0o600}
