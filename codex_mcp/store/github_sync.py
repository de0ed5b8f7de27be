"""The ``github_sync_pages`` table: ETags for conditional requests to GitHub.

Two kinds of rows, told apart by their request key: the issue listing's pages (``owner/name
issues?<query>``), replaced as a whole by each sync, and single pull requests (``owner/name
pulls/<number>``), kept one by one by the pull request poll.
"""

from __future__ import annotations

from codex_mcp.store.db import Database, Tx
from codex_mcp.store.rows import Row


class SyncPage(Row):
    request: str
    etag: str
    next_request: str | None = None


_LISTING = "instr(request, ' issues?') > 0"


async def get(db: Database | Tx, request: str) -> SyncPage | None:
    row = await db.fetchone(
        "SELECT request, etag, next_request FROM github_sync_pages WHERE request = ?", (request,)
    )
    return SyncPage.model_validate(dict(row)) if row else None


async def listing(db: Database) -> dict[str, SyncPage]:
    """The pages of the latest sync's listing, by request, in request order (a request's query holds
    the ``since`` that listing used). One query for a whole sync, not one per page."""
    rows = await db.fetchall(
        f"SELECT request, etag, next_request FROM github_sync_pages WHERE {_LISTING} ORDER BY request"
    )
    return {str(r[0]): SyncPage.model_validate(dict(r)) for r in rows}


async def replace_all(tx: Tx, pages: list[SyncPage]) -> None:
    """Keep exactly the pages of the latest sync (older queries will not be asked again); the pull
    requests' ETags stay."""
    await tx.execute(f"DELETE FROM github_sync_pages WHERE {_LISTING}")
    await tx.executemany(
        "INSERT INTO github_sync_pages (request, etag, next_request) VALUES (?, ?, ?)",
        [(p.request, p.etag, p.next_request) for p in pages],
    )


async def put(tx: Tx, page: SyncPage) -> None:
    """Keep one request's ETag (a pull request's), replacing the one it had."""
    await tx.execute(
        "INSERT INTO github_sync_pages (request, etag, next_request) VALUES (?, ?, ?) "
        "ON CONFLICT (request) DO UPDATE SET etag = excluded.etag, next_request = excluded.next_request, "
        "fetched_at = CURRENT_TIMESTAMP",
        (page.request, page.etag, page.next_request),
    )
