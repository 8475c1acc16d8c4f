"""Entry point of the `accord` command: a click group; subcommands live in sibling modules."""

from __future__ import annotations

import click

from accord import __version__


@click.group()
@click.version_option(__version__, prog_name="accord")
def cli() -> None:
    """Accord: a fault-tolerant, strongly consistent data system."""


from accord.cli.auth import role, user  # noqa: E402
from accord.cli.bench import bench  # noqa: E402
from accord.cli.certs import certs  # noqa: E402
from accord.cli.chaos import chaos  # noqa: E402
from accord.cli.kv import COMMANDS as KV_COMMANDS  # noqa: E402
from accord.cli.member import member  # noqa: E402
from accord.cli.node import node  # noqa: E402
from accord.cli.shard import shard  # noqa: E402
from accord.cli.sim import sim  # noqa: E402
from accord.cli.storage import storage  # noqa: E402
from accord.cli.up import up  # noqa: E402

for command in (
    up,
    node,
    member,
    shard,
    sim,
    storage,
    bench,
    chaos,
    certs,
    user,
    role,
    *KV_COMMANDS,
):
    cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
