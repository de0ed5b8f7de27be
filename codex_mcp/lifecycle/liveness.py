"""The lifecycle's timing knobs and the cheap liveness checks of reads and of the background reconcile.

A leaf: it imports nothing of the lifecycle, so that :class:`codex_mcp.lifecycle.Lifecycle`, a read
tool's first call and the background loop's pid passes load no chapter while every agent is alive.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from codex_mcp.store import instances as instances_store

if TYPE_CHECKING:
    from codex_mcp.store import Database

# Rows younger than this are left alone by reconcile: their agent may still be starting.
GRACE_SECONDS = 10.0
# The background reconcile of long-running servers: the pids of running agents every PID_CHECK_SECONDS,
# tmux itself every TMUX_CHECK_SECONDS. The second bounds how long a row can stay `running` after its
# session was killed while the pane's process survived (or its pid was reused), which no pid shows.
PID_CHECK_SECONDS = 5.0
TMUX_CHECK_SECONDS = 60.0
# When an instance terminates itself, its session is killed this long after the tool answered.
SELF_TERMINATE_DELAY = 1.5


class Living(Protocol):
    """What a liveness check needs of a row (instances, summaries, related instances)."""

    @property
    def status(self) -> str: ...

    @property
    def claude_pid(self) -> int | None: ...


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` runs: ``kill(pid, 0)``, and on Linux not a zombie.

    A zombie has exited and waits for its parent to collect it; ``kill(pid, 0)`` still succeeds. An
    agent's parent is the tmux server, which can close the session before it collects the process:
    its row must not stay ``running`` meanwhile.
    """
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive (or a zombie), owned by someone else
        pass
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """State ``Z`` in ``/proc/<pid>/stat``. The state follows the command name in parentheses, which
    may itself hold spaces and parentheses but no more than 15 bytes: the last ``)`` of the first 64
    bytes ends it. False where there is no ``/proc`` to ask. (~6 us: a read checks only the rows it
    answers with.)"""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        head = os.read(fd, 64)
    except OSError:
        return False
    finally:
        os.close(fd)
    end = head.rfind(b")")
    return end != -1 and head[end + 2 : end + 3] == b"Z"


def agents_alive(rows: Iterable[Living]) -> bool:
    """True while the agent of every running row with a pid is alive: one :func:`pid_alive` each."""
    return all(pid_alive(row.claude_pid) for row in rows if row.status == "running" and row.claude_pid)


async def launched_agents_alive(db: Database) -> bool:
    """True while the agent of every running instance we launched (its pid known) is alive."""
    return all(pid_alive(row.claude_pid) for row in await instances_store.list_running_launched(db))
