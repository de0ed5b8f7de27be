"""How a command reaches the system: its settings, the app opened around one async call, an instance.

Heavy modules (the app, the store, lifecycle) are imported inside the functions: ``codex-mcp --help``
and every command's help stay quick, and a command pays only for what it uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import click

from codex_mcp import git
from codex_mcp.settings import Settings

if TYPE_CHECKING:
    from codex_mcp.app import App
    from codex_mcp.store.instances import Instance

T = TypeVar("T")


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


def settings_of(ctx: click.Context, **flags: Any) -> Settings:
    """Settings from the environment and the root options (``--db``, ``--log-level``), plus ``flags``."""
    root = ctx.find_root()
    loaded = root.obj if isinstance(root.obj, Settings) else None

    def locate(here: Path) -> git.RepoLocation | None:
        # The root command located the repository already: one git process per command, not two.
        return loaded.repo if loaded is not None and loaded.cwd == here else git.locate(here)

    return Settings.load(
        db=root.params.get("db"), log_level=root.params.get("log_level"), locate=locate, **flags
    )


def in_app(ctx: click.Context, act: Callable[[App], Awaitable[T]], *, reconcile: bool = False) -> T:
    """Open the app, converge with tmux first if asked (what a person lists should be true), ``act``."""
    from codex_mcp.app import open_app

    async def main() -> T:
        async with open_app(settings_of(ctx)) as app:
            if reconcile:
                await app.lifecycle.reconcile_quietly()
            return await act(app)

    return run(main)


def with_instance(
    ctx: click.Context,
    instance_id: str,
    act: Callable[[App, Instance], Awaitable[T]],
    *,
    reconcile: bool = True,
) -> T:
    """Open the app, converge with tmux (unless told not to), load ``instance_id`` and ``act`` on it."""
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.store import instances

    validate_instance_id(instance_id)

    async def main(app: App) -> T:
        return await act(app, await instances.require(app.db, instance_id))

    return in_app(ctx, main, reconcile=reconcile)
