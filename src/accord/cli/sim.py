"""`accord sim ...`: the deterministic simulator (same options as `python -m accord.sim`)."""

from __future__ import annotations

import sys

import click


@click.command(
    "sim",
    context_settings={"ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sim(args: tuple[str, ...]) -> None:
    """Run Raft clusters under simulated faults and check them (see --help)."""
    from accord.sim.__main__ import main

    sys.exit(main(list(args)))
