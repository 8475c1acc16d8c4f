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

from accord.security.cipher import FORMAT, AesGcmCipher
from accord.security.errors import SecurityError, UnknownKey
from accord.security.keys import KEY_ENV, KEY_ID_BYTES, Keyring

KEYCHECK_FILE = "keycheck"
_CANARY = b"accord encryption key check"
_ASSOCIATED = b"accord-keycheck"


def snapshot_key_ids(snapshot_dir: Path) -> dict[bytes, Path]:
    """The key id of every sealed snapshot in `snapshot_dir` (one file per id).

    Storage sets aside a snapshot it cannot open as corrupt; after a rotation that
    dropped a key too early that would be every snapshot sealed with it, so the key
    check refuses to start instead (see `at_rest_cipher`)."""
    from accord.storage.codec import DecodeError, decode_snapshot_header
    from accord.storage.limits import SNAPSHOT_FILE_BYTES_MAX
    from accord.storage.record import scan
    from accord.storage.snapshots import list_snapshots

    found: dict[bytes, Path] = {}
    if not snapshot_dir.is_dir():
        return found
    for file in list_snapshots(snapshot_dir):
        records, _ = scan(
            file.path.read_bytes(), tail=False, payload_bytes_max=SNAPSHOT_FILE_BYTES_MAX
        )
        if len(records) != 2:
            continue  # damaged: storage reports it with the details
        try:
            sealed = decode_snapshot_header(records[0].payload)[2]
        except DecodeError:
            continue
        body = records[1].payload
        if sealed and body[:1] == FORMAT:
            found.setdefault(body[1 : 1 + KEY_ID_BYTES], file.path)
    return found


def _write_canary(path: Path, cipher: AesGcmCipher) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(cipher.seal(_CANARY, _ASSOCIATED))
    with open(temporary, "rb") as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)


def at_rest_cipher(data_dir: Path, keyring: Keyring | None) -> AesGcmCipher | None:
    """The cipher for `data_dir`'s storage (None: unencrypted), after checking that the
    configured keys match the directory. Raises `SecurityError` with the reason."""
    hint = (
        f" and no encryption key is configured; set encryption_key_file in [security] or {KEY_ENV}"
    )
    cipher, current = _checked_cipher(data_dir, keyring, hint)
    if cipher is not None and not current:  # first encrypted start, or a rotation
        _write_canary(data_dir / KEYCHECK_FILE, cipher)
    return cipher


def read_only_cipher(data_dir: Path, keyring: Keyring | None) -> AesGcmCipher | None:
    """As `at_rest_cipher`, for tools that only read (`accord storage check`): the same
    checks, and the canary is never written. None: the directory is not encrypted."""
    hint = f": give its key (--key-file, or --config with the node's configuration, or {KEY_ENV})"
    return _checked_cipher(data_dir, keyring, hint)[0]


def _checked_cipher(
    data_dir: Path, keyring: Keyring | None, no_key_hint: str
) -> tuple[AesGcmCipher | None, bool]:
    """The cipher (None: no key, and the directory is not encrypted) and whether the
    canary is sealed with the current key, after every check of the keys against the
    directory."""
    path = data_dir / KEYCHECK_FILE
    if keyring is None:
        if path.exists():
            raise SecurityError(f"the data in {data_dir} is encrypted{no_key_hint}")
        return None, True
    cipher = AesGcmCipher(keyring)
    current = path.exists() and _check_canary(path, cipher, keyring, data_dir)
    for kid, snapshot in snapshot_key_ids(data_dir / "raft" / "snap").items():
        if kid not in keyring.keys:
            raise SecurityError(
                f"{snapshot} is sealed with encryption key id {kid.hex()}, which is not "
                "among the configured keys: keep retired keys in the keyring until no "
                "file uses them"
            )
    return cipher, current


def _check_canary(path: Path, cipher: AesGcmCipher, keyring: Keyring, data_dir: Path) -> bool:
    """Open the canary (raising `SecurityError` if no configured key does); whether it
    is sealed with the current key."""
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
    except SecurityError:
        raise
    except Exception as exc:  # a damaged canary: do not guess, stop
        raise SecurityError(f"cannot verify the encryption key with {path}: {exc!r}") from exc
    return sealed[1 : 1 + KEY_ID_BYTES] == keyring.current_id


def node_cipher(data_dir: Path, key_file: Path | None, key_text: str | None) -> AesGcmCipher | None:
    """The storage cipher a node's configuration asks for, checked against `data_dir`."""
    from accord.security.keys import load_keyring

    data_dir.mkdir(parents=True, exist_ok=True)
    return at_rest_cipher(data_dir, load_keyring(key_file, key_text))
