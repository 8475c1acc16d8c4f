"""Write-ahead log throughput beside the bare disk, by batch size.

For each batch size, in the same directory and the same run:

- bare: `os.write` of a buffer as large as the WAL record for that batch, then
  `os.fsync`, in a loop (the file grows, as the WAL's does);
- WAL: `FileStorage.save()` of that many entries plus a hard state (one record, one
  fdatasync), entries built beforehand as the Raft core would hand them over.

It prints entries/s and fsyncs/s for both and the ratio of fsync rates. The two loops
run in alternating short slices (`--slices`), so a change in the disk's speed during
the run (common on shared or virtual disks) affects both alike. Not a test: run it by
hand.

    python bench/wal_bench.py [--dir DIR] [--seconds 4] [--slices 16] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from accord.raft.types import Entry, HardState
from accord.storage import FileStorage
from accord.storage.codec import encode_batch
from accord.storage.model import Batch
from accord.storage.record import RecordType, frame

BATCH_SIZES = (1, 8, 64, 512)
ENTRY_BYTES = 100
CHUNK_SAVES = 256  # batches built (untimed) before each timed stretch of saves


@dataclass(frozen=True)
class Rate:
    saves_per_s: float
    entries_per_s: float


def record_bytes(batch: int) -> int:
    sample = [Entry(1, 10**6 + i, data=os.urandom(ENTRY_BYTES)) for i in range(batch)]
    return len(
        frame(RecordType.BATCH, encode_batch(Batch(HardState(1, 1, 10**6), None, tuple(sample))))
    )


class BareLoop:
    """`os.write` of a record-sized buffer, then `os.fsync`, on a growing file."""

    def __init__(self, directory: Path, size: int) -> None:
        self._path = directory / "bare.bin"
        self._buffer = os.urandom(size)
        self._fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)

    def run(self, seconds: float) -> tuple[int, float]:
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            os.write(self._fd, self._buffer)
            os.fsync(self._fd)
            count += 1
        return count, time.perf_counter() - start

    def close(self) -> None:
        os.close(self._fd)
        self._path.unlink()


class WalLoop:
    """`FileStorage.save()` of `batch` entries and a hard state, entries built beforehand."""

    def __init__(self, directory: Path, batch: int) -> None:
        self._path = directory / "wal-node"
        self._batch = batch
        self._data = os.urandom(ENTRY_BYTES)
        self._storage = FileStorage(self._path)
        self._storage.load()
        self._last = 0
        self._commit = 0
        self._ready: deque[list[Entry]] = deque()

    def _refill(self) -> None:
        for _ in range(CHUNK_SAVES):
            first = self._last + 1
            self._ready.append([Entry(1, first + i, data=self._data) for i in range(self._batch)])
            self._last += self._batch

    def run(self, seconds: float) -> tuple[int, float]:
        saves = 0
        elapsed = 0.0
        while elapsed < seconds:
            if not self._ready:
                self._refill()  # untimed: the Raft core hands over ready-made entries
            start = time.perf_counter()
            while self._ready:
                entries = self._ready.popleft()
                self._storage.save(HardState(1, 1, self._commit), entries)
                self._commit = entries[-1].index
                saves += 1
                if time.perf_counter() - start + elapsed >= seconds:
                    break
            elapsed += time.perf_counter() - start
        return saves, elapsed

    def close(self) -> None:
        self._storage.close()
        shutil.rmtree(self._path)


def measure(directory: Path, seconds: float, slices: int) -> list[tuple[int, Rate, Rate]]:
    """Alternate short slices of both loops so that both see the same disk weather."""
    results = []
    for batch in BATCH_SIZES:
        bare, wal = BareLoop(directory, record_bytes(batch)), WalLoop(directory, batch)
        totals = [0, 0.0, 0, 0.0]
        try:
            for _ in range(slices):
                count, elapsed = bare.run(seconds / slices)
                totals[0] += count
                totals[1] += elapsed
                count, elapsed = wal.run(seconds / slices)
                totals[2] += count
                totals[3] += elapsed
        finally:
            bare.close()
            wal.close()
        bare_rate = totals[0] / totals[1]
        wal_rate = totals[2] / totals[3]
        results.append(
            (batch, Rate(bare_rate, bare_rate * batch), Rate(wal_rate, wal_rate * batch))
        )
    return results


def render(results: list[tuple[int, Rate, Rate]], markdown: bool) -> str:
    header = (
        "batch",
        "WAL entries/s",
        "WAL fsyncs/s",
        "bare write+fsync/s",
        "WAL / bare fsync rate",
    )
    rows = [
        (
            str(batch),
            f"{wal.entries_per_s:,.0f}",
            f"{wal.saves_per_s:,.0f}",
            f"{bare.saves_per_s:,.0f}",
            f"{wal.saves_per_s / bare.saves_per_s:.2f}",
        )
        for batch, bare, wal in results
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None, help="directory on the disk to test")
    parser.add_argument("--seconds", type=float, default=4.0, help="per loop and batch size")
    parser.add_argument("--slices", type=int, default=16, help="alternations per batch size")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    parent = args.dir if args.dir is not None else Path.cwd()
    with tempfile.TemporaryDirectory(prefix="wal-bench-", dir=parent) as name:
        results = measure(Path(name), args.seconds, args.slices)
    print(f"{ENTRY_BYTES}-byte entries, directory {parent}, {args.seconds:g} s per loop and size")
    print(render(results, args.markdown))


if __name__ == "__main__":
    main()
