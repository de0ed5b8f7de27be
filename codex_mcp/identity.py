"""Who is calling: the instance a stdio server serves, resolved once at start, and the shape of the
per-transport rule that finds each tool call's caller.

Order of the stdio resolution: ``--instance``, then ``CODEX_MCP_INSTANCE`` (both arrive as
``settings.instance``), then the running instance whose worktree contains the working directory, then
an adhoc instance registered for the working directory's checkout.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import anyio

from codex_mcp import git
from codex_mcp.errors import ConfigError, StateError
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance

log = logging.getLogger(__name__)

Source = Literal["explicit", "worktree", "registered", "reused", "person"]


@dataclass(frozen=True)
class Caller:
    instance: Instance
    source: Source

    @property
    def id(self) -> str:
        return self.instance.id


class CallerResolver(Protocol):
    """Finds the caller of one tool call from the SDK's request context (``ctx``).

    The composition root picks one per transport (an HTTP request carries its own caller). With
    ``read_only=False`` the call means to change something: a caller that may only read is refused
    with :class:`~codex_mcp.errors.PermissionDenied`. Awaited: finding the caller may take a lookup.
    """

    def __call__(self, ctx: Any, *, read_only: bool) -> Awaitable[Caller]: ...


async def resolve_caller(settings: Settings, db: Database) -> Caller:
    """The caller a server started here acts for, registering the folder's adhoc instance if needed."""
    found = await find_caller(settings, db)
    if found is not None:
        return found
    root = settings.repo.toplevel if settings.repo is not None else settings.cwd
    # Both ask a subprocess (git, tmux): off the event loop.
    branch, session = await anyio.to_thread.run_sync(_where, root, settings.repo is not None)
    instance, created = await instances_store.register_adhoc(
        db, worktree=root, branch_name=branch, tmux_session=session, base_branch=None
    )
    return Caller(instance, "registered" if created else "reused")


async def find_caller(settings: Settings, db: Database) -> Caller | None:
    """:func:`resolve_caller` without writing anything: None when it would register an adhoc instance."""
    if settings.instance is not None:
        found = await instances_store.get(db, settings.instance)
        if found is None:
            raise ConfigError(
                f"instance {settings.instance!r} (from --instance or CODEX_MCP_INSTANCE) is not in {db.path}; "
                "check the id with `codex-mcp ls --all`, or unset CODEX_MCP_INSTANCE to be registered as adhoc"
            )
        if found.status != "running":
            log.warning("instance %s is terminated; its tools can read but not act", found.id)
        return Caller(found, "explicit")

    inside = await instances_store.find_running_containing(db, settings.cwd)
    if inside is not None:
        return Caller(inside, "worktree")
    root = settings.repo.toplevel if settings.repo is not None else settings.cwd
    registered = await instances_store.find_running_containing(db, root)
    return Caller(registered, "reused") if registered is not None else None


async def person_caller(settings: Settings, db: Database) -> Caller:
    """The identity a person acts under from the CLI or the dashboard: the instance of the main checkout.

    A person's actions are recorded like tool calls, under the adhoc instance registered for the
    repository's main checkout (the one a person's own Claude Code session there also gets), never
    under an agent's instance, even when the command runs inside an agent's worktree.
    """
    root = person_root(settings)
    branch, session = await anyio.to_thread.run_sync(_where, root, settings.repo is not None)
    instance, _ = await instances_store.register_adhoc(
        db, worktree=root, branch_name=branch, tmux_session=session, base_branch=None
    )
    return Caller(instance, "person")


async def require_agent(settings: Settings, db: Database, instance_id: str) -> Instance:
    """``instance_id``'s row for an action on an agent; refused when it is the person's own identity.

    That row stands for the main checkout and the terminal the person works in: killing it would kill
    their own tmux session, resuming it would start an agent in the main checkout, feedback would be
    typed into their own pane, and merging it would merge the main checkout into itself.
    """
    target = await instances_store.require(db, instance_id)
    if target.id in await instances_store.person_ids(db, person_root(settings)):
        raise StateError(
            f"{target.id} is you (the identity your own actions are recorded under, for the main checkout), "
            "not an agent: there is nothing to kill, resume, review, fork, merge or send feedback to; "
            "nothing was changed"
        )
    return target


def person_root(settings: Settings) -> Path:
    """The folder the person's identity is registered for: the repository's main checkout.

    Its adhoc instance (no agent launched: ``claude_pid`` is NULL) is "you" in listings; see
    :func:`codex_mcp.store.instances.person_ids`.
    """
    if settings.repo is None:  # a database named by CODEX_MCP_DB, used from outside any repository
        return settings.cwd
    common = settings.repo.common_dir
    return common.parent if common.name == ".git" else settings.repo.toplevel


def _where(root: Path, in_git: bool) -> tuple[str, str]:
    """The branch checked out in ``root`` and the tmux session this process runs in."""
    # Imported here: only registering an adhoc instance asks tmux (a stdio server's start rarely does).
    from codex_mcp import tmux

    branch = (git.current_branch(root) or "HEAD") if in_git else "(no git)"
    return branch, tmux.current_session() or tmux.NOT_IN_TMUX
