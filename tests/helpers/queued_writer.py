"""One event-row writer in the append queue, for tests/test_append_queue.py.

Usage: queued_writer.py DB_PATH NAME WAIT_SECONDS

Joins the database's append queue as a stdio server does (``Database.queue_appends``), then writes
one row ``INSERT INTO arrivals (name) VALUES (NAME)`` through ``insert_alone``, the path of every
tool call's event row, and prints ``wrote NAME``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from codex_mcp.store import open_database


async def main(path: Path, name: str, wait_seconds: float) -> None:
    # A long busy timeout: the tests hold SQLite's lock while the other writers start.
    db = await open_database(path, migrate=False, busy_timeout_ms=120_000)
    try:
        db.queue_appends(wait_seconds=wait_seconds)
        await db.insert_alone("INSERT INTO arrivals (name) VALUES (?)", (name,))
    finally:
        await db.close()
    print(f"wrote {name}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])))
