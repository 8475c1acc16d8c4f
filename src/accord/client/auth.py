"""Client credentials: a user and password (the client logs in and keeps the token,
logging in again when a node answers 401), or a token obtained elsewhere. Over TLS a
client certificate (in the `tls` context) authenticates too, with no credentials here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Credentials:
    user: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if (self.user is None) != (self.password is None):
            raise ValueError("give user and password together")

    @property
    def can_login(self) -> bool:
        return self.user is not None and self.password is not None

    def native_login(self) -> dict[str, Any]:
        """The `login` op's arguments for a new native connection."""
        if self.can_login:
            return {"user": self.user, "password": self.password}
        return {"token": self.token}

    def header(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}
