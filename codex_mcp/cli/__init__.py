"""The ``codex-mcp`` command.

Every command has help; ``--json`` output is keyed by the database's column names and stable for
scripts; errors are one line on stderr and a non-zero exit, never a traceback.

The package, by command group::

    root.py       the click group, its global options, errors turned into one line and an exit code
    output.py     --json and the tables (ids and dates never wrap), declared once for every command
    running.py    settings, the app opened around one call, an instance loaded by id
    instances.py  ls, show, events (what there is)
    actions.py    start, attach, kill, resume, reconcile (what changes it)
    issues.py, config.py, db.py, serve.py (serve, install, demo)

A new command is a function in the module of its group, listed in that module's ``COMMANDS`` and
in ``root.COMMAND_MODULES`` (a command's module is imported only when that command is asked for).

This module imports nothing heavy (not even click) so that the console entry point can answer a fast
path before the command tree is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

__all__ = ["cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``codex-mcp`` and ``python -m codex_mcp``."""
    from codex_mcp.cli.root import cli

    cli.main(args=list(argv) if argv is not None else None, prog_name="codex-mcp")


def __getattr__(name: str) -> click.Group:
    # ``from codex_mcp.cli import cli`` builds the command tree only when it is asked for.
    if name == "cli":
        from codex_mcp.cli.root import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
