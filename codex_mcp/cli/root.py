"""The ``codex-mcp`` group: global options, logging, and errors as one line and an exit code."""

from __future__ import annotations

import importlib
import logging
import os
from pathlib import Path
from typing import Any, NoReturn

import click

from codex_mcp import __version__
from codex_mcp.errors import CodexError
from codex_mcp.settings import Settings

log = logging.getLogger("codex_mcp")

# Every command, by name, and the module of its group (codex_mcp/cli/<module>.py, listed there in
# ``COMMANDS``). A command loads its own group's module only: ``codex-mcp serve`` starts once per
# agent and has no use for the other eight (benchmarks, figure 1). A new command goes here too.
COMMAND_MODULES: dict[str, str] = {
    "serve": "serve",
    "ui": "serve",
    "install": "serve",
    "demo": "serve",
    "ls": "instances",
    "show": "instances",
    "events": "instances",
    "start": "actions",
    "attach": "actions",
    "kill": "actions",
    "resume": "actions",
    "reconcile": "actions",
    "diff": "landing",
    "merge": "landing",
    "open": "care",
    "feedback": "care",
    "clean": "care",
    "issues": "issues",
    "config": "config",
    "db": "db",
    "hook": "hook",
}


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    click.echo(f"codex-mcp: error: {' '.join(message.split())}", err=True)
    ctx.exit(code)


class Group(click.Group):
    """Loads each command's module when the command is asked for, and turns our errors into one clean
    line and an exit code; never a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"codex_mcp.cli.{COMMAND_MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CodexError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            _fail(
                ctx,
                f"internal error: {type(exc).__name__}: {exc} (set CODEX_MCP_LOG_LEVEL=DEBUG for the traceback)",
                70,
            )


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codex-mcp")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file to use (default: CODEX_MCP_DB, else <git common dir>/codex-mcp/codex.db).",
)
@click.option(
    "--log-level",
    default=None,
    metavar="LEVEL",
    help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: CODEX_MCP_LOG_LEVEL, else INFO).",
)
@click.pass_context
def cli(ctx: click.Context, db: Path | None, log_level: str | None) -> None:
    """Coordinate several coding agents on one repository: worktrees, tmux sessions, MCP tools.

    Every MCP tool call is recorded in a SQLite file shared by all worktrees of the repository.
    """
    from codex_mcp.logs import configure_logging

    # Validates every variable once, up front: a bad value is a clear error before anything runs.
    settings = Settings.load(db=db, log_level=log_level)
    ctx.obj = settings  # commands load their own (with their flags) but reuse its repository look-up
    explicit = log_level is not None or bool(os.environ.get("CODEX_MCP_LOG_LEVEL", "").strip())
    # Commands print their own results; only warnings are worth showing unless asked for more.
    configure_logging(settings.log_level if explicit else "WARNING")
