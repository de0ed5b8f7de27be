"""Where an instance lives: the main checkout, the worktrees root, its branch and its worktree.

Every instance gets a branch ``codex/<id>`` and a worktree ``<root>/<id>``. The agent number in the id
is reserved by creating the branch (git refuses an existing one, so concurrent spawns cannot take
the same number). Each creation is shielded up to the registration of its compensation: a
cancellation arriving while git is at work would otherwise leave the branch or worktree behind with
nothing to remove it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from codex_mcp import git
from codex_mcp.agents import AgentProfile, profile_from
from codex_mcp.errors import ConfigError, InputError, StateError
from codex_mcp.ids import InstanceType
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import InstanceSummary
from codex_mcp.tmux import Tmux
from codex_mcp.userconfig import UserConfig

MAX_NUMBER_ATTEMPTS = 200
# Undoes one side effect outside SQLite (a branch, a worktree, a session) when the spawn fails.
Compensation = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Workspace:
    """The repository, its worktrees root, the tmux server and agent profile in use, the store."""

    settings: Settings
    db: Database

    @property
    def main_root(self) -> Path:
        """The main checkout (every worktree of the repository shares its .git)."""
        repo = self.settings.repo
        if repo is None:
            raise ConfigError(
                f"{self.settings.cwd} is not inside a git repository; run codex-mcp inside your repository"
            )
        common = repo.common_dir
        return common.parent if common.name == ".git" else repo.toplevel

    @property
    def tmux(self) -> Tmux:
        return Tmux(self.settings.tmux_socket)

    @property
    def profile(self) -> AgentProfile:
        return profile_from(self.settings.agent_command)

    @property
    def user_config(self) -> UserConfig:
        return UserConfig(self.db, self.settings.secret_key_file)

    async def worktrees_root(self) -> Path:
        if self.settings.worktrees is not None:
            return self.settings.worktrees.resolve()
        configured = await self.user_config.get("worktrees.base_path") or "./worktrees"
        path = Path(configured).expanduser()
        return (path if path.is_absolute() else self.main_root / path).resolve()

    async def prepare_places(self) -> Path:
        """The worktrees root, created, and hidden (with ``.codex/``) from ``git status``."""
        root = await self.worktrees_root()

        def prepare() -> None:  # file system work: off the event loop
            root.mkdir(parents=True, exist_ok=True)
            patterns = [".codex/"]
            if root.is_relative_to(self.main_root):
                patterns.append("/" + root.relative_to(self.main_root).as_posix() + "/")
            assert self.settings.repo is not None
            git.exclude_from_status(self.settings.repo.common_dir, patterns)

        await anyio.to_thread.run_sync(prepare)
        return root

    async def next_number(self, type: InstanceType, issue_number: int | None) -> int:
        async with self.db.write() as tx:
            return await instances_store.next_agent_number(tx, type, issue_number)

    async def foreign_worktree(self, target: InstanceSummary) -> str | None:
        """Why ``target``'s worktree is not ours to remove (not under the worktrees root), or None."""
        root = await self.worktrees_root()
        path = Path(target.worktree_path).resolve()
        if path != root and path.is_relative_to(root):
            return None
        return (
            f"worktree {target.worktree_path} was not created by codex-mcp (it is not under the worktrees "
            f"root {root}); it and branch {target.branch_name} are kept whatever the cleanup policy"
        )


@dataclass(frozen=True)
class Reserved:
    """A branch created for a new instance: the id and agent number it reserved."""

    instance_id: str
    branch: str
    number: int


async def reserve_branch(
    workspace: Workspace,
    *,
    type: InstanceType,
    issue_number: int | None,
    start_sha: str,
    compensations: list[Compensation],
) -> Reserved:
    """Create ``codex/<id>`` at ``start_sha`` for the first free agent number; register its deletion."""
    main = workspace.main_root
    number = await workspace.next_number(type, issue_number)
    for _ in range(MAX_NUMBER_ATTEMPTS):
        suffix = f"-{issue_number}" if issue_number is not None else ""
        instance_id = f"{type}{suffix}-a{number}"
        branch = f"codex/{instance_id}"
        with anyio.CancelScope(shield=True):
            created = await git.create_branch(main, branch, start_sha)
            if created:
                compensations.append(partial(git.delete_branch, main, branch, start_sha))
        if created:
            return Reserved(instance_id=instance_id, branch=branch, number=number)
        number += 1
    raise StateError(f"no free agent number for {type} instances of issue {issue_number}; run reconcile")


def worktree_path(root: Path, instance_id: str) -> Path:
    """``<root>/<id>``, which must stay under the root and must not exist yet."""
    worktree = (root / instance_id).resolve()
    if not worktree.is_relative_to(root):
        raise InputError(f"worktree path {worktree} would leave the worktrees root {root}")
    if worktree.exists():
        raise StateError(
            f"{worktree} already exists but no instance owns it; move it away (codex-mcp reconcile lists "
            "orphans) and retry"
        )
    return worktree


async def add_worktree(
    workspace: Workspace, worktree: Path, branch: str, compensations: list[Compensation]
) -> None:
    """Check ``branch`` out in a new worktree; register its removal."""
    main = workspace.main_root
    with anyio.CancelScope(shield=True):
        await git.worktree_add(main, worktree, branch)
        compensations.append(partial(git.worktree_remove, main, worktree, force=True))
