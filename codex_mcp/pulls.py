"""Pull requests of instances: opening one for an instance's own branch (check, push, create,
idempotently), and following their state (open, closed, merged) while the instances run.

The state is polled with conditional requests: each pull request is asked with the ETag GitHub gave
last time (kept in ``github_sync_pages``), so an unchanged one answers 304 and costs no rate limit.
``issues sync`` refreshes them once (:func:`refresh_pull_request_states`); long-running processes
(``serve --transport http|sse``, the dashboard) keep :func:`poll_pull_requests` running beside them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from codex_mcp import git
from codex_mcp.background import running_beside
from codex_mcp.errors import CodexError, ConfigError, InputError, StateError, UpstreamError
from codex_mcp.issue_cache import github_client
from codex_mcp.outcomes import CreatePullRequestResult
from codex_mcp.settings import Settings
from codex_mcp.store import Database, Tx
from codex_mcp.store import github_sync as sync_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store.github_sync import SyncPage
from codex_mcp.store.instances import Instance

log = logging.getLogger(__name__)

POLL_KEY = "github.poll_seconds"
Progress = Callable[[float, float | None, str], Awaitable[None]]
STEPS = 4.0


@dataclass(frozen=True)
class PullRequestOpened:
    """What create_pull_request publishes, the base it merges into (recorded), and the row update."""

    result: CreatePullRequestResult
    base_branch: str
    record: Callable[[Tx], Awaitable[None]]

    @property
    def done(self) -> str:
        """What GitHub now holds, whatever the database records (said if recording fails)."""
        kind = "was already open" if self.result.already_existed else "is open"
        return f"pull request #{self.result.pr_number} {kind} at {self.result.pr_url}"


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


# ------------------------------------------------------------------------------------ following state


async def refresh_pull_request_states(settings: Settings, db: Database) -> int:
    """Ask GitHub for the pull request of every running instance that has one, each with its ETag;
    set ``pr_state`` to what GitHub says (open, closed, merged). How many rows changed.

    No running instance with a pull request: no request at all. GitHub not configured (no token, no
    repository): :class:`ConfigError`. A failed request (network, rate limit, an error status) stops
    the round with :class:`UpstreamError`, leaving every state not yet read as it was.
    """
    numbers = await instances_store.running_pull_requests(db)
    if not numbers:
        return 0
    client = await github_client(settings, db)
    changed = 0
    async with client:  # one HTTP connection for every pull request
        for number in numbers:
            key = f"{client.repo} pulls/{number}"
            known = await sync_store.get(db, key)
            state, etag = await client.pull_request_state(number, known.etag if known else None)
            async with db.write() as tx:
                if etag and (known is None or known.etag != etag):
                    await sync_store.put(tx, SyncPage(request=key, etag=etag))
                if state is not None:
                    changed += await instances_store.update_pr_states(tx, {number: state})
    return changed


async def poll_seconds(settings: Settings, db: Database) -> float:
    """``github.poll_seconds`` from user_config (default 60), read each round: a change applies at once."""
    from codex_mcp.userconfig import UserConfig

    return float(await UserConfig(db, settings.secret_key_file).get(POLL_KEY) or 60)


async def poll_pull_requests(settings: Settings, db: Database, *, interval: float | None = None) -> None:
    """Refresh the pull request states every ``interval`` seconds (default: ``github.poll_seconds``)
    until cancelled. Never raises: GitHub not configured is skipped quietly (checked again each
    round); failures and rate limits are logged and leave the states as they were."""
    while True:
        try:
            changed = await refresh_pull_request_states(settings, db)
            if changed:
                log.info("pull request poll: %d instance(s) changed state", changed)
        except ConfigError as exc:
            log.debug("pull request poll skipped: %s", exc)
        except (UpstreamError, CodexError) as exc:
            log.warning("pull request poll: %s; trying again next round", exc)
        except Exception:
            log.exception("pull request poll failed unexpectedly; trying again next round")
        try:
            seconds = interval if interval is not None else await poll_seconds(settings, db)
        except Exception:  # an unreadable setting must not end the loop
            seconds = 60.0
        await anyio.sleep(seconds)


@asynccontextmanager
async def polling_pull_requests(
    settings: Settings, db: Database, *, interval: float | None = None
) -> AsyncIterator[None]:
    """Keep :func:`poll_pull_requests` running while the block runs (a long-running process's life)."""
    async with running_beside(partial(poll_pull_requests, settings, db, interval=interval)):
        yield
