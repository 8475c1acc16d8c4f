"""Write-ahead log throughput beside the bare disk, by batch size.

For each batch size, in the same directory and the same run:

- bare: `os.write` of a buffer as large as the WAL record for that batch, then
  `os.fsync`, in a loop (the file grows, as the WAL's does);
- WAL: `FileStorage.save()` of that many entries plus a hard state (one record, one
  fdatasync), entries built beforehand as the Raft core would hand them over.

It prints entries/s and fsyncs/s for both and the ratio of fsync rates. Each number is
the median of `--rounds` alternating runs. Not a test: run it by hand.

    python bench/wal_bench.py [--dir DIR] [--seconds 2] [--rounds 3] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
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


def bare_loop(directory: Path, size: int, seconds: float) -> Rate:
    path = directory / "bare.bin"
    buffer = os.urandom(size)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
    try:
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            os.write(fd, buffer)
            os.fsync(fd)
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()
    return Rate(count / elapsed, 0.0)


def wal_loop(directory: Path, batch: int, seconds: float) -> Rate:
    path = directory / "wal-node"
    data = os.urandom(ENTRY_BYTES)
    storage = FileStorage(path)
    storage.load()
    saves = 0
    last = 0
    elapsed = 0.0
    try:
        while elapsed < seconds:
            chunk = []
            for _ in range(CHUNK_SAVES):
                chunk.append([Entry(1, last + 1 + i, data=data) for i in range(batch)])
                last += batch
            commit = chunk[0][0].index - 1
            start = time.perf_counter()
            for entries in chunk:
                storage.save(HardState(1, 1, commit), entries)
                commit = entries[-1].index
                saves += 1
                if time.perf_counter() - start + elapsed >= seconds:
                    break
            elapsed += time.perf_counter() - start
    finally:
        storage.close()
        shutil.rmtree(path)
    return Rate(saves / elapsed, saves * batch / elapsed)


def measure(directory: Path, seconds: float, rounds: int) -> list[tuple[int, Rate, Rate]]:
    results = []
    for batch in BATCH_SIZES:
        size = record_bytes(batch)
        bares, wals = [], []
        for _ in range(rounds):
            bares.append(bare_loop(directory, size, seconds))
            wals.append(wal_loop(directory, batch, seconds))
        bare = Rate(statistics.median(r.saves_per_s for r in bares), 0.0)
        bare = Rate(bare.saves_per_s, bare.saves_per_s * batch)
        wal = Rate(
            statistics.median(r.saves_per_s for r in wals),
            statistics.median(r.entries_per_s for r in wals),
        )
        results.append((batch, bare, wal))
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
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per size")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    parent = args.dir if args.dir is not None else Path.cwd()
    with tempfile.TemporaryDirectory(prefix="wal-bench-", dir=parent) as name:
        results = measure(Path(name), args.seconds, args.rounds)
    print(f"{ENTRY_BYTES}-byte entries, directory {parent}, median of {args.rounds} runs")
    print(render(results, args.markdown))


if __name__ == "__main__":
    main()
