"""The ``github_sync_pages`` table: ETags of the issue listing's pages, for conditional requests."""

from __future__ import annotations

from pydantic import BaseModel

from codex_mcp.store.db import Database, Tx


class SyncPage(BaseModel):
    request: str
    etag: str
    next_request: str | None = None


async def get(db: Database, request: str) -> SyncPage | None:
    row = await db.fetchone(
        "SELECT request, etag, next_request FROM github_sync_pages WHERE request = ?", (request,)
    )
    return SyncPage.model_validate(dict(row)) if row else None


async def requests(db: Database) -> list[str]:
    """The requests of the latest sync's listing (their query holds the ``since`` it used)."""
    rows = await db.fetchall("SELECT request FROM github_sync_pages ORDER BY request")
    return [str(r[0]) for r in rows]


async def replace_all(tx: Tx, pages: list[SyncPage]) -> None:
    """Keep exactly the pages of the latest sync (older queries will not be asked again)."""
    await tx.execute("DELETE FROM github_sync_pages")
    await tx.executemany(
        "INSERT INTO github_sync_pages (request, etag, next_request) VALUES (?, ?, ?)",
        [(p.request, p.etag, p.next_request) for p in pages],
    )
