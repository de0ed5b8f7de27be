"""``hook EVENT``: listed in ``codex-mcp --help``; ``codex_mcp.entry`` runs it before click even loads.

Agents run ``codex-mcp hook EVENT`` on every turn, and ``codex_mcp.entry`` sends that exact form to
``codex_mcp.hook`` without importing the command line. Any other form (global options before it, no
event) lands here and is handled by the same function, so the behaviour is one.
"""

from __future__ import annotations

import click


@click.command()
@click.argument("event", required=False)
@click.pass_context
def hook(ctx: click.Context, event: str | None) -> None:
    """Record a Claude Code hook event (EVENT: its name, JSON on stdin) as the instance's activity.

    Run by spawned Claude Code agents through the --settings file codex-mcp writes; always exits 0 and
    prints nothing (problems go to hook.log beside the database). Agents from CODEX_MCP_AGENT_COMMAND
    report no activity.
    """
    import os

    from codex_mcp.hook import main

    db = ctx.find_root().params.get("db")
    if db is not None:  # `codex-mcp --db FILE hook EVENT`: the hook reads its database from the environment
        os.environ["CODEX_MCP_DB"] = str(db)
    main([event] if event else [])


COMMANDS: list[click.Command] = [hook]
