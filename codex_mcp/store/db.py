"""The one connection factory, and transactions.

Every process (each stdio server, each CLI command) opens one aiosqlite connection configured for
many processes sharing one file: WAL, ``foreign_keys=ON``, a long ``busy_timeout`` and
``synchronous=NORMAL``. Every transaction that writes opens with ``BEGIN IMMEDIATE``: a deferred
read-then-write transaction would fail at once with SQLITE_BUSY whatever the timeout.

Write transactions are only opened by the store modules, whose bodies await nothing but SQLite;
a cancelled or failing body rolls back (shielded from the cancellation itself).

Beside it, two plain ``sqlite3`` connections used in the event loop's own thread, where a short
statement costs less than the hand-off to aiosqlite's thread and back: a read-only one for reads
outside transactions (in WAL a reader never waits for a writer), and one for single INSERTs (the
event row every tool call writes) that never blocks the loop while another process holds the lock
(see :meth:`Database.insert_alone`).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from codex_mcp.errors import DatabaseError
from codex_mcp.store import append_queue, checkpoints, migrations
from codex_mcp.store.checkpoints import Checkpointer

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 15_000
# How long a single INSERT waits before trying again for a write lock another process holds.
APPEND_RETRY_SECONDS = 0.0005
Params = Sequence[Any] | dict[str, Any]


def as_dict(row: sqlite3.Row) -> dict[str, Any]:
    """A row as a dict, for model validation: ``dict(row)`` looks every column up by name and costs a
    100-row listing twice as much as its validation does."""
    return dict(zip(row.keys(), row, strict=True))


def as_dicts(rows: Sequence[sqlite3.Row]) -> list[dict[str, Any]]:
    """Rows of one query as dicts: :func:`as_dict` with the column names taken once, not per row
    (``row.keys()`` builds the list of names again each time: 40 % of turning ten rows into dicts)."""
    if not rows:
        return []
    keys = rows[0].keys()
    return [dict(zip(keys, row, strict=True)) for row in rows]


class Tx:
    """The handle a write transaction's body gets: SQLite statements only, nothing else."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount

    async def insert(self, sql: str, params: Params = ()) -> int:
        """Run one INSERT; the new row's rowid."""
        row = await self._conn.execute_insert(sql, params)
        assert row is not None
        return int(row[0])

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        return list(await self._conn.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


class Database:
    """One open database file. Use :func:`open_database` to get one (it migrates on first use)."""

    def __init__(
        self,
        path: Path,
        conn: aiosqlite.Connection,
        *,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        reader: sqlite3.Connection | None = None,
        appender: sqlite3.Connection | None = None,
    ) -> None:
        self.path = path
        self._conn = conn
        # What ``conn`` was opened with (connect()): how long a lock held elsewhere is waited for.
        self.busy_timeout_ms = busy_timeout_ms
        self._read = Tx(conn)
        # Reads outside transactions run on this plain connection, in the event loop's thread: a
        # bounded query takes less time than handing it to aiosqlite's thread and back (a thread
        # switch each way, the larger part of a read tool's time on a loaded machine). In WAL a reader
        # never waits for writers; writes stay on ``conn``, where waiting for the lock blocks no one.
        self._reader = reader
        # Single INSERTs (an event row, written before every answer) run on this one, in the loop's
        # thread too, without SQLite's busy handler: see insert_alone.
        self._appender = appender
        # One connection serves every concurrent tool call of this process: transactions on it
        # must not interleave.
        self._write_lock = anyio.Lock()
        self._checkpointer: Checkpointer | None = None
        self._queue: append_queue.AppendQueue | None = None
        self._queue_turn = anyio.Lock()

    async def checkpoint_in_background(
        self,
        *,
        wal_bytes: int = checkpoints.WAL_BYTES,
        interval: float = checkpoints.INTERVAL_SECONDS,
        every: float = checkpoints.EVERY_SECONDS,
    ) -> None:
        """For a long-running server: WAL checkpoints run in a thread, no longer inside a commit.

        See :mod:`codex_mcp.store.checkpoints` (why, and the backstop the commits keep). Stopped by
        :meth:`close`.
        """
        if self._checkpointer is not None:
            return
        for pragma in (
            f"PRAGMA wal_autocheckpoint = {checkpoints.BACKSTOP_PAGES}",
            f"PRAGMA journal_size_limit = {checkpoints.SIZE_LIMIT_BYTES}",
        ):
            await self._conn.execute(pragma)
            if self._appender is not None:
                self._appender.execute(pragma)
        self._checkpointer = Checkpointer(self.path, wal_bytes=wal_bytes, interval=interval, every=every)
        self._checkpointer.start()

    def queue_appends(self, *, wait_seconds: float = append_queue.WAIT_SECONDS) -> None:
        """For a process serving one agent: its event rows wait their turn in the file's queue.

        See :mod:`codex_mcp.store.append_queue` (why, who joins it, and ``wait_seconds``). Left by
        :meth:`close`.
        """
        if self._queue is None and self._appender is not None:
            self._queue = append_queue.AppendQueue.open(self.path, wait_seconds=wait_seconds)

    def _wrote(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.written = True

    async def close(self) -> None:
        if self._checkpointer is not None:
            # A checkpoint under way finishes first (its fsyncs): waited for off the event loop.
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._checkpointer.stop)
        for plain in (self._reader, self._appender):
            if plain is not None:
                plain.close()
        if self._queue is not None:
            self._queue.close()
            self._queue = None
        with anyio.CancelScope(shield=True):
            await self._conn.close()

    async def __aenter__(self) -> Database:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def fetchall(self, sql: str, params: Params = (), *, unbounded: bool = False) -> list[sqlite3.Row]:
        """The rows of a read outside any transaction.

        ``unbounded``: the query has no LIMIT (``ls --all`` on a large database) and may take long:
        it runs in a worker thread on a connection of its own, so a long-running server keeps serving
        meanwhile (a plain connection belongs to its thread; the writer's could see an open
        transaction of this process).
        """
        try:
            if unbounded:
                return await anyio.to_thread.run_sync(
                    _read_alone, self.path, sql, params, self.busy_timeout_ms, abandon_on_cancel=True
                )
            if self._reader is not None:
                return self._reader.execute(sql, params).fetchall()
            return await self._read.fetchall(sql, params)
        except sqlite3.DatabaseError as exc:
            raise _database_error(self.path, exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def insert_alone(self, sql: str, params: Params = ()) -> int:
        """One INSERT as its own transaction (autocommit: a single round trip); the new rowid.

        Only for a write that stands alone; several writes that belong together use ``write()``.

        With an appender connection the statement runs in the loop's thread (no hand-off to another
        thread and back) and never blocks it: the connection has no busy timeout, so a write lock
        held by another process fails the attempt at once, and the attempt is retried after a
        sleep of APPEND_RETRY_SECONDS (other tasks run meanwhile) until ``busy_timeout_ms`` has passed.
        SQLite's own busy handler would sleep in growing steps (1, 2, 5, 10 ... 100 ms) instead,
        asleep long after the lock was free when many processes write at once.

        Tried and taken out again (figure 6, 32 servers): reading the pages the INSERT touches just
        before it, outside the lock. Another process's commit empties a connection's page cache, so
        the INSERT re-reads them while holding the lock; read beforehand, the lock was held a third
        less and met by 6 % of the inserts instead of 10 %. But the extra read transaction cost ~40 µs
        of CPU per call there, more than the waits it saved: 4 % fewer calls a second, and a p99 no
        better (three sittings against the version without it).
        """
        if self._appender is not None:
            return await self._append(sql, params)
        async with self._write_lock:  # never inside another task's open transaction on this connection
            try:
                row = await self._conn.execute_insert(sql, params)
            except sqlite3.OperationalError as exc:
                if (fault := self._write_fault(exc)) is not None:
                    raise fault from exc
                raise
        assert row is not None
        self._wrote()
        return int(row[0])

    async def _append(self, sql: str, params: Params) -> int:
        assert self._appender is not None
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        if self._queue is None:
            return await self._append_now(sql, params, deadline)
        # One ticket per process at a time: a second row of this process waits here, in the loop, not
        # in the kernel behind its own first one (which the stopped loop could then never finish).
        async with self._queue_turn:
            queue = self._queue
            if queue is None or self._write_lock.locked():
                # A transaction of this process may hold SQLite's lock that the writers ahead need,
                # and could not commit while the loop waits in the queue: this row goes unqueued.
                return await self._append_now(sql, params, deadline)
            ticket = queue.enter()
            try:
                return await self._append_now(sql, params, deadline)
            finally:
                if ticket is not None:
                    queue.leave(ticket)

    async def _append_now(self, sql: str, params: Params, deadline: float) -> int:
        assert self._appender is not None
        while True:
            try:
                cursor = self._appender.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    if (fault := self._write_fault(exc)) is not None:  # read-only, full: said in words
                        raise fault from exc
                    raise
                if time.monotonic() >= deadline:
                    raise self._write_fault(exc) or DatabaseError(
                        f"database {self.path} stayed locked by another process for "
                        f"{self.busy_timeout_ms / 1000:g} s; nothing was changed, retry in a moment"
                    ) from exc
                await anyio.sleep(APPEND_RETRY_SECONDS)
                continue
            assert cursor.lastrowid is not None
            self._wrote()
            return int(cursor.lastrowid)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A ``BEGIN IMMEDIATE`` transaction: committed when the body returns, rolled back otherwise."""
        async with self._write_lock:
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield Tx(self._conn)
            except BaseException as exc:
                # Even when BEGIN itself was cancelled: it may still be waiting for the lock in the
                # connection's thread, and would then leave a transaction open for good.
                with anyio.CancelScope(shield=True):
                    await _rollback(self._conn)
                if isinstance(exc, sqlite3.OperationalError) and (fault := self._write_fault(exc)):
                    raise fault from exc
                raise
            try:
                with anyio.CancelScope(shield=True):
                    await self._conn.execute("COMMIT")
                    self._wrote()
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await _rollback(self._conn)
                if isinstance(exc, sqlite3.OperationalError) and (fault := self._write_fault(exc)):
                    raise fault from exc
                raise

    async def check_writable(self) -> None:
        """Raise the :class:`DatabaseError` a write would meet now, before an action changes anything.

        A read-only file, folder or file system and a full disk are seen without writing; a write lock
        another process holds is waited for as long as a write would wait (``busy_timeout_ms``).
        """
        if (fault := unwritable_cause(self.path)) is not None:
            raise _unwritable(self.path, fault)
        async with self.write():
            pass

    def _write_fault(self, exc: sqlite3.OperationalError) -> DatabaseError | None:
        """A write that failed because of the file's surroundings, said in words; None for anything else."""
        fault = fault_cause(self.path, exc, busy_timeout_ms=self.busy_timeout_ms)
        return None if fault is None else _unwritable(self.path, fault)


def _unwritable(path: Path, fault: Fault) -> DatabaseError:
    return DatabaseError(
        f"cannot write to database {path}: {fault.cause}; nothing was changed, {fault.remedy}",
        cause=fault.cause,
        remedy=fault.remedy,
    )


async def _rollback(conn: aiosqlite.Connection) -> None:
    # Queued behind any statement still running, and a no-op there when no transaction is open.
    try:
        await conn.rollback()
    except sqlite3.Error:  # the transaction may already be gone (e.g. SQLite rolled it back itself)
        log.debug("rollback after failure failed", exc_info=True)


# Below this much free space a write is refused before it starts: SQLite needs whole pages (4 KiB)
# for the write-ahead log and its index, and everything an action does beside the database needs room too.
MIN_FREE_BYTES = 64 * 1024
ELSEWHERE = "(or set CODEX_MCP_DB to a file you can write), then retry"


@dataclass(frozen=True)
class Fault:
    """Why the database cannot be written (``cause``) and what a person does about it (``remedy``)."""

    cause: str
    remedy: str


def unwritable_cause(path: Path) -> Fault | None:
    """Why ``path`` cannot be written now, seen from the file system alone (None: no reason known).

    Root ignores file modes but not a read-only mount or a full disk: ``os.access`` and ``statvfs`` tell.
    """
    folder = path.parent
    try:
        stat = os.statvfs(folder)
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return Fault(
            f"the file system holding it ({folder}) is mounted read-only",
            f"remount it read-write {ELSEWHERE}",
        )
    if path.exists() and not os.access(path, os.W_OK):
        return Fault("the file is read-only for you", f"make it writable (chmod u+w) {ELSEWHERE}")
    if not os.access(folder, os.W_OK | os.X_OK):
        return Fault(
            f"its folder {folder} is read-only for you (SQLite writes its -wal and -shm files there)",
            f"make the folder writable {ELSEWHERE}",
        )
    free = (stat.f_bfree if os.geteuid() == 0 else stat.f_bavail) * stat.f_frsize
    if free < MIN_FREE_BYTES:
        return Fault(
            f"the disk holding it is full ({free} bytes free in {folder})",
            "free some space there, then retry",
        )
    return None


def fault_cause(path: Path, exc: sqlite3.Error, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Fault | None:
    """The cause of an SQLite failure that lies in the file's surroundings (a lock held elsewhere, a
    read-only file, a full disk, I/O); None when ``exc`` is something else (a constraint, a bug)."""
    text = str(exc)
    if "locked" in text or "busy" in text:
        return Fault(
            f"it stayed locked by another process for {busy_timeout_ms / 1000:g} s (the busy timeout)",
            "retry in a moment",
        )
    if "readonly" in text or "read-only" in text:
        return unwritable_cause(path) or Fault(
            "SQLite says it is read-only (the file, its -wal or -shm file, or its folder)",
            f"make them writable {ELSEWHERE}",
        )
    if "full" in text:
        return unwritable_cause(path) or Fault(
            "the disk holding it is full", "free some space there, then retry"
        )
    if "disk I/O" in text or "unable to open" in text:
        return unwritable_cause(path)
    return None


def _database_error(path: Path, exc: sqlite3.Error) -> DatabaseError:
    text = str(exc)
    if "file is not a database" in text or "malformed" in text:
        return DatabaseError(
            f"{path} is not a usable SQLite database ({text}); move it aside to start afresh, or point "
            "CODEX_MCP_DB at the right file"
        )
    if (fault := fault_cause(path, exc)) is not None:
        return DatabaseError(f"cannot use database {path}: {fault.cause}; {fault.remedy}")
    if "unable to open" in text or "readonly" in text or "disk I/O" in text:
        return DatabaseError(
            f"cannot use database {path} ({text}); check that the folder exists and is writable by you, "
            "or set CODEX_MCP_DB to a file you can write"
        )
    return DatabaseError(f"database {path}: {text}")


def check_creatable(path: Path) -> None:
    """Raise the error creating ``path`` would give, without creating anything."""
    existing = path.parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise DatabaseError(
            f"cannot create database {path}: {existing} is not a folder; set CODEX_MCP_DB to a file in a "
            "folder you can write"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DatabaseError(
            f"cannot create database {path}: {existing} is not writable by you; set CODEX_MCP_DB to a file "
            "in a folder you can write"
        )


def casefold(text: str | bytes | int | float | None) -> str | bytes | int | float | None:
    """SQL ``casefold(x)``: Python's full Unicode case folding (SQLite's ``lower()`` folds ASCII only,
    so "Über" and "über", "STRASSE" and "Straße" would not match); anything but text passes unchanged."""
    return text.casefold() if isinstance(text, str) else text


async def connect(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> aiosqlite.Connection:
    """Open ``path`` with the project's pragmas (creating the folder and file when missing).

    ``busy_timeout_ms``: how long a statement waits for a lock another process holds before failing.
    A new folder and file are private (0700 / 0600): the database holds prompts and every tool call.
    SQLite gives its -wal and -shm files the database file's permissions.
    """
    try:
        if not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:  # created by another process at the same moment
        pass
    except OSError as exc:
        raise DatabaseError(
            f"cannot create the folder for database {path} ({exc.strerror}); set CODEX_MCP_DB to a "
            "file in a folder you can write"
        ) from exc
    if path.is_dir():
        raise DatabaseError(f"database path {path} is a folder; set CODEX_MCP_DB to a file path")
    try:
        conn = await aiosqlite.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    except sqlite3.Error as exc:
        raise _database_error(path, exc) from exc
    conn.row_factory = sqlite3.Row
    try:
        await conn.create_function("casefold", 1, casefold, deterministic=True)
        await conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        # Refuse a file that is not a codex-mcp database before changing it (WAL mode is persistent).
        await migrations.current_version(conn, path)
        await _enable_wal(conn)
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        await conn.close()
        raise _database_error(path, exc) from exc
    except BaseException:
        with anyio.CancelScope(shield=True):
            await conn.close()
        raise
    return conn


def connect_reader(path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A read-only connection for :class:`Database` reads (the file exists: ``connect`` made it).

    ``query_only``: nothing written through it, ever. Used only from the thread that opened it.
    """
    try:
        reader = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
        reader.row_factory = sqlite3.Row
        reader.create_function("casefold", 1, casefold, deterministic=True)
        reader.execute("PRAGMA query_only = ON")
        # The same settings as the writer's, so that a PRAGMA read back says what the writes run with.
        reader.execute("PRAGMA foreign_keys = ON")
        reader.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise _database_error(path, exc) from exc
    return reader


def _read_alone(path: Path, sql: str, params: Params, busy_timeout_ms: int) -> list[sqlite3.Row]:
    """One read on a connection opened for it, in the calling (worker) thread."""
    reader = connect_reader(path, busy_timeout_ms=busy_timeout_ms)
    try:
        return reader.execute(sql, params).fetchall()
    finally:
        reader.close()


def connect_appender(path: Path) -> sqlite3.Connection:
    """The connection :meth:`Database.insert_alone` writes single rows with (see there).

    No busy timeout: a lock held elsewhere fails a statement at once, and the caller waits without
    blocking its thread. Used only from the thread that opened it.
    """
    try:
        appender = sqlite3.connect(path, isolation_level=None, timeout=0)
        appender.execute("PRAGMA foreign_keys = ON")
        appender.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.Error as exc:
        raise _database_error(path, exc) from exc
    return appender


async def _enable_wal(conn: aiosqlite.Connection) -> None:
    # Switching a new file to WAL needs a moment of exclusive access; when many processes create
    # the file at once, one of them may briefly see it locked even with a busy timeout.
    for attempt in range(50):
        try:
            rows = list(await conn.execute_fetchall("PRAGMA journal_mode = WAL"))
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            await anyio.sleep(0.02 * (attempt + 1))
            continue
        mode = str(rows[0][0]).lower() if rows else ""
        if mode != "wal":
            raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL could not be enabled")
        return
    raise sqlite3.OperationalError("database is locked: could not switch to WAL")
