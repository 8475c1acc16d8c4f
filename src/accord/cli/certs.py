"""`accord certs`: a cluster CA, node and client certificates, encryption keys."""

from __future__ import annotations

from pathlib import Path

import click

from accord.security.certs import init_ca, issue
from accord.security.errors import SecurityError
from accord.security.keys import write_key_file


@click.group("certs")
def certs() -> None:
    """TLS material (a CA and certificates signed by it) and encryption keys."""


@certs.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Create a CA in DIRECTORY (ca.crt, and ca.key readable by its owner only)."""
    try:
        path = init_ca(directory)
    except SecurityError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"created {path} and {directory / 'ca.key'}")


@certs.command("issue")
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="the directory holding the CA",
)
@click.option("--node", "node_name", help="issue a node certificate with this name")
@click.option("--client", "client_name", help="issue a client certificate (CN = user)")
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="more host names or IP addresses for a node certificate (repeatable)",
)
@click.option(
    "--id",
    "node_id",
    type=click.IntRange(min=1),
    help="the node's id (node certificates; peers accept only the id it names)",
)
@click.option("--cluster-id", help="the node's cluster_id (node certificates; with --id)")
def issue_command(
    directory: Path,
    node_name: str | None,
    client_name: str | None,
    hosts: tuple[str, ...],
    node_id: int | None,
    cluster_id: str | None,
) -> None:
    """Issue a certificate signed by the CA in --dir."""
    if (node_name is None) == (client_name is None):
        raise click.UsageError("give exactly one of --node NAME or --client NAME")
    if (node_id is None) != (cluster_id is None):
        raise click.UsageError("--id and --cluster-id go together")
    if client_name is not None and node_id is not None:
        raise click.UsageError("--id and --cluster-id are for node certificates")
    try:
        if node_name is not None:
            cert, key = issue(
                directory, node_name, node=True, hosts=hosts, node_id=node_id, cluster_id=cluster_id
            )
            if node_id is None:
                click.echo(
                    "warning: without --id and --cluster-id this certificate names no node, "
                    "and nodes refuse it on peer links",
                    err=True,
                )
        else:
            assert client_name is not None
            cert, key = issue(directory, client_name, node=False)
    except SecurityError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"created {cert} and {key}")


@certs.command("key")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def key(path: Path) -> None:
    """Write a new encryption-at-rest key (base64 of 32 random bytes) to PATH (0600)."""
    try:
        write_key_file(path)
    except FileExistsError:
        raise click.ClickException(f"{path} exists; keys are never overwritten") from None
    click.echo(f"created {path}")
