"""The lifecycle tools through an in-process MCP client: spawn_review_instance, fork_instance,
send_feedback and terminate_instance, with real git worktrees, real tmux (private socket), real
SQLite and stand-in agents; and the authorization matrix of DESIGN.md (role x tool x target).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from support import (
    SettingsMaker,
    event_rows,
    git,
    ok,
    read_standin_log,
    text_of,
    tmux_sessions,
    wait_for,
)

from codex_mcp.app import App
from codex_mcp.identity import Caller
from codex_mcp.ids import InstanceType
from codex_mcp.lifecycle import Lifecycle
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.instances import NewInstance
from codex_mcp.store.issues import Issue
from codex_mcp.store.relationships import Relationship
from codex_mcp.userconfig import UserConfig

ISSUE_TITLE = "Teach the parser about unicode identifiers"
ISSUE_BODY = "Identifiers like `café` must parse.\n\nAcceptance: tests for NFC and NFD forms."
TERMINATE_RULE = "may terminate itself and the instances it spawned or forked"

# --------------------------------------------------------------------------------------------- helpers


def status(cwd: Path) -> str:
    # --no-optional-locks: `git status` must not refresh (rewrite) the index we are watching.
    return git(cwd, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all", strip=False)


def index_state(worktree: Path) -> tuple[bytes, int, int]:
    path = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index"))
    st = path.stat()
    return path.read_bytes(), st.st_mtime_ns, st.st_ino


def branch_exists(repo: Path, branch: str) -> bool:
    done = subprocess.run(
        ["git", "show-ref", "--verify", "--quiet", f"refs/heads/{branch}"], cwd=repo, check=False
    )
    return done.returncode == 0


async def call_as(
    settings: Settings, db: Database, instance_id: str, tool: str, args: dict[str, Any] | None = None
) -> Any:
    """Call ``tool`` through a real (in-process) MCP client, on a server serving ``instance_id``."""
    row = await instances_store.require(db, instance_id)
    app = App(settings=settings, db=db, caller=Caller(row, "explicit"))
    async with Client(build_server(app)) as client:
        return await client.call_tool(tool, args or {})


async def events(db: Database, instance_id: str, tool: str) -> list[dict[str, Any]]:
    return await event_rows(db, "instance_id = ? AND tool_name = ?", (instance_id, tool))


async def instance_count(db: Database) -> int:
    row = await db.fetchone("SELECT COUNT(*) FROM instances")
    assert row is not None
    return int(row[0])


async def world(db: Database, repo: Path, socket: str) -> dict[str, Any]:
    """Everything a refused call must leave as it was."""
    rows = await db.fetchall("SELECT id, status, terminated_at FROM instances ORDER BY id")
    rels = await db.fetchall(
        "SELECT parent_instance, child_instance, relationship_type FROM instance_relationships ORDER BY id"
    )
    root = repo / "worktrees"
    return {
        "instances": [tuple(r) for r in rows],
        "relationships": [tuple(r) for r in rels],
        "branches": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "folders": sorted(p.name for p in root.iterdir()) if root.is_dir() else [],
        "sessions": tmux_sessions(socket),
        "feedback": sorted(str(p) for p in root.glob("*/.codex/feedback/*.md")),
    }


async def cache_issue(db: Database, number: int) -> None:
    async with db.write() as tx:
        await issues_store.upsert_many(
            tx,
            [
                Issue(
                    number=number,
                    title=ISSUE_TITLE,
                    body=ISSUE_BODY,
                    state="open",
                    repo_owner="octo",
                    repo_name="parser",
                )
            ],
        )


async def start_work(settings: Settings, db: Database, issue: int, prompt: str = "build it") -> Any:
    lifecycle = Lifecycle(settings, db)
    return await lifecycle.commit(await lifecycle.prepare_work(issue_number=issue, base=None, prompt=prompt))


def finisher_running(needle: str) -> bool:
    """Whether a `codex_mcp.lifecycle.finisher` process whose spec mentions ``needle`` is still alive."""
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"codex_mcp.lifecycle.finisher" in cmdline and needle.encode() in cmdline:
            return True
    return False


def assert_git_fsck_clean(repo: Path) -> None:
    done = subprocess.run(["git", "fsck", "--full"], cwd=repo, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    bad = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith(("error", "missing", "broken", "fatal", "bad"))
    ]
    assert not bad, bad


# --------------------------------------------------------------------------- 1. spawn_review_instance


async def test_spawn_review_snapshots_uncommitted_work_without_touching_the_callers_tree(
    lifecycle_settings: SettingsMaker, db: Database, repo: Path, tmux_socket: str
) -> None:
    # A second tracked file on main, so the work can delete one.
    (repo / "old.txt").write_text("to be deleted\n")
    git(repo, "add", "old.txt")
    git(repo, "commit", "-q", "-m", "old file")
    settings = lifecycle_settings()
    await cache_issue(db, 7)
    await UserConfig(db).set("reviews.max_iterations", "1")
    work = await start_work(settings, db, 7)
    wt = Path(work.worktree_path)

    # Uncommitted work of every kind: modified, deleted, staged new, untracked new (in a subfolder).
    (wt / "README.md").write_text("hello\nchanged by the work agent\n")
    (wt / "old.txt").unlink()
    (wt / "staged.txt").write_text("staged but not committed\n")
    git(wt, "add", "staged.txt")
    (wt / "src").mkdir()
    (wt / "src" / "new_module.py").write_text("def café():\n    return 'ünïcode'\n")
    (wt / "src" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (wt / "src" / "run.sh").chmod(0o755)
    head_before = git(wt, "rev-parse", "HEAD")
    status_before = status(wt)
    index_before = index_state(wt)
    files_before = {p: (wt / p).read_bytes() for p in ("README.md", "staged.txt", "src/new_module.py")}
    assert "old.txt" in status_before and "src/new_module.py" in status_before

    result = await call_as(
        settings, db, work.id, "spawn_review_instance", {"reviewer_prompt": "Look hard at the café() helper"}
    )
    data = ok(result)

    # The caller's tree, index and HEAD are exactly as they were.
    assert status(wt) == status_before
    assert index_state(wt) == index_before
    assert {p: (wt / p).read_bytes() for p in files_before} == files_before
    assert not (wt / "old.txt").exists()
    assert git(wt, "rev-parse", "HEAD") == head_before

    # The result matches the row, and the session runs.
    assert data["review_instance_id"] == "review-7-a1"
    review = await instances_store.require(db, "review-7-a1")
    assert review.type == "review" and review.status == "running" and review.issue_number == 7
    assert data["session_name"] == review.tmux_session
    assert data["worktree_path"] == review.worktree_path
    assert data["branch_name"] == review.branch_name == "codex/review-7-a1"
    assert review.base_branch == work.branch_name
    assert review.tmux_session in tmux_sessions(tmux_socket)

    # The reviewer's branch: a snapshot commit on top of the work's HEAD, with every change in it.
    branch = review.branch_name
    assert git(repo, "rev-parse", f"{branch}^") == head_before
    tracked = set(git(repo, "ls-tree", "-r", "--name-only", branch).split())
    assert tracked == {"README.md", "staged.txt", "src/new_module.py", "src/run.sh"}  # no old.txt, no .codex/
    assert git(repo, "ls-tree", branch, "src/run.sh").startswith("100755 ")
    for path, content in files_before.items():
        assert git(repo, "show", f"{branch}:{path}", strip=False).encode() == content
        assert (Path(review.worktree_path) / path).read_bytes() == content
    assert not (Path(review.worktree_path) / "old.txt").exists()

    # The generated brief: files, stats, the issue, the author's request, how to answer.
    prompt = review.prompt or ""
    for name in ("README.md", "old.txt", "staged.txt", "src/new_module.py", "src/run.sh"):
        assert name in prompt
    assert re.search(r"5 files changed, \d+ insertions?\(\+\), \d+ deletions?\(-\)", prompt), prompt
    assert ISSUE_TITLE in prompt and ISSUE_BODY in prompt
    assert "Look hard at the café() helper" in prompt
    assert "send_feedback" in prompt

    parents = await relationships_store.parents_of(db, review.id)
    assert [(p.id, p.relationship_type) for p in parents] == [(work.id, "spawned_review")]
    [event] = await events(db, work.id, "spawn_review_instance")
    assert event["success"] == 1

    # The cap (reviews.max_iterations = 1): refused, recorded, nothing made.
    before = await world(db, repo, tmux_socket)
    refused = await call_as(settings, db, work.id, "spawn_review_instance", {})
    assert refused.is_error
    assert "reviews.max_iterations" in text_of(refused)
    assert await world(db, repo, tmux_socket) == before
    assert not branch_exists(repo, "codex/review-7-a2")
    failed = [e for e in await events(db, work.id, "spawn_review_instance") if not e["success"]]
    assert len(failed) == 1 and "reviews.max_iterations" in failed[0]["error_message"]
    assert status(wt) == status_before and index_state(wt) == index_before
    assert_git_fsck_clean(repo)


# ---------------------------------------------------------------------------------- 2. fork_instance


async def test_fork_starts_the_next_agent_on_the_same_issue_from_a_snapshot(
    lifecycle_settings: SettingsMaker, db: Database, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    work = await start_work(settings, db, 7, prompt="original instructions")
    wt = Path(work.worktree_path)
    (wt / "README.md").write_text("hello\nhalf-done work\n")
    (wt / "draft.txt").write_text("untracked draft\n")
    status_before, index_before = status(wt), index_state(wt)

    data = ok(await call_as(settings, db, work.id, "fork_instance", {"prompt": "try the other approach"}))

    assert status(wt) == status_before and index_state(wt) == index_before
    assert data["instance_id"] == "work-7-a2"
    fork = await instances_store.require(db, "work-7-a2")
    assert (fork.type, fork.status, fork.issue_number, fork.agent_number) == ("work", "running", 7, 2)
    assert fork.base_branch == work.base_branch == "main"
    assert data["session_name"] == fork.tmux_session and fork.tmux_session in tmux_sessions(tmux_socket)
    assert data["worktree_path"] == fork.worktree_path
    assert data["branch_name"] == fork.branch_name == "codex/work-7-a2"
    fork_wt = Path(fork.worktree_path)
    assert (fork_wt / "README.md").read_text() == "hello\nhalf-done work\n"
    assert (fork_wt / "draft.txt").read_text() == "untracked draft\n"
    assert git(repo, "rev-parse", f"{fork.branch_name}^") == git(wt, "rev-parse", "HEAD")
    assert "try the other approach" in (fork.prompt or "")
    assert "original instructions" not in (fork.prompt or "")

    parents = await relationships_store.parents_of(db, fork.id)
    assert [(p.id, p.relationship_type) for p in parents] == [(work.id, "created_fork")]
    [event] = await events(db, work.id, "fork_instance")
    assert event["success"] == 1

    # A fork of the fork, without a prompt: it gets the fork's task, and is told who *it* is -- never
    # its parent's id, worktree or branch (an agent told so would work in its parent's worktree).
    data = ok(await call_as(settings, db, fork.id, "fork_instance", {}))
    assert data["instance_id"] == "work-7-a3"
    second = await instances_store.require(db, "work-7-a3")
    prompt = second.prompt or ""
    assert "try the other approach" in prompt
    assert f"You are codex-mcp instance {second.id}" in prompt and second.worktree_path in prompt
    for parent in (work, fork):
        assert f"You are {parent.id}" not in prompt
        assert f"instance {parent.id}" not in prompt and parent.worktree_path not in prompt
    parents = await relationships_store.parents_of(db, second.id)
    assert [(p.id, p.relationship_type) for p in parents] == [(fork.id, "created_fork")]
    # The task each was given is kept on its own: the fork's instructions, handed down as they are.
    assert await instances_store.task_of(db, work.id) == "# GitHub issue #7\n\noriginal instructions"
    assert await instances_store.task_of(db, fork.id) == "try the other approach"
    assert await instances_store.task_of(db, second.id) == "try the other approach"


async def test_a_fork_of_an_instance_recorded_before_tasks_were_kept_gets_its_whole_prompt(
    lifecycle_settings: SettingsMaker, db: Database, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    work = await start_work(settings, db, 7, prompt="original instructions")
    async with db.write() as tx:  # what a row written before migration 6 looks like
        await tx.execute("UPDATE instances SET task = NULL WHERE id = ?", (work.id,))

    ok(await call_as(settings, db, work.id, "fork_instance", {}))

    fork = await instances_store.require(db, "work-7-a2")
    assert await instances_store.task_of(db, fork.id) == work.prompt  # nothing parsed out of it
    assert (fork.prompt or "").startswith(f"You are {fork.id}, a fork of {work.id}")
    assert f"You are codex-mcp instance {fork.id}" in (fork.prompt or "")


# ---------------------------------------------------------------------------------- 3. send_feedback


async def test_send_feedback_writes_verbatim_file_and_notifies_or_queues(
    lifecycle_settings: SettingsMaker, db: Database, repo: Path, tmux_socket: str, tmp_path: Path
) -> None:
    settings = lifecycle_settings()
    work = await start_work(settings, db, 7)
    wt = Path(work.worktree_path)
    review_id = ok(await call_as(settings, db, work.id, "spawn_review_instance", {}))["review_instance_id"]

    canary = tmp_path / "canary"
    feedback = (
        f'He said "stop" & it\'s fine; `touch {canary}` $(touch {canary}) \\; C-c Enter\n'
        "-- a line starting with dashes\n\tünïcödé ✓ 🚀 «quotes»\n"
        "ZEBRA-CANARY-7f3a\n\nlast line without newline"
    )
    data = ok(
        await call_as(
            settings,
            db,
            review_id,
            "send_feedback",
            {"feedback": feedback, "feedback_type": "needs_work", "priority": "high"},
        )
    )
    assert data["target_instance_id"] == work.id
    assert data["delivery_status"] == "delivered"
    path = wt / ".codex" / "feedback" / f"{data['feedback_id']}.md"
    content = path.read_text(encoding="utf-8")
    assert content.endswith("\n\n" + feedback + "\n")
    assert "needs_work" in content and "high" in content

    # The work agent's terminal received the notice naming the file.
    notices = await wait_for(
        lambda: [
            e
            for e in read_standin_log(wt)
            if e.get("event") == "input" and f".codex/feedback/{path.name}" in e.get("text", "")
        ]
    )
    assert review_id in notices[0]["text"] and "needs_work" in notices[0]["text"]

    # Nothing of .codex/ shows in git status, in the work worktree or the main checkout.
    assert status(wt) == ""
    assert status(repo) == ""
    assert not canary.exists()
    [event] = await events(db, review_id, "send_feedback")
    assert event["success"] == 1 and "ZEBRA-CANARY" not in (event["metadata"] or "")

    # The work session gone: the file is still written, the delivery is queued.
    subprocess.run(["tmux", "-L", tmux_socket, "kill-session", "-t", f"={work.id}"], check=True)
    queued = ok(
        await call_as(
            settings, db, review_id, "send_feedback", {"feedback": feedback, "feedback_type": "suggestions"}
        )
    )
    assert queued["delivery_status"] == "queued" and queued["target_instance_id"] == work.id
    queued_path = wt / ".codex" / "feedback" / f"{queued['feedback_id']}.md"
    assert queued_path.read_text(encoding="utf-8").endswith("\n\n" + feedback + "\n")
    assert queued_path != path
    assert not canary.exists()


# ----------------------------------------------------------------------------- 4. terminate_instance


async def test_terminate_self_children_grandchildren_and_cleanup_policies(
    lifecycle_settings: SettingsMaker, db: Database, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    config = UserConfig(db)
    work = await start_work(settings, db, 5)

    async def spawn_review(caller: str) -> str:
        return str(ok(await call_as(settings, db, caller, "spawn_review_instance", {}))["review_instance_id"])

    async def fork(caller: str) -> str:
        return str(ok(await call_as(settings, db, caller, "fork_instance", {}))["instance_id"])

    r1, r2 = await spawn_review(work.id), await spawn_review(work.id)
    f1, f2 = await fork(work.id), await fork(work.id)
    grandchild = await spawn_review(f1)  # a review of the fork: work -> fork -> review
    assert (r1, r2, f1, f2, grandchild) == (
        "review-5-a1",
        "review-5-a2",
        "work-5-a2",
        "work-5-a3",
        "review-5-a3",
    )
    rows = {i: await instances_store.require(db, i) for i in (r1, r2, f1, f2, grandchild)}
    assert set(rows) <= tmux_sessions(tmux_socket)

    async def terminate(target: str) -> dict[str, Any]:
        data = ok(await call_as(settings, db, work.id, "terminate_instance", {"instance_id": target}))
        assert data["instance_id"] == target and data["status"] == "terminated"
        assert data["session"] == "killed"
        assert target not in tmux_sessions(tmux_socket)
        row = await instances_store.require(db, target)
        assert row.status == "terminated" and row.terminated_at is not None
        return data

    # manual (the default) keeps everything.
    cleanup = (await terminate(r1))["cleanup"]
    assert (cleanup["worktree"], cleanup["branch"]) == ("kept", "kept")
    assert Path(rows[r1].worktree_path).is_dir() and branch_exists(repo, rows[r1].branch_name)

    # remove_all on a dirty worktree (the grandchild, transitively allowed): kept, and why.
    await config.set("instances.cleanup_policy", "remove_all")
    gc_wt = Path(rows[grandchild].worktree_path)
    (gc_wt / "notes.txt").write_text("reviewer's unsaved notes\n")
    cleanup = (await terminate(grandchild))["cleanup"]
    assert (cleanup["worktree"], cleanup["branch"]) == ("kept", "kept")
    assert any("uncommitted" in why and "notes.txt" in why for why in cleanup["kept_because"])
    assert (gc_wt / "notes.txt").read_text() == "reviewer's unsaved notes\n"
    assert branch_exists(repo, rows[grandchild].branch_name)

    # remove_all on a clean worktree whose branch has an unpushed, unmerged commit: branch kept, and why.
    f1_wt = Path(rows[f1].worktree_path)
    (f1_wt / "feature.txt").write_text("committed work\n")
    git(f1_wt, "add", "feature.txt")
    git(f1_wt, "commit", "-q", "-m", "feature")
    commit = git(f1_wt, "rev-parse", "HEAD")
    cleanup = (await terminate(f1))["cleanup"]
    assert (cleanup["worktree"], cleanup["branch"]) == ("removed", "kept")
    assert any("neither pushed nor merged" in why for why in cleanup["kept_because"])
    assert not f1_wt.exists() and str(f1_wt) not in git(repo, "worktree", "list", "--porcelain")
    assert git(repo, "rev-parse", rows[f1].branch_name) == commit

    # remove_all on a clean review whose branch holds nothing new (merged into its base): all gone.
    cleanup = (await terminate(r2))["cleanup"]
    assert (cleanup["worktree"], cleanup["branch"]) == ("removed", "deleted")
    assert not Path(rows[r2].worktree_path).exists()
    assert not branch_exists(repo, rows[r2].branch_name)

    # remove_worktree: the clean worktree goes, the branch stays.
    await config.set("instances.cleanup_policy", "remove_worktree")
    cleanup = (await terminate(f2))["cleanup"]
    assert (cleanup["worktree"], cleanup["branch"]) == ("removed", "kept")
    assert any("keeps branches" in why for why in cleanup["kept_because"])
    assert not Path(rows[f2].worktree_path).exists() and branch_exists(repo, rows[f2].branch_name)

    ok_events = [e for e in await events(db, work.id, "terminate_instance") if e["success"]]
    assert len(ok_events) == 5

    # Self: answered first ('scheduled'), the row terminated at once, the session ends shortly after,
    # then the policy (remove_worktree) applies.
    data = ok(await call_as(settings, db, work.id, "terminate_instance", {}))
    assert (data["instance_id"], data["status"], data["session"]) == (work.id, "terminated", "scheduled")
    row = await instances_store.require(db, work.id)
    assert row.status == "terminated" and row.terminated_at is not None
    await wait_for(lambda: work.id not in tmux_sessions(tmux_socket))
    await wait_for(
        lambda: str(work.worktree_path) not in git(repo, "worktree", "list", "--porcelain"), timeout=30
    )
    await wait_for(lambda: not finisher_running(str(work.worktree_path)))
    assert not Path(work.worktree_path).exists()
    assert branch_exists(repo, work.branch_name)
    assert_git_fsck_clean(repo)


async def test_cleanup_policy_never_touches_a_worktree_codex_mcp_did_not_create(
    lifecycle_settings: SettingsMaker, db: Database, repo: Path, tmux_socket: str, tmp_path: Path
) -> None:
    """An adhoc instance registered in a person's own worktree ends itself under remove_all: the
    person's worktree and branch (clean, merged: everything a removal policy would take) stay."""
    settings = lifecycle_settings()
    mine = tmp_path / "my-feature"
    git(repo, "worktree", "add", "-q", "-b", "my-feature", str(mine), "main")
    subprocess.run(
        ["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "adhoc-a1", "-c", str(mine), "sleep", "600"],
        check=True,
    )
    async with db.write() as tx:
        await instances_store.insert(
            tx,
            NewInstance(
                id="adhoc-a1",
                type="adhoc",
                worktree_path=str(mine),
                branch_name="my-feature",
                base_branch="main",
                tmux_session="adhoc-a1",
                tmux_socket=tmux_socket,
            ),
        )
    await UserConfig(db).set("instances.cleanup_policy", "remove_all")

    data = ok(await call_as(settings, db, "adhoc-a1", "terminate_instance", {}))
    assert data["session"] == "scheduled"
    assert any("not created by codex-mcp" in why for why in data["cleanup"]["kept_because"])
    await wait_for(lambda: "adhoc-a1" not in tmux_sessions(tmux_socket))
    await wait_for(lambda: not finisher_running(str(mine)))
    assert mine.is_dir() and str(mine) in git(repo, "worktree", "list", "--porcelain")
    assert branch_exists(repo, "my-feature")
    assert (await instances_store.require(db, "adhoc-a1")).status == "terminated"


# ------------------------------------------------------------------------- 5. authorization matrix


@dataclass
class Setup:
    settings: Settings
    db: Database
    repo: Path
    socket: str


WORK, REVIEW, ADHOC, ADHOC_CHILD, OTHER = "work-9-a1", "review-9-a1", "adhoc-a1", "adhoc-a2", "work-8-a1"
ROLE = {"work": WORK, "review": REVIEW, "adhoc": ADHOC}
TARGET = {
    ("work", "child"): REVIEW,  # the review work-9-a1 spawned
    ("adhoc", "child"): ADHOC_CHILD,  # the fork adhoc-a1 created
    ("review", "parent"): WORK,  # the work it reviews: not its to end
}


async def build_world(settings: Settings, db: Database, repo: Path, socket: str) -> Setup:
    """Five instances with real worktrees and real (plain) tmux sessions, rows written directly:
    work-9-a1 spawned review-9-a1; adhoc-a1 forked adhoc-a2; work-8-a1 is unrelated to all.
    """
    root = repo / "worktrees"
    specs: list[tuple[str, InstanceType, int | None, str]] = [
        (WORK, "work", 9, "main"),
        (REVIEW, "review", 9, f"codex/{WORK}"),
        (ADHOC, "adhoc", None, "main"),
        (ADHOC_CHILD, "adhoc", None, "main"),
        (OTHER, "work", 8, "main"),
    ]
    async with db.write() as tx:
        for instance_id, kind, issue, base in specs:
            wt = root / instance_id
            git(repo, "worktree", "add", "-q", "-b", f"codex/{instance_id}", str(wt), base)
            subprocess.run(
                ["tmux", "-L", socket, "new-session", "-d", "-s", instance_id, "-c", str(wt), "sleep", "600"],
                check=True,
            )
            await instances_store.insert(
                tx,
                NewInstance(
                    id=instance_id,
                    type=kind,
                    worktree_path=str(wt),
                    branch_name=f"codex/{instance_id}",
                    base_branch=base,
                    tmux_session=instance_id,
                    issue_number=issue,
                    prompt=f"prompt of {instance_id}",
                    agent_number=int(instance_id.rsplit("-a", 1)[1]),
                    tmux_socket=socket,
                ),
            )
        await relationships_store.add(
            tx, Relationship(parent_instance=WORK, child_instance=REVIEW, relationship_type="spawned_review")
        )
        await relationships_store.add(
            tx,
            Relationship(parent_instance=ADHOC, child_instance=ADHOC_CHILD, relationship_type="created_fork"),
        )
    return Setup(settings, db, repo, socket)


@pytest.fixture
async def matrix(lifecycle_settings: SettingsMaker, db: Database, repo: Path, tmux_socket: str) -> Setup:
    return await build_world(lifecycle_settings(), db, repo, tmux_socket)


async def assert_refused(
    s: Setup, caller: str, tool: str, args: dict[str, Any], rule: str, target: str | None = None
) -> str:
    """The call is a tool error naming ``rule``, a failed event, and nothing changed."""
    before = await world(s.db, s.repo, s.socket)
    events_before = await events(s.db, caller, tool)
    result = await call_as(s.settings, s.db, caller, tool, args)
    assert result.is_error, result.structured_content
    text = text_of(result)
    assert rule in text, text
    assert await world(s.db, s.repo, s.socket) == before
    new = (await events(s.db, caller, tool))[len(events_before) :]
    assert len(new) == 1 and new[0]["success"] == 0, new
    assert rule in new[0]["error_message"]
    if target is not None:
        assert (await instances_store.require(s.db, target)).status == before_status(before, target)
    return text


def before_status(snapshot: dict[str, Any], instance_id: str) -> str:
    return str(next(status for i, status, _ in snapshot["instances"] if i == instance_id))


@pytest.mark.parametrize(
    ("role", "tool", "rule"),
    [
        ("work", "spawn_review_instance", None),
        ("review", "spawn_review_instance", "only work instances spawn reviews"),
        ("adhoc", "spawn_review_instance", "only work instances spawn reviews"),
        ("work", "fork_instance", None),
        ("review", "fork_instance", "review instances do not fork"),
        ("adhoc", "fork_instance", None),
        ("work", "send_feedback", "only review instances send feedback"),
        ("review", "send_feedback", None),
        ("adhoc", "send_feedback", "only review instances send feedback"),
    ],
)
async def test_authorization_role_x_tool(matrix: Setup, role: str, tool: str, rule: str | None) -> None:
    s = matrix
    caller = ROLE[role]
    args = {"send_feedback": {"feedback": "looks good", "feedback_type": "approved"}}.get(tool, {})
    if rule is not None:
        await assert_refused(s, caller, tool, args, rule)
        return

    count = await instance_count(s.db)
    data = ok(await call_as(s.settings, s.db, caller, tool, args))
    [event] = await events(s.db, caller, tool)
    assert event["success"] == 1
    if tool == "send_feedback":
        assert data["target_instance_id"] == WORK and data["delivery_status"] == "delivered"
        assert (s.repo / "worktrees" / WORK / ".codex" / "feedback" / f"{data['feedback_id']}.md").is_file()
        assert await instance_count(s.db) == count
        return
    new_id = data["review_instance_id"] if tool == "spawn_review_instance" else data["instance_id"]
    expected = {
        "work": {"spawn_review_instance": "review-9-a2", "fork_instance": "work-9-a2"},
        "adhoc": {"fork_instance": "adhoc-a3"},
    }
    assert new_id == expected[role][tool]
    assert await instance_count(s.db) == count + 1
    assert new_id in tmux_sessions(s.socket)
    kind = "spawned_review" if tool == "spawn_review_instance" else "created_fork"
    parents = await relationships_store.parents_of(s.db, new_id)
    assert [(p.id, p.relationship_type) for p in parents] == [(caller, kind)]


@pytest.mark.parametrize(
    ("role", "target", "allowed"),
    [
        ("work", "self", True),
        ("review", "self", True),
        ("adhoc", "self", True),
        ("work", "child", True),
        ("adhoc", "child", True),
        ("work", "other", False),
        ("review", "other", False),
        ("adhoc", "other", False),
        ("review", "parent", False),
    ],
)
async def test_authorization_terminate_role_x_target(
    matrix: Setup, role: str, target: str, allowed: bool
) -> None:
    s = matrix
    caller = ROLE[role]
    target_id = caller if target == "self" else TARGET.get((role, target), OTHER)
    args = {} if target == "self" else {"instance_id": target_id}
    if not allowed:
        await assert_refused(s, caller, "terminate_instance", args, TERMINATE_RULE, target=target_id)
        assert target_id in tmux_sessions(s.socket)
        assert (await instances_store.require(s.db, target_id)).status == "running"
        return

    data = ok(await call_as(s.settings, s.db, caller, "terminate_instance", args))
    assert data["instance_id"] == target_id and data["status"] == "terminated"
    row = await instances_store.require(s.db, target_id)
    assert row.status == "terminated" and row.terminated_at is not None
    [event] = await events(s.db, caller, "terminate_instance")
    assert event["success"] == 1
    if target == "self":
        assert data["session"] == "scheduled"
        await wait_for(lambda: target_id not in tmux_sessions(s.socket))
    else:
        assert data["session"] == "killed"
        assert target_id not in tmux_sessions(s.socket)
    # Nobody else was touched.
    others = await s.db.fetchall("SELECT id FROM instances WHERE status = 'terminated'")
    assert [r[0] for r in others] == [target_id]


# ------------------------------------------------------- 6. unknown / terminated ids, terminated callers


async def test_terminate_unknown_malformed_and_terminated_ids(matrix: Setup) -> None:
    s = matrix
    await assert_refused(
        s, WORK, "terminate_instance", {"instance_id": "work-99-a9"}, "'work-99-a9' not found"
    )
    await assert_refused(s, WORK, "terminate_instance", {"instance_id": "work-9-x1"}, "is not an instance id")
    await assert_refused(
        s, WORK, "terminate_instance", {"instance_id": "work-9-a1;rm"}, "is not an instance id"
    )

    # The child once: fine. Twice: already terminated, nothing else happens.
    ok(await call_as(s.settings, s.db, WORK, "terminate_instance", {"instance_id": REVIEW}))
    await assert_refused(s, WORK, "terminate_instance", {"instance_id": REVIEW}, "already terminated")
    # A terminated instance that is not ours: still the authorization rule.
    async with s.db.write() as tx:
        assert await instances_store.mark_terminated(tx, OTHER)
    await assert_refused(s, WORK, "terminate_instance", {"instance_id": OTHER}, TERMINATE_RULE)
    # A terminated caller ending itself again.
    async with s.db.write() as tx:
        assert await instances_store.mark_terminated(tx, ADHOC)
    await assert_refused(s, ADHOC, "terminate_instance", {}, "already terminated")


async def test_terminating_a_child_with_the_database_locked_destroys_nothing(matrix: Setup) -> None:
    s = matrix
    db = await open_database(s.settings.require_db_path(), busy_timeout_ms=300)
    holder = sqlite3.connect(s.settings.require_db_path(), isolation_level=None, timeout=1)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process holds the writer lock past the busy timeout
        result = await call_as(s.settings, db, WORK, "terminate_instance", {"instance_id": REVIEW})
        assert result.is_error
        assert "nothing was changed, retry" in text_of(result), text_of(result)
        # ... and that is true: the reviewer's session and worktree are untouched.
        assert REVIEW in tmux_sessions(s.socket)
        assert (s.repo / "worktrees" / REVIEW).is_dir()
    finally:
        holder.rollback()
        holder.close()
        await db.close()
    assert (await instances_store.require(s.db, REVIEW)).status == "running"
    # Retried once the lock is gone, it works.
    data = ok(await call_as(s.settings, s.db, WORK, "terminate_instance", {"instance_id": REVIEW}))
    assert data["session"] == "killed" and REVIEW not in tmux_sessions(s.socket)


async def test_a_terminated_caller_ends_nothing_and_an_empty_id_is_not_the_caller(matrix: Setup) -> None:
    s = matrix
    # An empty id is invalid input, not "myself": the caller stays running.
    await assert_refused(
        s, WORK, "terminate_instance", {"instance_id": ""}, "is not an instance id", target=WORK
    )
    assert WORK in tmux_sessions(s.socket)
    # A terminated work instance may no longer end the review it spawned.
    async with s.db.write() as tx:
        assert await instances_store.mark_terminated(tx, WORK)
    await assert_refused(
        s,
        WORK,
        "terminate_instance",
        {"instance_id": REVIEW},
        "a terminated instance cannot terminate",
        target=REVIEW,
    )
    assert REVIEW in tmux_sessions(s.socket)


async def test_terminated_callers_and_orphan_reviews_cannot_act(matrix: Setup) -> None:
    s = matrix
    async with s.db.write() as tx:
        assert await instances_store.mark_terminated(tx, WORK)
    await assert_refused(s, WORK, "spawn_review_instance", {}, "is terminated")
    await assert_refused(s, WORK, "fork_instance", {}, "is terminated")

    # A review with no recorded work instance has nobody to send feedback to.
    async with s.db.write() as tx:
        await tx.execute("DELETE FROM instance_relationships WHERE child_instance = ?", (REVIEW,))
    await assert_refused(
        s,
        REVIEW,
        "send_feedback",
        {"feedback": "x", "feedback_type": "approved"},
        "no work instance recorded as its parent",
    )
