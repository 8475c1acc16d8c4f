"""`accord node --config FILE`: run one node (flags override the file and ACCORD_*)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from accord.errors import AccordError
from accord.observability.logs import NodeContext, configure_logging
from accord.server.config import LOG_FORMATS, LOG_LEVELS, TRACING_MODES, load_config


@click.command("node")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML configuration file",
)
@click.option("--name")
@click.option("--id", "node_id", type=int)
@click.option("--data-dir")
@click.option("--client", help="HOST:PORT of the HTTP API")
@click.option("--peer", help="HOST:PORT for Raft traffic")
@click.option("--native", help="HOST:PORT of the native client protocol")
@click.option("--join/--no-join", default=None, help="this node joins a running cluster")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), help="JSON lines or text")
@click.option("--log-level", type=click.Choice(LOG_LEVELS))
@click.option("--tracing", type=click.Choice(TRACING_MODES), help="where request spans go")
@click.option(
    "--request-timeout-s", type=float, help="deadline of a request that names none (seconds)"
)
@click.option(
    "--pending-reads-max", type=int, help="linearizable reads waiting in this node at once"
)
def node(
    config_path: Path | None,
    name: str | None,
    node_id: int | None,
    data_dir: str | None,
    client: str | None,
    peer: str | None,
    native: str | None,
    join: bool | None,
    log_format: str | None,
    log_level: str | None,
    tracing: str | None,
    request_timeout_s: float | None,
    pending_reads_max: int | None,
) -> None:
    """Run one Accord node until SIGINT/SIGTERM."""
    overrides = {
        "name": name,
        "id": node_id,
        "data_dir": data_dir,
        "client": client,
        "peer": peer,
        "native": native,
        "join": join,
        "log_format": log_format,
        "log_level": log_level,
        "tracing": tracing,
        "request_timeout_s": request_timeout_s,
        "pending_reads_max": pending_reads_max,
    }
    try:
        config = load_config(config_path, overrides=overrides)
    except AccordError as e:  # bad configuration, including [security]
        raise click.ClickException(str(e)) from e
    context = NodeContext(config.name, config.id)
    configure_logging(config.log_format, config.log_level, context)
    from accord.node import gcpolicy
    from accord.server.assembly import serve

    gcpolicy.enable()
    try:
        _run(serve(config, log_context=context))
    except AccordError as e:  # e.g. a wrong encryption key: say why, without a traceback
        raise click.ClickException(f"cannot start node {config.name}: {e}") from e


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
