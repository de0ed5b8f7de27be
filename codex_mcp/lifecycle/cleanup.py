"""Cleaning up after an instance: what may go of its worktree and branch, and what must stay.

Nothing here deletes uncommitted work, or commits that are neither pushed nor merged: what is kept is
said, with the reason, in the outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from codex_mcp import git
from codex_mcp.outcomes import CleanupOutcome

CleanupPolicy = Literal["manual", "remove_worktree", "remove_all"]
CLEANUP_POLICIES: tuple[CleanupPolicy, ...] = ("manual", "remove_worktree", "remove_all")


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
