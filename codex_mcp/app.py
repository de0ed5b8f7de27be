"""What a running server (or CLI command) holds: settings, the open database, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from codex_mcp.errors import PermissionDenied
from codex_mcp.identity import Caller, resolve_caller
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database

if TYPE_CHECKING:
    from codex_mcp.lifecycle import Lifecycle


@dataclass
class App:
    settings: Settings
    db: Database
    caller: Caller | None = None
    # Serving many agents over HTTP: each request's caller comes from its bearer token.
    http: bool = False

    @property
    def lifecycle(self) -> Lifecycle:
        from codex_mcp.lifecycle import Lifecycle

        return Lifecycle(self.settings, self.db)

    def caller_for(self, ctx: Any, *, read_only: bool = True) -> Caller:
        """The instance a tool call acts for: from the request's token over HTTP, else the identity
        resolved at start (stdio)."""
        if self.http:
            from codex_mcp.http import caller_from_request

            caller = caller_from_request(ctx, read_only=read_only)
            if caller is None:
                raise PermissionDenied(
                    "this request carries no agent token; send `Authorization: Bearer <token>`"
                )
            return caller
        if self.caller is None:
            raise PermissionDenied("this server has no caller identity; start it with --instance ID")
        return self.caller


@asynccontextmanager
async def open_app(settings: Settings, *, identify: bool = False) -> AsyncIterator[App]:
    db = await open_database(settings.require_db_path())
    try:
        caller = await resolve_caller(settings, db) if identify else None
        yield App(settings=settings, db=db, caller=caller)
    finally:
        await db.close()
