"""`codex-mcp diff` and `codex-mcp merge` on real repositories, through the real CLI.

Instances are rows whose worktrees are real `git worktree add` checkouts (no agent needed: diff and
merge work on the branch and the folders). Every refusal proves nothing changed with `world()`.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from support import commit_file, db_file, git, new_instance, run_cli, world

from codex_mcp.store import instances as instances_store
from codex_mcp.store import open_database


async def add_instance(repo: Path, instance_id: str, socket: str) -> Path:
    """work instance `instance_id` on branch codex/<id> from main, in worktrees/<id>, with its row."""
    worktree = repo / "worktrees" / instance_id
    git(repo, "worktree", "add", "-q", "-b", f"codex/{instance_id}", str(worktree), "main")
    db = await open_database(repo / ".git" / "codex-mcp" / "codex.db")
    try:
        async with db.write() as tx:
            await instances_store.insert(
                tx,
                new_instance(
                    instance_id,
                    worktree,
                    base_branch="main",
                    issue_number=5,
                    tmux_socket=socket,
                    tmux_session=instance_id,
                ),
            )
    finally:
        await db.close()
    return worktree


def cli(repo: Path, env: dict[str, str], *args: str) -> Any:
    return run_cli(*args, cwd=repo, env=env)


def events(repo: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db_file(repo)) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM mcp_events ORDER BY id")]
    conn.close()
    return rows


@pytest.fixture
def setup(repo: Path, cli_env: dict[str, str], tmux_socket: str) -> tuple[Path, dict[str, str], str]:
    (repo / ".gitignore").write_text("worktrees/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore worktrees")
    commit_file(repo, "shared.txt", "one\ntwo\nthree\n", "shared")
    return repo, {**cli_env, "CODEX_MCP_TMUX_SOCKET": tmux_socket}, tmux_socket


# ------------------------------------------------------------------------------------------------ diff


async def test_diff_shows_commits_uncommitted_and_untracked_work_without_touching_it(
    setup: tuple[Path, dict[str, str], str],
) -> None:
    repo, env, socket = setup
    wt = await add_instance(repo, "work-5-a1", socket)
    commit_file(wt, "feature.py", "print('feature')\n", "add feature")
    git(wt, "mv", "shared.txt", "renamed.txt")
    git(wt, "commit", "-q", "-m", "rename")
    (wt / "renamed.txt").write_text("one\nTWO\nthree\n")  # uncommitted edit
    (wt / "notes.md").write_text("untracked\n")  # untracked
    (wt / "blob.bin").write_bytes(b"\x00\x01\x02binary")
    git(wt, "add", "blob.bin")  # staged
    before = world(repo)

    done = cli(repo, env, "diff", "work-5-a1", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    by_path = {f["path"]: f for f in data["files"]}
    assert set(by_path) == {"feature.py", "renamed.txt", "notes.md", "blob.bin"}
    assert by_path["feature.py"]["change_type"] == "added" and by_path["feature.py"]["additions"] == 1
    assert by_path["renamed.txt"]["old_path"] == "shared.txt"
    assert by_path["renamed.txt"]["change_type"] == "renamed"
    assert "+TWO" in by_path["renamed.txt"]["patch"] and "-two" in by_path["renamed.txt"]["patch"]
    assert by_path["notes.md"]["change_type"] == "added"
    assert by_path["blob.bin"]["binary"] is True and by_path["blob.bin"]["patch"] == ""
    for f in data["files"]:
        assert set(f) == {"path", "old_path", "change_type", "additions", "deletions", "binary", "patch"}
    assert [c["subject"] for c in data["commits"]] == ["rename", "add feature"]
    assert set(data["uncommitted"]) >= {"renamed.txt", "notes.md", "blob.bin"}
    assert world(repo) == before

    text = cli(repo, env, "diff", "work-5-a1").stdout
    assert "+print('feature')" in text and "Binary file blob.bin" in text
    stat = cli(repo, env, "diff", "work-5-a1", "--stat").stdout
    assert "4 file(s) changed against main" in stat and "feature.py" in stat and "+print" not in stat
    assert world(repo) == before
    unknown = cli(repo, env, "diff", "work-9-a9")
    assert unknown.returncode == 2 and "not found" in unknown.stderr


# ----------------------------------------------------------------------------------------------- merge


async def test_merge_refusals_change_nothing(setup: tuple[Path, dict[str, str], str]) -> None:
    repo, env, socket = setup
    wt = await add_instance(repo, "work-5-a1", socket)
    commit_file(wt, "shared.txt", "one\nTWO by the agent\nthree\n", "agent edits line 2")

    # Uncommitted work in the instance.
    (wt / "loose.txt").write_text("not committed\n")
    before = world(repo)
    done = cli(repo, env, "merge", "work-5-a1")
    assert done.returncode != 0 and "has uncommitted work" in done.stderr and "git -C" in done.stderr
    assert world(repo) == before
    (wt / "loose.txt").unlink()

    # The target checked out (main worktree) with uncommitted changes.
    (repo / "shared.txt").write_text("one\ntwo\nthree\nlocal edit\n")
    before = world(repo)
    done = cli(repo, env, "merge", "work-5-a1")
    assert done.returncode != 0 and "main is checked out in" in done.stderr and "shared.txt" in done.stderr
    assert world(repo) == before
    git(repo, "checkout", "--", "shared.txt")

    # A real conflict: both sides edit line 2.
    commit_file(repo, "shared.txt", "one\nTWO by the person\nthree\n", "person edits line 2")
    before = world(repo)
    for strategy in ("merge", "squash", "rebase"):
        done = cli(repo, env, "merge", "work-5-a1", "--strategy", strategy)
        assert done.returncode != 0, done.stdout
        assert (
            "conflicts with main in 1 file(s): shared.txt" in done.stderr
            and "nothing was changed" in done.stderr
        )
        assert world(repo) == before

    # --to-agent: the conflict list becomes feedback in the instance's worktree; nothing else changes.
    done = cli(repo, env, "merge", "work-5-a1", "--to-agent", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "sent_to_agent" and result["conflicts"] == ["shared.txt"]
    [note] = list((wt / ".codex" / "feedback").iterdir())
    assert "shared.txt" in note.read_text() and "git merge main" in note.read_text()
    after = world(repo)
    assert after["refs"] == before["refs"] and after["stash"] == before["stash"]
    for key in ("head", "status", "staged", "unstaged", "index"):
        assert after[str(repo)][key] == before[str(repo)][key], key

    rows = events(repo)
    assert [(r["tool_name"], r["success"]) for r in rows][-5:] == [("merge", 0)] * 4 + [("merge", 1)]
    metadata = json.loads(rows[-1]["metadata"])
    assert metadata["actor"] == "person" and metadata["via"] == "cli"
    assert {r["instance_id"] for r in rows} == {rows[0]["instance_id"]} and rows[0]["instance_id"].startswith(
        "adhoc-"
    )


@pytest.mark.parametrize("placement", ["main-worktree", "other-worktree", "nowhere"])
@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
async def test_merge_lands_the_work_wherever_the_target_is_checked_out(
    setup: tuple[Path, dict[str, str], str], placement: str, strategy: str
) -> None:
    repo, env, socket = setup
    git(repo, "branch", "release")
    wt = await add_instance(repo, "work-5-a1", socket)
    commit_file(wt, "feature.py", "x = 1\n", "feature one")
    commit_file(wt, "feature2.py", "y = 2\n", "feature two")
    commit_file(repo, "other.txt", "the target moved on\n", "target moves")  # on main: no fast-forward
    git(repo, "checkout", "-q", "release")
    git(repo, "merge", "-q", "--ff-only", "main")
    target = "release"
    holder: Path | None = None
    if placement == "main-worktree":
        holder = repo  # release is checked out in the main worktree
    else:
        git(repo, "checkout", "-q", "main")
        if placement == "other-worktree":
            holder = repo.parent / "release-tree"
            git(repo, "worktree", "add", "-q", str(holder), "release")
    old = git(repo, "rev-parse", "release")

    done = cli(repo, env, "merge", "work-5-a1", "--into", target, "--strategy", strategy, "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "merged" and result["old_commit"] == old
    new = git(repo, "rev-parse", "release")
    assert new == result["new_commit"] != old
    assert git(repo, "merge-base", "--is-ancestor", old, new, check=False) == ""
    tree_files = set(git(repo, "ls-tree", "--name-only", new).split())
    assert {"feature.py", "feature2.py", "other.txt"} <= tree_files
    if holder is not None:
        assert result["updated_worktree"] == str(holder)
        assert (holder / "feature.py").read_text() == "x = 1\n"
        assert git(holder, "status", "--porcelain") == ""
    else:
        assert result["updated_worktree"] is None
    parents = git(repo, "rev-list", "--parents", "-n", "1", new).split()[1:]
    assert len(parents) == (2 if strategy == "merge" else 1)

    shown = json.loads(cli(repo, env, "show", "work-5-a1", "--json").stdout)
    instance = shown.get("instance", shown)
    assert instance["merged_into"] == "release" and instance["merged_commit"] == new
    listed = cli(repo, env, "ls", "--all").stdout
    assert "merged" in listed
    # A second merge has nothing to land.
    again = json.loads(
        cli(repo, env, "merge", "work-5-a1", "--into", target, "--strategy", "merge", "--json").stdout
    )
    assert again["outcome"] in ("up_to_date", "merged")
