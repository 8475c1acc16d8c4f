"""Entry point of the `accord` command: a click group; subcommands live in sibling modules."""

from __future__ import annotations

import click

from accord import __version__


@click.group()
@click.version_option(__version__, prog_name="accord")
def cli() -> None:
    """Accord: a fault-tolerant, strongly consistent data system."""


def main() -> None:
    cli()
