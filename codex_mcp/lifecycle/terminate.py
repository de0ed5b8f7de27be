"""Ending an instance: who may, its session, and what the cleanup policy does with its worktree.

An instance may end itself and the instances it spawned or forked (and theirs). The row is marked
terminated by the caller (in its tool transaction). An instance ending itself gets its answer first:
killing its session is an after-commit action, a separate process (``codex_mcp.lifecycle.finisher``) started
once the transaction has committed, which kills the session after a short delay and then cleans up.
The cleanup policy (``instances.cleanup_policy``) never deletes uncommitted work or commits that
are neither pushed nor merged, and never touches a worktree codex-mcp did not create.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from codex_mcp.errors import PermissionDenied, StateError
from codex_mcp.ids import parse_instance_id
from codex_mcp.lifecycle.cleanup import CLEANUP_POLICIES, CleanupPolicy, cleanup_worktree
from codex_mcp.lifecycle.finisher import FinishSpec
from codex_mcp.lifecycle.liveness import SELF_TERMINATE_DELAY
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.outcomes import CleanupOutcome, TerminateResult
from codex_mcp.store import instances as instances_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.instances import Instance
from codex_mcp.tmux import Tmux, TmuxError

# Starts something once the tool's transaction has committed (never undoes anything).
AfterCommit = Callable[[], Awaitable[None]]


async def authorize_terminate(workspace: Workspace, caller: Instance, target_id: str) -> Instance:
    parse_instance_id(target_id)
    db = workspace.db
    target = await instances_store.require(db, target_id)
    if target.id != caller.id and caller.status != "running":
        # Its authority ended with it: a terminated instance ends nothing, not even its children.
        raise PermissionDenied(
            f"{caller.id} is terminated; a terminated instance cannot terminate {target.id} (a person can: "
            f"`codex-mcp kill {target.id}`)"
        )
    if target.id != caller.id and target.id not in await relationships_store.descendant_ids(db, caller.id):
        raise PermissionDenied(
            f"{caller.id} may terminate itself and the instances it spawned or forked (and theirs), not {target.id}"
        )
    return target


async def terminate(
    workspace: Workspace,
    target: Instance,
    *,
    deferred: bool = False,
    self_terminate_delay: float = SELF_TERMINATE_DELAY,
) -> tuple[TerminateResult, AfterCommit | None]:
    """Kill the session (now, or ``deferred`` after the answer left) and clean up per the policy.

    The row is not touched here: the caller marks it terminated (in its tool transaction). A
    deferred termination returns the after-commit action that starts the finisher.
    """
    if target.status != "running":
        raise StateError(f"{target.id} is already terminated (at {target.terminated_at} UTC)")
    policy = await cleanup_policy(workspace)
    # Only worktrees we created (under the worktrees root) are ever cleaned up: an adhoc instance
    # registered in the main checkout or in a person's own worktree keeps it, whatever the policy.
    foreign = await workspace.foreign_worktree(target) if policy != "manual" else None
    if foreign:
        policy = "manual"
    tmux = Tmux(target.tmux_socket)
    if deferred:
        start = start_finisher(
            FinishSpec(
                socket=target.tmux_socket,
                session=target.tmux_session,
                delay=self_terminate_delay,
                main_root=str(workspace.main_root),
                worktree=target.worktree_path,
                branch=target.branch_name,
                base=target.base_branch,
                policy=policy,
            )
        )
        note = [f"cleanup ({policy}) runs after the session has ended"] if policy != "manual" else []
        return (
            TerminateResult(
                instance_id=target.id,
                status="terminated",
                session="scheduled",
                cleanup=CleanupOutcome(
                    worktree="kept", branch="kept", kept_because=note or [foreign or "policy manual"]
                ),
            ),
            start,
        )
    killed = await tmux.kill_session(target.tmux_session) if target.tmux_session else False
    if foreign:
        cleanup = CleanupOutcome(worktree="kept", branch="kept", kept_because=[foreign])
    else:
        cleanup = await cleanup_worktree(
            workspace.main_root, Path(target.worktree_path), target.branch_name, target.base_branch, policy
        )
    return (
        TerminateResult(
            instance_id=target.id,
            status="terminated",
            session="killed" if killed else "already_gone",
            cleanup=cleanup,
        ),
        None,
    )


async def terminate_now(workspace: Workspace, target: Instance) -> TerminateResult:
    """End ``target`` now, in the order that keeps every answer true: the row first, then the world.

    The row is marked terminated in its own transaction before anything is destroyed: when that write
    fails (the database locked, read-only, full) nothing was changed and the error says so. Then the
    session is killed and the cleanup policy applied. When tmux does not answer, the row stays
    terminated, nothing is removed from under the still-running agent, and the answer says so;
    `codex-mcp reconcile` then lists the session as an orphan.
    """
    if target.status != "running":
        raise StateError(f"{target.id} is already terminated (at {target.terminated_at} UTC)")
    policy = await cleanup_policy(workspace)
    foreign = await workspace.foreign_worktree(target) if policy != "manual" else None
    async with workspace.db.write() as tx:
        if not await instances_store.mark_terminated(tx, target.id):
            raise StateError(f"{target.id} was terminated a moment ago by someone else; nothing more to do")
    try:
        killed = (
            await Tmux(target.tmux_socket).kill_session(target.tmux_session) if target.tmux_session else False
        )
    except TmuxError as exc:
        reason = (
            f"tmux did not kill session {target.tmux_session} ({exc}); the instance is marked terminated, its "
            "worktree and branch are kept; end the session by hand (`codex-mcp reconcile` lists it)"
        )
        return TerminateResult(
            instance_id=target.id,
            status="terminated",
            session="not_killed",
            cleanup=CleanupOutcome(worktree="kept", branch="kept", kept_because=[reason]),
        )
    if foreign:
        cleanup = CleanupOutcome(worktree="kept", branch="kept", kept_because=[foreign])
    else:
        cleanup = await cleanup_worktree(
            workspace.main_root, Path(target.worktree_path), target.branch_name, target.base_branch, policy
        )
    return TerminateResult(
        instance_id=target.id,
        status="terminated",
        session="killed" if killed else "already_gone",
        cleanup=cleanup,
    )


async def cleanup_policy(workspace: Workspace) -> CleanupPolicy:
    value = await workspace.user_config.get("instances.cleanup_policy") or "manual"
    for policy in CLEANUP_POLICIES:
        if value == policy:
            return policy
    return "manual"


def start_finisher(spec: FinishSpec) -> AfterCommit:
    """The after-commit action that starts ``python -m codex_mcp.lifecycle.finisher SPEC``."""

    def popen() -> None:
        # A separate process in its own session: it outlives the tmux session it kills (ours).
        subprocess.Popen(
            [sys.executable, "-m", "codex_mcp.lifecycle.finisher", spec.to_json()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    async def start() -> None:
        await anyio.to_thread.run_sync(popen)  # fork and exec: off the event loop

    return start
