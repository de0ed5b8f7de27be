"""A person's actions from the command line, recorded like tool calls (``mcp_events``, actor person).

Every command that changes something (``start``, ``kill``, ``resume``, ``reconcile``, ``config
set|unset``, ``issues sync``) runs its work through :func:`person_action`: the event is recorded under
the person's identity (:func:`codex_mcp.identity.person_caller`, the main checkout's instance, never
an agent's, even inside an agent's worktree), with ``via="cli"``, whether the action succeeds or is
refused; the command's output and exit code stay what they were. Reading (``ls``, ``show``,
``attach``) is not an action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from codex_mcp.cli.running import in_app

if TYPE_CHECKING:
    from pydantic import BaseModel

    from codex_mcp.app import App
    from codex_mcp.recording import ToolCall

ResultT = TypeVar("ResultT", bound="BaseModel")


def person_action(
    ctx: click.Context,
    name: str,
    arguments: dict[str, Any],
    body: Callable[[App, ToolCall], Awaitable[ResultT]],
    *,
    reconcile: bool = False,
) -> ResultT:
    """Open the app (converging with tmux first if asked), then run ``body`` as the person's action
    ``name`` with ``arguments`` (recorded redacted: pass no secret in them)."""

    async def act(app: App) -> ResultT:
        from codex_mcp.identity import person_caller
        from codex_mcp.recording import run_person_action

        caller = await person_caller(app.settings, app.db)
        return await run_person_action(app, caller, name, arguments, lambda call: body(app, call), via="cli")

    return in_app(ctx, act, reconcile=reconcile)
