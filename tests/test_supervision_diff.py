"""`codex-mcp diff` (``git.supervision.work_diff``) lists exactly what a snapshot commit of the worktree shows
against the base (``git.snapshot`` + ``git.supervision.diff_files``, the plain way to see the same work), on real
trees with every kind of change, and changes nothing."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support import commit_file, git, world

from codex_mcp import git as git_adapter
from codex_mcp.git import supervision as engine


def _add_worktree(repo: Path, name: str = "work") -> Path:
    wt = repo.parent / f"{repo.name}-{name}"
    git(repo, "worktree", "add", "-q", "-b", name, str(wt), "main")
    return wt


def _busy_tree(repo: Path) -> Path:
    """A worktree with every kind of change: commits, a rename, binary, deleted, staged + unstaged, untracked."""
    commit_file(repo, "keep.txt", "".join(f"line {n}\n" for n in range(40)), "keep")
    commit_file(repo, "gone.txt", "to be deleted\n", "gone")
    commit_file(repo, "moved.txt", "".join(f"moved {n}\n" for n in range(30)), "moved")
    commit_file(repo, "blob.bin", b"\0\1\2binary", "blob")
    wt = _add_worktree(repo)
    commit_file(wt, "committed.txt", "committed work\n", "work: committed")
    git(wt, "mv", "moved.txt", "renamed.txt")
    git(wt, "rm", "-q", "gone.txt")
    (wt / "keep.txt").write_text("staged\n" + (wt / "keep.txt").read_text())
    git(wt, "add", "keep.txt")
    (wt / "keep.txt").write_text((wt / "keep.txt").read_text() + "unstaged\n")
    (wt / "blob.bin").write_bytes(b"\0\3\4other binary")
    (wt / "untracked.txt").write_text("brand new\n")
    (wt / "sub").mkdir()
    (wt / "sub" / "pic.dat").write_bytes(b"\x89PNG\0\0data")
    (wt / "ignored.log").write_text("ignored\n")
    (wt / ".gitignore").write_text("*.log\n")
    commit_file(repo, "main-only.txt", "main moved on\n", "main: moves on")
    return wt


async def _snapshot_diff(wt: Path) -> tuple[list[engine.FileDiff], list[str]]:
    """The reference: a snapshot commit of the worktree, diffed against its merge base with main."""
    snapshot = await git_adapter.snapshot(wt)
    files = await engine.diff_files(wt, "main", snapshot, merge_base=True)
    dirty = git(wt, "diff-tree", "-r", "-z", "--name-only", "--no-renames", "HEAD", snapshot).split("\0")
    return files, sorted(p for p in dirty if p)


async def test_work_diff_equals_the_snapshot_diff_and_changes_nothing(repo: Path) -> None:
    wt = _busy_tree(repo)
    before = world(repo)
    index_before = Path(git(wt, "rev-parse", "--path-format=absolute", "--git-path", "index")).read_bytes()
    work = await engine.work_diff(wt, "main")
    assert world(repo) == before
    assert (
        Path(git(wt, "rev-parse", "--path-format=absolute", "--git-path", "index")).read_bytes()
        == index_before
    )
    files, dirty = await _snapshot_diff(wt)
    assert [dataclasses.asdict(f) for f in work.files] == [dataclasses.asdict(f) for f in files]
    assert sorted(work.dirty) == dirty and work.uncommitted
    kinds = {f.path: (f.change_type, f.old_path, f.binary) for f in work.files}
    assert kinds["renamed.txt"] == ("renamed", "moved.txt", False)
    assert kinds["gone.txt"] == ("deleted", None, False)
    assert kinds["blob.bin"] == ("modified", None, True)
    assert kinds["sub/pic.dat"] == ("added", None, True)
    assert kinds["untracked.txt"][0] == "added" and kinds["committed.txt"][0] == "added"
    assert "ignored.log" not in kinds and "main-only.txt" not in kinds
    keep = next(f for f in work.files if f.path == "keep.txt")
    assert "+staged" in keep.patch and "+unstaged" in keep.patch and keep.additions == 2
    assert [c.subject for c in work.commits] == ["work: committed"]
    assert work.merge_base == git(repo, "merge-base", "main", "work")


async def test_an_untracked_copy_of_a_deleted_file_is_a_rename_as_in_the_snapshot(repo: Path) -> None:
    commit_file(repo, "old.txt", "".join(f"row {n}\n" for n in range(50)), "old")
    wt = _add_worktree(repo)
    (wt / "old.txt").rename(wt / "new.txt")  # not `git mv`: the new name is untracked
    work = await engine.work_diff(wt, "main")
    files, dirty = await _snapshot_diff(wt)
    assert [dataclasses.asdict(f) for f in work.files] == [dataclasses.asdict(f) for f in files]
    assert [(f.change_type, f.old_path, f.path) for f in work.files] == [("renamed", "old.txt", "new.txt")]
    assert sorted(work.dirty) == dirty == ["new.txt", "old.txt"]


async def test_a_staged_change_undone_in_the_worktree_is_not_uncommitted(repo: Path) -> None:
    commit_file(repo, "same.txt", "as committed\n", "same")
    wt = _add_worktree(repo)
    (wt / "same.txt").write_text("staged for a moment\n")
    git(wt, "add", "same.txt")
    (wt / "same.txt").write_text("as committed\n")  # the worktree is back to HEAD; the index is not
    work = await engine.work_diff(wt, "main")
    assert work.files == [] and work.dirty == [] and not work.uncommitted
