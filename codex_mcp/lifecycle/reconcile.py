"""Reconcile: the rows converge on what tmux says is alive.

A running row whose session is gone, or whose pane's agent has died, becomes terminated, once the row
is older than a grace period (its agent may still be starting). A tmux server that does not answer
is not "every session gone": its instances are left as they are and the socket is reported. On
request, sessions named like ours with no row and folders under the worktrees root with no running
row are listed as orphans (never removed), and running rows whose worktree folder is gone are flagged.

Liveness stays off the read path (a tmux process per read costs more than the read): reads check the
process ids of the running rows they are about to answer with (``Lifecycle.confirm_running``, one
``liveness.pid_alive`` each: ``kill(pid, 0)``, and not a zombie) and reconcile only when one is gone; long-running servers keep the table
converged in the background (``Lifecycle.keep_reconciled``: pids every few seconds, a full tmux
listing every minute, which also catches a session killed while its process lives on or a pid reused
by another process).
"""

from __future__ import annotations

import logging
from pathlib import Path

from codex_mcp.errors import InputError
from codex_mcp.git import supervision
from codex_mcp.ids import parse_instance_id
from codex_mcp.lifecycle.liveness import GRACE_SECONDS
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.outcomes import ReconcileReport
from codex_mcp.store import instances as instances_store
from codex_mcp.tmux import Tmux, TmuxUnreachable

log = logging.getLogger(__name__)


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
            b
            for b in await supervision.branches_under(workspace.main_root, "codex/")
            if b not in owned_branches
        )
        root = await workspace.worktrees_root()
        if root.is_dir():
            owned = {Path(i.worktree_path).resolve() for i in running.values()}
            for child in sorted(root.iterdir()):
                if child.is_dir() and child.resolve() not in owned:
                    report.orphan_worktrees.append(str(child))
    return report


def looks_like_ours(name: str) -> bool:
    try:
        parse_instance_id(name)
    except InputError:
        return False
    return True
