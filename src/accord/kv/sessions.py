"""Client sessions: the record that makes a retried write take effect once.

Theory of operation
-------------------
Every request carries `(client_id, seq)`. A client has at most one request
outstanding per client id and numbers its requests 1, 2, 3, ...; a retry repeats the
seq. For each client the table keeps the latest seq applied and its result:

- `seq` equal to the latest: a retry; answered with the recorded result, not applied;
- `seq` lower: a stale request (a delayed duplicate of something already answered);
  refused with `StaleRequest`, never applied;
- `seq` higher: applied, and its result becomes the record.

A session is opened by a client's request with seq 1 and forgotten by
`ExpireSessions(idle_ms)` once the client has not been heard from for `idle_ms` of
the leader's clock. Expiry is a replicated command, so every replica forgets the same
sessions at the same log index. A request with seq > 1 from a client without a
session is refused with `SessionExpired` rather than applied: it may be the retry of a
request applied before the session expired, and applying it again would break
exactly-once. (A retry of seq 1 after expiry cannot be told apart from a new session;
clients must stop retrying a request well before `idle_ms`.)

The table is bounded (`sessions_max`), and so is each owner's share of it
(`sessions_per_user_max`: the owner is the envelope's, the authenticated user or `""`
for every anonymous client): a new client beyond either is refused with
`TooManySessions`; no session is ever evicted to make room, since that would silently
weaken another client's guarantee. One user opening sessions can therefore fill only
their own share, and the others keep theirs.

Sessions are kept in least-recently-seen order (a dict re-inserted on every request).
The state machine's clock never goes backwards, so the oldest session is first and
expiry stops at the first session still fresh.
"""

from __future__ import annotations

from typing import Any

from accord.kv import _wire
from accord.kv.errors import SessionExpired, StaleRequest, TooManySessions
from accord.kv.limits import UINT64_MAX
from accord.kv.results import ErrorResult, Result, decode_result, encode_result


class Session:
    __slots__ = ("last_seen_ms", "owner", "result", "seq")

    def __init__(self, seq: int, result: Result, last_seen_ms: int, owner: str = "") -> None:
        self.seq = seq
        self.result = result
        self.last_seen_ms = last_seen_ms
        self.owner = owner


class SessionTable:
    def __init__(self, sessions_max: int, sessions_per_user_max: int | None = None) -> None:
        self._sessions: dict[int, Session] = {}
        self._sessions_max = sessions_max
        per_user = sessions_per_user_max
        self._per_user_max = sessions_max if per_user is None else per_user
        self._per_owner: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, client_id: int) -> Session | None:
        return self._sessions.get(client_id)

    def owned_by(self, owner: str) -> int:
        return self._per_owner.get(owner, 0)

    def answer(self, client_id: int, seq: int, now_ms: int, owner: str = "") -> Result | None:
        """The result to return *instead of* applying `(client_id, seq)`, or `None`
        if it is to be applied (and then passed to `record()`)."""
        session = self._sessions.get(client_id)
        if session is None:
            if seq != 1:
                return ErrorResult.of(SessionExpired(client_id, seq))
            if len(self._sessions) >= self._sessions_max:
                return ErrorResult.of(
                    TooManySessions("sessions", len(self._sessions) + 1, self._sessions_max)
                )
            owned = self.owned_by(owner)
            if owned >= self._per_user_max:
                return ErrorResult.of(
                    TooManySessions(f"sessions of user {owner!r}", owned + 1, self._per_user_max)
                )
            return None
        if seq > session.seq:
            return None
        if seq < session.seq:
            return ErrorResult.of(StaleRequest(client_id, seq, session.seq))
        self._touch(client_id, session, now_ms)  # a retry: the client is alive
        return session.result

    def record(
        self, client_id: int, seq: int, result: Result, now_ms: int, owner: str = ""
    ) -> None:
        """Record the result; a new session belongs to `owner` (a session keeps the
        owner that opened it)."""
        session = self._sessions.pop(client_id, None)
        if session is None:
            session = Session(seq, result, now_ms, owner)
            self._per_owner[owner] = self._per_owner.get(owner, 0) + 1
        session.seq = seq
        session.result = result
        session.last_seen_ms = now_ms
        self._sessions[client_id] = session

    def _touch(self, client_id: int, session: Session, now_ms: int) -> None:
        del self._sessions[client_id]
        session.last_seen_ms = now_ms
        self._sessions[client_id] = session

    def expire(self, now_ms: int, idle_ms: int) -> int:
        """Forget the sessions last seen at or before `now_ms - idle_ms`."""
        expired: list[int] = []
        for client_id, session in self._sessions.items():
            if session.last_seen_ms + idle_ms > now_ms:
                break  # every later session was seen later still
            expired.append(client_id)
        for client_id in expired:
            self._forget(client_id)
        return len(expired)

    def _forget(self, client_id: int) -> None:
        owner = self._sessions.pop(client_id).owner
        left = self._per_owner[owner] - 1
        if left:
            self._per_owner[owner] = left
        else:
            del self._per_owner[owner]

    # --- snapshot ------------------------------------------------------------------
    def encode(self) -> list[Any]:
        """`[[client_id, seq, last_seen_ms, result, owner?], ...]`, least recently
        seen first (the owner only when it is not `""`, as earlier versions wrote it)."""
        items: list[Any] = []
        for client_id, s in self._sessions.items():
            item: list[Any] = [client_id, s.seq, s.last_seen_ms, encode_result(s.result)]
            if s.owner:
                item.append(s.owner)
            items.append(item)
        return items

    @classmethod
    def decode(
        cls, value: object, sessions_max: int, sessions_per_user_max: int | None = None
    ) -> SessionTable:
        table = cls(sessions_max, sessions_per_user_max)
        previous_seen_ms = 0
        for item in _wire.array(value, "sessions"):
            fields = _wire.array(item, "session")
            if len(fields) not in (4, 5):
                raise _wire.WireError(f"session: expected 4 or 5 fields, got {len(fields)}")
            client_id = _wire.uint(fields[0], "client id", UINT64_MAX)
            if client_id == 0 or client_id in table._sessions:
                raise _wire.WireError(f"client id {client_id} is 0 or repeated")
            owner = _wire.text(fields[4], "session owner") if len(fields) == 5 else ""
            if len(fields) == 5 and not owner:
                raise _wire.WireError("session owner: an empty owner is not encoded")
            session = Session(
                _wire.uint(fields[1], "seq", UINT64_MAX),
                decode_result(fields[3]),
                _wire.uint(fields[2], "last seen"),
                owner,
            )
            if session.last_seen_ms < previous_seen_ms:
                raise _wire.WireError("sessions out of last-seen order")
            previous_seen_ms = session.last_seen_ms
            table._sessions[client_id] = session
            table._per_owner[owner] = table._per_owner.get(owner, 0) + 1
        return table
