"""Spawn, fork, review, feedback, terminate, resume and reconcile: git + tmux + agents + the store.

Side effects outside SQLite are made first and each registers its undo; the database row comes
last, in the same transaction as the tool's event. When any step fails -- a branch or folder in the
way, tmux refusing, the agent command missing, the database busy -- the undos run in reverse and
nothing claims to be running. The agent itself waits (in the launcher) until its row is committed.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Literal

import anyio
from pydantic import BaseModel, Field

from codex_mcp import git
from codex_mcp.agents import (
    AgentFiles,
    AgentProfile,
    new_session_id,
    profile_from,
    write_launch_files,
    write_private,
)
from codex_mcp.errors import ConfigError, InputError, PermissionDenied, StateError
from codex_mcp.ids import InstanceType, parse_instance_id
from codex_mcp.outcomes import CleanupOutcome, FeedbackType, Priority
from codex_mcp.settings import Settings
from codex_mcp.store import Database, Tx
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.instances import Instance, NewInstance
from codex_mcp.tmux import Tmux, TmuxError, TmuxUnreachable
from codex_mcp.tokens import new_token
from codex_mcp.userconfig import UserConfig

log = logging.getLogger(__name__)

# Rows younger than this are left alone by reconcile: their agent may still be starting.
GRACE_SECONDS = 10.0
# When an instance terminates itself, its session is killed this long after the tool answered.
SELF_TERMINATE_DELAY = 1.5
MAX_NUMBER_ATTEMPTS = 200
CleanupPolicy = Literal["manual", "remove_worktree", "remove_all"]
Undo = Callable[[], Awaitable[None]]
Progress = Callable[[float, float | None, str], Awaitable[None]]
SPAWN_STEPS = 4.0


@dataclass
class Prepared:
    """A spawn whose worktree, branch and session exist; ``write`` records it, ``undo`` removes it."""

    new: NewInstance
    worktree: Path
    branch: str
    session: str
    review_cap: tuple[str, int] | None = None
    undos: list[Undo] = field(default_factory=list)

    async def write(self, tx: Tx) -> None:
        if self.review_cap is not None:
            parent, cap = self.review_cap
            # Checked again inside the transaction: concurrent requests cannot exceed the cap.
            if await relationships_store.count_reviews_spawned_from(tx, parent) >= cap:
                raise StateError(_review_cap_message(parent, cap))
        await instances_store.insert(tx, self.new)

    async def undo(self) -> None:
        await run_undos(self.undos)


async def run_undos(undos: list[Undo]) -> None:
    with anyio.CancelScope(shield=True):
        for step in reversed(undos):
            try:
                await step()
            except Exception:
                log.exception("undo step failed; something may be left behind (see `codex-mcp reconcile`)")


def _review_cap_message(parent: str, cap: int) -> str:
    return (
        f"{parent} already had {cap} review round(s), the limit (reviews.max_iterations); address the feedback "
        "you have, then open the pull request, or ask a person to raise the limit with "
        "`codex-mcp config set reviews.max_iterations N`"
    )


class TerminateOutcome(BaseModel):
    instance_id: str
    status: Literal["terminated"]
    session: Literal["killed", "already_gone", "scheduled"]
    cleanup: CleanupOutcome


class FeedbackOutcome(BaseModel):
    feedback_id: str
    delivery_status: Literal["delivered", "queued"]
    target_instance_id: str
    feedback_file: str


class ReconcileReport(BaseModel):
    terminated: list[str] = Field(
        default_factory=list, description="Instances found dead and marked terminated"
    )
    unreachable_sockets: list[str] = Field(
        default_factory=list, description="tmux servers that did not answer"
    )
    orphan_sessions: list[str] = Field(
        default_factory=list, description="Sessions named like ours with no row"
    )
    orphan_worktrees: list[str] = Field(
        default_factory=list, description="Folders under the root with no running row"
    )


@dataclass
class Lifecycle:
    settings: Settings
    db: Database

    # ------------------------------------------------------------------------------------ places
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

    async def _prepare_places(self) -> Path:
        root = await self.worktrees_root()
        root.mkdir(parents=True, exist_ok=True)
        patterns = [".codex/"]
        if root.is_relative_to(self.main_root):
            patterns.append("/" + root.relative_to(self.main_root).as_posix() + "/")
        assert self.settings.repo is not None
        git.exclude_from_status(self.settings.repo.common_dir, patterns)
        return root

    # ------------------------------------------------------------------------------------ spawn
    async def prepare(
        self,
        *,
        type: InstanceType,
        issue_number: int | None,
        base_branch: str | None,
        start_sha: str,
        make_prompt: Callable[[str, Path, str], Awaitable[str]],
        review_cap: tuple[str, int] | None = None,
        progress: Progress | None = None,
    ) -> Prepared:
        """Create branch, worktree, launch files and tmux session for a new instance (row not yet written)."""
        profile = self.profile
        profile.check_available()
        root = await self._prepare_places()
        main = self.main_root
        undos: list[Undo] = []

        async def step(done: float, message: str) -> None:
            if progress is not None:
                await progress(done, SPAWN_STEPS, message)

        try:
            await step(1, "reserving a branch")
            number = await self._next_number(type, issue_number)
            for _ in range(MAX_NUMBER_ATTEMPTS):
                suffix = f"-{issue_number}" if issue_number is not None else ""
                instance_id = f"{type}{suffix}-a{number}"
                branch = f"codex/{instance_id}"
                # Each step that creates something is shielded up to the registration of its undo:
                # a cancellation arriving while git or tmux is at work would otherwise leave the
                # branch, worktree or session behind with nothing to remove it.
                with anyio.CancelScope(shield=True):
                    created = await git.create_branch(main, branch, start_sha)
                    if created:
                        undos.append(partial(git.delete_branch, main, branch, start_sha))
                if created:
                    break
                number += 1
            else:
                raise StateError(
                    f"no free agent number for {type} instances of issue {issue_number}; run reconcile"
                )

            worktree = (root / instance_id).resolve()
            if not worktree.is_relative_to(root):
                raise InputError(f"worktree path {worktree} would leave the worktrees root {root}")
            if worktree.exists():
                raise StateError(
                    f"{worktree} already exists but no instance owns it; move it away (codex-mcp reconcile lists "
                    "orphans) and retry"
                )
            await step(2, f"creating worktree {instance_id}")
            with anyio.CancelScope(shield=True):
                await git.worktree_add(main, worktree, branch)
                undos.append(partial(git.worktree_remove, main, worktree, force=True))

            await step(3, "writing the agent's prompt and MCP config")
            prompt = await make_prompt(instance_id, worktree, branch)
            session_id = new_session_id()
            token, token_hash = new_token() if self.settings.server_url else (None, None)
            launcher = write_launch_files(
                profile=profile,
                instance_id=instance_id,
                files=AgentFiles(worktree),
                prompt=prompt,
                session_id=session_id,
                db_path=self.db.path,
                settings=self.settings,
                main_root=main,
                token=token,
            )
            tmux = self.tmux
            await step(4, f"starting the agent in tmux session {instance_id}")
            with anyio.CancelScope(shield=True):
                pid = await tmux.new_session(instance_id, worktree, launcher)
                undos.append(partial(_kill_quietly, tmux, instance_id))
        except BaseException:
            await run_undos(undos)
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
                agent_number=number,
                tmux_socket=self.settings.tmux_socket,
                agent_session_id=session_id,
                token_hash=token_hash,
            ),
            worktree=worktree,
            branch=branch,
            session=instance_id,
            review_cap=review_cap,
            undos=undos,
        )

    async def _next_number(self, type: InstanceType, issue_number: int | None) -> int:
        async with self.db.write() as tx:
            return await instances_store.next_agent_number(tx, type, issue_number)

    async def commit(self, prepared: Prepared) -> Instance:
        """Record a prepared spawn outside any tool call (the CLI); undo everything if that fails."""
        try:
            async with self.db.write() as tx:
                await prepared.write(tx)
        except BaseException:
            await prepared.undo()
            raise
        return await instances_store.require(self.db, prepared.new.id)

    async def prepare_work(
        self, *, issue_number: int | None, base: str | None, prompt: str | None, type: InstanceType = "work"
    ) -> Prepared:
        """What `codex-mcp start` creates: a work (or adhoc) instance from a base branch."""
        if type == "work" and issue_number is None:
            raise InputError("a work instance needs an issue: pass --issue N (or --type adhoc for no issue)")
        if type == "review":
            raise InputError(
                "review instances are spawned by a work instance (spawn_review_instance), not started"
            )
        main = self.main_root
        # An explicit empty --base is an error (validated below), not "the current branch".
        base_name = (
            base
            if base is not None
            else await git.head_branch(self.settings.repo.toplevel if self.settings.repo else main)
        )
        if base_name is None:
            raise InputError("the current checkout is on a detached HEAD; pass --base BRANCH")
        sha = await git.resolve_commit(main, base_name)
        issue = None
        if issue_number is not None:
            # From the cache, else fetched from GitHub; GitHub is optional, so a failure only warns.
            from codex_mcp.issue_cache import fetch_issue

            issue = await fetch_issue(self.settings, self.db, issue_number)

        async def make_prompt(instance_id: str, worktree: Path, branch: str) -> str:
            parts = []
            if issue is not None:
                parts.append(f"# GitHub issue #{issue.number}: {issue.title}\n\n{(issue.body or '').strip()}")
            elif issue_number is not None:
                parts.append(f"# GitHub issue #{issue_number}")
            if prompt:
                parts.append(prompt)
            parts.append(_work_footer(instance_id, worktree, branch, base_name))
            return "\n\n".join(p for p in parts if p)

        return await self.prepare(
            type=type,
            issue_number=issue_number,
            base_branch=base_name,
            start_sha=sha,
            make_prompt=make_prompt,
        )

    async def prepare_review(
        self, caller: Instance, reviewer_prompt: str | None, progress: Progress | None = None
    ) -> Prepared:
        if caller.type != "work":
            raise PermissionDenied(
                f"only work instances spawn reviews of their own work; {caller.id} is a {caller.type} instance"
            )
        _require_running(caller)
        cap = int(await self.user_config.get("reviews.max_iterations") or "3")
        if await relationships_store.count_reviews_spawned_from(self.db, caller.id) >= cap:
            raise StateError(_review_cap_message(caller.id, cap))
        worktree = Path(caller.worktree_path)
        snapshot = await git.snapshot(worktree)
        base = caller.base_branch or caller.branch_name
        files, stat = await git.diff_summary(worktree, base, snapshot)
        issue = await issues_store.get(self.db, caller.issue_number) if caller.issue_number else None

        async def make_prompt(instance_id: str, review_worktree: Path, branch: str) -> str:
            parts = [
                f"You are {instance_id}, reviewing the work of {caller.id} (branch {caller.branch_name}). Your "
                f"worktree {review_worktree} holds a snapshot of that work, uncommitted changes included, on "
                f"branch {branch}; compare it with {base}.",
            ]
            if issue is not None:
                parts.append(f"## The issue: #{issue.number} {issue.title}\n\n{(issue.body or '').strip()}")
            elif caller.issue_number:
                parts.append(f"## The issue: #{caller.issue_number}")
            listing = "\n".join(files[:200]) + ("\n…" if len(files) > 200 else "")
            parts.append(f"## Changed files against {base}\n\n{listing or '(none)'}\n\n{stat}")
            if reviewer_prompt:
                parts.append(f"## What the author asks you to look at\n\n{reviewer_prompt}")
            parts.append(
                "## How to answer\n\nCall the codex MCP tool send_feedback with your review: feedback_type "
                "needs_work (changes required), suggestions, clarification (questions) or approved. When you "
                "approve, you may open the pull request with create_pull_request. Then end your instance with "
                "terminate_instance."
            )
            return "\n\n".join(parts)

        return await self.prepare(
            type="review",
            issue_number=caller.issue_number,
            base_branch=caller.branch_name,
            start_sha=snapshot,
            make_prompt=make_prompt,
            review_cap=(caller.id, cap),
            progress=progress,
        )

    async def prepare_fork(
        self, caller: Instance, prompt: str | None, progress: Progress | None = None
    ) -> Prepared:
        if caller.type == "review":
            raise PermissionDenied(f"review instances do not fork; {caller.id} can send_feedback instead")
        _require_running(caller)
        snapshot = await git.snapshot(Path(caller.worktree_path))

        async def make_prompt(instance_id: str, worktree: Path, branch: str) -> str:
            intro = _fork_intro(instance_id, caller.id)
            # The caller's own task, without what its prompt says about the caller itself (its id,
            # worktree and branch): the fork must not be told it is its parent.
            body = prompt or _task_of(caller)
            return "\n\n".join(
                p for p in (intro, body, _work_footer(instance_id, worktree, branch, caller.base_branch)) if p
            )

        return await self.prepare(
            type=caller.type,
            issue_number=caller.issue_number,
            base_branch=caller.base_branch,
            start_sha=snapshot,
            make_prompt=make_prompt,
            progress=progress,
        )

    # ------------------------------------------------------------------------------------ feedback
    async def send_feedback(
        self, caller: Instance, feedback: str, feedback_type: FeedbackType, priority: Priority
    ) -> FeedbackOutcome:
        if caller.type != "review":
            raise PermissionDenied(
                f"only review instances send feedback, to the work they review; {caller.id} is a {caller.type} "
                "instance"
            )
        _require_running(caller)
        target_id = await relationships_store.reviewed_by(self.db, caller.id)
        if target_id is None:
            raise StateError(f"{caller.id} has no work instance recorded as its parent; nothing to send to")
        target = await instances_store.require(self.db, target_id)
        if not feedback.strip():
            raise InputError("feedback is empty; write what the author should know")
        worktree = Path(target.worktree_path)
        if not worktree.is_dir():
            raise StateError(
                f"the worktree of {target.id} ({worktree}) is gone; the feedback cannot be delivered"
            )
        stamp = datetime.now(UTC)
        feedback_id = f"{stamp:%Y%m%dT%H%M%S}Z-{caller.id}-{os.urandom(3).hex()}"
        path = AgentFiles(worktree).feedback / f"{feedback_id}.md"
        document = (
            f"# Review feedback from {caller.id}\n\n"
            f"- type: {feedback_type}\n- priority: {priority}\n- for: {target.id}\n"
            f"- time: {stamp:%Y-%m-%d %H:%M:%S} UTC\n\n---\n\n{feedback}\n"
        )
        write_private(path, document)
        status: Literal["delivered", "queued"] = "queued"
        if target.status == "running":
            notice = (
                f"[codex] Review feedback from {caller.id} ({feedback_type}, priority {priority}): read "
                f".codex/feedback/{path.name} and act on it."
            )
            tmux = Tmux(target.tmux_socket)
            try:
                if await tmux.has_session(target.tmux_session):
                    await tmux.paste(target.tmux_session, notice)
                    status = "delivered"
            except TmuxError as exc:
                log.warning("feedback %s written but not announced in %s: %s", feedback_id, target.id, exc)
        return FeedbackOutcome(
            feedback_id=feedback_id,
            delivery_status=status,
            target_instance_id=target.id,
            feedback_file=str(path),
        )

    # ------------------------------------------------------------------------------------ terminate
    async def authorize_terminate(self, caller: Instance, target_id: str) -> Instance:
        parse_instance_id(target_id)
        target = await instances_store.require(self.db, target_id)
        if target.id != caller.id and target.id not in await relationships_store.descendant_ids(
            self.db, caller.id
        ):
            raise PermissionDenied(
                f"{caller.id} may terminate itself and the instances it spawned or forked (and theirs), "
                f"not {target.id}"
            )
        return target

    async def terminate(
        self, target: Instance, *, deferred: bool = False
    ) -> tuple[TerminateOutcome, Undo | None]:
        """Kill the session (now, or ``deferred`` after the answer left) and clean up per the policy.

        The row is not touched here: the caller marks it terminated (in its tool transaction).
        """
        if target.status != "running":
            raise StateError(f"{target.id} is already terminated (at {target.terminated_at} UTC)")
        policy = await self._cleanup_policy()
        # Only worktrees we created (under the worktrees root) are ever cleaned up: an adhoc instance
        # registered in the main checkout or in a person's own worktree keeps it, whatever the policy.
        foreign = await self._foreign_worktree(target) if policy != "manual" else None
        if foreign:
            policy = "manual"
        tmux = Tmux(target.tmux_socket)
        if deferred:
            schedule = self._finisher(target, policy)
            note = [f"cleanup ({policy}) runs after the session has ended"] if policy != "manual" else []
            return (
                TerminateOutcome(
                    instance_id=target.id,
                    status="terminated",
                    session="scheduled",
                    cleanup=CleanupOutcome(
                        worktree="kept", branch="kept", kept_because=note or [foreign or "policy manual"]
                    ),
                ),
                schedule,
            )
        killed = await tmux.kill_session(target.tmux_session) if target.tmux_session else False
        if foreign:
            cleanup = CleanupOutcome(worktree="kept", branch="kept", kept_because=[foreign])
        else:
            cleanup = await cleanup_worktree(
                self.main_root, Path(target.worktree_path), target.branch_name, target.base_branch, policy
            )
        return (
            TerminateOutcome(
                instance_id=target.id,
                status="terminated",
                session="killed" if killed else "already_gone",
                cleanup=cleanup,
            ),
            None,
        )

    async def _foreign_worktree(self, target: Instance) -> str | None:
        """Why ``target``'s worktree is not ours to remove (not under the worktrees root), or None."""
        root = await self.worktrees_root()
        path = Path(target.worktree_path).resolve()
        if path != root and path.is_relative_to(root):
            return None
        return (
            f"worktree {target.worktree_path} was not created by codex-mcp (it is not under the worktrees "
            f"root {root}); it and branch {target.branch_name} are kept whatever the cleanup policy"
        )

    async def _cleanup_policy(self) -> CleanupPolicy:
        value = await self.user_config.get("instances.cleanup_policy") or "manual"
        return value if value in ("manual", "remove_worktree", "remove_all") else "manual"  # type: ignore[return-value]

    def _finisher(self, target: Instance, policy: CleanupPolicy) -> Undo:
        spec = {
            "socket": target.tmux_socket,
            "session": target.tmux_session,
            "delay": SELF_TERMINATE_DELAY,
            "main_root": str(self.main_root),
            "worktree": target.worktree_path,
            "branch": target.branch_name,
            "base": target.base_branch,
            "policy": policy,
        }

        async def start() -> None:
            # A separate process in its own session: it outlives the tmux session it kills (ours).
            subprocess.Popen(
                [sys.executable, "-m", "codex_mcp.finisher", json.dumps(spec)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )

        return start

    # ------------------------------------------------------------------------------------ resume
    async def resume(self, target: Instance) -> Instance:
        """Restart a dead instance's agent in its worktree, continuing its conversation."""
        worktree = Path(target.worktree_path)
        if not worktree.is_dir():
            raise StateError(f"the worktree of {target.id} ({worktree}) is gone; it cannot be resumed")
        tmux = Tmux(self.settings.tmux_socket)
        current = (await tmux.list_sessions()).get(target.tmux_session)
        if current is not None and not current.pane_dead:
            raise StateError(
                f"{target.id} is still running in tmux session {target.tmux_session}; attach to it"
            )
        profile = self.profile
        profile.check_available()
        if current is not None:  # only the dead agent's pane is left (remain-on-exit): make room
            await tmux.kill_session(target.tmux_session)
        session_id = target.agent_session_id or new_session_id()
        token, token_hash = new_token() if self.settings.server_url else (None, None)
        launcher = write_launch_files(
            profile=profile,
            instance_id=target.id,
            files=AgentFiles(worktree),
            prompt=target.prompt or "",
            session_id=session_id,
            db_path=self.db.path,
            settings=self.settings,
            main_root=self.main_root,
            token=token,
            resume=target.agent_session_id is not None,
        )
        with anyio.CancelScope(shield=True):  # cancelled later, the session is killed below
            pid = await tmux.new_session(target.tmux_session, worktree, launcher)
        try:
            async with self.db.write() as tx:
                await instances_store.mark_resumed(
                    tx, target.id, claude_pid=pid, tmux_socket=self.settings.tmux_socket
                )
                # A new token (the old one is not kept in clear anywhere); none for stdio configs.
                await instances_store.set_token_hash(tx, target.id, token_hash)
        except BaseException:
            await run_undos([partial(_kill_quietly, tmux, target.tmux_session)])
            raise
        return await instances_store.require(self.db, target.id)

    # ------------------------------------------------------------------------------------ reconcile
    async def reconcile(self, *, find_orphans: bool = False) -> ReconcileReport:
        """Mark instances whose session is gone as terminated; optionally list orphans."""
        report = ReconcileReport()
        launched = await instances_store.list_running_launched(self.db)
        by_socket: dict[str | None, list[instances_store.LaunchedInstance]] = {}
        for row in launched:
            by_socket.setdefault(row.tmux_socket, []).append(row)
        if find_orphans:
            by_socket.setdefault(self.settings.tmux_socket, [])
        gone: list[str] = []
        sessions_here: dict[str, object] | None = None
        for socket, rows in by_socket.items():
            try:
                sessions = await Tmux(socket).list_sessions()
            except TmuxUnreachable as exc:
                log.warning("reconcile: %s; instances on it are left as they are", exc)
                report.unreachable_sockets.append(socket or "(default)")
                continue
            if socket == self.settings.tmux_socket:
                sessions_here = dict(sessions)
            for row in rows:
                if row.age_seconds < GRACE_SECONDS:
                    continue
                info = sessions.get(row.tmux_session)
                if info is None or info.pane_dead:
                    gone.append(row.id)
        report.terminated = await instances_store.mark_terminated_many(self.db, gone)
        if find_orphans:
            running = {i.id: i for i in await instances_store.list_running(self.db)}
            if sessions_here is not None:
                for name in sorted(sessions_here):
                    if _looks_like_ours(name) and name not in running:
                        report.orphan_sessions.append(name)
            root = await self.worktrees_root()
            if root.is_dir():
                owned = {Path(i.worktree_path).resolve() for i in running.values()}
                for child in sorted(root.iterdir()):
                    if child.is_dir() and child.resolve() not in owned:
                        report.orphan_worktrees.append(str(child))
        return report

    async def reconcile_quietly(self) -> None:
        """The cheap reconcile run before reads; never makes a read fail.

        While every launched agent's process is alive there is nothing to converge, and asking tmux
        (a process start per read) is skipped; a dead or missing pid triggers the full reconcile.
        """
        try:
            launched = await instances_store.list_running_launched(self.db)
            if all(_pid_alive(row.claude_pid) for row in launched):
                return
            await self.reconcile()
        except Exception as exc:
            log.warning("reconcile before reading failed: %s", exc)


def _pid_alive(pid: int | None) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _looks_like_ours(name: str) -> bool:
    try:
        parse_instance_id(name)
    except InputError:
        return False
    return True


def _require_running(instance: Instance) -> None:
    if instance.status != "running":
        raise StateError(f"{instance.id} is terminated; a terminated instance cannot do this")


async def _kill_quietly(tmux: Tmux, session: str) -> None:
    try:
        await tmux.kill_session(session)
    except TmuxError as exc:
        log.warning("could not kill tmux session %s: %s", session, exc)


def _fork_intro(instance_id: str, parent_id: str) -> str:
    return (
        f"You are {instance_id}, a fork of {parent_id}: your worktree starts from its work as it was, "
        "uncommitted changes included."
    )


def _task_of(instance: Instance) -> str:
    """An instance's prompt without the fork intro and the footer we added about the instance itself."""
    text = instance.prompt or ""
    footer = _work_footer(
        instance.id, Path(instance.worktree_path), instance.branch_name, instance.base_branch
    )
    if text.endswith(footer):
        text = text[: -len(footer)]
    if text.startswith(f"You are {instance.id}, a fork of "):
        text = text.partition("\n\n")[2]
    return text.strip()


def _work_footer(instance_id: str, worktree: Path, branch: str, base: str | None) -> str:
    return (
        f"---\nYou are codex-mcp instance {instance_id}: worktree {worktree}, branch {branch}"
        + (f" (from {base})" if base else "")
        + ". Commit your work on this branch. When it is ready for review, call the codex MCP tool "
        "spawn_review_instance; review feedback arrives as markdown files under .codex/feedback/ and a notice "
        "in this terminal. When the review approves, open the pull request with create_pull_request."
    )


async def cleanup_worktree(
    main_root: Path, worktree: Path, branch: str, base: str | None, policy: CleanupPolicy
) -> CleanupOutcome:
    """Apply the cleanup policy; never delete unpushed, unmerged commits or uncommitted work."""
    if policy == "manual":
        return CleanupOutcome(worktree="kept", branch="kept", kept_because=["policy manual keeps everything"])
    kept: list[str] = []
    worktree_state: Literal["kept", "removed", "gone"] = "kept"
    if not worktree.is_dir():
        worktree_state = "gone"
    else:
        dirty = await git.is_dirty(worktree)
        if dirty:
            kept.append(
                f"worktree {worktree} has uncommitted changes ({len(dirty)} path(s), e.g. {dirty[0]})"
            )
        else:
            await git.worktree_remove(main_root, worktree, force=True)  # .codex/ files are ours to drop
            worktree_state = "removed"
    branch_state: Literal["kept", "deleted", "gone"] = "kept"
    if policy == "remove_all":
        if await git.branch_sha(main_root, branch) is None:
            branch_state = "gone"
        elif worktree_state == "kept":
            kept.append(f"branch {branch} stays with its worktree")
        else:
            reason = await git.unsafe_to_delete(main_root, branch, base)
            if reason:
                kept.append(reason)
            else:
                await git.delete_branch(main_root, branch)
                branch_state = "deleted"
    else:
        kept.append(f"branch {branch} (policy {policy} keeps branches)")
    return CleanupOutcome(worktree=worktree_state, branch=branch_state, kept_because=kept)
