"""Spawning an instance: branch, worktree, launch files and tmux session, then its row.

Side effects outside SQLite are made first and each registers its compensation; the database row
comes last, in the same transaction as the tool's event. When any step fails -- a branch or folder
in the way, tmux refusing, the agent command missing, the database busy -- the compensations run in
reverse and nothing claims to be running. The agent itself waits (in the launcher) until its row is
committed. Work instances are started by a person (``codex-mcp start``), reviews and forks by an
instance (through its tools).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import anyio

from codex_mcp import git
from codex_mcp.agents import AgentFiles, new_session_id, write_launch_files
from codex_mcp.errors import InputError, PermissionDenied, StateError
from codex_mcp.ids import InstanceType, check_issue_number
from codex_mcp.lifecycle import prompts
from codex_mcp.lifecycle.workspace import (
    Compensation,
    Workspace,
    add_worktree,
    reserve_branch,
    worktree_path,
)
from codex_mcp.outcomes import ForkResult, SpawnReviewResult
from codex_mcp.store import Tx
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.instances import Instance, NewInstance
from codex_mcp.tmux import Tmux, TmuxError
from codex_mcp.tokens import new_token

log = logging.getLogger(__name__)

Progress = Callable[[float, float | None, str], Awaitable[None]]
# Builds the agent's prompt once its id, worktree and branch are known.
MakePrompt = Callable[[str, Path, str], str]
SPAWN_STEPS = 4.0
DEFAULT_REVIEW_CAP = "3"


@dataclass
class Prepared:
    """A spawn whose worktree, branch and session exist; ``write`` records it, ``compensate`` removes it."""

    new: NewInstance
    worktree: Path
    branch: str
    session: str
    review_cap: tuple[str, int] | None = None
    compensations: list[Compensation] = field(default_factory=list)

    async def write(self, tx: Tx) -> None:
        if self.review_cap is not None:
            parent, cap = self.review_cap
            # Checked again inside the transaction: concurrent requests cannot exceed the cap.
            if await relationships_store.count_reviews_spawned_from(tx, parent) >= cap:
                raise StateError(review_cap_message(parent, cap))
        await instances_store.insert(tx, self.new)

    async def compensate(self) -> None:
        await run_compensations(self.compensations)

    def review_result(self) -> SpawnReviewResult:
        """What spawn_review_instance publishes about this (review) spawn."""
        return SpawnReviewResult(
            review_instance_id=self.new.id,
            session_name=self.session,
            worktree_path=str(self.worktree),
            branch_name=self.branch,
        )

    def fork_result(self) -> ForkResult:
        """What fork_instance publishes about this (fork) spawn."""
        return ForkResult(
            instance_id=self.new.id,
            session_name=self.session,
            worktree_path=str(self.worktree),
            branch_name=self.branch,
        )


async def run_compensations(compensations: list[Compensation]) -> None:
    with anyio.CancelScope(shield=True):
        for step in reversed(compensations):
            try:
                await step()
            except Exception:
                log.exception(
                    "compensation step failed; something may be left behind (see `codex-mcp reconcile`)"
                )


def review_cap_message(parent: str, cap: int) -> str:
    return (
        f"{parent} already had {cap} review round(s), the limit (reviews.max_iterations); address the feedback "
        "you have, then open the pull request, or ask a person to raise the limit with "
        "`codex-mcp config set reviews.max_iterations N`"
    )


def require_running(instance: Instance) -> None:
    if instance.status != "running":
        raise StateError(f"{instance.id} is terminated; a terminated instance cannot do this")


async def kill_quietly(tmux: Tmux, session: str) -> None:
    try:
        await tmux.kill_session(session)
    except TmuxError as exc:
        log.warning("could not kill tmux session %s: %s", session, exc)


async def prepare(
    workspace: Workspace,
    *,
    type: InstanceType,
    issue_number: int | None,
    base_branch: str | None,
    start_sha: str,
    make_prompt: MakePrompt,
    task: str | None,
    review_cap: tuple[str, int] | None = None,
    progress: Progress | None = None,
) -> Prepared:
    """Create branch, worktree, launch files and tmux session for a new instance (row not yet written)."""
    settings = workspace.settings
    profile = workspace.profile
    profile.check_available()
    root = await workspace.prepare_places()
    main = workspace.main_root
    compensations: list[Compensation] = []

    async def step(done: float, message: str) -> None:
        if progress is not None:
            await progress(done, SPAWN_STEPS, message)

    try:
        await step(1, "reserving a branch")
        reserved = await reserve_branch(
            workspace, type=type, issue_number=issue_number, start_sha=start_sha, compensations=compensations
        )
        instance_id, branch = reserved.instance_id, reserved.branch
        worktree = worktree_path(root, instance_id)
        await step(2, f"creating worktree {instance_id}")
        await add_worktree(workspace, worktree, branch, compensations)

        await step(3, "writing the agent's prompt and MCP config")
        prompt = make_prompt(instance_id, worktree, branch)
        session_id = new_session_id()
        token, token_hash = new_token() if settings.server_url else (None, None)
        # Off the event loop: it may wait for Claude Code's lock on its config file.
        launcher = await anyio.to_thread.run_sync(
            partial(
                write_launch_files,
                profile=profile,
                instance_id=instance_id,
                files=AgentFiles(worktree),
                prompt=prompt,
                session_id=session_id,
                db_path=workspace.db.path,
                settings=settings,
                main_root=main,
                token=token,
            )
        )
        tmux = workspace.tmux
        await step(4, f"starting the agent in tmux session {instance_id}")
        with anyio.CancelScope(shield=True):
            pid = await tmux.new_session(instance_id, worktree, launcher)
            compensations.append(partial(kill_quietly, tmux, instance_id))
    except BaseException:
        await run_compensations(compensations)
        raise
    return Prepared(
        new=NewInstance(
            id=instance_id,
            type=type,
            worktree_path=str(worktree),
            branch_name=branch,
            base_branch=base_branch,
            tmux_session=instance_id,
            claude_pid=pid,
            issue_number=issue_number,
            prompt=prompt,
            agent_number=reserved.number,
            tmux_socket=settings.tmux_socket,
            agent_session_id=session_id,
            token_hash=token_hash,
            task=task,
        ),
        worktree=worktree,
        branch=branch,
        session=instance_id,
        review_cap=review_cap,
        compensations=compensations,
    )


async def commit(workspace: Workspace, prepared: Prepared) -> Instance:
    """Record a prepared spawn outside any tool call (the CLI); compensate everything if that fails."""
    try:
        async with workspace.db.write() as tx:
            await prepared.write(tx)
    except BaseException:
        await prepared.compensate()
        raise
    return await instances_store.require(workspace.db, prepared.new.id)


async def prepare_work(
    workspace: Workspace,
    *,
    issue_number: int | None,
    base: str | None,
    prompt: str | None,
    type: InstanceType = "work",
) -> Prepared:
    """What `codex-mcp start` creates: a work (or adhoc) instance from a base branch."""
    if type == "work" and issue_number is None:
        raise InputError("a work instance needs an issue: pass --issue N (or --type adhoc for no issue)")
    if issue_number is not None:
        check_issue_number(issue_number)
    if type == "review":
        raise InputError(
            "review instances are spawned by a work instance (spawn_review_instance), not started"
        )
    settings = workspace.settings
    main = workspace.main_root
    # An explicit empty --base is an error (validated below), not "the current branch".
    base_name = (
        base if base is not None else await git.head_branch(settings.repo.toplevel if settings.repo else main)
    )
    if base_name is None:
        raise InputError("the current checkout is on a detached HEAD; pass --base BRANCH")
    sha = await git.resolve_commit(main, base_name)
    issue = None
    if issue_number is not None:
        # From the cache, else fetched from GitHub; GitHub is optional, so a failure only warns.
        from codex_mcp.issue_cache import fetch_issue

        issue = await fetch_issue(settings, workspace.db, issue_number)
    task = prompts.work_task(issue, issue_number, prompt)

    def make_prompt(instance_id: str, worktree: Path, branch: str) -> str:
        return prompts.work_prompt(task, instance_id, worktree, branch, base_name)

    return await prepare(
        workspace,
        type=type,
        issue_number=issue_number,
        base_branch=base_name,
        start_sha=sha,
        make_prompt=make_prompt,
        task=task,
    )


async def prepare_review(
    workspace: Workspace, caller: Instance, reviewer_prompt: str | None, progress: Progress | None = None
) -> Prepared:
    """A reviewer on a snapshot of ``caller``'s worktree, briefed with its diff and issue."""
    if caller.type != "work":
        raise PermissionDenied(
            f"only work instances spawn reviews of their own work; {caller.id} is a {caller.type} instance"
        )
    require_running(caller)
    db = workspace.db
    cap = int(await workspace.user_config.get("reviews.max_iterations") or DEFAULT_REVIEW_CAP)
    if await relationships_store.count_reviews_spawned_from(db, caller.id) >= cap:
        raise StateError(review_cap_message(caller.id, cap))
    worktree = Path(caller.worktree_path)
    snapshot = await git.snapshot(worktree)
    base = caller.base_branch or caller.branch_name
    files, stat = await git.diff_summary(worktree, base, snapshot)
    issue = await issues_store.get(db, caller.issue_number) if caller.issue_number else None

    def make_prompt(instance_id: str, review_worktree: Path, branch: str) -> str:
        return prompts.review_brief(
            instance_id=instance_id,
            worktree=review_worktree,
            branch=branch,
            author_id=caller.id,
            author_branch=caller.branch_name,
            base=base,
            issue=issue,
            issue_number=caller.issue_number,
            files=files,
            stat=stat,
            request=reviewer_prompt,
        )

    return await prepare(
        workspace,
        type="review",
        issue_number=caller.issue_number,
        base_branch=caller.branch_name,
        start_sha=snapshot,
        make_prompt=make_prompt,
        task=reviewer_prompt,
        review_cap=(caller.id, cap),
        progress=progress,
    )


async def prepare_fork(
    workspace: Workspace, caller: Instance, prompt: str | None, progress: Progress | None = None
) -> Prepared:
    """Another instance of ``caller``'s type on a snapshot of its worktree, with its task or ``prompt``."""
    if caller.type == "review":
        raise PermissionDenied(f"review instances do not fork; {caller.id} can send_feedback instead")
    require_running(caller)
    snapshot = await git.snapshot(Path(caller.worktree_path))
    if prompt:
        task = prompt
    else:
        # The caller's own task, without what its prompt says about the caller itself (its id,
        # worktree and branch): the fork must not be told it is its parent. Rows from before tasks
        # were stored have only their prompt.
        parent_task = await instances_store.task_of(workspace.db, caller.id)
        task = parent_task.strip() if parent_task is not None else (caller.prompt or "")

    def make_prompt(instance_id: str, worktree: Path, branch: str) -> str:
        return prompts.fork_prompt(task, instance_id, caller.id, worktree, branch, caller.base_branch)

    return await prepare(
        workspace,
        type=caller.type,
        issue_number=caller.issue_number,
        base_branch=caller.base_branch,
        start_sha=snapshot,
        make_prompt=make_prompt,
        task=task,
        progress=progress,
    )
