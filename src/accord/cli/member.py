"""`accord member list | add | promote | remove`: online membership changes.

A new member is added as a learner (it receives the log but does not vote), then
promoted once it has caught up; start its process with `join = true` in its config
(or `accord node --join ...`) so it waits to be contacted instead of bootstrapping.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import click

from accord.cli.kv import endpoints_option


def call_api(endpoints: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    last_error = "no endpoint given"
    for endpoint in [e.strip() for e in endpoints.split(",") if e.strip()]:
        request = urllib.request.Request(endpoint.rstrip("/") + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            try:
                error = json.loads(e.read() or b"{}").get("error", {})
            except ValueError:
                error = {"code": f"http_{e.code}", "message": str(e.reason)}
            if error.get("code") in ("not_leader", "proposal_dropped"):
                last_error = f"{error['code']}: {error.get('message', '')}"
                continue
            raise click.ClickException(f"{error.get('code')}: {error.get('message')}") from e
        except (OSError, ValueError) as e:
            last_error = f"{endpoint}: {e}"
    raise click.ClickException(f"no endpoint could serve the request ({last_error})")


def _print_members(result: dict[str, Any]) -> None:
    for row in result["members"]:
        click.echo(
            f"{row['id']:>4}  {row['name'] or '-':<8} {row['role']:<8} "
            f"{row['url'] or '-':<28} peer {row['peer'] or '-'}"
        )


@click.group("member")
def member() -> None:
    """List and change the cluster's members online."""


@member.command("list")
@endpoints_option
def member_list(endpoints: str) -> None:
    """Every member with its role (voter, learner) and addresses."""
    _print_members(call_api(endpoints, "GET", "/v1/members"))


@member.command("add")
@endpoints_option
@click.option("--id", "member_id", type=click.IntRange(1), required=True)
@click.option("--name", required=True)
@click.option("--peer", required=True, help="HOST:PORT the new member listens on for Raft")
@click.option("--client", required=True, help="HOST:PORT of the new member's HTTP API")
@click.option("--native", default=None, help="HOST:PORT of its native protocol (optional)")
@click.option("--voter", is_flag=True, help="add as a voter at once instead of a learner")
def member_add(
    endpoints: str,
    member_id: int,
    name: str,
    peer: str,
    client: str,
    native: str | None,
    voter: bool,
) -> None:
    """Add a member as a learner (or --voter); then start it with join = true."""
    body = {"id": member_id, "name": name, "peer": peer, "client": client, "voter": voter}
    if native:
        body["native"] = native
    _print_members(call_api(endpoints, "POST", "/v1/members", body))


@member.command("promote")
@endpoints_option
@click.argument("member_id", type=click.IntRange(1))
def member_promote(endpoints: str, member_id: int) -> None:
    """Make a caught-up learner a voter (through joint consensus)."""
    _print_members(call_api(endpoints, "POST", f"/v1/members/{member_id}/promote"))


@member.command("remove")
@endpoints_option
@click.argument("member_id", type=click.IntRange(1))
def member_remove(endpoints: str, member_id: int) -> None:
    """Remove a member, the leader too (through joint consensus for a voter)."""
    _print_members(call_api(endpoints, "DELETE", f"/v1/members/{member_id}"))
