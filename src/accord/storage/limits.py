"""Every bound the storage layer enforces, in one place, named with units last.

Exceeding a bound on the write path raises `LimitExceeded` before anything is written.
Exceeding one on the read path (a file or record larger than any writer produces) is
`CorruptionError`: the reader refuses to trust, or to allocate for, a length it read
from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from accord.raft.limits import KIB, MIB, RAFT_MEMBERS_MAX, RAFT_SNAPSHOT_DATA_BYTES_MAX
from accord.raft.types import Entry

if TYPE_CHECKING:
    from accord.storage.protocol import GroupWrite

ENTRY_OVERHEAD_BYTES = 32
"""What one entry is charged on top of its data when a batch is sized (an upper bound
on its msgpack framing: array header, term, type, bin header)."""

BATCH_BYTES_MAX = 16 * MIB
"""Largest batch one `save()` accepts, measured by `batch_bytes()`. The Raft core must
keep a Ready's entries under it (it bounds proposals and AppendEntries anyway)."""

RECORD_HEADER_BYTES = 16
"""Magic (4), payload length (4), type (1), reserved (3), CRC32C (4)."""

GROUPS_MAX = 10_000
"""Most Raft groups one storage directory holds at once (created and not destroyed).
Every segment begins with the hard state of each of them (`wal`), so this also
bounds that checkpoint."""

GROUP_WRITE_OVERHEAD_BYTES = 128
"""What one group's write in a `HostStorage.save()` is charged on top of its entries
(an upper bound on its fixed msgpack fields: group, hard state, reset, first index,
column headers)."""

HOST_BATCH_BYTES_MAX = BATCH_BYTES_MAX + GROUP_WRITE_OVERHEAD_BYTES
"""Largest `HostStorage.save()` as measured by `host_batch_bytes()`: the writes of all
groups together are one WAL record, so together they get one batch's budget (one
group's full batch fits). A host that gathers more splits it over several saves."""

CHECKPOINT_GROUP_BYTES_MAX = 40
"""Upper bound on one group's entry in a segment checkpoint (group, term, vote, commit)."""

CHECKPOINT_BYTES_MAX = GROUPS_MAX * CHECKPOINT_GROUP_BYTES_MAX + 16
"""Largest checkpoint: the group table the first record of every segment carries."""

RECORD_PAYLOAD_BYTES_MAX = HOST_BATCH_BYTES_MAX + CHECKPOINT_BYTES_MAX + 64 * KIB
"""Largest WAL record payload: a full batch, a full checkpoint, their fixed fields and
the cipher's overhead."""

CIPHER_OVERHEAD_BYTES_MAX = 4 * KIB
"""Most a cipher may add to a payload (AES-GCM adds 28 bytes)."""

SEGMENT_BYTES_MAX = 64 * MIB
"""Default and largest configurable segment size. A segment is rolled over before a
record would take it past the configured size; its first batch is always accepted, so
no segment exceeds this by more than one record."""

SEGMENT_BYTES_MIN = 4 * KIB
"""Smallest configurable segment size (small segments exercise rollover in tests)."""

SEGMENT_FILE_BYTES_MAX = SEGMENT_BYTES_MAX + 2 * (RECORD_HEADER_BYTES + RECORD_PAYLOAD_BYTES_MAX)
"""A segment file larger than this was not written by us; it is not read into memory."""

SNAPSHOT_DATA_BYTES_MAX = RAFT_SNAPSHOT_DATA_BYTES_MAX
"""Largest state-machine snapshot (`Snapshot.data`) accepted: the Raft layer's bound,
which the state machine's store quota is derived from, so a store at its quota always
makes a snapshot storage accepts."""

SNAPSHOT_ENVELOPE_BYTES_MAX = 1 * MIB
"""What a snapshot file holds besides the data: both records' headers, the header
record, the body's index, term and membership (at most `SNAPSHOT_MEMBERS_MAX` ids of
9 bytes each) and the cipher's overhead."""

SNAPSHOT_FILE_BYTES_MAX = SNAPSHOT_DATA_BYTES_MAX + SNAPSHOT_ENVELOPE_BYTES_MAX
"""A snapshot file larger than this is corrupt (data plus membership and framing).
Below 4 GiB: the body record's length is a 32-bit field."""

SNAPSHOT_MEMBERS_MAX = RAFT_MEMBERS_MAX
"""Most members a snapshot's configuration may name (a sanity bound for the decoder)."""

SNAPSHOTS_KEPT_DEFAULT = 2
"""Snapshot files kept; older ones are deleted after a new one is durable."""

SNAPSHOTS_KEPT_MAX = 64
"""Most snapshot files `snapshots_kept` may keep."""

RESYNC_SCAN_BYTES_MAX = 256 * MIB
"""CRC work allowed while looking for a valid record after a damaged one (the test
that tells a torn tail from corruption). When it runs out the damage is reported as
corruption: refusing to start is safe, silently dropping a record is not."""


def batch_bytes(entries: Sequence[Entry]) -> int:
    """The size a batch is charged against `BATCH_BYTES_MAX`.

    Deliberately simple and identical in every `Storage` implementation, so a batch is
    accepted or refused the same way by the file WAL and by the in-memory twin.
    """
    return sum([len(entry.data) for entry in entries]) + ENTRY_OVERHEAD_BYTES * len(entries)


def host_batch_bytes(writes: Sequence[GroupWrite]) -> int:
    """The size a `HostStorage.save()` is charged against `HOST_BATCH_BYTES_MAX`: each
    write's entries as `batch_bytes()` counts them, plus `GROUP_WRITE_OVERHEAD_BYTES`."""
    return sum([batch_bytes(write.entries) for write in writes]) + GROUP_WRITE_OVERHEAD_BYTES * len(
        writes
    )
