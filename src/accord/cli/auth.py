"""`accord user ...` and `accord role ...`: administration of users, roles and grants
(root only), over the HTTP API's /v1/auth routes.

Credentials and TLS come from the environment (`ACCORD_USER`, `ACCORD_PASSWORD`,
`ACCORD_TOKEN`, `ACCORD_CACERT`, `ACCORD_CERT`, `ACCORD_KEY`; see
`accord.security.clientenv`); endpoints from `--endpoints` or `ACCORD_ENDPOINTS`.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

from accord.cli.kv import endpoints_option, fail
from accord.security.clientenv import client_tls_from_env

TIMEOUT_S = 10.0


def _request(
    endpoints: str, method: str, path: str, body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send one admin request to the first endpoint that answers (followers forward)."""
    context = client_tls_from_env()
    urls = [e.strip().rstrip("/") for e in endpoints.split(",") if e.strip()]
    urls = [u.replace("accords://", "https://").replace("accord://", "http://") for u in urls]
    last_error = "no endpoint given"
    for url in urls:
        try:
            token = _token(url, context)
            return _call(url, method, path, body, token, context)
        except OSError as e:  # unreachable: try the next endpoint
            last_error = str(e)
    raise fail("unavailable", last_error)


def _call(
    url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    token: str | None,
    context: Any,
) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=context) as response:
            answer: dict[str, Any] = json.loads(response.read() or b"{}")
            return answer
    except urllib.error.HTTPError as e:
        try:
            error = json.loads(e.read())["error"]
        except (ValueError, KeyError, TypeError):
            error = {"code": f"http_{e.code}", "message": e.reason}
        raise fail(str(error.get("code")), str(error.get("message"))) from None


def _token(url: str, context: Any) -> str | None:
    if os.environ.get("ACCORD_USER"):
        login = {"user": os.environ["ACCORD_USER"], "password": os.environ.get("ACCORD_PASSWORD")}
        return str(_call(url, "POST", "/v1/auth/login", login, None, context)["token"])
    return os.environ.get("ACCORD_TOKEN") or None


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


@click.group("user")
def user() -> None:
    """Users: add, delete, change passwords, grant and revoke roles (needs root)."""


@user.command("add")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@endpoints_option
def user_add(name: str, password: str, endpoints: str) -> None:
    _request(endpoints, "POST", "/v1/auth/users", {"name": name, "password": password})
    click.echo(f"user {name} added")


@user.command("del")
@click.argument("name")
@endpoints_option
def user_del(name: str, endpoints: str) -> None:
    _request(endpoints, "DELETE", f"/v1/auth/users/{_q(name)}")
    click.echo(f"user {name} deleted")


@user.command("passwd")
@click.argument("name")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@endpoints_option
def user_passwd(name: str, password: str, endpoints: str) -> None:
    _request(endpoints, "PUT", f"/v1/auth/users/{_q(name)}/password", {"password": password})
    click.echo(f"password of {name} changed (its old tokens no longer work)")


@user.command("grant")
@click.argument("name")
@click.argument("role")
@endpoints_option
def user_grant(name: str, role: str, endpoints: str) -> None:
    _request(endpoints, "PUT", f"/v1/auth/users/{_q(name)}/roles/{_q(role)}")
    click.echo(f"user {name} has role {role}")


@user.command("revoke")
@click.argument("name")
@click.argument("role")
@endpoints_option
def user_revoke(name: str, role: str, endpoints: str) -> None:
    _request(endpoints, "DELETE", f"/v1/auth/users/{_q(name)}/roles/{_q(role)}")
    click.echo(f"user {name} no longer has role {role}")


@user.command("list")
@endpoints_option
def user_list(endpoints: str) -> None:
    """Users with their roles, and roles with their grants (JSON)."""
    click.echo(json.dumps(_request(endpoints, "GET", "/v1/auth"), indent=2))


@click.group("role")
def role() -> None:
    """Roles: add, delete, grant and revoke read/write/readwrite on key prefixes."""


@role.command("add")
@click.argument("name")
@endpoints_option
def role_add(name: str, endpoints: str) -> None:
    _request(endpoints, "POST", "/v1/auth/roles", {"name": name})
    click.echo(f"role {name} added")


@role.command("del")
@click.argument("name")
@endpoints_option
def role_del(name: str, endpoints: str) -> None:
    _request(endpoints, "DELETE", f"/v1/auth/roles/{_q(name)}")
    click.echo(f"role {name} deleted")


@role.command("grant")
@click.argument("name")
@click.argument("prefix")
@click.argument("permission", type=click.Choice(["read", "write", "readwrite"]))
@endpoints_option
def role_grant(name: str, prefix: str, permission: str, endpoints: str) -> None:
    """Let role NAME PERMISSION every key starting with PREFIX ("" = every key)."""
    body = {"prefix": prefix, "permission": permission}
    _request(endpoints, "POST", f"/v1/auth/roles/{_q(name)}/grant", body)
    click.echo(f"role {name} may {permission} keys starting with {prefix!r}")


@role.command("revoke")
@click.argument("name")
@click.argument("prefix")
@endpoints_option
def role_revoke(name: str, prefix: str, endpoints: str) -> None:
    _request(endpoints, "POST", f"/v1/auth/roles/{_q(name)}/revoke", {"prefix": prefix})
    click.echo(f"role {name} no longer has a grant on {prefix!r}")
