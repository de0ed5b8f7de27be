"""The append queue (store/append_queue.py): event rows of many processes written in the order they came.

Real writer processes (tests/helpers/queued_writer.py) on a real database file; another connection
holds SQLite's write lock while they line up, and lets go once they all have.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from support import tickets_taken

from codex_mcp.store import Database, open_database
from codex_mcp.store.append_queue import AppendQueue, queue_path

WRITER = Path(__file__).parent / "helpers" / "queued_writer.py"
pytestmark = pytest.mark.slow


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "codex.db"

    async def create() -> None:
        db = await open_database(path)
        await db.close()

    anyio.run(create)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE arrivals (name TEXT NOT NULL)")
    return path


@pytest.fixture
def lock_held(db_path: Path) -> Iterator[sqlite3.Connection]:
    """SQLite's write lock, held by another connection until the test ends its transaction."""
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield other
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def writers() -> Iterator[list[subprocess.Popen[str]]]:
    """The writer processes a test starts; none outlives it."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for writer in started:
        if writer.poll() is None:
            writer.kill()
            writer.wait()


def start_writer(
    started: list[subprocess.Popen[str]], db_path: Path, name: str, wait_seconds: float
) -> subprocess.Popen[str]:
    writer = subprocess.Popen(
        [sys.executable, str(WRITER), str(db_path), name, str(wait_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started.append(writer)
    return writer


def guard_taken(db_path: Path) -> bool:
    """Whether a writer holds the queue's guard (the flock it takes a ticket under): /proc/locks."""
    inode = queue_path(db_path).stat().st_ino
    return any(
        line.split()[1] == "FLOCK" and int(line.split()[5].rsplit(":", 1)[1]) == inode
        for line in Path("/proc/locks").read_text().splitlines()
        if "->" not in line
    )


def wait_until_queued(db_path: Path, tickets: int, writer: subprocess.Popen[str]) -> None:
    """Until ``tickets`` writers have taken a ticket and let go of the guard (the newest one is then
    waiting its turn, or writing)."""
    deadline = time.monotonic() + 60
    while tickets_taken(db_path) < tickets or guard_taken(db_path):
        assert writer.poll() is None, f"the writer ended before it queued: {writer.communicate()}"
        assert time.monotonic() < deadline, "the writer never took its ticket"
        time.sleep(0.01)


def finish(writer: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = writer.communicate(timeout=timeout)
    assert writer.returncode == 0, err
    return out


def arrivals(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM arrivals ORDER BY rowid")]


def test_writers_write_in_the_order_they_came(
    db_path: Path, lock_held: sqlite3.Connection, writers: list[subprocess.Popen[str]]
) -> None:
    # Without the queue, eight writers that each retry a held lock every half millisecond take it in
    # whatever order they happen to try it once it is free.
    names = [f"w{n}" for n in range(8)]
    for n, name in enumerate(names, 1):
        wait_until_queued(db_path, n, start_writer(writers, db_path, name, wait_seconds=60))
    assert arrivals(db_path) == []
    lock_held.execute("ROLLBACK")
    for writer, name in zip(writers, names, strict=True):
        assert finish(writer) == f"wrote {name}\n"
    assert arrivals(db_path) == names
    # The queue's file is its owner's alone, like the database beside it.
    assert queue_path(db_path).stat().st_mode & 0o777 == 0o600


def test_a_stopped_writer_holds_the_next_one_up_only_for_the_wait(
    db_path: Path, lock_held: sqlite3.Connection, writers: list[subprocess.Popen[str]]
) -> None:
    first = start_writer(writers, db_path, "stopped", wait_seconds=60)
    wait_until_queued(db_path, 1, first)
    os.kill(first.pid, signal.SIGSTOP)  # first in line, then stopped (kill -STOP, a debugger)
    try:
        second = start_writer(writers, db_path, "next", wait_seconds=0.5)
        wait_until_queued(db_path, 2, second)
        lock_held.execute("ROLLBACK")
        # Without a bound on its wait, it would wait as long as the first stays stopped.
        assert finish(second) == "wrote next\n"
        assert arrivals(db_path) == ["next"]
        assert first.poll() is None
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert finish(first) == "wrote stopped\n"
    assert arrivals(db_path) == ["next", "stopped"]


def test_a_writer_killed_in_the_queue_holds_nobody_up(
    db_path: Path, lock_held: sqlite3.Connection, writers: list[subprocess.Popen[str]]
) -> None:
    first = start_writer(writers, db_path, "killed", wait_seconds=60)
    wait_until_queued(db_path, 1, first)
    second = start_writer(writers, db_path, "next", wait_seconds=600)
    wait_until_queued(db_path, 2, second)
    first.kill()  # its locks go with it
    first.wait()
    lock_held.execute("ROLLBACK")
    # Far sooner than its own bound on the wait: nobody is ahead of it any more.
    assert finish(second, timeout=60) == "wrote next\n"
    assert arrivals(db_path) == ["next"]


def test_a_symlink_in_the_queue_file_place_is_not_followed(
    db_path: Path, tmp_path: Path, writers: list[subprocess.Popen[str]]
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"")
    queue_path(db_path).symlink_to(elsewhere)
    assert finish(start_writer(writers, db_path, "alone", wait_seconds=60)) == "wrote alone\n"
    assert arrivals(db_path) == ["alone"]  # written, without a queue
    assert elsewhere.read_bytes() == b""


# In-process: pytest-timeout's own SIGALRM handler is off for these tests (timeout 0), or no queue
# could be opened here at all.


@pytest.mark.timeout(0)
def test_no_queue_outside_the_main_thread_or_where_sigalrm_is_taken(db_path: Path) -> None:
    assert signal.getsignal(signal.SIGALRM) is signal.SIG_DFL
    opened: list[AppendQueue | None] = []
    thread = threading.Thread(target=lambda: opened.append(AppendQueue.open(db_path)))
    thread.start()
    thread.join()
    assert opened == [None]

    def someone_elses(signum: int, frame: object) -> None:
        pass

    signal.signal(signal.SIGALRM, someone_elses)
    try:
        assert AppendQueue.open(db_path) is None
        assert signal.getsignal(signal.SIGALRM) is someone_elses
    finally:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert not queue_path(db_path).exists()

    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    try:
        assert AppendQueue.open(db_path) is None  # its waits could not be cut short
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGALRM])

    queue = AppendQueue.open(db_path)  # and where nothing stands in the way, one is opened
    assert queue is not None
    try:
        with pytest.raises(ValueError, match="more than 0"):
            AppendQueue.open(db_path, wait_seconds=0)
        ticket = queue.enter()
        assert ticket == 0
        queue.leave(ticket)
        # The last ticket a counter of eight bytes holds is followed by the first.
        with queue_path(db_path).open("r+b") as raw:
            raw.write(b"\xff" * 8)
        ticket = queue.enter()
        assert ticket == 2**64 - 1
        queue.leave(ticket)
        assert tickets_taken(db_path) == 0
    finally:
        queue.close()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    queue.leave(ticket)  # after close: nothing (the descriptor's number may be another file's by now)
    queue.close()


