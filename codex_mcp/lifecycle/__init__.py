"""An instance's story: spawn, fork, review, feedback, terminate, resume and reconcile.

Each chapter is a module: ``workspace`` (main checkout, worktrees root, branch and worktree),
``spawn`` (a new instance and its compensation stack), ``prompts`` (what an agent is told, pure
functions), ``feedback``, ``terminate`` (authorization, cleanup policy, the finisher), ``resume``,
``reconcile``, ``diff``, ``merge`` and ``clean``; ``liveness`` holds the timing knobs and the cheap
check a read makes. :class:`Lifecycle` is the one object callers hold (tools, CLI, demo): it binds the
chapters to the settings and database in use, and to the timing knobs tests may change.

Each method loads its chapter when it is first called: a server's first read, which only checks that
the agents it shows are alive, loads none of them (figure 6: 32 servers making their first call at once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from codex_mcp.lifecycle.liveness import (
    GRACE_SECONDS,
    PID_CHECK_SECONDS,
    SELF_TERMINATE_DELAY,
    TMUX_CHECK_SECONDS,
    Living,
    agents_alive,
    launched_agents_alive,
)

if TYPE_CHECKING:
    from codex_mcp.ids import InstanceType
    from codex_mcp.lifecycle.feedback import FeedbackSent
    from codex_mcp.lifecycle.spawn import Prepared, Progress
    from codex_mcp.lifecycle.terminate import AfterCommit
    from codex_mcp.lifecycle.workspace import Workspace
    from codex_mcp.outcomes import (
        CleanReport,
        FeedbackType,
        InstanceDiff,
        MergeResult,
        MergeStrategy,
        Priority,
        ReconcileReport,
        TerminateResult,
    )
    from codex_mcp.settings import Settings
    from codex_mcp.store import Database
    from codex_mcp.store.instances import Instance

__all__ = ["GRACE_SECONDS", "SELF_TERMINATE_DELAY", "Lifecycle"]

log = logging.getLogger(__name__)


@dataclass
class Lifecycle:
    settings: Settings
    db: Database
    # Rows younger than this are left alone by reconcile: their agent may still be starting.
    grace_seconds: float = GRACE_SECONDS
    # When an instance terminates itself, its session is killed this long after the tool answered.
    self_terminate_delay: float = SELF_TERMINATE_DELAY

    @property
    def workspace(self) -> Workspace:
        from codex_mcp.lifecycle.workspace import Workspace

        return Workspace(self.settings, self.db)

    @property
    def main_root(self) -> Path:
        return self.workspace.main_root

    async def worktrees_root(self) -> Path:
        return await self.workspace.worktrees_root()

    # ------------------------------------------------------------------------------------ spawn
    async def prepare_work(
        self, *, issue_number: int | None, base: str | None, prompt: str | None, type: InstanceType = "work"
    ) -> Prepared:
        from codex_mcp.lifecycle import spawn

        return await spawn.prepare_work(
            self.workspace, issue_number=issue_number, base=base, prompt=prompt, type=type
        )

    async def prepare_review(
        self, caller: Instance, reviewer_prompt: str | None, progress: Progress | None = None
    ) -> Prepared:
        from codex_mcp.lifecycle import spawn

        return await spawn.prepare_review(self.workspace, caller, reviewer_prompt, progress)

    async def prepare_fork(
        self, caller: Instance, prompt: str | None, progress: Progress | None = None
    ) -> Prepared:
        from codex_mcp.lifecycle import spawn

        return await spawn.prepare_fork(self.workspace, caller, prompt, progress)

    async def commit(self, prepared: Prepared) -> Instance:
        from codex_mcp.lifecycle import spawn

        return await spawn.commit(self.workspace, prepared)

    async def resume(self, target: Instance) -> Instance:
        from codex_mcp.lifecycle import resume

        return await resume.resume(self.workspace, target)

    # ------------------------------------------------------------------------------------ feedback
    async def send_feedback(
        self, caller: Instance, text: str, feedback_type: FeedbackType, priority: Priority
    ) -> FeedbackSent:
        from codex_mcp.lifecycle import feedback

        return await feedback.send_feedback(self.workspace, caller, text, feedback_type, priority)

    # ------------------------------------------------------------------------------------ terminate
    async def authorize_terminate(self, caller: Instance, target_id: str) -> Instance:
        from codex_mcp.lifecycle import terminate

        return await terminate.authorize_terminate(self.workspace, caller, target_id)

    async def terminate(
        self, target: Instance, *, deferred: bool = False
    ) -> tuple[TerminateResult, AfterCommit | None]:
        from codex_mcp.lifecycle import terminate

        return await terminate.terminate(
            self.workspace, target, deferred=deferred, self_terminate_delay=self.self_terminate_delay
        )

    async def terminate_now(self, target: Instance) -> TerminateResult:
        """Mark ``target`` terminated, then kill its session and clean up (see terminate.terminate_now)."""
        from codex_mcp.lifecycle import terminate

        return await terminate.terminate_now(self.workspace, target)

    # ------------------------------------------------------------------------------------ supervision
    async def diff(self, instance: Instance, base: str | None = None) -> InstanceDiff:
        from codex_mcp.lifecycle import diff

        return await diff.instance_diff(instance, base)

    async def merge(
        self, instance: Instance, *, into: str | None, strategy: MergeStrategy, to_agent: bool, sender: str
    ) -> MergeResult:
        from codex_mcp.lifecycle import merge

        return await merge.merge(
            self.workspace, instance, into=into, strategy=strategy, to_agent=to_agent, sender=sender
        )

    # ------------------------------------------------------------------------------------ reconcile
    async def reconcile(self, *, find_orphans: bool = False) -> ReconcileReport:
        from codex_mcp.lifecycle import reconcile

        return await reconcile.reconcile(
            self.workspace, find_orphans=find_orphans, grace_seconds=self.grace_seconds
        )

    async def reconcile_quietly(self) -> None:
        """The cheap reconcile run before reads: while every launched agent's process is alive there is
        nothing to converge, and neither tmux (a process start) nor the reconcile chapter (its imports)
        is needed; a dead or missing pid triggers the full reconcile. Never makes a read fail."""
        try:
            if await launched_agents_alive(self.db):
                return
            await self.reconcile()
        except Exception as exc:
            log.warning("reconcile before reading failed: %s", exc)

    async def confirm_running(self, rows: Iterable[Living]) -> bool:
        """Check the agents of the running rows a read is about to answer with; True when it reconciled
        (the caller reads its rows again).

        One :func:`liveness.pid_alive` per running row with a pid: while every one is alive nothing is
        converged and the read answers at once. A gone process triggers the full reconcile (tmux asked).
        Never makes a read fail.
        """
        if agents_alive(rows):
            return False
        try:
            await self.reconcile()
        except Exception as exc:
            log.warning("reconcile before answering failed: %s", exc)
            return False
        return True

    async def keep_reconciled(
        self,
        *,
        pid_seconds: float = PID_CHECK_SECONDS,
        tmux_seconds: float = TMUX_CHECK_SECONDS,
    ) -> None:
        """Converge the table in the background until cancelled (long-running servers run it beside serving).

        Every ``pid_seconds`` the cheap check (:meth:`reconcile_quietly`: tmux only when a pid is gone),
        every ``tmux_seconds`` the full reconcile. A failing pass is logged and the next one runs as
        planned. The reconcile chapter is loaded at the first pass that needs it: not while 32 servers
        started together are answering their first calls (figure 6).
        """
        next_full = anyio.current_time() + tmux_seconds
        while True:
            await anyio.sleep(pid_seconds)
            if anyio.current_time() >= next_full:
                next_full = anyio.current_time() + tmux_seconds
                try:
                    await self.reconcile()
                except Exception as exc:
                    log.warning("background reconcile failed: %s", exc)
            else:
                await self.reconcile_quietly()

    # ------------------------------------------------------------------------------------ a person's care
    async def person_feedback(
        self, target_id: str, login: str, text: str, feedback_type: FeedbackType, priority: Priority
    ) -> FeedbackSent:
        from codex_mcp.lifecycle import feedback

        return await feedback.person_feedback(self.workspace, target_id, login, text, feedback_type, priority)

    async def clean(self, *, merged_only: bool, dry_run: bool) -> CleanReport:
        from codex_mcp.lifecycle import clean

        return await clean.clean(self.workspace, merged_only=merged_only, dry_run=dry_run)
