"""What a running server (or CLI command) holds: settings, the open database, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codex_mcp.errors import PermissionDenied
from codex_mcp.identity import Caller, CallerResolver
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database

if TYPE_CHECKING:
    from codex_mcp.lifecycle import Lifecycle


@dataclass
class App:
    settings: Settings
    db: Database
    # The identity resolved at start (a stdio server, a test); None when the server serves many agents.
    caller: Caller | None = None
    # How each tool call's caller is found, injected by the composition root (codex_mcp/serve.py) for
    # its transport. None: every call acts for ``caller``.
    resolve: CallerResolver | None = None

    @property
    def lifecycle(self) -> Lifecycle:
        from codex_mcp.lifecycle import Lifecycle

        return Lifecycle(self.settings, self.db)

    async def caller_for(self, ctx: Any, *, read_only: bool = True) -> Caller:
        """The instance a tool call acts for (``ctx``: the SDK's request context of that call)."""
        if self.resolve is not None:
            return await self.resolve(ctx, read_only=read_only)
        if self.caller is None:
            raise PermissionDenied("this server has no caller identity; start it with --instance ID")
        return self.caller


@asynccontextmanager
async def open_app(settings: Settings) -> AsyncIterator[App]:
    db = await open_database(settings.require_db_path())
    try:
        yield App(settings=settings, db=db)
    finally:
        await db.close()
