"""The store: connection pragmas, write transactions, concurrency, query plans and the table modules.

Everything runs against real SQLite files under tmp_path. A "probe" is a plain sqlite3 connection
with no busy timeout: it sees only committed rows, and its ``BEGIN IMMEDIATE`` fails at once while
anyone else holds the write lock.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from codex_mcp.errors import DatabaseError, NotFoundError
from codex_mcp.store import Database, Tx, config, events, instances, issues, open_database, relationships
from codex_mcp.store.db import connect
from codex_mcp.store.events import NewEvent
from codex_mcp.store.instances import NewInstance
from codex_mcp.store.issues import Issue
from codex_mcp.store.relationships import Relationship

WRITER = Path(__file__).parent / "helpers" / "store_writer.py"


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    db = await open_database(tmp_path / "codex.db")
    try:
        yield db
    finally:
        await db.close()


@contextmanager
def probe(path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def write_lock_is_free(path: Path) -> bool:
    with probe(path) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            return False
        conn.execute("ROLLBACK")
        return True


def count(path: Path, table: str, where: str = "1", params: tuple[Any, ...] = ()) -> int:
    with probe(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", params).fetchone()[0])


async def add_instance(
    tx: Tx,
    instance_id: str,
    *,
    type: str = "work",
    issue_number: int | None = None,
    worktree: str | None = None,
    agent_number: int = 1,
) -> None:
    await instances.insert(
        tx,
        NewInstance(
            id=instance_id,
            type=type,  # type: ignore[arg-type]
            worktree_path=worktree or f"/worktrees/{instance_id}",
            branch_name=f"branch-{instance_id}",
            tmux_session=f"tmux-{instance_id}",
            issue_number=issue_number,
            agent_number=agent_number,
        ),
    )


def put_config_sql(key: str) -> tuple[str, tuple[str, str]]:
    return "INSERT INTO user_config (key, value) VALUES (?, ?)", (key, "v")


# --- 1. pragmas -------------------------------------------------------------------------------


async def test_connection_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "new" / "codex.db"
    conn = await connect(path)
    try:

        async def pragma(name: str) -> Any:
            return next(iter(await conn.execute_fetchall(f"PRAGMA {name}")))[0]

        assert str(await pragma("journal_mode")).lower() == "wal"
        assert await pragma("foreign_keys") == 1
        assert await pragma("busy_timeout") >= 10_000
        assert await pragma("synchronous") == 1  # NORMAL
    finally:
        await conn.close()

    db = await open_database(path)
    try:
        row = await db.fetchone("PRAGMA foreign_keys")
        assert row is not None and row[0] == 1
    finally:
        await db.close()
    with probe(path) as conn2:  # WAL is a property of the file: it persists
        assert conn2.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_reads_see_this_process_writes_at_once_and_never_write(database: Database) -> None:
    # Reads run on their own read-only connection: what a write committed is visible to the very next
    # read, a write transaction still sees its own uncommitted changes, and nothing is written by a read.
    async with database.write() as tx:
        await tx.execute("INSERT INTO user_config (key, value) VALUES ('a.b', '1')")
        assert await tx.fetchone("SELECT value FROM user_config WHERE key = 'a.b'") is not None
        assert await database.fetchone("SELECT value FROM user_config WHERE key = 'a.b'") is None
    row = await database.fetchone("SELECT value FROM user_config WHERE key = 'a.b'")
    assert row is not None and row[0] == "1"
    with pytest.raises(DatabaseError, match="read-only"):
        await database.fetchall("DELETE FROM user_config")
    assert await database.fetchone("SELECT value FROM user_config WHERE key = 'a.b'") is not None


async def test_an_unbounded_listing_lets_the_event_loop_serve_meanwhile(database: Database) -> None:
    """``ls --all`` of a large database in a long-running server (the dashboard's /api/instances):
    other requests keep being served while it reads, and it answers what a bounded read answers."""
    conn = sqlite3.connect(database.path)
    with conn:
        conn.executemany(
            "INSERT INTO instances (id, type, status, worktree_path, branch_name, tmux_session, agent_number) "
            "VALUES (?, 'adhoc', 'terminated', ?, 'main', '-', ?)",
            ((f"adhoc-a{n}", f"/w/adhoc-a{n}", n) for n in range(1, 30_001)),
        )
    conn.close()
    ticks: list[int] = []
    reading = True

    async def other_requests() -> None:
        while reading:
            ticks.append(1)
            await anyio.sleep(0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_requests)
        await anyio.sleep(0)
        before = len(ticks)
        everything = await instances.list_dashboard_summaries(database, status=None)
        during = len(ticks) - before
        reading = False
    assert len(everything) == 30_000
    assert during > 1, "the unbounded read held the event loop for all of its time"
    first = await instances.list_dashboard_summaries(database, status=None, limit=50)
    assert first == everything[:50]


async def test_a_lone_insert_waits_for_another_process_lock_without_blocking(database: Database) -> None:
    # Another process holds the write lock: the event insert waits for it, while this process's
    # other tasks (here: the one that ends the other transaction) keep running; then it lands.
    other = sqlite3.connect(database.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    inserted: list[int] = []

    async def insert() -> None:
        inserted.append(
            await database.insert_alone("INSERT INTO user_config (key, value) VALUES ('w.x', '1')")
        )

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(insert)
            await anyio.sleep(0.2)
            assert inserted == []  # still waiting for the lock
            other.execute("COMMIT")
    other.close()
    assert len(inserted) == 1
    assert await database.fetchone("SELECT value FROM user_config WHERE key = 'w.x'") is not None


async def test_a_lone_insert_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "codex.db", busy_timeout_ms=300)
    other = sqlite3.connect(db.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseError, match=r"stayed locked by another process for 0\.3 s"):
            await db.insert_alone("INSERT INTO user_config (key, value) VALUES ('w.y', '1')")
    finally:
        other.execute("ROLLBACK")
        other.close()
        await db.close()


# --- 2. write(): commit, rollback, cancellation -----------------------------------------------


async def test_write_commits_on_success(database: Database) -> None:
    async with database.write() as tx:
        await tx.execute(*put_config_sql("a"))
        assert count(database.path, "user_config") == 0  # not visible before the commit
    assert count(database.path, "user_config") == 1
    assert write_lock_is_free(database.path)


async def test_write_rolls_back_on_exception(database: Database) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with database.write() as tx:
            await tx.execute(*put_config_sql("a"))
            raise RuntimeError("boom")
    assert count(database.path, "user_config") == 0
    assert write_lock_is_free(database.path)
    async with database.write() as tx:  # the connection is usable again
        await tx.execute(*put_config_sql("b"))
    assert count(database.path, "user_config") == 1


async def test_write_rolls_back_when_cancelled_mid_transaction(database: Database) -> None:
    inserted, forever = anyio.Event(), anyio.Event()
    finished_body = False

    async def writer() -> None:
        nonlocal finished_body
        async with database.write() as tx:
            await tx.execute(*put_config_sql("cancelled"))
            inserted.set()
            await forever.wait()
            finished_body = True

    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await inserted.wait()
        assert not write_lock_is_free(database.path)  # the transaction really is open
        tg.cancel_scope.cancel()

    assert not finished_body
    assert count(database.path, "user_config") == 0
    assert write_lock_is_free(database.path)
    with probe(database.path) as other:  # a second connection can write at once
        other.execute("BEGIN IMMEDIATE")
        other.execute(*put_config_sql("other"))
        other.execute("COMMIT")
    async with database.write() as tx:
        await tx.execute(*put_config_sql("again"))
    assert count(database.path, "user_config") == 2


async def test_write_cancelled_while_waiting_for_the_lock_leaves_no_transaction(tmp_path: Path) -> None:
    """Cancelled while its BEGIN IMMEDIATE waits on another process's lock: nothing may stay open."""
    path = tmp_path / "codex.db"
    await (await open_database(path)).close()  # create and migrate the file
    conn = await connect(path)
    db = Database(path, conn)
    begin_started = threading.Event()
    await conn.set_trace_callback(lambda sql: begin_started.set() if sql.startswith("BEGIN") else None)

    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        scope = anyio.CancelScope()
        entered = False

        async def waiter() -> None:
            nonlocal entered
            with scope:
                async with db.write():
                    entered = True

        async with anyio.create_task_group() as tg:
            tg.start_soon(waiter)
            assert await anyio.to_thread.run_sync(begin_started.wait, 30)
            scope.cancel()
            holder.execute("COMMIT")  # the lock frees while the cancelled BEGIN is still pending
        assert not entered

        await db.fetchone("SELECT 1")  # runs after anything still queued on the connection
        assert write_lock_is_free(path)
        async with db.write() as tx:
            await tx.execute(*put_config_sql("after"))
        assert count(path, "user_config") == 1
    finally:
        holder.close()
        await db.close()


# --- 3. immediate transactions wait for each other instead of failing --------------------------


async def test_second_writer_waits_for_the_first_and_sees_its_commit(tmp_path: Path) -> None:
    path = tmp_path / "codex.db"
    db_a = await open_database(path)
    conn_b = await connect(path)
    db_b = Database(path, conn_b)
    b_began = threading.Event()
    await conn_b.set_trace_callback(lambda sql: b_began.set() if sql.startswith("BEGIN") else None)
    seen_by_b: list[int] = []
    b_done = anyio.Event()

    async def writer_b() -> None:
        async with db_b.write() as tx:  # read, then write: the pattern a deferred transaction breaks
            row = await tx.fetchone("SELECT COUNT(*) FROM user_config")
            assert row is not None
            seen_by_b.append(int(row[0]))
            await tx.execute(*put_config_sql(f"b{row[0]}"))
        b_done.set()

    try:
        async with anyio.create_task_group() as tg:
            async with db_a.write() as tx:
                await tx.execute(*put_config_sql("a"))
                tg.start_soon(writer_b)
                assert await anyio.to_thread.run_sync(b_began.wait, 30)  # B's BEGIN is running...
                assert not b_done.is_set()  # ...and cannot finish while A holds the lock
                assert seen_by_b == []
            await b_done.wait()
        assert seen_by_b == [1]  # B's transaction started after A's commit: it saw A's row
        with probe(path) as conn:
            assert [r[0] for r in conn.execute("SELECT key FROM user_config ORDER BY key")] == ["a", "b1"]
    finally:
        await db_a.close()
        await db_b.close()


def test_a_deferred_read_then_write_fails_whatever_the_timeout(tmp_path: Path) -> None:
    """Why write() uses BEGIN IMMEDIATE: a deferred transaction that read first cannot write."""
    path = tmp_path / "plain.db"
    with sqlite3.connect(path, isolation_level=None) as setup:
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (x INTEGER)")
    a = sqlite3.connect(path, timeout=15, isolation_level=None)
    b = sqlite3.connect(path, timeout=15, isolation_level=None)
    try:
        a.execute("BEGIN IMMEDIATE")
        a.execute("INSERT INTO t VALUES (1)")
        b.execute("BEGIN")  # deferred
        assert b.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
        a.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            b.execute("INSERT INTO t VALUES (2)")  # stale snapshot: SQLITE_BUSY at once
        b.execute("ROLLBACK")
    finally:
        a.close()
        b.close()


async def test_concurrent_writes_on_one_database_are_serialised(database: Database) -> None:
    release = anyio.Event()
    order: list[str] = []

    inside = anyio.Event()

    async def first() -> None:
        async with database.write() as tx:
            order.append("first-in")
            await tx.execute(*put_config_sql("first"))
            inside.set()
            await release.wait()
            order.append("first-out")

    async def second() -> None:
        async with database.write() as tx:
            order.append("second-in")
            await tx.execute(*put_config_sql("second"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await inside.wait()
        tg.start_soon(second)
        await anyio.wait_all_tasks_blocked()
        assert order == ["first-in"]  # the second waits for the first's transaction to end
        release.set()
    assert order == ["first-in", "first-out", "second-in"]
    assert count(database.path, "user_config") == 2


# --- 4. many writer processes -----------------------------------------------------------------


@pytest.mark.slow
async def test_sixteen_writer_processes(database: Database, tmp_path: Path) -> None:
    workers, rows = 16, 50
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
    logs = [tmp_path / f"writer-{n}.log" for n in range(workers)]
    processes = []
    for n, log in enumerate(logs):
        with log.open("w") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, str(WRITER), str(database.path), "work-1-a1", str(n), str(rows)],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    for process in processes:  # the start line
        assert process.stdin is not None
        process.stdin.close()
    for process, log in zip(processes, logs, strict=True):
        returncode = await anyio.to_thread.run_sync(process.wait, 120)
        assert returncode == 0, log.read_text()

    assert await events.count(database) == workers * rows
    by_worker = await database.fetchall(
        "SELECT json_extract(metadata, '$.worker') AS w, COUNT(DISTINCT json_extract(metadata, '$.n')) AS n "
        "FROM mcp_events GROUP BY w ORDER BY w"
    )
    assert [(r["w"], r["n"]) for r in by_worker] == [(n, rows) for n in range(workers)]


# --- 5. the seed's key queries use the seed's indexes -----------------------------------------


class RecordingDb:
    """Stands in for a Database: records the SQL a store function issues, then runs it for real."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls: list[tuple[str, list[Any]]] = []

    async def fetchall(self, sql: str, params: Any = (), *, unbounded: bool = False) -> list[sqlite3.Row]:
        self.calls.append((sql, list(params)))
        return await self.db.fetchall(sql, params, unbounded=unbounded)

    async def fetchone(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        self.calls.append((sql, list(params)))
        return await self.db.fetchone(sql, params)


async def populate_history(db: Database) -> None:
    """A realistic history: 600 instances, mostly terminated, over 60 issues; 6000 events over 60 days."""
    type_names = ("work", "review", "adhoc")
    async with db.write() as tx:
        await tx.executemany(
            "INSERT INTO instances (id, type, status, worktree_path, branch_name, tmux_session, issue_number, "
            "created_at, agent_number) VALUES (?, ?, ?, ?, 'b', 's', ?, datetime('2024-01-01', ? || ' hours'), 1)",
            [
                (
                    f"{type_names[n % 3]}-{n}",
                    type_names[n % 3],
                    "running" if n % 25 == 0 else "terminated",
                    f"/worktrees/{n}",
                    None if type_names[n % 3] == "adhoc" else n % 60,
                    f"+{n}",
                )
                for n in range(600)
            ],
        )
        await tx.executemany(
            "INSERT INTO instance_relationships (parent_instance, child_instance, relationship_type) "
            "VALUES (?, ?, ?)",
            [
                (f"work-{n}", f"review-{n + 1}", "spawned_review" if n % 2 else "created_fork")
                for n in range(0, 597, 3)
            ],
        )
        await tx.executemany(
            "INSERT INTO mcp_events (instance_id, tool_name, success, timestamp) "
            "VALUES (?, 'spawn_review_instance', 1, datetime('2024-01-01', ? || ' minutes'))",
            [(f"work-{(n % 200) * 3}", f"+{n * 14}") for n in range(6000)],
        )
        await tx.executemany(
            "INSERT INTO github_issues (number, title, state, repo_owner, repo_name) VALUES (?, ?, 'open', 'o', 'r')",
            [(n, f"Issue {n}") for n in range(60)],
        )


def plan(path: Path, sql: str, params: list[Any]) -> list[str]:
    with probe(path) as conn:
        return [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


async def planned(database: Database, call: Any) -> tuple[Any, list[str]]:
    recorder = RecordingDb(database)
    result = await call(recorder)
    assert len(recorder.calls) == 1
    sql, params = recorder.calls[0]
    return result, plan(database.path, sql, params)


def uses(details: list[str], index: str) -> bool:
    return any(f"USING INDEX {index} " in d or d.endswith(f"USING INDEX {index}") for d in details)


async def test_key_queries_use_the_seed_indexes(database: Database) -> None:
    # The application never runs ANALYZE, so neither does this test: these are the plans it gets.
    await populate_history(database)

    running, details = await planned(database, lambda d: instances.list_dashboard(d))
    # Newest rows of one status straight from the index (migration 9): no sort of every running row.
    assert uses(details, "idx_instances_status_created"), details
    assert not any("TEMP B-TREE" in d for d in details), details
    assert len(running) == 24 and all(i.status == "running" for i in running)
    assert running[0].created_at >= running[-1].created_at  # newest first
    assert all(i.issue_title == f"Issue {i.issue_number}" for i in running if i.issue_number is not None)

    work, details = await planned(
        database, lambda d: instances.list_dashboard(d, type="work", status="running")
    )
    assert uses(details, "idx_instances_status_created") or uses(details, "idx_instances_type_status"), (
        details
    )
    assert work and {(i.type, i.status) for i in work} == {("work", "running")}

    reviews, details = await planned(database, lambda d: relationships.reviews_spawned_from(d, "work-3"))
    assert uses(details, "idx_relationships_parent"), details
    assert [(r.id, r.relationship_type) for r in reviews] == [("review-4", "spawned_review")]

    grouped, details = await planned(database, lambda d: instances.list_for_issue(d, 7))
    assert uses(details, "idx_instances_issue"), details
    expected = [f"{('work', 'review')[n % 3]}-{n}" for n in range(7, 600, 60) if n % 3 != 2]
    assert [i.id for i in grouped] == expected and len(expected) == 10

    recent, details = await planned(database, lambda d: events.list_recent(d, since="2024-02-25 00:00:00"))
    assert uses(details, "idx_mcp_events_timestamp"), details
    assert recent and all(e.timestamp is not None and e.timestamp > "2024-02-25 00:00:00" for e in recent)
    assert all(e.instance_type == "work" for e in recent)

    mine, details = await planned(database, lambda d: events.list_recent(d, instance_id="work-3"))
    assert uses(details, "idx_mcp_events_instance"), details
    assert len(mine) == 30 and {e.instance_id for e in mine} == {"work-3"}


# --- 6. the table modules ---------------------------------------------------------------------


async def test_register_adhoc_is_idempotent_per_worktree(database: Database, tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    first, created = await instances.register_adhoc(
        database, worktree=worktree, branch_name="main", tmux_session="s1", base_branch="main"
    )
    assert created
    assert (first.id, first.type, first.status, first.agent_number) == ("adhoc-a1", "adhoc", "running", 1)
    assert first.worktree_path == str(worktree) and first.base_branch == "main"

    again, created_again = await instances.register_adhoc(
        database, worktree=worktree, branch_name="other", tmux_session="s2"
    )
    assert not created_again and again == first
    inside, created_inside = await instances.register_adhoc(
        database, worktree=worktree / "src" / "pkg", branch_name="main", tmux_session="s3"
    )
    assert not created_inside and inside.id == "adhoc-a1"
    assert count(database.path, "instances") == 1

    second, created_second = await instances.register_adhoc(
        database, worktree=tmp_path / "wt2", branch_name="main", tmux_session="s4"
    )
    assert created_second and second.id == "adhoc-a2" and second.agent_number == 2

    async with database.write() as tx:
        assert await instances.mark_terminated(tx, "adhoc-a1")
    third, created_third = await instances.register_adhoc(
        database, worktree=worktree, branch_name="main", tmux_session="s5"
    )
    assert created_third and third.id == "adhoc-a3"  # a terminated instance is not reused
    assert count(database.path, "instances") == 3


async def test_next_agent_number_counts_per_type_and_issue(database: Database) -> None:
    async with database.write() as tx:
        assert await instances.next_agent_number(tx, "work", 5) == 1
        await add_instance(tx, "work-5-a1", issue_number=5, agent_number=1)
        await add_instance(tx, "work-5-a2", issue_number=5, agent_number=2)
        await add_instance(tx, "review-5-a1", type="review", issue_number=5, agent_number=1)
        await add_instance(tx, "work-a4", issue_number=None, agent_number=4)
        await instances.mark_terminated(tx, "work-5-a2")  # terminated numbers are not reused
        assert await instances.next_agent_number(tx, "work", 5) == 3
        assert await instances.next_agent_number(tx, "review", 5) == 2
        assert await instances.next_agent_number(tx, "work", 6) == 1
        assert await instances.next_agent_number(tx, "work", None) == 5
        assert await instances.next_agent_number(tx, "adhoc", None) == 1


async def test_find_running_containing_prefers_the_deepest_worktree(
    database: Database, tmp_path: Path
) -> None:
    outer, inner = tmp_path / "repo", tmp_path / "repo" / "worktrees" / "work-1"
    async with database.write() as tx:
        await add_instance(tx, "adhoc-a1", type="adhoc", worktree=str(outer))
        await add_instance(tx, "work-1-a1", issue_number=1, worktree=str(inner))
    found = await instances.find_running_containing(database, inner / "src" / "x.py")
    assert found is not None and found.id == "work-1-a1"
    found = await instances.find_running_containing(database, inner)
    assert found is not None and found.id == "work-1-a1"
    found = await instances.find_running_containing(database, outer / "docs")
    assert found is not None and found.id == "adhoc-a1"
    assert await instances.find_running_containing(database, tmp_path / "elsewhere") is None
    assert await instances.find_running_containing(database, tmp_path / "repository") is None  # not a prefix

    async with database.write() as tx:
        await instances.mark_terminated(tx, "work-1-a1")
    found = await instances.find_running_containing(database, inner / "src")
    assert found is not None and found.id == "adhoc-a1"


async def test_mark_terminated_once(database: Database) -> None:
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
    before = await instances.require(database, "work-1-a1")
    assert before.status == "running" and before.terminated_at is None

    async with database.write() as tx:
        assert await instances.mark_terminated(tx, "work-1-a1") is True
    after = await instances.require(database, "work-1-a1")
    assert after.status == "terminated" and after.terminated_at is not None

    async with database.write() as tx:
        assert await instances.mark_terminated(tx, "work-1-a1") is False
        assert await instances.mark_terminated(tx, "no-such-a1") is False
    assert (await instances.require(database, "work-1-a1")).terminated_at == after.terminated_at
    assert await instances.get(database, "no-such-a1") is None
    with pytest.raises(NotFoundError, match="no-such-a1"):
        await instances.require(database, "no-such-a1")


async def test_list_dashboard_filters(database: Database) -> None:
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
        await add_instance(tx, "review-1-a1", type="review", issue_number=1)
        await add_instance(tx, "work-2-a1", issue_number=2)
        await instances.mark_terminated(tx, "work-2-a1")
        await issues.upsert_many(
            tx, [Issue(number=1, title="First", state="open", repo_owner="o", repo_name="r")]
        )

    running = await instances.list_dashboard(database)
    assert [i.id for i in running] == ["review-1-a1", "work-1-a1"]  # newest first (same second: rowid)
    assert {i.issue_title for i in running} == {"First"}
    assert [i.id for i in await instances.list_dashboard(database, status=None)] == [
        "work-2-a1",
        "review-1-a1",
        "work-1-a1",
    ]
    assert [i.id for i in await instances.list_dashboard(database, status="terminated")] == ["work-2-a1"]
    assert [i.id for i in await instances.list_dashboard(database, type="review")] == ["review-1-a1"]
    assert [i.id for i in await instances.list_dashboard(database, status=None, issue_number=1, limit=1)] == [
        "review-1-a1"
    ]
    assert [i.id for i in await instances.list_for_issue(database, 1)] == ["work-1-a1", "review-1-a1"]


async def test_relationships(database: Database) -> None:
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
        await add_instance(tx, "review-1-a1", type="review", issue_number=1)
        await add_instance(tx, "work-1-a2", issue_number=1, agent_number=2)
        await add_instance(tx, "work-2-a1", issue_number=2)
        await relationships.add(
            tx,
            Relationship(
                parent_instance="work-1-a1", child_instance="review-1-a1", relationship_type="spawned_review"
            ),
        )
        await relationships.add(
            tx,
            Relationship(
                parent_instance="work-1-a1", child_instance="work-1-a2", relationship_type="created_fork"
            ),
        )
        await issues.upsert_many(
            tx, [Issue(number=1, title="First", state="open", repo_owner="o", repo_name="r")]
        )

    children = await relationships.children_of(database, "work-1-a1")
    assert [(c.id, c.relationship_type) for c in children] == [
        ("review-1-a1", "spawned_review"),
        ("work-1-a2", "created_fork"),
    ]
    assert all(c.relationship_created is not None and c.issue_title == "First" for c in children)
    reviews = await relationships.reviews_spawned_from(database, "work-1-a1")
    assert [(r.id, r.type, r.relationship_type) for r in reviews] == [
        ("review-1-a1", "review", "spawned_review")
    ]
    parents = await relationships.parents_of(database, "review-1-a1")
    assert [(p.id, p.relationship_type) for p in parents] == [("work-1-a1", "spawned_review")]
    assert await relationships.parents_of(database, "work-1-a1") == []
    assert await relationships.children_of(database, "work-2-a1") == []
    assert await relationships.reviews_spawned_from(database, "review-1-a1") == []


async def test_relationship_to_a_missing_instance_fails_and_leaves_nothing(database: Database) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        async with database.write() as tx:
            await add_instance(tx, "work-1-a1", issue_number=1)
            await relationships.add(
                tx,
                Relationship(
                    parent_instance="work-1-a1",
                    child_instance="review-9-a1",
                    relationship_type="spawned_review",
                ),
            )
    assert count(database.path, "instance_relationships") == 0
    assert count(database.path, "instances") == 0  # the whole transaction was rolled back
    assert write_lock_is_free(database.path)

    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        async with database.write() as tx:
            await events.record(tx, NewEvent(instance_id="ghost", tool_name="t", success=True))
    assert count(database.path, "mcp_events") == 0


async def test_check_constraints_hold(database: Database) -> None:
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        async with database.write() as tx:
            await tx.execute("UPDATE instances SET status = 'idle' WHERE id = 'work-1-a1'")
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        async with database.write() as tx:
            await tx.execute(
                "INSERT INTO instance_relationships (parent_instance, child_instance, relationship_type) "
                "VALUES ('work-1-a1', 'work-1-a1', 'adopted')"
            )
    assert (await instances.require(database, "work-1-a1")).status == "running"
    assert count(database.path, "instance_relationships") == 0


async def test_events_record_and_list_recent(database: Database) -> None:
    metadata = {"duration_ms": 12.5, "args": {"issue": 7, "labels": ["a", "ü"]}, "ok": True, "none": None}
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
        await add_instance(tx, "review-1-a1", type="review", issue_number=1)
        ids = [
            await events.record(
                tx,
                NewEvent(
                    instance_id="work-1-a1",
                    tool_name="spawn_review_instance",
                    success=True,
                    metadata=metadata,
                ),
            ),
            await events.record(
                tx,
                NewEvent(
                    instance_id="review-1-a1",
                    tool_name="create_pull_request",
                    success=False,
                    error_message="gh failed",
                ),
            ),
            await events.record(
                tx, NewEvent(instance_id="work-1-a1", tool_name="create_pull_request", success=True)
            ),
            await events.record(tx, NewEvent(instance_id="work-1-a1", tool_name="old_tool", success=True)),
        ]
        stamps = ["2024-05-01 10:00:00", "2024-05-01 11:00:00", "2024-05-01 12:00:00", "2024-04-01 00:00:00"]
        for event_id, stamp in zip(ids, stamps, strict=True):
            await tx.execute("UPDATE mcp_events SET timestamp = ? WHERE id = ?", (stamp, event_id))

    everything = await events.list_recent(database)
    assert [e.id for e in everything] == [ids[2], ids[1], ids[0], ids[3]]  # newest first
    assert await events.count(database) == 4

    first = next(e for e in everything if e.id == ids[0])
    assert first.metadata == metadata and first.success is True and first.instance_type == "work"
    failed = next(e for e in everything if e.id == ids[1])
    assert failed.success is False and failed.error_message == "gh failed" and failed.metadata is None
    assert failed.instance_type == "review"

    assert [e.id for e in await events.list_recent(database, since="2024-05-01 00:00:00")] == ids[2::-1]
    assert [e.id for e in await events.list_recent(database, since="2024-05-01 11:00:00")] == [ids[2]]
    assert [e.id for e in await events.list_recent(database, instance_id="review-1-a1")] == [ids[1]]
    assert [e.id for e in await events.list_recent(database, tool_name="create_pull_request")] == [
        ids[2],
        ids[1],
    ]
    assert [e.id for e in await events.list_recent(database, success=False)] == [ids[1]]
    assert [
        e.id
        for e in await events.list_recent(
            database, success=True, instance_id="work-1-a1", since="2024-04-15 00:00:00"
        )
    ] == [ids[2], ids[0]]
    assert [e.id for e in await events.list_recent(database, limit=2)] == [ids[2], ids[1]]
    assert await events.list_recent(database, instance_id="nobody") == []


async def test_events_with_unusual_metadata_still_load(database: Database) -> None:
    async with database.write() as tx:
        await add_instance(tx, "work-1-a1", issue_number=1)
        for raw in ("[1, 2]", "{not json"):
            await tx.execute(
                "INSERT INTO mcp_events (instance_id, tool_name, success, metadata) VALUES ('work-1-a1', 't', 1, ?)",
                (raw,),
            )
    loaded = sorted((e.metadata for e in await events.list_recent(database)), key=str)
    assert loaded == [{"unparsed": "{not json"}, {"value": [1, 2]}]


async def test_issues_upsert_and_get(database: Database) -> None:
    def issue(number: int, **changes: Any) -> Issue:
        base: dict[str, Any] = {
            "number": number,
            "title": f"Issue {number}",
            "body": "text",
            "state": "open",
            "assignee": None,
            "labels": ["bug", "good first issue"],
            "created_at": "2024-01-01 00:00:00",
            "updated_at": "2024-01-02 00:00:00",
            "repo_owner": "octo",
            "repo_name": "repo",
        }
        return Issue.model_validate({**base, **changes})

    async with database.write() as tx:
        await issues.upsert_many(tx, [issue(1), issue(2, labels=[])])
    one = await issues.get(database, 1)
    assert one is not None
    assert (one.title, one.labels, one.state, one.repo_owner, one.body) == (
        "Issue 1",
        ["bug", "good first issue"],
        "open",
        "octo",
        "text",
    )
    assert one.synced_at is not None
    two = await issues.get(database, 2)
    assert two is not None and two.labels == []
    assert await issues.get(database, 3) is None

    async with database.write() as tx:
        await issues.upsert_many(
            tx,
            [
                issue(
                    1,
                    title="Renamed",
                    state="closed",
                    labels=["wontfix"],
                    assignee="me",
                    body=None,
                    updated_at="2024-02-01 00:00:00",
                )
            ],
        )
    updated = await issues.get(database, 1)
    assert updated is not None
    assert (
        updated.title,
        updated.state,
        updated.labels,
        updated.assignee,
        updated.body,
        updated.updated_at,
    ) == ("Renamed", "closed", ["wontfix"], "me", None, "2024-02-01 00:00:00")
    assert count(database.path, "github_issues") == 2

    async with database.write() as tx:
        await tx.execute("UPDATE github_issues SET labels = 'not json' WHERE number = 2")
    broken = await issues.get(database, 2)
    assert broken is not None and broken.labels == []


async def test_issue_text_search_folds_case_for_every_script(database: Database) -> None:
    """Search ignores case the way people mean it: Unicode case folding, not ASCII lower()."""

    def issue(number: int, title: str, body: str | None = None) -> Issue:
        return Issue(
            number=number, title=title, body=body, state="open", repo_owner="o", repo_name="r",
            updated_at=f"2024-01-0{number} 00:00:00",
        )  # fmt: skip

    async with database.write() as tx:
        await issues.upsert_many(
            tx,
            [
                issue(1, "Über die Straße"),
                issue(2, "Plain ASCII", body="ΣΊΣΥΦΟΣ rolls the stone"),
                issue(3, "Nothing here"),
            ],
        )

    async def found(text: str) -> list[int]:
        return [i.number for i in await issues.search(database, text=text)]

    assert await found("über") == [1]
    assert await found("STRASSE") == [1]  # ß folds to ss
    assert await found("σίσυφος") == [2]  # in the body; final sigma folds too
    assert await found("plain ascii") == [2]
    assert await found("straßen") == []


async def test_config_put_get_list_delete(database: Database) -> None:
    assert await config.get(database, "editor.command") is None
    assert await config.list_all(database) == []

    await config.put(database, "editor.command", "code", is_encrypted=False)
    await config.put(database, "github.token", "ciphertext", is_encrypted=True)
    row = await config.get(database, "github.token")
    assert row is not None and (row.value, row.is_encrypted) == ("ciphertext", True)
    assert row.updated_at is not None

    await config.put(database, "editor.command", "vim", is_encrypted=False)
    listed = await config.list_all(database)
    assert [(r.key, r.value, r.is_encrypted) for r in listed] == [
        ("editor.command", "vim", False),
        ("github.token", "ciphertext", True),
    ]

    assert await config.delete(database, "editor.command") is True
    assert await config.delete(database, "editor.command") is False
    assert [r.key for r in await config.list_all(database)] == ["github.token"]
    assert count(database.path, "user_config") == 1
