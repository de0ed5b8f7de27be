"""Clean: remove what terminated instances left behind, and what no row owns, never work someone wants.

Scope: every terminated instance (``--terminated``, also the default), or only those whose branch is
merged into its base (``--merged``). Running instances are never touched: neither their worktree nor
their branch, nor a branch checked out anywhere. For each one in scope:

* the worktree goes when it is ours (under the worktrees root), a registered git worktree, has no
  uncommitted or untracked changes, and its HEAD is on a branch or contained in one;
* the branch goes when its worktree went (or was gone), it is checked out nowhere, and every commit
  is merged into its base (by ancestry, or landed by squash/rebase) or pushed (some remote-tracking
  branch contains it): :func:`codex_mcp.git.unsafe_to_delete` and :func:`codex_mcp.git.supervision.branch_is_merged`.

Orphans (a ``serve`` killed in the middle of a spawn leaves them): folders under the worktrees root
that no row owns, and ``codex/*`` branches no row names. They follow the same rules, except that a
branch with no base to be merged into is safe only when another branch (or a remote) holds all its
commits -- another branch, not one this run deletes. A review or fork branch that starts at a
snapshot of uncommitted work is therefore kept (the snapshot commit is nowhere else) and the reason
says so. Orphans younger than :data:`ORPHAN_GRACE_SECONDS` are left alone: a spawn may be making them.

Rows stay (they are the history); nothing records the removal in them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from codex_mcp import git
from codex_mcp.git import supervision
from codex_mcp.lifecycle.reconcile import looks_like_ours
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.outcomes import BranchFate, CleanItem, CleanReport, WorktreeFate
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import InstanceSummary

# An orphan younger than this may be a spawn in progress (its row is written last): left alone.
ORPHAN_GRACE_SECONDS = 300.0
BRANCH_PREFIX = "codex/"
SNAPSHOT_SUBJECT = "codex-mcp snapshot:"


@dataclass
class _Run:
    """One clean run: the repository as found, and what this run removes (or would)."""

    workspace: Workspace
    main: Path
    root: Path
    dry_run: bool
    # Linked worktrees git knows (resolved path -> entry); the main checkout is never among them.
    worktrees: dict[Path, supervision.WorktreeInfo]
    # Branches of running instances and the one checked out in the main checkout: never deleted.
    protected_branches: set[str]
    removed_paths: set[Path] = field(default_factory=set)
    deleted_branches: set[str] = field(default_factory=set)


async def clean(
    workspace: Workspace, *, merged_only: bool, dry_run: bool, orphan_grace: float = ORPHAN_GRACE_SECONDS
) -> CleanReport:
    """Remove (or, ``dry_run``, list) the worktrees and branches of terminated instances and orphans."""
    main = workspace.main_root
    root = await workspace.worktrees_root()
    rows = await instances_store.list_dashboard_summaries(workspace.db, status=None)
    listed = await supervision.worktrees(main)
    linked = {info.path.resolve(): info for info in listed[1:] if not info.bare}
    running = [r for r in rows if r.status == "running"]
    run = _Run(
        workspace=workspace,
        main=main,
        root=root,
        dry_run=dry_run,
        worktrees=linked,
        protected_branches={r.branch_name for r in running} | {i.branch for i in listed[:1] if i.branch},
    )
    # Counted: running agents; a registration of a person's own checkout is not one.
    agents = [r for r in running if not await workspace.foreign_worktree(r)]
    report = CleanReport(
        dry_run=dry_run, scope="merged" if merged_only else "terminated", running_untouched=len(agents)
    )
    running_paths = {Path(r.worktree_path).resolve() for r in running}
    for row in sorted((r for r in rows if r.status == "terminated"), key=lambda r: r.id):
        if Path(row.worktree_path).resolve() in running_paths:
            continue  # an adhoc registration sharing a running instance's folder: not ours to clean
        item = await _instance(run, row, merged_only)
        if item is None:
            report.already_clean += 1
        else:
            report.items.append(item)
    owned_paths = {Path(r.worktree_path).resolve() for r in rows}
    owned_branches = {r.branch_name for r in rows}
    report.items.extend(await _orphan_worktrees(run, owned_paths, orphan_grace))
    report.items.extend(await _orphan_branches(run, owned_branches, orphan_grace))
    report.worktrees_removed = sum(i.worktree in ("removed", "would_remove") for i in report.items)
    report.branches_deleted = sum(i.branch in ("deleted", "would_delete") for i in report.items)
    report.kept = sum(bool(i.kept_because) for i in report.items)
    return report


# ------------------------------------------------------------------------------------------ instances


async def _instance(run: _Run, row: InstanceSummary, merged_only: bool) -> CleanItem | None:
    """What happens to one terminated instance; None when nothing of it is left (or ours to take)."""
    path = Path(row.worktree_path)
    branch_sha = await git.branch_sha(run.main, row.branch_name)
    if (not path.exists() and branch_sha is None) or await run.workspace.foreign_worktree(row):
        # A registration of a folder codex-mcp did not create (a person's own checkout): never ours
        # to clean, whatever its status, so not worth a line in every report either.
        return None
    item = CleanItem(
        kind="instance", instance_id=row.id, worktree_path=row.worktree_path, branch_name=row.branch_name
    )
    base = row.base_branch if row.base_branch and await git.branch_sha(run.main, row.base_branch) else None
    if merged_only and not (
        branch_sha is not None
        and base is not None
        and await supervision.branch_is_merged(run.main, row.branch_name, base)
    ):
        item.worktree = "kept" if path.exists() else "gone"
        item.branch = "kept" if branch_sha is not None else "gone"
        item.kept_because.append(
            f"branch {row.branch_name} is not merged into {base or 'its base'} "
            "(clean --merged takes only merged ones; clean --terminated takes every terminated instance)"
        )
        return item
    item.worktree = await _worktree(run, path, item.kept_because)
    item.branch = await _branch(run, row.branch_name, base, item, f"codex-mcp merge {row.id}")
    return item


async def _worktree(run: _Run, path: Path, kept: list[str]) -> WorktreeFate:
    """Remove ``path`` (a linked worktree under the root) unless it holds work; say why it stays."""
    if not path.exists():
        return "gone"
    resolved = path.resolve()
    info = run.worktrees.get(resolved)
    if info is None or not (path / ".git").is_file():
        # A plain folder: git status there would answer for the main checkout around it.
        kept.append(
            f"{path} is not a git worktree of this repository; remove it by hand if you do not need it"
        )
        return "kept"
    dirty = await supervision.dirty_paths(path)
    if dirty:
        kept.append(
            f"worktree {path} has uncommitted changes ({len(dirty)} path(s), e.g. {dirty[0]}); commit or "
            "discard them there, then clean again"
        )
        return "kept"
    if (
        info.branch is None
        and info.head
        and await supervision.commits_only_on(run.main, info.head, excluding=run.deleted_branches)
    ):
        kept.append(
            f"worktree {path} has a detached HEAD ({info.head[:12]}) with commits no branch holds; "
            f"create a branch for them (git -C {path} switch -c NAME), then clean again"
        )
        return "kept"
    if run.dry_run:
        run.removed_paths.add(resolved)
        return "would_remove"
    try:
        await git.worktree_remove(run.main, path, force=True)  # .codex/ (ignored, ours) goes with it
    except git.GitError as exc:
        kept.append(f"git could not remove worktree {path}: {exc}")
        return "kept"
    run.removed_paths.add(resolved)
    return "removed"


async def _branch(run: _Run, branch: str, base: str | None, item: CleanItem, merge_hint: str) -> BranchFate:
    """Delete ``branch`` when nothing on it would be lost; say why it stays otherwise."""
    sha = await git.branch_sha(run.main, branch)
    if sha is None:
        return "gone"
    kept = item.kept_because
    if item.worktree == "kept":
        kept.append(f"branch {branch} stays with its worktree")
        return "kept"
    if why := _in_use(run, branch):
        kept.append(why)
        return "kept"
    reason = await git.unsafe_to_delete(run.main, branch, base)
    if reason and base is not None and await supervision.branch_is_merged(run.main, branch, base):
        reason = None  # landed by squash or rebase: its commits carry nothing the base lacks
    if reason:
        kept.append(
            f"{reason}; push it (git push origin {branch}), land it ({merge_hint}), or delete it by hand "
            f"(git branch -D {branch})"
        )
        return "kept"
    return await _delete(run, branch, sha, kept)


def _in_use(run: _Run, branch: str) -> str | None:
    """Why ``branch`` must stay whatever its commits: checked out somewhere this run leaves, or a
    running instance's (or the main checkout's) branch."""
    for path, info in run.worktrees.items():
        if info.branch == branch and path not in run.removed_paths:
            return f"branch {branch} is checked out in {path}"
    if branch in run.protected_branches:
        return f"branch {branch} belongs to a running instance or is checked out in {run.main}"
    return None


async def _delete(run: _Run, branch: str, sha: str, kept: list[str]) -> BranchFate:
    run.deleted_branches.add(branch)
    if run.dry_run:
        return "would_delete"
    try:
        await git.delete_branch(run.main, branch, sha)  # only if it did not move meanwhile
    except git.GitError as exc:
        run.deleted_branches.discard(branch)
        kept.append(f"git could not delete branch {branch}: {exc}")
        return "kept"
    return "deleted"


# -------------------------------------------------------------------------------------------- orphans


def _age(path: Path) -> float:
    try:
        newest = max(path.stat().st_mtime, (path / ".git").stat().st_mtime if (path / ".git").exists() else 0)
    except OSError:
        return 0.0
    return time.time() - newest


async def _orphan_worktrees(run: _Run, owned: set[Path], grace: float) -> list[CleanItem]:
    """Folders under the worktrees root no row owns: linked worktrees, or folders named like an id."""
    if not run.root.is_dir() or run.root == run.main.resolve():
        return []
    items: list[CleanItem] = []
    for child in sorted(run.root.iterdir()):
        resolved = child.resolve()
        if not child.is_dir() or resolved in owned:
            continue
        info = run.worktrees.get(resolved)
        if info is None and not looks_like_ours(child.name):
            continue  # not ours to judge: the worktrees root may hold other things
        item = CleanItem(
            kind="orphan_worktree", worktree_path=str(child), branch_name=info.branch if info else None
        )
        age = _age(child)
        if age < grace:
            item.worktree = "kept"
            item.kept_because.append(
                f"{child} changed {int(age)} s ago; a spawn may still be making it (orphans younger than "
                f"{int(grace)} s are left alone)"
            )
        else:
            item.worktree = await _worktree(run, child, item.kept_because)
        items.append(item)
    return items


async def _orphan_branches(run: _Run, owned: set[str], grace: float) -> list[CleanItem]:
    """``codex/*`` branches no row names, deleted when another branch or a remote holds every commit."""
    items: list[CleanItem] = []
    for branch, sha in sorted((await supervision.branches_under(run.main, BRANCH_PREFIX)).items()):
        if branch in owned:
            continue
        item = CleanItem(kind="orphan_branch", branch_name=branch)
        items.append(item)
        kept = item.kept_because
        if why := _in_use(run, branch):
            item.branch = "kept"
            kept.append(why)
            continue
        moved = await supervision.ref_moved_at(run.main, branch)
        if moved is not None and time.time() - moved < grace:
            item.branch = "kept"
            kept.append(
                f"branch {branch} moved {int(time.time() - moved)} s ago; a spawn may still be making it "
                f"(orphans younger than {int(grace)} s are left alone)"
            )
            continue
        unique = await supervision.commits_only_on(run.main, sha, excluding=run.deleted_branches | {branch})
        if unique:
            what = f"{unique} commit(s) that no other branch and no remote holds"
            if (await supervision.subject(run.main, sha)).startswith(SNAPSHOT_SUBJECT):
                what += " (a codex-mcp snapshot of uncommitted work taken for a review or a fork)"
            item.branch = "kept"
            kept.append(
                f"branch {branch} has {what}; delete it by hand if nobody needs it (git branch -D {branch})"
            )
            continue
        item.branch = await _delete(run, branch, sha, kept)
    return items
