"""AES-256-GCM for records at rest: the `accord.storage.Cipher` the WAL and snapshot
files seal their payloads with.

Sealed form: version (1 byte) | key id (4) | nonce (12) | ciphertext and 16-byte tag.
Every call draws a fresh random 96-bit nonce: records are far fewer than the 2**32
seals per key after which random nonces start to risk a collision. The version and key
id are bound into the associated data, so they cannot be swapped either.
"""

from __future__ import annotations

import secrets

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from accord.security.errors import SecurityError
from accord.security.keys import KEY_ID_BYTES, Keyring

FORMAT = b"\x01"
NONCE_BYTES = 12
TAG_BYTES = 16
_HEADER_BYTES = len(FORMAT) + KEY_ID_BYTES + NONCE_BYTES
OVERHEAD_BYTES = _HEADER_BYTES + TAG_BYTES


class AesGcmCipher:
    """Seals with the keyring's current key; opens with whichever key sealed."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring
        self._aeads = {kid: AESGCM(key) for kid, key in keyring.keys.items()}

    def seal(self, plaintext: bytes, associated: bytes) -> bytes:
        kid = self._keyring.current_id
        nonce = secrets.token_bytes(NONCE_BYTES)
        header = FORMAT + kid + nonce
        return header + self._aeads[kid].encrypt(nonce, plaintext, header + associated)

    def open(self, ciphertext: bytes, associated: bytes) -> bytes:
        if len(ciphertext) < OVERHEAD_BYTES or ciphertext[:1] != FORMAT:
            raise SecurityError("not a sealed record of a known format")
        kid = ciphertext[1 : 1 + KEY_ID_BYTES]
        self._keyring.get(kid)  # raises UnknownKey, naming the id
        header = ciphertext[:_HEADER_BYTES]
        nonce = header[1 + KEY_ID_BYTES :]
        return self._aeads[kid].decrypt(nonce, ciphertext[_HEADER_BYTES:], header + associated)
