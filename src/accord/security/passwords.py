"""Password hashing with scrypt (hashlib): memory-hard, in the standard library.

Stored form: `scrypt$N$r$p$salt_b64$hash_b64`, so the cost can grow later without
invalidating old hashes. Hashing takes tens of milliseconds on purpose; callers run it
off the event loop (`asyncio.to_thread`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from accord.security.limits import PASSWORD_BYTES_MAX

SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    data = password.encode()
    if len(data) > PASSWORD_BYTES_MAX:
        raise ValueError("password too long")
    return hashlib.scrypt(data, salt=salt, n=n, r=r, p=p, maxmem=64 << 20, dklen=HASH_BYTES)
