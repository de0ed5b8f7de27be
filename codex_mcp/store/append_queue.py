"""A first-come, first-served queue for the event rows of many servers writing one database file.

Every tool call writes its event row before it is answered (``Database.insert_alone``). When many
agents' servers do so at once (figure 6: 32 servers on two cores), they meet on SQLite's write lock,
which has no queue: a writer that finds it held can only try again later. Whoever tries at the right
moment wins, so a writer that lost once may lose again and again while newcomers pass it, and every
try costs CPU the lock's holder needs. The calls' p99 was 1.2-1.4x the p99 of as many bare servers
that write nothing, moving with how busy the machine was.

This queue is what the writers wait in instead. Each takes a ticket and waits, blocked in the kernel
(no CPU, no polling), for the writer just before it to finish; then it writes. One wake-up per hand
over, in the order of arrival. Figure 6 in eight sittings, each alternating it with the code without
it and the bare servers: p99 0.74-0.81x the bare servers' instead of 1.11-1.22x (a call now waits
for the calls that came before it, never for luck). The price is throughput in such a storm: each
hand over waits for the next writer to be scheduled, so the rounds' wall time was 1.09-1.28x the
bare servers' instead of 0.96-1.14x, and the calls' p50 rose from ~21 to ~26 ms. Alone, a writer
finds nobody ahead and pays eight system calls (~6 us). Tried and left out: letting two writers
through at a time (p99 1.04-1.06x, wall time 0.90-0.99x: faster, but a tail near the old one); a
plain ``flock`` everyone blocks on (the kernel wakes every waiter at each release and the order is
luck's: 2.7x); the queue joined only after a failed first try (newcomers pass it: 2.6x); waiting
for the writer ahead by polling its lock (1.5x, and half the throughput).

How. One small file beside the database, ``<database>-queue``, private to its owner:

* bytes 0-7 hold the next ticket number; a writer reads and advances it under an exclusive ``flock``
  of the whole file (the guard, held for three system calls);
* byte ``SLOTS_AT + ticket % SLOTS`` is the ticket's slot: the writer locks it (``fcntl`` record
  lock) before it lets go of the guard, then waits for a shared lock on the slot of the ticket before
  its own, drops that at once, writes, and unlocks its own slot: the next writer's turn. Only one
  writer ever waits on a slot, so a release wakes exactly one process.

Nothing else in a process may open the file: closing any descriptor of it drops every record lock
the process holds there (POSIX). Locks go away with their process, so a writer killed in the queue holds nobody up. A writer that
stopped (``kill -STOP``, a debugger) would, so each wait is bounded by ``WAIT_SECONDS``
(``SIGALRM`` interrupts it); past it the writer goes ahead out of turn. Out of turn is safe: the
queue only orders the tries, SQLite's lock still decides who writes, and the writer then tries as it
would without a queue.

The wait blocks the event loop's thread, so only a process that serves one agent joins the queue
(``serve`` over stdio: its calls each wait for their own row anyway). A process serving many clients
(HTTP, the dashboard) writes without it, and so does any caller not in the main thread (signals
are delivered there) or whose process already uses ``SIGALRM``.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)

# How long a writer waits for the guard, or for the writer before it, before it goes ahead out of turn.
# A healthy queue of 32 writers moves through in ~30 ms.
WAIT_SECONDS = 1.0
SLOTS = 4096
SLOTS_AT = 4096


class _OutOfTurn(Exception):
    """Raised by the SIGALRM handler into a wait that took too long."""


def queue_path(database: Path) -> Path:
    return Path(f"{database}-queue")


class AppendQueue:
    """One process's place in the queue of ``<database>-queue`` (see the module)."""

    def __init__(self, fd: int, path: Path, wait_seconds: float) -> None:
        self._fd = fd
        self.path = path
        self.wait_seconds = wait_seconds
        self._thread = threading.get_ident()

    @classmethod
    def open(cls, database: Path, *, wait_seconds: float = WAIT_SECONDS) -> AppendQueue | None:
        """This process's queue for ``database``; None where it cannot join one (said in the log).

        ``wait_seconds``: how long a writer waits for the one ahead before going ahead out of turn.
        """
        if not wait_seconds > 0:
            raise ValueError(f"wait_seconds must be more than 0, not {wait_seconds!r}")
        path = queue_path(database)
        if threading.current_thread() is not threading.main_thread():
            log.debug("event rows written without a queue: not in the main thread")
            return None
        in_use = signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, _on_alarm)
        if in_use or signal.getitimer(signal.ITIMER_REAL) != (0.0, 0.0):
            log.info("event rows written without a queue: this process already uses SIGALRM")
            return None
        if signal.SIGALRM in signal.pthread_sigmask(signal.SIG_BLOCK, []):
            # Inherited from whoever started this process: the waits would have no bound.
            log.info("event rows written without a queue: SIGALRM is blocked in this process")
            return None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            # A read-only folder, a file of another user: the rows are still written, only unqueued.
            log.info("event rows written without a queue: cannot open %s (%s)", path, exc.strerror or exc)
            return None
        signal.signal(signal.SIGALRM, _on_alarm)
        return cls(fd, path, wait_seconds)

    def enter(self) -> int | None:
        """Wait for this writer's turn; its ticket, to give to :meth:`leave`, or None for no turn taken.

        Returns at once when nobody is ahead. Never raises: a queue that cannot be used (a lock
        refused, a wait past ``wait_seconds``, a file that makes no sense) only means writing out of
        turn. The caller makes sure that this process holds one ticket at a time, and that nothing
        it holds (SQLite's write lock) is needed by the writers ahead: this waits with the event loop
        stopped.
        """
        if self._fd < 0 or threading.get_ident() != self._thread:
            return None
        fd = self._fd
        try:
            # The guard is held for three system calls: a longer wait means its holder stopped.
            _take(self.wait_seconds / 10, fcntl.flock, fd, fcntl.LOCK_EX)
        except (_OutOfTurn, OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)  # the signal may have come just after the guard was taken
            log.debug("event row written out of turn: the queue's guard stayed taken")
            return None
        try:
            raw = os.pread(fd, 8, 0)
            ticket = int.from_bytes(raw, "little") if len(raw) == 8 else 0
            # Free unless SLOTS writers are queued at once; if not, this one goes ahead unqueued.
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, _slot(ticket))
            try:
                os.pwrite(fd, ((ticket + 1) % 2**64).to_bytes(8, "little"), 0)
            except BaseException:
                fcntl.lockf(fd, fcntl.LOCK_UN, 1, _slot(ticket))
                raise
        except Exception as exc:
            log.debug("event row written out of turn: %s", exc)
            return None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        ahead = _slot(ticket - 1)
        try:
            _take(self.wait_seconds, fcntl.lockf, fd, fcntl.LOCK_SH, 1, ahead)
        except _OutOfTurn:
            log.info(
                "the writer ahead in %s did not write within %g s; this one went ahead",
                self.path,
                self.wait_seconds,
            )
        except OSError as exc:  # e.g. EDEADLK: the kernel saw a cycle of waits
            log.debug("event row written out of turn: %s", exc)
        # Unlocked also after an interrupted wait: the signal may have come just after the lock was taken.
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, ahead)
        return ticket

    def leave(self, ticket: int) -> None:
        """This writer's row is written (or given up): the next one's turn."""
        if self._fd >= 0:
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, _slot(ticket))

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases every lock this process holds on the file
            self._fd = -1


def _slot(ticket: int) -> int:
    return SLOTS_AT + ticket % SLOTS


# The SIGALRM handler raises only into a wait: a signal that comes after the wait ended is ignored.
# Waits happen in the main thread only, one at a time.
_waiting = False


def _take(seconds: float, lock: Callable[..., object], fd: int, operation: int, *args: int) -> None:
    """Take the lock: at once if it is free (no timer), else waiting at most ``seconds`` (then _OutOfTurn)."""
    global _waiting
    try:
        lock(fd, operation | fcntl.LOCK_NB, *args)
        return
    except OSError as exc:
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
    _waiting = True
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)
        lock(fd, operation, *args)
    finally:
        _waiting = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    global _waiting
    if _waiting:
        _waiting = False
        raise _OutOfTurn