async def inserted(db: Database, name: str) -> None:
    await db.insert_alone("INSERT INTO arrivals (name) VALUES (?)", (name,))


@pytest.mark.timeout(0)
async def test_two_rows_of_one_process_take_one_ticket_at_a_time(
    db_path: Path, lock_held: sqlite3.Connection, writers: list[subprocess.Popen[str]]
) -> None:
    db = await open_database(db_path)
    db.queue_appends(wait_seconds=60)
    try:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(inserted, db, "first")
                await anyio.sleep(0.2)
                assert tickets_taken(db_path) == 1  # first in line, waiting for SQLite's lock
                other = start_writer(writers, db_path, "other", wait_seconds=60)
                wait_until_queued(db_path, 2, other)
                group.start_soon(inserted, db, "second")
                await anyio.sleep(0.2)
                # Waiting in this process for "first" to finish, not in the queue behind "other"
                # (which waits for "first": the loop, stopped in that wait, could not finish it).
                assert tickets_taken(db_path) == 2
                lock_held.execute("ROLLBACK")
        assert finish(other) == "wrote other\n"
    finally:
        await db.close()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert arrivals(db_path) == ["first", "other", "second"]


@pytest.mark.timeout(0)
async def test_a_row_written_while_this_process_holds_a_transaction_does_not_queue(
    db_path: Path, writers: list[subprocess.Popen[str]]
) -> None:
    db = await open_database(db_path)
    db.queue_appends(wait_seconds=60)
    try:
        with anyio.fail_after(30):
            # The transaction holds SQLite's write lock; the task group waits for the row after it.
            async with anyio.create_task_group() as group, db.write() as tx:
                await tx.execute("INSERT INTO arrivals (name) VALUES ('transaction')")
                other = start_writer(writers, db_path, "other", wait_seconds=60)
                wait_until_queued(db_path, 1, other)  # first in line, waiting for that lock
                group.start_soon(inserted, db, "row")
                # Queued behind "other", the row would stop the loop for 60 s: the transaction
                # could not commit, so "other" could not write.
                await anyio.sleep(0.2)
        assert finish(other) == "wrote other\n"
    finally:
        await db.close()
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert tickets_taken(db_path) == 1
    assert arrivals(db_path)[0] == "transaction"
    assert sorted(arrivals(db_path)[1:]) == ["other", "row"]
