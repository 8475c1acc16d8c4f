"""Typed errors of the security package. The status each code is answered with is in
the error-code table (`accord.errorcodes`)."""

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


class Unauthenticated(SecurityError):
    """No valid credentials (missing, wrong password, expired or forged token)."""

    code = "unauthenticated"


class PermissionDenied(SecurityError):
    """The user is known but no role grants what the request needs."""

    code = "permission_denied"


class RateLimited(SecurityError):
    """The client sent requests faster than its rate limit; retry after `retry_after_s`."""

    code = "rate_limited"

    def __init__(self, retry_after_s: float, what: str = "too many requests") -> None:
        self.retry_after_s = retry_after_s
        super().__init__(f"{what}; retry after {retry_after_s:.3g}s")


class AuthRequestError(SecurityError):
    """An administration request that cannot be carried out (unknown user, ...);
    `code` is the auth store's (`user_not_found`, `role_exists`, ...) when it refused."""

    code = "auth_error"

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        if code:
            self.code = code


class LeaseNotOwned(SecurityError):
    """The lease belongs to another user. Answered exactly like a lease that does not
    exist (404 `lease_not_found`), so nobody learns which ids other users hold."""

    code = "lease_not_found"

    def __init__(self, lease_id: int) -> None:
        self.lease_id = lease_id
        super().__init__(f"lease {lease_id} not found")


class LoginLocked(RateLimited):
    """Too many failed logins in a row for this user from this address; the lock ends
    after `retry_after_s` (and grows with each further failure)."""

    code = "login_locked"

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(retry_after_s, "too many failed logins")
