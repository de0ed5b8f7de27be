"""One writer process for tests/test_store.py: records mcp_events rows through the store.

Usage: store_writer.py DB_PATH INSTANCE_ID WORKER ROWS

Waits for its start line (stdin closed) after every import, so that all writers start together,
then records ROWS events, one ``db.write()`` transaction each that reads before it writes (as the
tools do: a deferred transaction would fail there under contention). Exits 0 only if all were written.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from codex_mcp.store import open_database
from codex_mcp.store.events import NewEvent, record
from codex_mcp.store.instances import get


async def main(path: Path, instance_id: str, worker: int, rows: int) -> None:
    db = await open_database(path)
    try:
        for n in range(rows):
            async with db.write() as tx:
                if await get(tx, instance_id) is None:
                    raise SystemExit(f"instance {instance_id} is missing")
                await record(
                    tx,
                    NewEvent(
                        instance_id=instance_id,
                        tool_name="store_writer",
                        success=True,
                        metadata={"worker": worker, "n": n},
                    ),
                )
    finally:
        await db.close()


if __name__ == "__main__":
    db_path, instance, worker_number, row_count = sys.argv[1:5]
    sys.stdin.read()
    asyncio.run(main(Path(db_path), instance, int(worker_number), int(row_count)))
