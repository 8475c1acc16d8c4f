"""Login tokens: `payload.signature`, both base64url; the payload is msgpack
`[user, uid, epoch, expires_ms]`, the signature HMAC-SHA256 under the replicated key.

Any node verifies any node's token (the key is in the replicated auth store). A
password change bumps the user's epoch, which ends every token issued before it;
deleting the user ends them too, for good: a user re-created under the same name has
a new uid (uids are never reused), so the old tokens still do not match. Tokens of the
form before uids (`[user, epoch, expires_ms]`) are refused: their holders log in again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgpack

from accord.node.authstore import AuthStore
from accord.security.errors import Unauthenticated
from accord.security.limits import TOKEN_CHARS_MAX


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, b"accord-token\x00" + payload, hashlib.sha256).digest()


def issue_token(store: AuthStore, user: str, now_ms: int, ttl_s: int) -> tuple[str, int]:
    """(token, expiry in ms since the epoch) for `user`, who must exist."""
    expires_ms = now_ms + ttl_s * 1000
    record = store.users[user]
    payload = msgpack.packb([user, record.uid, record.epoch, expires_ms])
    return f"{_b64(payload)}.{_b64(_sign(store.secret, payload))}", expires_ms


def verify_token(store: AuthStore, token: str, now_ms: int) -> str:
    """The user a valid token names; `Unauthenticated` for anything else."""
    if not store.initialized or len(token) > TOKEN_CHARS_MAX or token.count(".") != 1:
        raise Unauthenticated("invalid token")
    encoded, signature = token.split(".")
    try:
        payload, mac = _unb64(encoded), _unb64(signature)
    except ValueError:
        raise Unauthenticated("invalid token") from None
    if not hmac.compare_digest(mac, _sign(store.secret, payload)):
        raise Unauthenticated("invalid token")
    try:
        user, uid, epoch, expires_ms = msgpack.unpackb(payload)
    except (ValueError, TypeError, msgpack.UnpackException):
        raise Unauthenticated("invalid token") from None
    if not isinstance(user, str):
        raise Unauthenticated("invalid token")
    record = store.users.get(user)
    if record is None or record.uid != uid or record.epoch != epoch:
        raise Unauthenticated("token revoked (user deleted or password changed)")
    if not isinstance(expires_ms, int) or expires_ms <= now_ms:
        raise Unauthenticated("token expired; log in again")
    return user
