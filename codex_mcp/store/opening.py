"""Opening the database file: connect, then migrate (or only check the version)."""

from __future__ import annotations

from pathlib import Path

import anyio

from codex_mcp.store import migrations
from codex_mcp.store.db import BUSY_TIMEOUT_MS, Database, connect, connect_appender, connect_reader


async def open_database(
    path: Path,
    *,
    migrate: bool = True,
    migration_files: list[migrations.Migration] | None = None,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> Database:
    """Open the database file, applying pending migrations (``migrate=False`` only reads the version).

    A database newer than this code is refused either way. ``busy_timeout_ms``: how long a write waits
    for a lock another process holds before it fails with a DatabaseError.
    """
    conn = await connect(path, busy_timeout_ms=busy_timeout_ms)
    try:
        if migrate:
            await migrations.migrate(conn, path, migration_files)
        else:
            migrations.refuse_newer(await migrations.status(conn, path, migration_files), path)
        reader = connect_reader(path, busy_timeout_ms=busy_timeout_ms)
        appender = connect_appender(path)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.close()
        raise
    return Database(path, conn, busy_timeout_ms=busy_timeout_ms, reader=reader, appender=appender)
