"""Keys for encryption at rest: parsing, key ids and the keyring.

A key is 32 random bytes written as standard base64 (44 characters, e.g. the output
of `accord certs key` or `head -c 32 /dev/urandom | base64`). A key file, or the
`ACCORD_ENCRYPTION_KEY` variable, holds one key or several (one per line, or
separated by commas): the first seals new data, every one of them opens old data.
That is how keys rotate: put the new key first, keep the old ones until every file
sealed with them has been rewritten (snapshots and compaction do that), then drop them.

A key's id is derived from the key itself (a hash prefix), so a wrong key is reported
as "unknown key id" instead of a failed decryption deep inside a record.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from accord.security.errors import SecurityError, UnknownKey
from accord.security.limits import ENCRYPTION_KEYS_MAX

KEY_BYTES = 32
KEY_ID_BYTES = 4
KEY_ENV = "ACCORD_ENCRYPTION_KEY"


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"accord-key-id\x00" + key).digest()[:KEY_ID_BYTES]


def new_key_text() -> str:
    """A fresh random key in the text form a key file holds."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


@dataclass(frozen=True, slots=True)
class Keyring:
    """The current key (seals) and every known key by id (opens)."""

    current_id: bytes
    keys: dict[bytes, bytes]

    def current(self) -> tuple[bytes, bytes]:
        return self.current_id, self.keys[self.current_id]

    def get(self, wanted: bytes) -> bytes:
        try:
            return self.keys[wanted]
        except KeyError:
            raise UnknownKey(wanted) from None


def parse_keys(text: str, source: str) -> Keyring:
    """Parse one or more base64 keys (lines or commas; the first is current)."""
    items = [item.strip() for item in text.replace(",", "\n").splitlines()]
    items = [item for item in items if item and not item.startswith("#")]
    if not items:
        raise SecurityError(f"{source} holds no encryption key")
    if len(items) > ENCRYPTION_KEYS_MAX:
        raise SecurityError(f"{source} holds {len(items)} keys; at most {ENCRYPTION_KEYS_MAX}")
    keys: dict[bytes, bytes] = {}
    for position, item in enumerate(items, 1):
        try:
            key = base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError):
            raise SecurityError(f"{source}: key {position} is not valid base64") from None
        if len(key) != KEY_BYTES:
            raise SecurityError(
                f"{source}: key {position} is {len(key)} bytes; expected {KEY_BYTES} "
                "(base64 of 32 random bytes)"
            )
        keys.setdefault(key_id(key), key)
    return Keyring(key_id(base64.b64decode(items[0])), keys)


def load_keyring(key_file: Path | None, env_value: str | None) -> Keyring | None:
    """The keyring from the environment variable, else the key file; None if neither."""
    if env_value:
        return parse_keys(env_value, KEY_ENV)
    if key_file is None:
        return None
    try:
        text = key_file.read_text()
    except OSError as exc:
        raise SecurityError(f"cannot read encryption key file {key_file}: {exc}") from exc
    return parse_keys(text, f"encryption key file {key_file}")


def write_key_file(path: Path) -> None:
    """Create `path` holding a fresh key, readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(new_key_text() + "\n")
