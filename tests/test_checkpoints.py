"""WAL checkpoints of a server run in a thread of their own (codex_mcp/store/checkpoints.py), not in a commit.

The database file itself only grows when a checkpoint copies the WAL back into it: that is what these
tests watch, on a real file with real connections.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from support import new_instance, wait_for

from codex_mcp.store import Database, open_database
from codex_mcp.store import events as events_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store.checkpoints import Checkpointer
from codex_mcp.store.events import NewEvent

# About 3 KB each, ~40 new pages, and fewer WAL pages than SQLite's own threshold (1000): no commit
# checkpoints these rows by itself.
ROWS = 40


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "codex-mcp-checkpoints" and t.is_alive()]


async def emptied_wal_then_rows(db: Database, path: Path, worktree: Path) -> int:
    """The database file's size once everything so far is in it; then ROWS event rows, one commit each."""
    async with db.write() as tx:
        await instances_store.insert(tx, new_instance("adhoc-a1", worktree))
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    size = path.stat().st_size
    for n in range(ROWS):
        event = NewEvent(
            instance_id="adhoc-a1",
            tool_name="query_instances",
            success=True,
            metadata={"n": n, "pad": "x" * 3000},
        )
        await events_store.record_alone(db, event)
    return size


async def test_a_servers_rows_reach_the_database_file_through_its_checkpoint_thread(tmp_path: Path) -> None:
    path = tmp_path / "codex.db"
    db = await open_database(path)
    try:
        await db.checkpoint_in_background(wal_bytes=1, interval=0.01, every=0.0)
        assert len(checkpoint_threads()) == 1
        before = await emptied_wal_then_rows(db, path, tmp_path / "w")
        await wait_for(lambda: path.stat().st_size > before, timeout=20)
    finally:
        await db.close()
    assert checkpoint_threads() == [], "close() stops the thread"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM mcp_events").fetchone()[0] == ROWS


async def test_without_the_thread_commits_keep_sqlites_own_checkpoints(tmp_path: Path) -> None:
    """A CLI command opens no thread; its few rows wait in the WAL for SQLite's threshold, as before."""
    path = tmp_path / "codex.db"
    db = await open_database(path)
    try:
        before = await emptied_wal_then_rows(db, path, tmp_path / "w")
        assert checkpoint_threads() == []
        assert path.stat().st_size == before
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM mcp_events").fetchone()[0] == ROWS
    finally:
        await db.close()


async def test_a_new_server_counts_the_wals_growth_from_what_it_found(tmp_path: Path) -> None:
    """32 servers starting on a busy database must not all checkpoint the WAL others made, at once."""
    path = tmp_path / "codex.db"
    db = await open_database(path)
    try:
        await emptied_wal_then_rows(db, path, tmp_path / "w")  # a WAL of ~120 KB, left to SQLite
        wal = Path(f"{path}-wal").stat().st_size
        late = Checkpointer(path, wal_bytes=wal // 2, interval=0.01, every=3600)
        late.start()
        try:
            late.written = True
            await wait_for(lambda: not late.written, timeout=20)  # it has looked at the WAL
            assert late.checkpoints == 0  # the WAL has not grown since it started
            for _ in range(ROWS):  # grown by about as much again: now it is its turn
                await events_store.record_alone(
                    db,
                    NewEvent(instance_id="adhoc-a1", tool_name="t", success=True, metadata={"p": "y" * 3000}),
                )
            late.written = True
            await wait_for(lambda: late.checkpoints == 1, timeout=20)
        finally:
            late.stop()
    finally:
        await db.close()
