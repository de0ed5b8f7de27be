"""WAL checkpoints of a long-running server, run by a thread of their own instead of inside a call.

SQLite checkpoints on commit: a commit that finds the WAL longer than ``wal_autocheckpoint`` pages
copies it back into the database file, with two fsyncs, before the statement returns -- before the
call that wrote its event row can answer. When many servers write one file at once (figure 6: 32
servers, hundreds of rows a second) some reader always holds an older snapshot, so a checkpoint
rarely reaches the end of the WAL, the WAL stays past the threshold, and *every* commit ran one: an
event row cost 13 ms of waiting for the disk instead of 0.2 ms of CPU, and the calls' p99 doubled.

So a server's commits leave checkpoints to :class:`Checkpointer`: a thread that, while rows are
being written, looks at the WAL file every ``interval`` seconds and runs a PASSIVE checkpoint (it
never waits for a lock) once the file has grown by ``wal_bytes`` since its last one, or ``every``
seconds at the latest. (The file only grows: a WAL that a checkpoint emptied is written again from
its start; every server checkpointing every second would be 32 pairs of fsyncs a second for little.)
Its SQLite calls release the GIL, so the event loop keeps answering. The commits keep a backstop:
past ``BACKSTOP_PAGES`` they checkpoint themselves again, should the thread fall behind.
Short-lived processes (the CLI, the hook) keep SQLite's own checkpoints on commit.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

# While rows keep coming, a checkpoint rarely empties the WAL (it can restart from its start only once
# a checkpoint reached its end): it grows, by ~5 MB/s in figure 6. Every 16 MiB of growth, then, one try.
WAL_BYTES = 16 * 1024 * 1024
INTERVAL_SECONDS = 1.0
EVERY_SECONDS = 30.0
# wal_autocheckpoint of a server's own connections: a commit checkpoints only past 256 MiB of WAL, and a
# WAL emptied by a checkpoint is cut back to 64 MiB (journal_size_limit): a burst leaves no big file behind.
BACKSTOP_PAGES = 65_536
SIZE_LIMIT_BYTES = 64 * 1024 * 1024


class Checkpointer:
    """A daemon thread checkpointing ``path``'s WAL while rows are written (see the module)."""

    def __init__(
        self,
        path: Path,
        *,
        wal_bytes: int = WAL_BYTES,
        interval: float = INTERVAL_SECONDS,
        every: float = EVERY_SECONDS,
    ) -> None:
        self._path = path
        self._wal = Path(f"{path}-wal")
        self._wal_bytes = wal_bytes
        self._interval = interval
        self._every = every
        self._stop = threading.Event()
        # Set by each write (a plain attribute: no lock, no wake-up on the write's path); an idle
        # server's thread then only wakes to find it unset.
        self.written = False
        self.checkpoints = 0
        self._thread = threading.Thread(target=self._run, name="codex-mcp-checkpoints", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (a checkpoint under way finishes first, up to ``timeout`` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _wal_size(self) -> int:
        try:
            return self._wal.stat().st_size
        except OSError:
            return 0

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        # Growth is counted from the WAL as this server found it: a WAL that other servers made long
        # already is theirs to checkpoint, not a reason for every newly started one to do it at once.
        last_size, last_time = self._wal_size(), time.monotonic()
        try:
            while not self._stop.wait(self._interval):
                if not self.written:
                    continue
                self.written = False
                try:
                    size = self._wal_size()
                    if size - last_size < self._wal_bytes and time.monotonic() - last_time < self._every:
                        continue
                    last_size, last_time = size, time.monotonic()
                    if conn is None:
                        # Used only by this thread; no busy timeout: PASSIVE never waits anyway.
                        conn = sqlite3.connect(self._path, isolation_level=None, timeout=0)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except (OSError, sqlite3.Error) as exc:
                    # Busy (another process checkpoints), read-only, gone: the next round tries again.
                    log.debug("background checkpoint of %s skipped: %s", self._path, exc)
        finally:
            if conn is not None:
                conn.close()
