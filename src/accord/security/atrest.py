"""Encryption at rest for a node's data directory: the cipher, and a key check that
runs before storage is opened.

Why a check first: storage treats a record it cannot open as damage, and a snapshot
that fails to open is set aside as corrupt. With a wrong key every snapshot would be
moved aside before the node gave up. So the first encrypted start writes
`DATA_DIR/keycheck`, a small sealed canary; later starts open it first and refuse to
start with a clear error when no key is configured or the key does not open it. After
a rotation (a new current key) the canary is rewritten with the new key.
"""

from __future__ import annotations

import os
from pathlib import Path

from accord.security.cipher import AesGcmCipher
from accord.security.errors import SecurityError, UnknownKey
from accord.security.keys import KEY_ENV, KEY_ID_BYTES, Keyring

KEYCHECK_FILE = "keycheck"
_CANARY = b"accord encryption key check"
_ASSOCIATED = b"accord-keycheck"


def _write_canary(path: Path, cipher: AesGcmCipher) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(cipher.seal(_CANARY, _ASSOCIATED))
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)


def at_rest_cipher(data_dir: Path, keyring: Keyring | None) -> AesGcmCipher | None:
    """The cipher for `data_dir`'s storage (None: unencrypted), after checking that the
    configured keys match the directory. Raises `SecurityError` with the reason."""
    path = data_dir / KEYCHECK_FILE
    if keyring is None:
        if path.exists():
            raise SecurityError(
                f"the data in {data_dir} is encrypted and no encryption key is configured; "
                f"set encryption_key_file in [security] or {KEY_ENV}"
            )
        return None
    cipher = AesGcmCipher(keyring)
    if path.exists():
        sealed = path.read_bytes()
        try:
            if cipher.open(sealed, _ASSOCIATED) != _CANARY:
                raise SecurityError("key check mismatch")
        except UnknownKey:
            raise SecurityError(
                f"wrong encryption key for {data_dir}: its data was sealed with key id "
                f"{sealed[1 : 1 + KEY_ID_BYTES].hex()}, and the configured keys have ids "
                f"{', '.join(k.hex() for k in keyring.keys)}"
            ) from None
        except Exception as exc:  # a damaged canary: do not guess, stop
            raise SecurityError(f"cannot verify the encryption key with {path}: {exc!r}") from exc
        if sealed[1 : 1 + KEY_ID_BYTES] == keyring.current_id:
            return cipher
    _write_canary(path, cipher)
    return cipher


def node_cipher(data_dir: Path, key_file: Path | None, key_text: str | None) -> AesGcmCipher | None:
    """The storage cipher a node's configuration asks for, checked against `data_dir`."""
    from accord.security.keys import load_keyring

    data_dir.mkdir(parents=True, exist_ok=True)
    return at_rest_cipher(data_dir, load_keyring(key_file, key_text))
