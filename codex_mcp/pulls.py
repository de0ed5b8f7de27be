"""Opening the pull request for an instance's own branch: check, push, create (idempotently)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from codex_mcp import git
from codex_mcp.errors import InputError, StateError
from codex_mcp.issue_cache import github_client
from codex_mcp.outcomes import CreatePullRequestResult
from codex_mcp.settings import Settings
from codex_mcp.store import Database, Tx
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance

Progress = Callable[[float, float | None, str], Awaitable[None]]
STEPS = 4.0


@dataclass(frozen=True)
class PullRequestOpened:
    """What create_pull_request publishes, the base it merges into (recorded), and the row update."""

    result: CreatePullRequestResult
    base_branch: str
    record: Callable[[Tx], Awaitable[None]]


async def open_pull_request(
    settings: Settings,
    db: Database,
    caller: Instance,
    *,
    title: str,
    description: str,
    base_branch: str | None,
    draft: bool,
    progress: Progress | None = None,
) -> PullRequestOpened:
    """Push the caller's branch and open (or find) its pull request; the outcome and the row update."""

    async def step(n: float, message: str) -> None:
        if progress is not None:
            await progress(n, STEPS, message)

    if not title.strip():
        raise InputError("the pull request needs a title")
    if caller.status != "running":
        raise StateError(f"{caller.id} is terminated; a terminated instance cannot open a pull request")
    worktree = Path(caller.worktree_path)
    branch = caller.branch_name
    if not worktree.is_dir():
        raise StateError(f"the worktree of {caller.id} ({worktree}) is gone")
    current = await git.head_branch(worktree)
    if current != branch:
        raise StateError(
            f"the worktree of {caller.id} has {current or 'a detached HEAD'} checked out, not its branch {branch}; "
            f"check it out again (git switch {branch})"
        )
    client = await github_client(settings, db)
    base = base_branch or caller.base_branch or await client.default_branch()
    await git.validate_branch_name(worktree, base, what="base_branch")
    if base == branch:
        raise InputError(f"base_branch {base!r} is the branch itself; give the branch to merge into")
    await step(1, "checking commits")
    ahead = await git.commits_ahead(worktree, branch, base)
    if ahead is None:
        raise InputError(
            f"base branch {base!r} is neither a local branch nor origin/{base}; fetch it (git fetch origin {base}) "
            "or pass another base_branch"
        )
    if ahead == 0:
        raise StateError(
            f"{branch} has no commits ahead of {base}: nothing to propose yet; commit your work first "
            "(git add -A && git commit -m '...'), then call create_pull_request again"
        )
    await step(2, "looking for an open pull request")
    existing = await client.find_open_pull_request(branch, base)
    await step(3, f"pushing {branch} to origin")
    await git.push_branch(worktree, branch)
    if existing is not None:
        info, already = existing, True
    else:
        await step(4, "creating the pull request")
        info, already = await client.create_pull_request(
            title=title, body=description, head=branch, base=base, draft=draft
        )
    result = CreatePullRequestResult(
        pr_number=info.number, pr_url=info.url, branch_name=branch, already_existed=already
    )
    return PullRequestOpened(
        result=result, base_branch=base, record=partial(_record, caller.id, info.number, info.url, info.state)
    )


async def _record(instance_id: str, number: int, url: str, state: str, tx: Tx) -> None:
    await instances_store.set_pull_request(tx, instance_id, number=number, url=url, state=state)
