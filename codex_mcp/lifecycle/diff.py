"""What an instance changed: its work against its base, uncommitted and untracked changes included.

Read without touching the worktree's files, index or stash: the worktree as it is is added to a copy
of its index and diffed against the merge base (``git.supervision.work_diff``), the commits read
beside it. The base is the instance's base branch (the branch it started from). A read: it records
no event, like ``ls``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from codex_mcp.errors import StateError
from codex_mcp.git import supervision
from codex_mcp.outcomes import CommitSummary, FileChange, InstanceDiff
from codex_mcp.store.instances import Instance


def base_of(instance: Instance) -> str:
    """The branch an instance's work is compared with and lands on by default."""
    if not instance.base_branch:
        raise StateError(
            f"{instance.id} has no base branch recorded (it was registered, not started by codex-mcp); "
            "pass the branch to compare with or merge into explicitly"
        )
    return instance.base_branch


async def instance_diff(instance: Instance, base: str | None = None) -> InstanceDiff:
    worktree = Path(instance.worktree_path)
    if not worktree.is_dir():
        raise StateError(f"the worktree of {instance.id} ({worktree}) is gone; there is no work to show")
    against = base or base_of(instance)
    work = await supervision.work_diff(worktree, against)
    return InstanceDiff(
        instance_id=instance.id,
        base=against,
        merge_base=work.merge_base,
        head=work.head,
        uncommitted=work.dirty,
        commits=[
            CommitSummary(sha=c.sha, subject=c.subject, author=c.author, date=c.date) for c in work.commits
        ],
        files=[FileChange(**asdict(f)) for f in work.files],
        additions=work.stat.additions,
        deletions=work.stat.deletions,
        stat=work.stat.text,
    )
