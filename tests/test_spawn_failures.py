"""A spawn that fails at any step leaves nothing behind; concurrent spawns all get their own id.

"Nothing behind" is checked on the real things: the branches (``git for-each-ref refs/heads``), the
worktrees (``git worktree list``, ``.git/worktrees`` and the folders under the worktrees root), the
sessions on the private tmux server and the ``instances`` rows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support import (
    ScriptWriter,
    SettingsMaker,
    cmdline,
    git,
    run_cli,
    standin_command,
    tmux_sessions,
    wait_for,
)

from codex_mcp.app import App, open_app
from codex_mcp.errors import ConfigError, DatabaseError, InputError, StateError
from codex_mcp.identity import Caller
from codex_mcp.ids import parse_instance_id
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store.instances import Instance
from codex_mcp.tmux import TmuxError

# ------------------------------------------------------------------------------------------- helpers


def world(repo: Path, socket: str, root: Path) -> dict[str, Any]:
    """Everything a spawn creates outside SQLite, as comparable values."""
    admin = repo / ".git" / "worktrees"
    return {
        "branches": git(repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "admin": sorted(p.name for p in admin.iterdir()) if admin.is_dir() else [],
        "sessions": tmux_sessions(socket),
        "folders": sorted(p.name for p in root.iterdir()) if root.is_dir() else [],
    }


async def rows(db: Database) -> list[tuple[str, str]]:
    return [(r["id"], r["status"]) for r in await db.fetchall("SELECT id, status FROM instances ORDER BY id")]


def worktrees_root(repo: Path) -> Path:
    return repo / "worktrees"


async def spawn(app: App, issue: int, **kwargs: Any) -> Instance:
    prepared = await app.lifecycle.prepare_work(
        issue_number=issue, base=kwargs.pop("base", None), prompt="go"
    )
    return await app.lifecycle.commit(prepared)


# ------------------------------------------------------------------------------- each step that fails


async def test_worktree_folder_in_the_way_fails_and_releases_its_branch(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    root = worktrees_root(repo)
    (root / "work-4-a1").mkdir(parents=True)
    (root / "work-4-a1" / "someone-elses.txt").write_text("keep me\n")
    before = world(repo, tmux_socket, root)
    async with open_app(settings) as app:
        with pytest.raises(StateError, match="work-4-a1 already exists") as err:
            await spawn(app, 4)
        assert "reconcile" in str(err.value)
        assert await rows(app.db) == []
    assert world(repo, tmux_socket, root) == before
    assert git(repo, "branch", "--list", "codex/*") == ""
    assert (root / "work-4-a1" / "someone-elses.txt").read_text() == "keep me\n"


async def test_a_foreign_branch_with_the_next_id_is_skipped_and_left_untouched(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    git(repo, "switch", "-q", "-c", "codex/work-4-a1")
    (repo / "theirs.txt").write_text("someone else's work\n")
    git(repo, "add", "theirs.txt")
    git(repo, "commit", "-q", "-m", "theirs")
    git(repo, "switch", "-q", "main")
    theirs = git(repo, "rev-parse", "refs/heads/codex/work-4-a1")
    main = git(repo, "rev-parse", "refs/heads/main")
    async with open_app(settings) as app:
        instance = await spawn(app, 4)
        assert instance.id == "work-4-a2" and instance.agent_number == 2
        assert instance.branch_name == "codex/work-4-a2" and instance.status == "running"
        assert await rows(app.db) == [("work-4-a2", "running")]
    assert git(repo, "rev-parse", "refs/heads/codex/work-4-a1") == theirs
    assert git(repo, "rev-parse", "refs/heads/codex/work-4-a2") == main
    sessions = tmux_sessions(tmux_socket)
    assert "work-4-a2" in sessions and "work-4-a1" not in sessions
    assert not (worktrees_root(repo) / "work-4-a1").exists()
    assert str(worktrees_root(repo) / "work-4-a2") in git(repo, "worktree", "list", "--porcelain")


async def test_tmux_refusing_the_session_undoes_worktree_and_branch(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "work-4-a1"], check=True)
    before = world(repo, tmux_socket, worktrees_root(repo))
    assert "work-4-a1" in before["sessions"]
    async with open_app(settings) as app:
        with pytest.raises(TmuxError, match="could not start session work-4-a1"):
            await spawn(app, 4)
        assert await rows(app.db) == []
    assert world(repo, tmux_socket, worktrees_root(repo)) == before  # their session survives


async def test_missing_agent_command_fails_before_anything_is_created(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND="/nonexistent/agent {prompt_file}")
    exclude = repo / ".git" / "info" / "exclude"
    exclude_before = exclude.read_text() if exclude.exists() else None
    before = world(repo, tmux_socket, worktrees_root(repo))
    async with open_app(settings) as app:
        with pytest.raises(StateError, match="/nonexistent/agent") as err:
            await spawn(app, 4)
        assert "CODEX_MCP_AGENT_COMMAND" in str(err.value)
        assert await rows(app.db) == []
    assert world(repo, tmux_socket, worktrees_root(repo)) == before
    assert not worktrees_root(repo).exists()
    assert (exclude.read_text() if exclude.exists() else None) == exclude_before


def test_unknown_placeholder_is_a_config_error_before_anything_exists(
    repo: Path, env: dict[str, str], tmux_socket: str
) -> None:
    before = world(repo, tmux_socket, worktrees_root(repo))
    with pytest.raises(ConfigError, match=r"unknown placeholder \{nope\}") as err:
        Settings.load({**env, "CODEX_MCP_AGENT_COMMAND": "agent {nope}"}, cwd=repo)
    assert "CODEX_MCP_AGENT_COMMAND" in str(err.value) and "{prompt_file}" in str(err.value)
    assert world(repo, tmux_socket, worktrees_root(repo)) == before
    assert not (repo / ".git" / "codex-mcp").exists()  # not even a database


async def test_database_busy_at_commit_removes_branch_worktree_and_session(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    root = worktrees_root(repo)
    # A short busy timeout: the commit gives up on the lock held below in 0.3 s instead of 15.
    async with await open_database(settings.require_db_path(), busy_timeout_ms=300) as db:
        app = App(settings=settings, db=db)
        before = world(repo, tmux_socket, root)
        prepared = await app.lifecycle.prepare_work(issue_number=4, base=None, prompt="go")
        made = world(repo, tmux_socket, root)
        assert "refs/heads/codex/work-4-a1" in made["branches"] and "work-4-a1" in made["sessions"]
        assert made["folders"] == ["work-4-a1"]

        holder = sqlite3.connect(settings.require_db_path(), isolation_level=None, timeout=1)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(DatabaseError, match="stayed locked by another process"):
                await app.lifecycle.commit(prepared)
            assert world(repo, tmux_socket, root) == before
        finally:
            holder.rollback()
            holder.close()
        assert await rows(app.db) == []
    assert world(repo, tmux_socket, root) == before


@pytest.mark.parametrize(
    "base",
    ["--upload-pack=touch {canary}", "a..b", "no-such-branch", "", "HEAD~999", "main;touch {canary}"],
)
async def test_bad_base_is_a_clear_input_error_and_creates_nothing(
    base: str, lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    base = base.replace("{canary}", str(canary))
    settings = lifecycle_settings()
    before = world(repo, tmux_socket, worktrees_root(repo))
    async with open_app(settings) as app:
        with pytest.raises(InputError) as err:
            await spawn(app, 4, base=base)
        assert await rows(app.db) == []
    message = str(err.value)
    assert message.startswith(f"base {base!r}" if len(base) < 30 else f"base {base[:30]!r}"[:-1]), message
    assert world(repo, tmux_socket, worktrees_root(repo)) == before
    assert not canary.exists()


def test_bad_base_through_the_cli_is_one_line_and_exit_2(
    repo: Path, cli_env: dict[str, str], tmux_socket: str, tmp_path: Path, write_script: ScriptWriter
) -> None:
    canary = tmp_path / "canary"
    env = {
        **cli_env,
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
        "CODEX_MCP_AGENT_COMMAND": standin_command(write_script({})),
    }
    before = world(repo, tmux_socket, worktrees_root(repo))
    done = run_cli("start", "--issue", "4", f"--base=--upload-pack=touch {canary}", cwd=repo, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("codex-mcp: error: base '--upload-pack=") and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert world(repo, tmux_socket, worktrees_root(repo)) == before
    assert not canary.exists()


# ------------------------------------------------------------------------------------------- places


async def test_worktrees_stay_under_the_configured_root(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str, tmp_path: Path
) -> None:
    root = tmp_path / "elsewhere" / "trees"
    outside = tmp_path / "outside"
    settings = lifecycle_settings(CODEX_MCP_WORKTREES=str(root))
    async with open_app(settings) as app:
        first = await spawn(app, 7)
        assert Path(first.worktree_path) == (root / first.id).resolve()
        assert Path(first.worktree_path).resolve().parent == root.resolve()
        # Ids are generated and have one shape: nothing in them can climb out of the root.
        assert "/" not in first.id and ".." not in first.id and str(parse_instance_id(first.id)) == first.id
        for bad in ("work-7-a1/../x", "../work-7-a1", "work-7-a1/..", "work-7-a1\n", "work-7-a1/"):
            with pytest.raises(InputError):
                parse_instance_id(bad)

        # A symlink planted where the next worktree goes must not carry the worktree out of the root.
        (root / "work-7-a2").symlink_to(outside / "target")
        before = world(repo, tmux_socket, root)
        with pytest.raises(InputError, match="would leave the worktrees root"):
            await spawn(app, 7)
        assert world(repo, tmux_socket, root) == before
        assert not outside.exists()
        assert await rows(app.db) == [("work-7-a1", "running")]


# ------------------------------------------------------------------------------------ through the tool


@pytest.mark.parametrize("obstacle", ["folder", "session"])
async def test_spawn_review_failing_through_the_tool_leaves_nothing_and_a_failed_event(
    obstacle: str, lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    root = worktrees_root(repo)
    async with open_app(settings) as app:
        work = await spawn(app, 6)
        (Path(work.worktree_path) / "draft.txt").write_text("uncommitted work\n")
        if obstacle == "folder":
            (root / "review-6-a1").mkdir()
        else:
            subprocess.run(["tmux", "-L", tmux_socket, "new-session", "-d", "-s", "review-6-a1"], check=True)
        before = world(repo, tmux_socket, root)
        worker = App(settings=settings, db=app.db, caller=Caller(work, "explicit"))
        async with Client(build_server(worker)) as client:
            result = await client.call_tool("spawn_review_instance", {"reviewer_prompt": "look"})
            assert result.is_error
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert "review-6-a1" in text
            assert world(repo, tmux_socket, root) == before
            assert await rows(app.db) == [("work-6-a1", "running")]
            events = await app.db.fetchall(
                "SELECT instance_id, success, error_message FROM mcp_events WHERE tool_name = ?",
                ("spawn_review_instance",),
            )
            assert [(e["instance_id"], e["success"]) for e in events] == [("work-6-a1", 0)]
            assert "review-6-a1" in events[0]["error_message"]
            assert await app.db.fetchall("SELECT * FROM instance_relationships") == []

            # Once the obstacle is gone the same spawn works, with the same (never consumed) id.
            if obstacle == "folder":
                (root / "review-6-a1").rmdir()
            else:
                subprocess.run(["tmux", "-L", tmux_socket, "kill-session", "-t", "=review-6-a1"], check=True)
            result = await client.call_tool("spawn_review_instance", {})
            assert not result.is_error, result.content
            assert result.structured_content["review_instance_id"] == "review-6-a1"
        # The caller's own tree was not touched by the snapshots.
        assert git(Path(work.worktree_path), "status", "--porcelain") == "?? draft.txt"


# ------------------------------------------------------------------------------------------ cancelled


async def test_a_cancelled_spawn_leaves_nothing_behind(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    root = worktrees_root(repo)
    async with open_app(settings) as app:
        before = world(repo, tmux_socket, root)

        async def start() -> None:  # what `codex-mcp start` does
            await app.lifecycle.commit(
                await app.lifecycle.prepare_work(issue_number=8, base=None, prompt="go")
            )

        # Deterministic: cancel as soon as the branch exists (git may still be at work on it).
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(start)
                await wait_for(
                    lambda: os.path.exists(repo / ".git/refs/heads/codex/work-8-a1"), interval=0.001
                )
                scope.cancel()
        assert scope.cancelled_caught
        assert world(repo, tmux_socket, root) == before, "cancelled after the branch"
        assert await rows(app.db) == []

        # And at spread-out points of the whole prepare + commit.
        started = anyio.current_time()
        prepared = await app.lifecycle.prepare_work(issue_number=8, base=None, prompt="go")
        duration = anyio.current_time() - started
        await prepared.compensate()
        assert world(repo, tmux_socket, root) == before
        for step in range(12):
            with anyio.move_on_after(duration * step / 10) as scope:
                prepared = await app.lifecycle.prepare_work(issue_number=8, base=None, prompt="go")
                await app.lifecycle.commit(prepared)
            if not await rows(app.db):  # cancelled before its row was committed: nothing at all
                assert scope.cancelled_caught
                assert world(repo, tmux_socket, root) == before, f"cancelled at {step}/10 of a spawn"
            else:  # finished (or cancelled only after its commit): then it is complete, and consistent
                assert await rows(app.db) == [(prepared.new.id, "running")]
                assert [s for s in tmux_sessions(tmux_socket) if s.startswith("work-8")] == [prepared.session]
                assert prepared.worktree.is_dir() and prepared.branch in git(repo, "branch", "--list")
                await prepared.compensate()  # taken down again for the next round
                await _delete_rows(app.db)
                assert world(repo, tmux_socket, root) == before


async def _delete_rows(db: Database) -> None:
    async with db.write() as tx:
        await tx.execute("DELETE FROM instances WHERE type = 'work'")


# ----------------------------------------------------------------------------------------- concurrent


async def test_eight_concurrent_starts_get_eight_ids_and_all_succeed(
    repo: Path, cli_env: dict[str, str], tmux_socket: str, tmp_path: Path
) -> None:
    # The race is in the spawners; a tiny agent keeps 2-CPU machines from drowning it in interpreter
    # start-ups. The launcher execs it only once it has seen its own committed row.
    agent = tmp_path / "idle_agent.py"
    agent.write_text("import sys, time\ntime.sleep(600)\n")
    env = {
        **cli_env,
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
        "CODEX_MCP_AGENT_COMMAND": f"{sys.executable} -S {agent} {{instance_id}}",
    }
    results: dict[int, subprocess.CompletedProcess[bytes]] = {}

    async def start(n: int) -> None:
        results[n] = await anyio.run_process(
            [sys.executable, "-m", "codex_mcp", "start", "--issue", "5", "--prompt", f"racer {n}", "--json"],
            cwd=repo,
            env=env,
            check=False,
        )

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            for n in range(8):
                tg.start_soon(start, n)

    for n, done in results.items():
        assert done.returncode == 0, f"start {n}: {done.stderr.decode()}"
    started = [json.loads(done.stdout) for done in results.values()]
    ids = sorted(s["id"] for s in started)
    assert ids == sorted(f"work-5-a{k}" for k in range(1, 9))
    assert {s["status"] for s in started} == {"running"}
    assert sorted(s["agent_number"] for s in started) == list(range(1, 9))
    assert len({s["claude_pid"] for s in started}) == 8

    sessions = tmux_sessions(tmux_socket)
    assert set(ids) <= sessions
    listed = git(repo, "worktree", "list", "--porcelain")
    root = worktrees_root(repo)
    for instance_id in ids:
        assert f"worktree {root / instance_id}\n" in listed + "\n"
        assert f"branch refs/heads/codex/{instance_id}" in listed
    assert sorted(p.name for p in root.iterdir()) == ids
    # Every launcher found its committed row and became the agent (same pid: exec).
    for s in started:

        def became_agent(s: dict[str, Any] = s) -> bool:
            return cmdline(s["claude_pid"])[-2:] == [str(agent), s["id"]]

        await wait_for(became_agent, timeout=30)
    fsck = subprocess.run(["git", "fsck", "--strict"], cwd=repo, capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    exclude = (repo / ".git" / "info" / "exclude").read_text()
    assert "/worktrees/" in exclude
    assert os.path.isfile(repo / ".git" / "codex-mcp" / "codex.db")
