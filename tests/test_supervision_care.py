"""`codex-mcp open`, `feedback` and `clean` as a person runs them: real processes, repos, tmux.

Instances are started with the real `start` on a private tmux server, stand-in agents (real MCP
clients) as their agents; a bare repository in a temporary folder is the remote; the editor is a real
script that writes its arguments to a file. Every action must leave its `mcp_events` row with actor
person, and a refused or dry run must change nothing (refs, worktrees, folders).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import (
    CliSession,
    commit_file,
    git,
    read_standin_log,
    standin_command,
    tmux_sessions,
    wait_for,
)

from codex_mcp.store import issues as issues_store
from codex_mcp.store import open_database
from codex_mcp.store.issues import Issue

OLD = "1600000000 +0000"  # a date long past: orphans made "then" are beyond clean's grace period


class Cli(CliSession):
    """The CLI session these tests drive, with the events they read."""

    def events(self, tool: str) -> list[dict[str, Any]]:
        rows = self.query("SELECT * FROM mcp_events WHERE tool_name = ? ORDER BY id", tool)
        for row in rows:
            row["metadata"] = json.loads(row["metadata"] or "{}")
        return rows

    def worktree(self, instance_id: str) -> Path:
        return self.repo / "worktrees" / instance_id


@pytest.fixture
def cli(
    repo: Path, cli_env: dict[str, str], tmux_socket: str, write_script: Callable[[dict[str, Any]], Path]
) -> Cli:
    env = {
        **cli_env,
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
        "CODEX_MCP_AGENT_COMMAND": standin_command(write_script({})),
        "COLUMNS": "250",
    }
    return Cli(repo, env, tmux_socket)


def world(repo: Path) -> dict[str, Any]:
    """What clean may change: every ref, the worktrees git knows, the folders under the root."""
    root = repo / "worktrees"
    return {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "folders": sorted(str(p.relative_to(repo)) for p in root.rglob("*")) if root.exists() else [],
    }


def branch_exists(repo: Path, branch: str) -> bool:
    done = subprocess.run(
        ["git", "show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=repo, check=False
    )
    return done.returncode == 0


def assert_person_event(row: dict[str, Any], success: bool) -> None:
    assert row["success"] == int(success)
    assert row["metadata"]["actor"] == "person" and row["metadata"]["via"] == "cli"


async def started(cli: Cli, instance_id: str) -> None:
    await wait_for(
        lambda: any(e.get("event") == "start" for e in read_standin_log(cli.worktree(instance_id)))
    )


# ---------------------------------------------------------------------------------------------- clean


async def test_clean_removes_only_what_is_safe_and_dry_run_changes_nothing(
    cli: Cli, repo: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(repo, "remote", "add", "origin", str(remote))
    git(repo, "push", "-q", "origin", "main")
    ids: list[str] = [cli.json("start", "--prompt", "work")["id"] for _ in range(6)]
    merged, unmerged, pushed, dirty, running, squashed = ids
    for instance_id in ids:
        await started(cli, instance_id)
    commit_file(cli.worktree(merged), "merged.txt", "landed\n")
    git(repo, "merge", "-q", "--ff-only", f"codex/{merged}")
    # Landed by a squash: its own commit is not in main, its change is.
    commit_file(cli.worktree(squashed), "squashed.txt", "landed as one\n")
    git(repo, "merge", "-q", "--squash", f"codex/{squashed}")
    git(repo, "commit", "-q", "-m", "squashed")
    commit_file(cli.worktree(unmerged), "mine.txt", "only here\n")
    commit_file(cli.worktree(pushed), "pushed.txt", "on the remote\n")
    git(cli.worktree(pushed), "push", "-q", "origin", f"codex/{pushed}")
    (cli.worktree(dirty) / "draft.txt").write_text("not committed\n", encoding="utf-8")
    commit_file(cli.worktree(running), "running.txt", "still working\n")
    for instance_id in (merged, unmerged, pushed, dirty, squashed):
        cli.ok("kill", instance_id)

    # --dry-run: says what it would do and why the rest stays; nothing changes.
    before = world(repo)
    out = cli.ok("clean", "--dry-run")
    assert out.startswith("dry run: nothing was changed\n")
    lines = out.splitlines()
    assert (
        f"{merged}: would remove worktree {cli.worktree(merged)}; would delete branch codex/{merged}" in lines
    )
    assert (
        f"{pushed}: would remove worktree {cli.worktree(pushed)}; would delete branch codex/{pushed}" in lines
    )
    assert (
        f"{unmerged}: would remove worktree {cli.worktree(unmerged)}; keeps branch codex/{unmerged}" in lines
    )
    assert (
        f"{squashed}: would remove worktree {cli.worktree(squashed)}; would delete branch codex/{squashed}"
        in lines
    )
    assert f"{dirty}: keeps worktree {cli.worktree(dirty)}; keeps branch codex/{dirty}" in lines
    assert "neither pushed nor merged" in out and f"git push origin codex/{unmerged}" in out
    assert "uncommitted changes (1 path(s), e.g. draft.txt)" in out
    assert running not in out
    assert "1 running instance(s) untouched" in out
    dry = cli.json("clean", "--dry-run")
    assert dry["dry_run"] is True and dry["scope"] == "terminated"
    assert dry["worktrees_removed"] == 4 and dry["branches_deleted"] == 3 and dry["kept"] == 2
    assert world(repo) == before

    # --merged: only the merged instance goes; the pushed one is kept as not merged.
    report = cli.json("clean", "--merged")
    fates = {i["instance_id"]: (i["worktree"], i["branch"]) for i in report["items"]}
    assert fates[merged] == ("removed", "deleted") and fates[squashed] == ("removed", "deleted")
    assert not branch_exists(repo, f"codex/{squashed}")
    assert fates[pushed] == ("kept", "kept") and fates[unmerged] == ("kept", "kept")
    assert not cli.worktree(merged).exists() and not branch_exists(repo, f"codex/{merged}")
    assert cli.worktree(pushed).is_dir() and branch_exists(repo, f"codex/{pushed}")

    # The real run (every terminated instance): pushed goes, unmerged keeps its branch, dirty stays.
    out = cli.ok("clean")
    assert f"{pushed}: removed worktree {cli.worktree(pushed)}; deleted branch codex/{pushed}" in out
    assert f"{unmerged}: removed worktree {cli.worktree(unmerged)}; keeps branch codex/{unmerged}" in out
    assert not cli.worktree(pushed).exists() and not branch_exists(repo, f"codex/{pushed}")
    assert not cli.worktree(unmerged).exists() and branch_exists(repo, f"codex/{unmerged}")
    assert git(repo, "log", "-1", "--format=%s", f"codex/{unmerged}") == "add mine.txt"
    assert (cli.worktree(dirty) / "draft.txt").read_text(encoding="utf-8") == "not committed\n"
    assert branch_exists(repo, f"codex/{dirty}")
    # The running instance: untouched, its session alive.
    assert (cli.worktree(running) / "running.txt").exists() and branch_exists(repo, f"codex/{running}")
    assert running in tmux_sessions(cli.socket)

    # Again: nothing more goes; what is left is said again.
    again = cli.json("clean")
    assert again["worktrees_removed"] == 0 and again["branches_deleted"] == 0
    assert again["already_clean"] == 3 and again["kept"] == 2

    # Rows stay (history); each run left one event with actor person and the counts.
    statuses = {r["id"]: r["status"] for r in cli.query("SELECT id, status FROM instances")}
    assert [statuses[i] for i in ids] == ["terminated"] * 4 + ["running", "terminated"]
    rows = cli.events("clean")
    assert len(rows) == 5
    for row in rows:
        assert_person_event(row, True)
    assert rows[0]["metadata"]["args"]["dry_run"] is True
    assert rows[3]["metadata"]["result"]["worktrees_removed"] == 2
    assert rows[3]["metadata"]["result"]["branches_deleted"] == 1


def make_orphan(repo: Path, branch: str, start: str, *, worktree: bool, old: bool = True) -> Path:
    """What a server killed mid-spawn leaves: a codex/ branch, perhaps a worktree on it, no row."""
    env = {**os.environ, "GIT_COMMITTER_DATE": OLD} if old else None
    subprocess.run(["git", "branch", branch, start], cwd=repo, check=True, env=env)
    path = repo / "worktrees" / branch.removeprefix("codex/")
    if worktree:
        path.parent.mkdir(exist_ok=True)
        git(repo, "worktree", "add", "-q", str(path), branch)
        if old:
            for touched in (path, path / ".git"):
                os.utime(touched, (1_600_000_000, 1_600_000_000))
    return path


async def test_clean_orphans_no_row_owns(cli: Cli, repo: Path) -> None:
    # Make the database (the person's row) first: orphans are branches and folders no row names.
    cli.ok("ls")
    main_sha = git(repo, "rev-parse", "main")
    # A review orphan at the work's own commit (nothing uncommitted at review time): contained in main.
    safe = make_orphan(repo, "codex/review-4-a1", main_sha, worktree=True)
    # A review orphan at a snapshot of uncommitted work: the snapshot commit is nowhere else.
    tree = git(repo, "rev-parse", "main^{tree}")
    snapshot = git(
        repo, "commit-tree", tree, "-p", main_sha, "-m", "codex-mcp snapshot: uncommitted work at review time"
    )
    make_orphan(repo, "codex/review-4-a2", snapshot, worktree=False)
    # Two orphans sharing one commit nobody else has: one may go, the last copy must stay.
    lone = git(repo, "commit-tree", tree, "-p", main_sha, "-m", "work nobody pushed")
    make_orphan(repo, "codex/work-5-a1", lone, worktree=False)
    make_orphan(repo, "codex/work-5-a2", lone, worktree=False)
    # An orphan worktree with uncommitted changes, and an orphan made a moment ago (a spawn in progress).
    dirty = make_orphan(repo, "codex/fork-like-a1", main_sha, worktree=True)
    dirty.joinpath("notes.txt").write_text("draft\n", encoding="utf-8")
    os.utime(dirty, (1_600_000_000, 1_600_000_000))
    make_orphan(repo, "codex/review-6-a1", main_sha, worktree=False, old=False)
    # Not ours: a folder under the root that is neither a worktree nor named like an instance.
    (repo / "worktrees" / "notes").mkdir()

    before = world(repo)
    dry = cli.json("clean", "--dry-run")
    assert world(repo) == before
    real = cli.json("clean")
    assert [
        (i["kind"], i["worktree_path"], i["branch_name"], i["worktree"], i["branch"]) for i in dry["items"]
    ] == [
        (
            i["kind"],
            i["worktree_path"],
            i["branch_name"],
            i["worktree"].replace("removed", "would_remove") if i["worktree"] else None,
            i["branch"].replace("deleted", "would_delete") if i["branch"] else None,
        )
        for i in real["items"]
    ]
    by_branch = {(i["kind"], i["branch_name"]): i for i in real["items"]}

    assert by_branch[("orphan_worktree", "codex/review-4-a1")]["worktree"] == "removed"
    assert by_branch[("orphan_branch", "codex/review-4-a1")]["branch"] == "deleted"
    assert not safe.exists() and not branch_exists(repo, "codex/review-4-a1")

    snap = by_branch[("orphan_branch", "codex/review-4-a2")]
    assert snap["branch"] == "kept" and "snapshot of uncommitted work" in snap["kept_because"][0]
    assert branch_exists(repo, "codex/review-4-a2")

    pair = [by_branch[("orphan_branch", f"codex/work-5-a{n}")]["branch"] for n in (1, 2)]
    assert pair == ["deleted", "kept"]
    assert git(repo, "rev-parse", "codex/work-5-a2") == lone

    assert by_branch[("orphan_worktree", "codex/fork-like-a1")]["worktree"] == "kept"
    assert (dirty / "notes.txt").exists()
    assert by_branch[("orphan_branch", "codex/fork-like-a1")]["kept_because"] == [
        f"branch codex/fork-like-a1 is checked out in {dirty}"
    ]

    young = by_branch[("orphan_branch", "codex/review-6-a1")]
    assert young["branch"] == "kept" and "a spawn may still be making it" in young["kept_because"][0]
    assert (repo / "worktrees" / "notes").is_dir()
    assert all(i["worktree_path"] != str(repo / "worktrees" / "notes") for i in real["items"])

    out = cli.ok("clean")
    assert "orphan branch: keeps branch codex/review-4-a2" in out
    assert "orphan worktree: keeps worktree " + str(dirty) in out


# ----------------------------------------------------------------------------------------------- open


@pytest.fixture
def editor_script(tmp_path: Path) -> tuple[Path, Path]:
    """A real program named `fake-editor` that appends its arguments (JSON) to a file."""
    out = tmp_path / "editor-calls.jsonl"
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "fake-editor"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(out)!r}, 'a') as fh:\n    fh.write(json.dumps(sys.argv[1:]) + '\\n')\n",
        encoding="utf-8",
    )
    script.chmod(0o755)
    return script, out


def editor_calls(out: Path) -> list[list[str]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line]


async def test_open_runs_the_editor_without_a_shell(cli: Cli, editor_script: tuple[Path, Path]) -> None:
    script, out = editor_script
    cli.env["PATH"] = f"{script.parent}{os.pathsep}{cli.env.get('PATH', '')}"
    instance_id: str = cli.json("start", "--prompt", "x")["id"]
    worktree = cli.worktree(instance_id)

    # Unknown placeholders are refused when set; a missing program is "no editor found" with the fix.
    assert "unknown placeholder {file}" in cli.error("config", "set", "editor.command", "fake-editor {file}")
    cli.ok("config", "set", "editor.command", "no-such-editor-xyz {path}")
    line = cli.error("open", instance_id, code=3)
    assert "no editor found" in line and 'codex-mcp config set editor.command "vim {path}"' in line

    # Found on PATH; {path} replaced inside an argument; words with spaces and $() stay one argument.
    cli.ok("config", "set", "editor.command", "fake-editor --goto='{path}/README.md' '$(touch x) y'")
    data = cli.json("open", instance_id)
    assert data["instance_id"] == instance_id and data["foreground"] is False
    assert data["command"][0] == str(script)
    calls = await wait_for(lambda: editor_calls(out))
    assert calls == [[f"--goto={worktree}/README.md", "$(touch x) y"]]
    assert not (cli.repo / "x").exists() and not (worktree / "x").exists()

    # Without {path} the worktree is the last argument; --wait runs it in the foreground.
    cli.ok("config", "set", "editor.command", "fake-editor -n")
    text = cli.ok("open", instance_id, "--wait")
    assert text.strip() == f"ran {script} on {worktree} ({instance_id})"
    assert editor_calls(out)[-1] == ["-n", str(worktree)]

    # Terminated, and its worktree gone (removed by clean): a clear error.
    cli.ok("kill", instance_id)
    cli.ok("clean")
    assert not worktree.exists()
    line = cli.error("open", instance_id)
    assert "is gone" in line and "git worktree add" in line
    assert "not found" in cli.error("open", "adhoc-a9", code=2)

    rows = cli.events("open")
    assert [r["success"] for r in rows] == [0, 1, 1, 0, 0]
    for row in rows:
        assert_person_event(row, bool(row["success"]))


# ------------------------------------------------------------------------------------------- feedback


async def cache_issue(db_path: Path) -> None:
    db = await open_database(db_path)
    try:
        async with db.write() as tx:
            await issues_store.upsert_many(
                tx,
                [Issue(number=4, title="Spin", body="spin it", state="open", repo_owner="o", repo_name="r")],
            )
    finally:
        await db.close()


async def test_feedback_from_a_person_reaches_the_agent(
    cli: Cli, tmp_path: Path, write_script: Callable[[dict[str, Any]], Path]
) -> None:
    import getpass

    await cache_issue(cli.db_path)
    script = {"work": [{"call": "spawn_review_instance", "args": {"reviewer_prompt": "look"}}]}
    cli.env["CODEX_MCP_AGENT_COMMAND"] = standin_command(write_script(script))
    cli.ok("start", "--issue", "4", "--prompt", "spin")
    worktree = cli.worktree("work-4-a1")
    await started(cli, "work-4-a1")
    await wait_for(
        lambda: cli.query("SELECT id FROM instances WHERE id = 'review-4-a1' AND status = 'running'")
    )
    text = 'Rename `spin` to "rotate"; don\'t $(touch canary).\nSecond line ✓'

    data = cli.json("feedback", "work-4-a1", text, "--priority", "high")
    assert data["target_instance_id"] == "work-4-a1" and data["delivery_status"] == "delivered"
    path = worktree / ".codex" / "feedback" / f"{data['feedback_id']}.md"
    content = path.read_text(encoding="utf-8")
    assert content.startswith(f"# Review feedback from a person ({getpass.getuser()})\n")
    assert "- type: needs_work\n- priority: high\n- for: work-4-a1\n" in content
    assert content.endswith("\n\n" + text + "\n")
    notices = await wait_for(
        lambda: [
            e
            for e in read_standin_log(worktree)
            if e.get("event") == "input" and f".codex/feedback/{path.name}" in e.get("text", "")
        ]
    )
    assert "from a person" in notices[0]["text"]
    assert not (cli.repo / "canary").exists() and not (worktree / "canary").exists()

    # Long text from a file or standard input.
    long_text = "line\n" * 2000
    note = tmp_path / "review.md"
    note.write_text(long_text, encoding="utf-8")
    out = cli.ok("feedback", "work-4-a1", "--file", str(note), "--type", "suggestions")
    assert "to work-4-a1: delivered" in out
    piped = json.loads(cli.ok("feedback", "work-4-a1", "--file", "-", "--json", input="from stdin\n"))
    assert (
        (worktree / ".codex" / "feedback" / f"{piped['feedback_id']}.md")
        .read_text(encoding="utf-8")
        .endswith("\n\nfrom stdin\n\n")
    )

    # A symlinked feedback folder (an agent can make one) is refused: nothing is written through it.
    outside = tmp_path / "outside"
    outside.mkdir()
    feedback_dir = worktree / ".codex" / "feedback"
    moved = worktree / ".codex" / "feedback-real"
    feedback_dir.rename(moved)
    feedback_dir.symlink_to(outside, target_is_directory=True)
    line = cli.error("feedback", "work-4-a1", "through the link")
    assert "is a symbolic link" in line and "rm " in line
    assert list(outside.iterdir()) == []
    feedback_dir.unlink()
    moved.rename(feedback_dir)

    # Refusals: empty text, both or neither source, a review instance, unknown, terminated.
    assert "empty" in cli.error("feedback", "work-4-a1", "   ", code=2)
    assert "not both" in cli.error("feedback", "work-4-a1", "x", "--file", str(note), code=2)
    assert "no feedback given" in cli.error("feedback", "work-4-a1", code=2)
    assert "not found" in cli.error("feedback", "work-4-a9", "x", code=2)
    line = cli.error("feedback", "review-4-a1", "x")
    assert "review instance" in line and "codex-mcp feedback work-4-a1 TEXT" in line
    cli.ok("kill", "work-4-a1")
    line = cli.error("feedback", "work-4-a1", "too late")
    assert "terminated" in line and "codex-mcp resume work-4-a1" in line
    assert len(list((worktree / ".codex" / "feedback").iterdir())) == 3

    rows = cli.events("feedback")
    assert [r["success"] for r in rows] == [1, 1, 1, 0, 0, 0, 0, 0]  # usage errors are refused before acting
    for row in rows:
        assert_person_event(row, bool(row["success"]))
        assert row["metadata"]["args"]["feedback"]["redacted"] is True  # the text is never kept in clear
