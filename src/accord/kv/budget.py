"""`ReadBudget`: what the reads of one request may still cost, counted as they go.

A range or transaction is charged while its response is built, never measured
afterwards: every key visited costs one against `keys_scanned_max`, and every op and
key-value put into the response costs bytes against `bytes_max`
(`RESPONSE_OP_OVERHEAD_BYTES`, `response_kv_bytes()`). The first charge that goes over
raises (`LimitExceeded` for keys scanned, `ResponseTooLarge` for bytes), so a request
never holds more than its bound. Everything is a pure function of the store and the
request, so every replica refuses the same transactions.
"""

from __future__ import annotations

from accord.kv.errors import LimitExceeded, ResponseTooLarge
from accord.kv.limits import RESPONSE_OP_OVERHEAD_BYTES, KVLimits, response_kv_bytes


class ReadBudget:
    __slots__ = ("bytes_max", "keys_scanned_max", "op", "scanned", "size_bytes")

    def __init__(self, bytes_max: int, keys_scanned_max: int) -> None:
        self.bytes_max = bytes_max
        self.keys_scanned_max = keys_scanned_max
        self.size_bytes = 0
        self.scanned = 0
        self.op = 0

    @classmethod
    def of(cls, limits: KVLimits) -> ReadBudget:
        return cls(limits.response_bytes_max, limits.read_keys_scanned_max)

    @classmethod
    def unbounded(cls) -> ReadBudget:
        """For work whose cost was already charged to another budget."""
        return cls(1 << 62, 1 << 62)

    def start_op(self, op: int) -> None:
        """Charge op number `op` (0-based) its place in the response."""
        self.op = op
        self._charge(RESPONSE_OP_OVERHEAD_BYTES, 0)

    def scan(self) -> None:
        """Charge one key visited."""
        self.scanned += 1
        if self.scanned > self.keys_scanned_max:
            raise LimitExceeded("keys scanned by one request", self.scanned, self.keys_scanned_max)

    def take(self, key: bytes, value: bytes, taken: int) -> None:
        """Charge one key-value returned, after `taken` of this op's fit."""
        self._charge(response_kv_bytes(key, value), taken)

    def _charge(self, size_bytes: int, taken: int) -> None:
        self.size_bytes += size_bytes
        if self.size_bytes > self.bytes_max:
            raise ResponseTooLarge(self.size_bytes, self.bytes_max, self.op, taken)
