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

from codex_mcp.store import open_database
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


def start_writer(db_path: Path, name: str, wait_seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), str(db_path), name, str(wait_seconds)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def tickets_taken(db_path: Path) -> int:
    try:
        raw = queue_path(db_path).read_bytes()[:8]
    except FileNotFoundError:
        return 0
    return int.from_bytes(raw, "little") if len(raw) == 8 else 0


def wait_until_queued(db_path: Path, tickets: int, writer: subprocess.Popen[str]) -> None:
    """Until ``tickets`` writers have taken a ticket (the newest one is then waiting its turn)."""
    deadline = time.monotonic() + 60
    while tickets_taken(db_path) < tickets:
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


def test_writers_write_in_the_order_they_came(db_path: Path, lock_held: sqlite3.Connection) -> None:
    # Without the queue, eight writers that each retry a held lock every half millisecond take it in
    # whatever order they happen to try it once it is free.
    names = [f"w{n}" for n in range(8)]
    writers = []
    for n, name in enumerate(names, 1):
        writers.append(start_writer(db_path, name, wait_seconds=60))
        wait_until_queued(db_path, n, writers[-1])
    assert arrivals(db_path) == []
    lock_held.execute("ROLLBACK")
    for writer, name in zip(writers, names, strict=True):
        assert finish(writer) == f"wrote {name}\n"
    assert arrivals(db_path) == names
    # The queue's file is its owner's alone, like the database beside it.
    assert queue_path(db_path).stat().st_mode & 0o777 == 0o600


def test_a_stopped_writer_holds_the_next_one_up_only_for_the_wait(
    db_path: Path, lock_held: sqlite3.Connection
) -> None:
    first = start_writer(db_path, "stopped", wait_seconds=60)
    wait_until_queued(db_path, 1, first)
    os.kill(first.pid, signal.SIGSTOP)  # first in line, then stopped (kill -STOP, a debugger)
    try:
        second = start_writer(db_path, "next", wait_seconds=0.5)
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


def test_a_writer_killed_in_the_queue_holds_nobody_up(db_path: Path, lock_held: sqlite3.Connection) -> None:
    first = start_writer(db_path, "killed", wait_seconds=60)
    wait_until_queued(db_path, 1, first)
    second = start_writer(db_path, "next", wait_seconds=600)
    wait_until_queued(db_path, 2, second)
    first.kill()  # its locks go with it
    first.wait()
    lock_held.execute("ROLLBACK")
    # Far sooner than its own bound on the wait: nobody is ahead of it any more.
    assert finish(second, timeout=60) == "wrote next\n"
    assert arrivals(db_path) == ["next"]


def test_a_symlink_in_the_queue_file_place_is_not_followed(db_path: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"")
    queue_path(db_path).symlink_to(elsewhere)
    assert finish(start_writer(db_path, "alone", wait_seconds=60)) == "wrote alone\n"
    assert arrivals(db_path) == ["alone"]  # written, without a queue
    assert elsewhere.read_bytes() == b""


def test_no_queue_outside_the_main_thread_or_where_sigalrm_is_taken(db_path: Path) -> None:
    opened: list[AppendQueue | None] = []
    thread = threading.Thread(target=lambda: opened.append(AppendQueue.open(db_path)))
    thread.start()
    thread.join()
    assert opened == [None]

    def someone_elses(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGALRM, someone_elses)
    try:
        assert AppendQueue.open(db_path) is None
        assert signal.getsignal(signal.SIGALRM) is someone_elses
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not queue_path(db_path).exists()
