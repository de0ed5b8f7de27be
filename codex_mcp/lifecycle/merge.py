"""Landing an instance's work: check first, change nothing on refusal, then move the target branch.

Order: the instance's worktree must hold no uncommitted work (only committed work lands); the target
must exist and, where it is checked out, be clean; a conflict check runs without touching any working
tree (``git merge-tree --write-tree``). The three checks run at once (two are status scans of large
trees) and are judged in that order; the landing reuses what they read. Conflicts are refused with
the files listed, or, asked ``to_agent``, handed to the instance's agent as review feedback (and
nothing else changes). Then the new target commit is computed and applied: a worktree where the
target is checked out is updated by fast-forward, a branch checked out nowhere has its ref moved
(compare-and-swap). The instance's row records where and when its work landed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Generic, TypeVar, cast

from codex_mcp import git
from codex_mcp.errors import StateError
from codex_mcp.git import supervision
from codex_mcp.lifecycle.diff import base_of
from codex_mcp.lifecycle.feedback import deliver_feedback
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.outcomes import MergeResult, MergeStrategy
from codex_mcp.store import Tx
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance

T = TypeVar("T")


class CheckOutcome(Generic[T]):
    """What one of several checks run at once found: its value, or the error it raised, kept so the
    caller can judge the checks in its own order (a refusal found first by the clock may matter less)."""

    def __init__(self) -> None:
        self._value: T | None = None
        self._error: Exception | None = None

    async def settle(self, call: Callable[[], Awaitable[T]]) -> None:
        try:
            self._value = await call()
        except Exception as exc:  # re-raised by get(), its traceback intact
            self._error = exc

    def get(self) -> T:
        if self._error is not None:
            raise self._error
        return cast("T", self._value)


async def read_checks(
    repo: Path, worktree: Path, target: str, source: str
) -> tuple[
    CheckOutcome[list[str]], CheckOutcome[supervision.TargetState], CheckOutcome[supervision.MergeCheck]
]:
    """What a merge checks before it lands ``source`` on ``target``, read at once: the uncommitted
    paths of the instance's ``worktree`` (none when the folder is gone), where ``target`` is checked
    out and whether that worktree is clean, and the conflict check. The caller judges them in the order
    a person fixes them (their own uncommitted work first, then the target's, then conflicts)."""
    import anyio

    instance_dirty, target_state, merge_check = (
        CheckOutcome[list[str]](),
        CheckOutcome[supervision.TargetState](),
        CheckOutcome[supervision.MergeCheck](),
    )

    async def dirty_instance() -> list[str]:
        return await supervision.dirty_paths(worktree) if worktree.is_dir() else []

    async with anyio.create_task_group() as tg:
        tg.start_soon(instance_dirty.settle, dirty_instance)
        tg.start_soon(target_state.settle, partial(supervision.target_state, repo, target))
        tg.start_soon(merge_check.settle, partial(supervision.merge_check, repo, target, source))
    return instance_dirty, target_state, merge_check


def landed(result: MergeResult) -> str | None:
    """What a landing changed outside the database, in words (None: it changed nothing)."""
    if result.outcome != "merged":
        return None
    return f"{result.target} moved from {result.old_commit[:12]} to {result.new_commit[:12]}"


def merged_write(instance_id: str, result: MergeResult) -> Callable[[Tx], Awaitable[None]] | None:
    """The row write that records a landed merge (stage it with the action's event), or None."""
    if result.outcome not in ("merged", "up_to_date"):
        return None

    async def mark(tx: Tx) -> None:
        await instances_store.mark_merged(tx, instance_id, into=result.target, commit=result.new_commit)

    return mark


async def merge(
    workspace: Workspace,
    instance: Instance,
    *,
    into: str | None,
    strategy: MergeStrategy,
    to_agent: bool,
    sender: str,
) -> MergeResult:
    """Land ``instance``'s branch on ``into`` (default: its base branch). See the module docstring.

    Returns the result; the caller records ``mark_merged`` when ``outcome`` is merged or up_to_date.
    """
    repo = workspace.main_root
    target = await git.validate_branch_name(repo, into, what="target branch") if into else base_of(instance)
    source = instance.branch_name
    if target == source:
        raise StateError(f"{instance.id} works on {target} itself; pass --into BRANCH to land it elsewhere")
    worktree = Path(instance.worktree_path)
    instance_dirty, target_state, merge_check = await read_checks(repo, worktree, target, source)
    dirty = instance_dirty.get()
    if dirty:
        shown = ", ".join(dirty[:10]) + (" ..." if len(dirty) > 10 else "")
        raise StateError(
            f"{instance.id} has uncommitted work ({len(dirty)} path(s): {shown}); only committed work is "
            f"merged: commit it (git -C {worktree} add -A && git -C {worktree} commit -m '...'), or ask the "
            "agent to, then merge again"
        )
    state = target_state.get()
    if state.worktree is not None and state.dirty:
        shown = ", ".join(state.dirty[:10]) + (" ..." if len(state.dirty) > 10 else "")
        raise StateError(
            f"{target} is checked out in {state.worktree.path} with uncommitted changes ({shown}); commit "
            "or stash them there, then merge again"
        )
    check = merge_check.get()
    if not check.clean:
        listed = ", ".join(check.conflicts)
        if not to_agent:
            raise StateError(
                f"{source} conflicts with {target} in {len(check.conflicts)} file(s): {listed}; nothing was "
                f"changed. Resolve them in the instance (merge {target} into its branch), or hand them to the "
                "agent with --to-agent"
            )
        text = (
            f"Merging your branch {source} into {target} ({strategy}) stopped on conflicts in "
            f"{len(check.conflicts)} file(s):\n\n"
            + "\n".join(f"- {path}" for path in check.conflicts)
            + f"\n\nMerge {target} into your branch (git merge {target}), resolve these files, commit, and say so: "
            "the merge will then be tried again.\n"
        )
        sent = await deliver_feedback(workspace, instance, sender, text, "needs_work", "high")
        return MergeResult(
            instance_id=instance.id,
            target=target,
            strategy=strategy,
            outcome="sent_to_agent",
            old_commit=check.target_sha,
            new_commit=check.target_sha,
            conflicts=check.conflicts,
            feedback_id=sent.result.feedback_id,
        )
    plan = await supervision.plan_landing(repo, target, source, strategy, check=check)
    landing = await supervision.apply_landing(repo, plan, target=state)
    return MergeResult(
        instance_id=instance.id,
        target=target,
        strategy=strategy,
        outcome="merged" if plan.changed else "up_to_date",
        old_commit=plan.old_sha,
        new_commit=plan.new_sha,
        updated_worktree=str(landing.worktree) if landing.worktree else None,
        commits=len(plan.commits),
    )
