"""Typed errors of the security package."""

from __future__ import annotations

from accord.errors import AccordError


class SecurityError(AccordError):
    """A security setting is missing or wrong (bad key, unreadable certificate, ...)."""

    code = "bad_security_config"


class UnknownKey(SecurityError):
    """A ciphertext names a key id that the keyring does not hold."""

    code = "unknown_encryption_key"

    def __init__(self, key_id: bytes) -> None:
        self.key_id = key_id
        super().__init__(
            f"data was sealed with encryption key id {key_id.hex()}, which is not among the "
            "configured keys (wrong or missing encryption key)"
        )
