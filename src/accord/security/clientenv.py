"""Client-side security settings from the environment, for the `accord` commands:

    ACCORD_CACERT    CA certificate (PEM) for https:// and accords:// endpoints
    ACCORD_CERT, ACCORD_KEY   a client certificate and its key (optional)
    ACCORD_USER, ACCORD_PASSWORD   log in as this user
    ACCORD_TOKEN     or use a token from an earlier login

`accord up --secure` writes these into DIR/client.env (see the README).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from typing import Any

from accord.security.tls import client_tls


def client_tls_from_env(env: Mapping[str, str] | None = None) -> ssl.SSLContext | None:
    env = os.environ if env is None else env
    ca = env.get("ACCORD_CACERT")
    if not ca:
        return None
    return client_tls(ca, env.get("ACCORD_CERT") or None, env.get("ACCORD_KEY") or None)


def client_options_from_env(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments for `accord.Client` / `AsyncClient`."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    tls = client_tls_from_env(env)
    if tls is not None:
        options["tls"] = tls
    if env.get("ACCORD_USER"):
        options["user"] = env["ACCORD_USER"]
        options["password"] = env.get("ACCORD_PASSWORD", "")
    elif env.get("ACCORD_TOKEN"):
        options["token"] = env["ACCORD_TOKEN"]
    return options
