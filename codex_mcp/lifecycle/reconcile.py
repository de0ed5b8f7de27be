"""Reconcile: the rows converge on what tmux says is alive.

A running row whose session is gone, or whose pane's agent has died, becomes terminated, once the row
is older than a grace period (its agent may still be starting). A tmux server that does not answer
is not "every session gone": its instances are left as they are and the socket is reported. On
request, sessions named like ours with no row and folders under the worktrees root with no running
row are listed as orphans (never removed), and running rows whose worktree folder is gone are flagged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from codex_mcp import git
from codex_mcp.errors import InputError
from codex_mcp.ids import parse_instance_id
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.outcomes import ReconcileReport
from codex_mcp.store import instances as instances_store
from codex_mcp.tmux import Tmux, TmuxUnreachable

log = logging.getLogger(__name__)

# Rows younger than this are left alone by reconcile: their agent may still be starting.
GRACE_SECONDS = 10.0


async def reconcile(
    workspace: Workspace, *, find_orphans: bool = False, grace_seconds: float = GRACE_SECONDS
) -> ReconcileReport:
    """Mark instances whose session is gone as terminated; optionally list orphans."""
    settings = workspace.settings
    db = workspace.db
    report = ReconcileReport()
    launched = await instances_store.list_running_launched(db)
    by_socket: dict[str | None, list[instances_store.LaunchedInstance]] = {}
    for row in launched:
        by_socket.setdefault(row.tmux_socket, []).append(row)
    if find_orphans:
        by_socket.setdefault(settings.tmux_socket, [])
    gone: list[str] = []
    sessions_here: dict[str, object] | None = None
    for socket, rows in by_socket.items():
        try:
            sessions = await Tmux(socket).list_sessions()
        except TmuxUnreachable as exc:
            log.warning("reconcile: %s; instances on it are left as they are", exc)
            report.unreachable_sockets.append(socket or "(default)")
            continue
        if socket == settings.tmux_socket:
            sessions_here = dict(sessions)
        for row in rows:
            if row.age_seconds < grace_seconds:
                continue
            info = sessions.get(row.tmux_session)
            if info is None or info.pane_dead:
                gone.append(row.id)
    report.terminated = await instances_store.mark_terminated_many(db, gone)
    if find_orphans:
        running = {i.id: i for i in await instances_store.list_running(db)}
        # A worktree deleted under a running agent: the row cannot be trusted to describe its work.
        report.missing_worktrees = sorted(
            i.id for i in running.values() if not Path(i.worktree_path).is_dir()
        )
        if sessions_here is not None:
            for name in sorted(sessions_here):
                if looks_like_ours(name) and name not in running:
                    report.orphan_sessions.append(name)
        every = await instances_store.list_dashboard_summaries(db, status=None)
        owned_branches = {r.branch_name for r in every}
        report.orphan_branches = sorted(
            b for b in await git.branches_under(workspace.main_root, "codex/") if b not in owned_branches
        )
        root = await workspace.worktrees_root()
        if root.is_dir():
            owned = {Path(i.worktree_path).resolve() for i in running.values()}
            for child in sorted(root.iterdir()):
                if child.is_dir() and child.resolve() not in owned:
                    report.orphan_worktrees.append(str(child))
    return report


async def reconcile_quietly(workspace: Workspace, *, grace_seconds: float = GRACE_SECONDS) -> None:
    """The cheap reconcile run before reads; never makes a read fail.

    While every launched agent's process is alive there is nothing to converge, and asking tmux
    (a process start per read) is skipped; a dead or missing pid triggers the full reconcile.
    """
    try:
        launched = await instances_store.list_running_launched(workspace.db)
        if all(pid_alive(row.claude_pid) for row in launched):
            return
        await reconcile(workspace, grace_seconds=grace_seconds)
    except Exception as exc:
        log.warning("reconcile before reading failed: %s", exc)


def pid_alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def looks_like_ours(name: str) -> bool:
    try:
        parse_instance_id(name)
    except InputError:
        return False
    return True
