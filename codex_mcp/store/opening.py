"""Opening the database file: connect, then migrate (or only check the version)."""

from __future__ import annotations

from pathlib import Path

import anyio

from codex_mcp.store import migrations
from codex_mcp.store.db import Database, connect


async def open_database(
    path: Path, *, migrate: bool = True, migration_files: list[migrations.Migration] | None = None
) -> Database:
    """Open the database file, applying pending migrations (``migrate=False`` only reads the version).

    A database newer than this code is refused either way.
    """
    conn = await connect(path)
    try:
        if migrate:
            await migrations.migrate(conn, path, migration_files)
        else:
            migrations.refuse_newer(await migrations.status(conn, path, migration_files), path)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.close()
        raise
    return Database(path, conn)
