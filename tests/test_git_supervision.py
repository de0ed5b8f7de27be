"""The git engine behind `diff`, `merge` and `clean`: real repositories, nothing mocked.

Every refusal is checked against ``world()``: all refs, every worktree's HEAD, files, index and
status, the stash and the worktree list must be exactly as before.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import commit_file, git, world

from codex_mcp import git as g
from codex_mcp.errors import InputError, StateError
from codex_mcp.git import supervision as sv


@pytest.fixture
def two_sides(repo: Path) -> Path:
    """main with a shared file; branch `feature` one commit ahead (a new file), main one commit ahead."""
    commit_file(repo, "shared.txt", "one\ntwo\nthree\n", "shared")
    git(repo, "branch", "feature")
    git(repo, "checkout", "-q", "feature")
    commit_file(repo, "feature.txt", "feature work\n", "feature: add feature.txt")
    git(repo, "checkout", "-q", "main")
    commit_file(repo, "main.txt", "main work\n", "main: add main.txt")
    return repo


# ----------------------------------------------------------------------------------------- diff views


async def test_diff_files_reports_each_kind_of_change_like_git(repo: Path) -> None:
    commit_file(repo, "rename-me.txt", "".join(f"line {n}\n" for n in range(20)), "text")
    commit_file(repo, "image.bin", b"\x00\x01\x02binary", "binary")
    commit_file(repo, "gone.txt", "a\nb\n", "to delete")
    commit_file(repo, "edit.txt", "keep\nold\n", "to edit")
    commit_file(repo, "link", "target\n", "a file that becomes a symlink")
    base = git(repo, "rev-parse", "HEAD")
    (repo / "dir with space").mkdir()
    git(repo, "mv", "rename-me.txt", "dir with space/renamed.txt")
    (repo / "dir with space/renamed.txt").write_text("".join(f"line {n}\n" for n in range(19)) + "changed\n")
    (repo / "image.bin").write_bytes(b"\x00\x03binary!")
    git(repo, "rm", "-q", "gone.txt")
    (repo / "edit.txt").write_text("keep\nnew\nmore\n")
    (repo / 'quote"d.txt').write_text("x\ny\nz\n")
    (repo / "link").unlink()
    os.symlink("edit.txt", repo / "link")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "every kind of change")

    files = {f.path: f for f in await sv.diff_files(repo, base, "HEAD")}

    renamed = files["dir with space/renamed.txt"]
    assert (renamed.change_type, renamed.old_path, renamed.additions, renamed.deletions) == (
        "renamed",
        "rename-me.txt",
        1,
        1,
    )
    assert "rename from rename-me.txt" in renamed.patch and "+changed" in renamed.patch
    binary = files["image.bin"]
    assert (binary.change_type, binary.binary, binary.patch, binary.additions) == ("modified", True, "", 0)
    assert files["gone.txt"].change_type == "deleted" and files["gone.txt"].deletions == 2
    edited = files["edit.txt"]
    assert (edited.change_type, edited.additions, edited.deletions, edited.old_path) == (
        "modified",
        2,
        1,
        None,
    )
    assert (
        edited.patch.startswith("diff --git a/edit.txt b/edit.txt\n")
        and "-old\n+new\n+more\n" in edited.patch
    )
    assert files['quote"d.txt'].change_type == "added" and files['quote"d.txt'].additions == 3
    link = files["link"]
    assert link.change_type == "type_changed" and "+edit.txt" in link.patch and "-target" in link.patch
    assert len(files) == 6

    # Counts and totals agree with git's own summary.
    numstat = git(repo, "diff", "--numstat", "-M", base, "HEAD").splitlines()
    assert sum(int(x.split("\t")[0]) for x in numstat if not x.startswith("-")) == sum(
        f.additions for f in files.values()
    )
    stat = sv.diff_stat(list(files.values()))
    assert stat.text.splitlines()[-1].strip() == git(repo, "diff", "--shortstat", "-M", base, "HEAD").rstrip()
    assert " image.bin" in stat.text and "| Bin" in stat.text
    assert (stat.files, stat.additions, stat.deletions) == (6, 7, 5)


async def test_diff_of_identical_commits_is_empty(repo: Path) -> None:
    assert await sv.diff_files(repo, "HEAD", "HEAD") == []
    with pytest.raises(g.GitError):  # never read as an option
        await sv.diff_files(repo, f"--output={repo.parent / 'out'}", "HEAD")
    assert not (repo.parent / "out").exists()
    assert sv.diff_stat([]).text == ""


async def test_commits_between_and_ahead_behind(two_sides: Path) -> None:
    commits = await sv.commits_between(two_sides, "main", "feature")
    assert [c.subject for c in commits] == ["feature: add feature.txt"]
    assert commits[0].sha == git(two_sides, "rev-parse", "feature")
    assert (commits[0].author, commits[0].email) == ("Test", "test@example.invalid")
    assert commits[0].date == git(two_sides, "log", "-1", "--format=%aI", "feature")
    assert await sv.ahead_behind(two_sides, "feature", "main") == (1, 1)
    commit_file(two_sides, "more.txt", "x\n", "main: more")
    assert await sv.ahead_behind(two_sides, "feature", "main") == (1, 2)
    assert await sv.commits_between(two_sides, "feature", "feature") == []
    with pytest.raises(InputError):
        await sv.ahead_behind(two_sides, "--all", "main")
    with pytest.raises(InputError):
        await sv.commits_between(two_sides, "main", "no-such-branch")


async def test_commits_keep_the_first_message_line_and_the_authors_own_offset(
    two_sides: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (two_sides / "dated.txt").write_text("dated\n")
    git(two_sides, "add", "dated.txt")
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-01-02T03:04:05-0530")
    # A first paragraph of two lines: the subject is its first line only.
    git(two_sides, "commit", "-q", "-m", "first line\nstill the first paragraph\n\nbody \u00fc")
    (newest, _) = await sv.commits_between(two_sides, "feature", "main")
    assert newest.subject == "first line"
    assert newest.date == "2026-01-02T03:04:05-05:30"


async def test_work_diff_shows_commits_and_uncommitted_and_untracked_without_touching_anything(
    two_sides: Path, tmp_path: Path
) -> None:
    wt = tmp_path / "wt"
    git(two_sides, "worktree", "add", "-q", str(wt), "feature")
    (wt / ".gitignore").write_text("*.log\n")
    git(wt, "add", ".gitignore")
    git(wt, "commit", "-q", "-m", "ignore logs")
    (wt / "stashed.txt").write_text("stashed\n")
    git(wt, "add", "stashed.txt")
    git(wt, "stash", "-q")
    (wt / "shared.txt").write_text("one\ntwo\nTHREE\n")  # unstaged edit
    (wt / "staged.txt").write_text("staged\n")
    git(wt, "add", "staged.txt")
    (wt / "untracked dir").mkdir()
    (wt / "untracked dir" / "new.txt").write_text("new\n")
    (wt / "debug.log").write_text("ignored\n")
    index = Path(git(wt, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    before = world(two_sides)
    index_mtime = index.stat().st_mtime_ns

    diff = await sv.work_diff(wt, "main")

    assert world(two_sides) == before
    assert index.stat().st_mtime_ns == index_mtime
    paths = {f.path: f.change_type for f in diff.files}
    assert paths == {
        "feature.txt": "added",
        ".gitignore": "added",
        "shared.txt": "modified",
        "staged.txt": "added",
        "untracked dir/new.txt": "added",
    }  # not main.txt (main's own work), not debug.log (ignored), not stashed.txt
    assert diff.merge_base == git(two_sides, "merge-base", "main", "feature")
    assert diff.head == git(wt, "rev-parse", "HEAD") and diff.uncommitted
    assert [c.subject for c in diff.commits] == ["ignore logs", "feature: add feature.txt"]
    assert sorted(diff.dirty) == ["shared.txt", "staged.txt", "untracked dir/new.txt"]
    assert diff.stat.files == 5 and diff.stat.additions == 5 and diff.stat.deletions == 1
    # The untracked file is shown with its content, as every other change.
    untracked = next(f for f in diff.files if f.path == "untracked dir/new.txt")
    assert "+new" in untracked.patch.splitlines() and untracked.additions == 1


async def test_work_diff_of_a_clean_worktree_is_its_commits(two_sides: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(two_sides, "worktree", "add", "-q", str(wt), "feature")
    diff = await sv.work_diff(wt, "main")
    assert not diff.uncommitted and diff.dirty == []
    assert [f.path for f in diff.files] == ["feature.txt"]
    with pytest.raises(InputError):
        await sv.work_diff(wt, "nope")
    git(two_sides, "checkout", "-q", "--orphan", "unrelated")
    git(two_sides, "commit", "-q", "-m", "no shared history")
    with pytest.raises(StateError, match="shares no history"):
        await sv.work_diff(two_sides, "feature")


async def test_checked_out_in_and_dirty_paths(two_sides: Path, tmp_path: Path) -> None:
    wt = tmp_path / "wt"
    git(two_sides, "worktree", "add", "-q", str(wt), "feature")
    git(two_sides, "branch", "idle")
    assert await sv.checked_out_in(two_sides, "main") == two_sides
    assert await sv.checked_out_in(two_sides, "feature") == wt.resolve()
    assert await sv.checked_out_in(wt, "main") == two_sides
    assert await sv.checked_out_in(two_sides, "idle") is None
    with pytest.raises(InputError):
        await sv.checked_out_in(two_sides, "-bad")

    assert await sv.dirty_paths(wt) == []
    git(wt, "mv", "feature.txt", "moved.txt")
    (wt / "fresh.txt").write_text("x\n")
    (wt / ".git-ignored").write_text("")  # a plain untracked file with an odd name
    assert sorted(await sv.dirty_paths(wt)) == [".git-ignored", "feature.txt", "fresh.txt", "moved.txt"]


# ----------------------------------------------------------------------------------------- merge check


async def test_merge_check_of_a_clean_merge_gives_the_merged_tree(two_sides: Path) -> None:
    before = world(two_sides)
    check = await sv.merge_check(two_sides, "main", "feature")
    assert world(two_sides) == before
    assert check.clean and check.conflicts == [] and check.tree is not None
    assert not check.fast_forward and not check.up_to_date
    names = git(two_sides, "ls-tree", "--name-only", check.tree).splitlines()
    assert {"feature.txt", "main.txt", "shared.txt"} <= set(names)


async def test_merge_check_lists_conflicts_by_file_and_changes_nothing(two_sides: Path) -> None:
    commit_file(two_sides, "shared.txt", "one\nMAIN\nthree\n", "main edits line 2")
    git(two_sides, "checkout", "-q", "feature")
    commit_file(two_sides, "shared.txt", "one\nFEATURE\nthree\n", "feature edits line 2")
    commit_file(two_sides, "main.txt", "feature's own main.txt\n", "feature adds main.txt too")
    git(two_sides, "checkout", "-q", "main")
    before = world(two_sides)

    check = await sv.merge_check(two_sides, "main", "feature")

    assert world(two_sides) == before
    assert not check.clean and check.tree is None
    assert sorted(check.conflicts) == ["main.txt", "shared.txt"]
    assert any("shared.txt" in m for m in check.messages)
    with pytest.raises(StateError, match=r"2 file\(s\): .*shared\.txt") as refused:
        await sv.land(two_sides, "main", "feature", "merge")
    assert "resolve" in str(refused.value)
    for strategy in ("squash", "rebase"):
        with pytest.raises(StateError):
            await sv.land(two_sides, "main", "feature", strategy)
    assert world(two_sides) == before


async def test_bad_refs_are_refused_before_git_runs(two_sides: Path) -> None:
    before = world(two_sides)
    for target, source in [("--force", "feature"), ("main", "-x"), ("main", "a..b"), ("nope", "feature")]:
        with pytest.raises(InputError):
            await sv.land(two_sides, target, source, "merge")
    with pytest.raises(InputError, match="source branch 'gone' does not exist"):
        await sv.merge_check(two_sides, "main", "gone")
    with pytest.raises(InputError, match="target branch 'gone' does not exist"):
        await sv.merge_check(two_sides, "gone", "feature")
    with pytest.raises(InputError, match="strategy"):
        await sv.land(two_sides, "main", "feature", "octopus")  # type: ignore[arg-type]
    git(two_sides, "tag", "feature-tag", "feature")
    with pytest.raises(InputError, match="does not exist"):
        await sv.land(two_sides, "feature-tag", "main", "merge")  # a tag is not a target branch
    git(two_sides, "tag", "-d", "feature-tag")
    assert world(two_sides) == before


BRANCH_NAMES = [
    *["main", "codex/work-12-a1", "feature_x.2", "a-b/c_d", "v1.0", "x/HEAD", "refs/heads/x"],
    *["HEAD", "@", "a@b", "a@{1}", "a//b", "a/.b", "a.lock", "a/b.lock", ".a", "a.", "a/", "/a", "a..b"],
    *["caf\u00e9", "a~1", "a^", "a:b", "a?", "a*", "a[1]", "a\\b", "-a", "a b", "a\x7f"],
]


@pytest.mark.parametrize("name", BRANCH_NAMES)
async def test_a_branch_name_is_valid_exactly_when_git_says_so(repo: Path, name: str) -> None:
    # The usual names skip `git check-ref-format`; that shortcut must never accept what git refuses.
    git_accepts = git(repo, "check-ref-format", "--branch", name, check=False) != ""
    if g._plainly_valid_branch(name):
        assert git_accepts
    try:
        await g.validate_branch_name(repo, name)
        accepted = True
    except InputError:
        accepted = False
    assert accepted == git_accepts or (not accepted and name.startswith("-"))


# ----------------------------------------------------------------------------------------- landing


async def test_merge_into_the_clean_main_worktree_updates_it(two_sides: Path) -> None:
    old = git(two_sides, "rev-parse", "main")
    landing = await sv.land(two_sides, "main", "feature", "merge")
    new = git(two_sides, "rev-parse", "main")
    assert landing.worktree == two_sides and landing.plan.new_sha == new != old
    assert git(two_sides, "rev-parse", "main^1", "main^2").split() == [
        old,
        git(two_sides, "rev-parse", "feature"),
    ]
    assert git(two_sides, "log", "-1", "--format=%s", "main") == "Merge branch 'feature' into main"
    assert (two_sides / "feature.txt").read_text() == "feature work\n"
    assert git(two_sides, "status", "--porcelain") == ""
    assert [c.subject for c in landing.plan.commits] == ["feature: add feature.txt"]


async def test_landing_into_a_dirty_target_worktree_is_refused(two_sides: Path) -> None:
    (two_sides / "shared.txt").write_text("uncommitted\n")
    (two_sides / "scratch.txt").write_text("untracked\n")
    before = world(two_sides)
    for strategy in ("merge", "squash", "rebase"):
        with pytest.raises(StateError, match=r"uncommitted changes .*commit or stash") as refused:
            await sv.land(two_sides, "main", "feature", strategy)
        assert "shared.txt" in str(refused.value)
        assert world(two_sides) == before


async def test_untracked_files_in_the_target_worktree_do_not_block_a_landing_and_stay(
    two_sides: Path,
) -> None:
    (two_sides / "scratch.txt").write_text("a person's notes\n")
    (two_sides / "local").mkdir()
    (two_sides / "local" / "settings.env").write_text("X=1\n")

    landing = await sv.land(two_sides, "main", "feature", "merge")

    assert landing.worktree is not None and landing.worktree.resolve() == two_sides.resolve()
    assert (two_sides / "feature.txt").read_text() == "feature work\n"
    assert (two_sides / "scratch.txt").read_text() == "a person's notes\n"
    assert (two_sides / "local" / "settings.env").read_text() == "X=1\n"
    assert (
        git(two_sides, "status", "--porcelain", "--untracked-files=all")
        == "?? local/settings.env\n?? scratch.txt"
    )


async def test_an_untracked_file_the_landing_would_overwrite_is_refused_and_named(two_sides: Path) -> None:
    (two_sides / "feature.txt").write_text("someone's own, untracked\n")  # the branch adds this path
    before = world(two_sides)
    for strategy in ("merge", "squash", "rebase"):
        with pytest.raises(StateError, match=r"untracked files the landing would overwrite \(feature\.txt\)"):
            await sv.land(two_sides, "main", "feature", strategy)
        assert world(two_sides) == before
    assert (two_sides / "feature.txt").read_text() == "someone's own, untracked\n"


async def test_fast_forward_of_a_branch_checked_out_nowhere_moves_the_ref(two_sides: Path) -> None:
    git(two_sides, "branch", "release", "main")
    git(two_sides, "checkout", "-q", "-b", "topic", "main")
    commit_file(two_sides, "topic.txt", "topic\n", "topic work")
    git(two_sides, "checkout", "-q", "main")
    before = world(two_sides)

    landing = await sv.land(two_sides, "release", "topic", "merge")

    assert landing.worktree is None and landing.plan.fast_forward
    assert git(two_sides, "rev-parse", "release") == git(two_sides, "rev-parse", "topic")
    after = world(two_sides)
    assert after["refs"] != before["refs"]
    assert {k: v for k, v in after.items() if k != "refs"} == {k: v for k, v in before.items() if k != "refs"}
    assert "codex-mcp: land topic (merge)" in git(two_sides, "reflog", "-1", "release")


async def test_a_target_moved_meanwhile_is_not_overwritten(two_sides: Path) -> None:
    git(two_sides, "branch", "release", "main")
    plan = await sv.plan_landing(two_sides, "release", "feature", "squash")
    # Someone else moves release between the plan and the move (compare-and-swap must refuse).
    other = git(two_sides, "commit-tree", "main^{tree}", "-p", "release", "-m", "someone else")
    git(two_sides, "update-ref", "refs/heads/release", other)
    before = world(two_sides)
    with pytest.raises(StateError, match="moved"):
        await sv.apply_landing(two_sides, plan)
    assert world(two_sides) == before and git(two_sides, "rev-parse", "release") == other
    # The same race on a branch checked out in the main worktree.
    plan = await sv.plan_landing(two_sides, "main", "feature", "merge")
    commit_file(two_sides, "late.txt", "late\n", "a late commit on main")
    before = world(two_sides)
    with pytest.raises(StateError, match="moved"):
        await sv.apply_landing(two_sides, plan)
    assert world(two_sides) == before


async def test_target_checked_out_in_another_worktree_is_updated_there(
    two_sides: Path, tmp_path: Path
) -> None:
    git(two_sides, "checkout", "-q", "--detach")
    other = tmp_path / "other"
    git(two_sides, "worktree", "add", "-q", str(other), "main")
    landing = await sv.land(two_sides, "main", "feature", "squash")
    assert landing.worktree == other.resolve()
    assert git(other, "rev-parse", "HEAD") == landing.plan.new_sha == git(two_sides, "rev-parse", "main")
    assert (other / "feature.txt").exists() and git(other, "status", "--porcelain") == ""
    assert not (two_sides / "feature.txt").exists()  # the detached main worktree is not touched

    (other / "main.txt").write_text("dirty\n")
    git(two_sides, "checkout", "-q", "-b", "more", "feature")
    commit_file(two_sides, "more.txt", "more\n", "more work")
    before = world(two_sides)
    with pytest.raises(StateError, match=f"checked out in {other.resolve()}"):
        await sv.land(two_sides, "main", "more", "merge")
    assert world(two_sides) == before


async def test_squash_is_one_commit_listing_the_squashed_ones(two_sides: Path) -> None:
    git(two_sides, "checkout", "-q", "feature")
    commit_file(two_sides, "feature2.txt", "second\n", "feature: second commit")
    git(two_sides, "checkout", "-q", "main")
    old = git(two_sides, "rev-parse", "main")
    landing = await sv.land(two_sides, "main", "feature", "squash")
    new = git(two_sides, "rev-parse", "main")
    assert git(two_sides, "rev-parse", "main^@") == old  # one parent
    message = git(two_sides, "log", "-1", "--format=%B", "main")
    assert message.startswith("Squashed branch 'feature' into main")
    assert "feature: second commit" in message and "feature: add feature.txt" in message
    check_tree = git(two_sides, "rev-parse", f"{new}^{{tree}}")
    assert sorted(git(two_sides, "ls-tree", "--name-only", check_tree).splitlines()) == [
        "README.md",
        "feature.txt",
        "feature2.txt",
        "main.txt",
        "shared.txt",
    ]
    assert landing.worktree == two_sides and git(two_sides, "status", "--porcelain") == ""
    assert await sv.branch_is_merged(two_sides, "feature", "main")  # merged by content
    assert not await sv._is_ancestor(two_sides, git(two_sides, "rev-parse", "feature"), new)


async def test_rebase_replays_commits_onto_the_target_in_a_scratch_worktree(two_sides: Path) -> None:
    git(two_sides, "checkout", "-q", "feature")
    git(two_sides, "branch", "midway")  # another branch pointing into the replayed commits
    commit_file(two_sides, "feature2.txt", "second\n", "feature: second commit")
    git(two_sides, "checkout", "-q", "main")
    git(two_sides, "config", "rebase.updateRefs", "true")
    old = git(two_sides, "rev-parse", "main")
    midway = git(two_sides, "rev-parse", "midway")

    def worktree_paths() -> list[str]:
        return [
            x
            for x in git(two_sides, "worktree", "list", "--porcelain").splitlines()
            if x.startswith("worktree ")
        ]

    worktrees_before = worktree_paths()

    landing = await sv.land(two_sides, "main", "feature", "rebase")

    subjects = git(two_sides, "log", "--format=%s", f"{old}..main").splitlines()
    assert subjects == ["feature: second commit", "feature: add feature.txt"]
    assert git(two_sides, "rev-list", "--merges", f"{old}..main") == ""
    assert git(two_sides, "rev-parse", "main~2") == old
    assert landing.worktree == two_sides and (two_sides / "feature2.txt").exists()
    assert worktree_paths() == worktrees_before
    scratch = two_sides / ".git" / "codex-mcp" / "landing"
    assert list(scratch.iterdir()) == []
    assert git(two_sides, "rev-parse", "feature") != git(two_sides, "rev-parse", "main")  # source untouched
    assert git(two_sides, "rev-parse", "midway") == midway


async def test_rebase_stopping_on_a_commit_conflict_is_refused_and_cleaned_up(two_sides: Path) -> None:
    # The branch changes line 2 and changes it back: merged as a whole it is clean, replayed commit by
    # commit onto a main that also changed line 2, its first commit conflicts.
    git(two_sides, "checkout", "-q", "feature")
    commit_file(two_sides, "shared.txt", "one\nFEATURE\nthree\n", "feature edits line 2")
    commit_file(two_sides, "shared.txt", "one\ntwo\nthree\n", "feature reverts line 2")
    git(two_sides, "checkout", "-q", "main")
    commit_file(two_sides, "shared.txt", "one\nMAIN\nthree\n", "main edits line 2")
    assert (await sv.merge_check(two_sides, "main", "feature")).clean
    before = world(two_sides)
    with pytest.raises(StateError, match=r"stops on conflicts in shared\.txt.*--strategy merge"):
        await sv.land(two_sides, "main", "feature", "rebase")
    assert world(two_sides) == before
    assert list((two_sides / ".git" / "codex-mcp" / "landing").iterdir()) == []


async def test_landing_what_is_already_there_changes_nothing(two_sides: Path) -> None:
    git(two_sides, "branch", "old", "main~1")
    before = world(two_sides)
    for strategy in ("merge", "squash", "rebase"):
        landing = await sv.land(two_sides, "main", "old", strategy)
        assert not landing.plan.changed and landing.worktree is None and landing.plan.commits == []
    assert world(two_sides) == before


# ----------------------------------------------------------------------------------------- clean


async def test_merged_and_pushed_branches(two_sides: Path, tmp_path: Path) -> None:
    assert not await sv.branch_is_merged(two_sides, "feature", "main")
    git(two_sides, "branch", "behind", "main~1")
    assert await sv.branch_is_merged(two_sides, "behind", "main")
    git(two_sides, "branch", "ff", "main")
    await sv.land(two_sides, "ff", "feature", "merge")
    assert await sv.branch_is_merged(two_sides, "feature", "ff")

    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(two_sides, "remote", "add", "origin", str(remote))
    assert not await sv.branch_is_pushed(two_sides, "feature")
    assert await g.unsafe_to_delete(two_sides, "feature", None) is not None
    git(two_sides, "push", "-q", "origin", "feature")
    assert await sv.branch_is_pushed(two_sides, "feature")
    assert await g.unsafe_to_delete(two_sides, "feature", None) is None
    git(two_sides, "checkout", "-q", "feature")
    commit_file(two_sides, "unpushed.txt", "x\n", "not pushed yet")
    assert not await sv.branch_is_pushed(two_sides, "feature")
    with pytest.raises(InputError):
        await sv.branch_is_pushed(two_sides, "--remotes")
