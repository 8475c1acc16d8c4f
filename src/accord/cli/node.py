"""`accord node --config FILE`: run one node (flags override the file and ACCORD_*)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click

from accord.errors import AccordError
from accord.node.config import load_config


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
def node(
    config_path: Path | None,
    name: str | None,
    node_id: int | None,
    data_dir: str | None,
    client: str | None,
    peer: str | None,
    native: str | None,
    join: bool | None,
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
    }
    try:
        config = load_config(config_path, overrides=overrides)
    except AccordError as e:  # bad configuration, including [security]
        raise click.ClickException(str(e)) from e
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {config.name} %(levelname)s %(name)s: %(message)s",
    )
    from accord.node.server import serve

    try:
        _run(serve(config))
    except AccordError as e:  # e.g. a wrong encryption key: say why, without a traceback
        raise click.ClickException(f"cannot start node {config.name}: {e}") from e


def _run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)
