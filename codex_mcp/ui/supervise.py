"""What the instance page shows before a person lands work: the merge check, in words.

The same checks ``merge`` makes before it changes anything (lifecycle/merge.py), run dry: the
instance's uncommitted work, a dirty target worktree, conflicts found by ``git merge-tree`` (which
writes objects only). Nothing here changes a ref, a worktree, an index or the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from codex_mcp import git
from codex_mcp.errors import CodexError
from codex_mcp.git import supervision
from codex_mcp.lifecycle.diff import base_of
from codex_mcp.lifecycle.merge import read_checks
from codex_mcp.store.instances import Instance

SHOWN = 10


def _listed(paths: list[str]) -> str:
    return ", ".join(paths[:SHOWN]) + (f" and {len(paths) - SHOWN} more" if len(paths) > SHOWN else "")


@dataclass
class MergePreview:
    """``ready``: merging now would land ``commits`` commit(s) on ``target``; else ``reasons`` say why not."""

    target: str | None
    source: str
    ready: bool = False
    up_to_date: bool = False
    fast_forward: bool = False
    commits: int = 0
    conflicts: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def words(self) -> str:
        if self.reasons:
            return "Merging now would be refused: " + "; ".join(self.reasons) + ". Nothing was changed."
        if self.up_to_date:
            return f"{self.source} is already in {self.target}: nothing to merge."
        how = "a fast-forward" if self.fast_forward else "no conflicts"
        return f"Ready: {self.commits} commit(s) of {self.source} would land on {self.target} ({how})."


async def merge_preview(repo: Path, instance: Instance, into: str | None = None) -> MergePreview:
    """The dry merge check of ``instance``'s branch into ``into`` (default: its base branch)."""
    source = instance.branch_name
    try:
        target = (
            await git.validate_branch_name(repo, into, what="target branch") if into else base_of(instance)
        )
    except CodexError as exc:
        return MergePreview(target=into, source=source, reasons=[str(exc)])
    preview = MergePreview(target=target, source=source)
    if target == source:
        preview.reasons.append(f"{instance.id} works on {target} itself; choose another branch to merge into")
        return preview
    # As in merge: the three reads at once, judged in the order a person fixes them.
    instance_dirty, target_state, merge_check = await read_checks(
        repo, Path(instance.worktree_path), target, source
    )
    dirty = instance_dirty.get()
    if dirty:
        preview.reasons.append(
            f"{instance.id} has uncommitted work in {len(dirty)} path(s) ({_listed(dirty)}); only committed "
            "work is merged: commit it, or ask the agent to"
        )
    try:
        state = target_state.get()
        if state.worktree is not None and state.dirty:
            preview.reasons.append(
                f"{target} is checked out in {state.worktree.path} with uncommitted changes "
                f"({_listed(state.dirty)}); commit or stash them there"
            )
        check = merge_check.get()
    except CodexError as exc:
        preview.reasons.append(str(exc))
        return preview
    preview.up_to_date = check.up_to_date
    preview.fast_forward = check.fast_forward
    if not check.clean:
        preview.conflicts = check.conflicts
        preview.reasons.append(
            f"{source} conflicts with {target} in {len(check.conflicts)} file(s): {_listed(check.conflicts)} "
            f"(resolve them in the instance by merging {target} into its branch, or send them to the agent)"
        )
    if not check.up_to_date:
        preview.commits = len(await supervision.commits_between(repo, check.target_sha, check.source_sha))
    preview.ready = not preview.reasons and not preview.up_to_date
    return preview
