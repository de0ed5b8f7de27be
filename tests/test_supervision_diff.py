"""The fast working-tree diff behind `codex-mcp diff` lists exactly what the snapshot-based
``git.work_diff`` lists, on real trees, and changes nothing (after the diffmerge helper's tests)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support import commit_file, git, world

from codex_mcp import git as engine


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


async def test_fast_diff_equals_the_snapshot_diff_and_changes_nothing(repo: Path) -> None:
    wt = _busy_tree(repo)
    before = world(repo)
    fast, _ = await engine.worktree_diff(wt, "main")
    assert world(repo) == before
    slow = await engine.work_diff(wt, "main")
    assert [dataclasses.asdict(f) for f in fast] == [dataclasses.asdict(f) for f in slow.files]
    kinds = {f.path: (f.change_type, f.old_path, f.binary) for f in fast}
    assert kinds["renamed.txt"] == ("renamed", "moved.txt", False)
    assert kinds["gone.txt"] == ("deleted", None, False)
    assert kinds["blob.bin"] == ("modified", None, True)
    assert kinds["sub/pic.dat"] == ("added", None, True)
    assert kinds["untracked.txt"][0] == "added" and kinds["committed.txt"][0] == "added"
    assert "ignored.log" not in kinds and "main-only.txt" not in kinds
    keep = next(f for f in fast if f.path == "keep.txt")
    assert "+staged" in keep.patch and "+unstaged" in keep.patch and keep.additions == 2


async def test_an_untracked_copy_of_a_deleted_file_is_a_rename_as_in_the_snapshot(repo: Path) -> None:
    commit_file(repo, "old.txt", "".join(f"row {n}\n" for n in range(50)), "old")
    wt = _add_worktree(repo)
    (wt / "old.txt").rename(wt / "new.txt")  # not `git mv`: the new name is untracked
    fast, _ = await engine.worktree_diff(wt, "main")
    slow = await engine.work_diff(wt, "main")
    assert [dataclasses.asdict(f) for f in fast] == [dataclasses.asdict(f) for f in slow.files]
    assert [(f.change_type, f.old_path, f.path) for f in fast] == [("renamed", "old.txt", "new.txt")]
