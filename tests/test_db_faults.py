"""A database that cannot take writes -- read-only, full, locked past the busy timeout -- said in words.

Real faults only: a tmpfs mounted for the test (remounted read-only, or filled to the last byte), a
read-only bind mount of a folder another connection keeps writing through, a writer lock held by
another connection (``BEGIN IMMEDIATE``). Mounting needs root (CAP_SYS_ADMIN); without it those tests
skip and say why.

What is pinned (issue 11, items 2 and 3): a write command exits 3 (configuration or database) with one
line naming the file and the cause, never a traceback and never exit 70; an action refuses before it
does anything when the database cannot take its row; a read still answers and its lost row is logged;
an action whose row is lost after it was done says so in its answer; ``events`` shows the gap once
the database takes rows again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from pydantic import BaseModel, Field
from support import commit_file, event_rows, git, new_instance, run_cli, standin_command, text_of
from ui_server import running_dashboard

from codex_mcp.app import App
from codex_mcp.errors import DatabaseError
from codex_mcp.identity import Caller, person_caller, resolve_caller
from codex_mcp.lifecycle.merge import landed, merged_write
from codex_mcp.outcomes import MergeResult
from codex_mcp.recording import ToolCall, run_person_action
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store import instances as instances_store
from codex_mcp.tools.spec import ADDITIVE, register, tool
from codex_mcp.unrecorded import MARKER_TOOL

# ------------------------------------------------------------------------------------------ the faults


def _mount(*argv: str) -> None:
    done = subprocess.run(["mount", *argv], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(
            f"`mount {' '.join(argv)}` is not permitted here ({done.stderr.strip()}); a full or read-only "
            "disk can only be made for real as root"
        )


def _umount(where: Path) -> None:
    # Lazy: a server process the test started may still be closing its files.
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@contextlib.contextmanager
def small_disk(where: Path, size: str = "1m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``where``, unmounted afterwards."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
    try:
        yield where
    finally:
        _umount(where)


@contextlib.contextmanager
def read_only_view(folder: Path, where: Path) -> Iterator[Path]:
    """``folder`` seen read-only at ``where`` (a bind mount remounted ro) while it stays writable."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("--bind", str(folder), str(where))
    try:
        _mount("-o", "remount,bind,ro", str(where))
        yield where
    finally:
        _umount(where)


def fill(folder: Path) -> Path:
    """Write zeros into ``folder`` until its file system is full (ENOSPC); the filler's path."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        block = b"\0" * 4096
        while True:
            try:
                os.write(fd, block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    return filler


@contextlib.contextmanager
def holder(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection: it keeps the -wal and -shm files in place while open."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("SELECT COUNT(*) FROM instances").fetchall()
        yield conn
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- CLI


WRITE_COMMANDS: tuple[tuple[str, ...], ...] = (
    ("config", "set", "editor.command", "nano"),
    ("kill", "adhoc-a1"),
    ("feedback", "adhoc-a1", "please look again"),
    ("start", "--prompt", "fix it"),
)


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert done.returncode == 3, (done.returncode, done.stderr)  # configuration or database, never 70
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_write_commands_on_a_full_disk_exit_3_naming_the_file_and_the_cause(
    tmp_path: Path, repo: Path, cli_env: dict[str, str]
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "codex.db"
        env = {**cli_env, "CODEX_MCP_DB": str(db)}
        assert run_cli("config", "set", "editor.command", "vim", cwd=repo, env=env).returncode == 0
        with holder(db) as other:
            before = other.execute("SELECT id, status FROM instances").fetchall()
            assert before == [("adhoc-a1", "running")]
            fill(disk)
            for args in WRITE_COMMANDS:
                done = run_cli(*args, cwd=repo, env=env)
                one_error_line(done, str(db), "the disk holding it is full", "free some space")
            # Reading still works, and nothing was changed.
            shown = run_cli("show", "adhoc-a1", "--json", cwd=repo, env=env)  # the person's row (ls hides it)
            assert shown.returncode == 0, shown.stderr
            assert json.loads(shown.stdout)["instance"]["status"] == "running"
            assert other.execute("SELECT id, status FROM instances").fetchall() == before
            assert other.execute("SELECT value FROM user_config WHERE key = 'editor.command'").fetchall() == [
                ("vim",)
            ]


def test_write_commands_on_a_read_only_mount_exit_3_naming_the_file_and_the_cause(
    tmp_path: Path, repo: Path, cli_env: dict[str, str]
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    real = folder / "codex.db"
    made = run_cli(
        "config", "set", "editor.command", "vim", cwd=repo, env={**cli_env, "CODEX_MCP_DB": str(real)}
    )
    assert made.returncode == 0, made.stderr
    # Another process keeps using the database through the writable path; this one sees it read-only.
    with holder(real) as other, read_only_view(folder, tmp_path / "ro") as view:
        db = view / "codex.db"
        env = {**cli_env, "CODEX_MCP_DB": str(db)}
        for args in WRITE_COMMANDS:
            one_error_line(run_cli(*args, cwd=repo, env=env), str(db), "mounted read-only")
        listed = run_cli("ls", "--json", cwd=repo, env=env)
        assert listed.returncode == 0, listed.stderr
        assert other.execute("SELECT value FROM user_config WHERE key = 'editor.command'").fetchall() == [
            ("vim",)
        ]


def test_a_database_on_a_file_system_remounted_read_only_is_refused_in_words(
    tmp_path: Path, repo: Path, cli_env: dict[str, str]
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "codex.db"
        env = {**cli_env, "CODEX_MCP_DB": str(db)}
        assert run_cli("config", "set", "editor.command", "vim", cwd=repo, env=env).returncode == 0
        _mount("-o", "remount,ro", str(disk))
        # Nobody holds the file open: SQLite cannot even make its -shm file, so reading fails too.
        for args in (*WRITE_COMMANDS, ("ls",), ("events",)):
            one_error_line(run_cli(*args, cwd=repo, env=env), str(db), "mounted read-only")


def test_an_impossible_database_path_is_one_line_without_a_traceback(
    repo: Path, cli_env: dict[str, str]
) -> None:
    done = run_cli("--db", "/proc/self/x.db", "ls", cwd=repo, env=cli_env)
    one_error_line(done, "/proc/self/x.db")


# ------------------------------------------------------------------------------ MCP, in-process client


@contextlib.contextmanager
def lock_held(path: Path) -> Iterator[None]:
    """Another connection holds the writer lock (BEGIN IMMEDIATE) until the block ends."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


async def short_app(settings: Settings, busy_timeout_ms: int = 300) -> App:
    db = await open_database(settings.require_db_path(), busy_timeout_ms=busy_timeout_ms)
    return App(settings=settings, db=db, caller=await resolve_caller(settings, db))


async def rows(db: Database) -> list[tuple[str, int]]:
    return [(r["tool_name"], r["success"]) for r in await event_rows(db)]


async def marker(db: Database) -> dict[str, Any]:
    (row,) = await event_rows(db, "tool_name = ?", (MARKER_TOOL,))
    assert row["success"] == 0 and "could not be recorded" in row["error_message"], row
    data: dict[str, Any] = json.loads(row["metadata"])
    return data


async def test_with_the_lock_held_an_action_refuses_first_a_read_answers_and_events_show_the_gap(
    settings: Settings, cli_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    app = await short_app(settings)
    assert app.caller is not None
    me = app.caller.id
    caplog.set_level(logging.INFO, logger="codex_mcp")
    try:
        async with Client(build_server(app)) as client:
            with lock_held(app.db.path):
                ended = await client.call_tool("terminate_instance", {})
                assert ended.is_error
                message = text_of(ended)
                assert str(app.db.path) in message and "stayed locked by another process" in message, message
                assert "nothing was changed" in message
                # Nothing was done: the caller still runs.
                assert (await instances_store.require(app.db, me)).status == "running"

                read = await client.call_tool("query_instances", {})
                assert not read.is_error, text_of(read)
                assert (
                    read.structured_content is not None
                    and read.structured_content["caller_instance_id"] == me
                )
            assert any(
                r.levelno == logging.ERROR and "NOT RECORDED: query_instances" in r.getMessage()
                for r in caplog.records
            ), caplog.text
            assert await rows(app.db) == []  # both rows were lost ...

            again = await client.call_tool("query_instances", {})
            assert not again.is_error
        # ... and the first row written afterwards is followed by the gap's marker.
        assert await rows(app.db) == [("query_instances", 1), (MARKER_TOOL, 0)]
        gap = await marker(app.db)
        assert gap["unrecorded"] == 2
        assert gap["tools"] == {"query_instances": 1, "terminate_instance": 1}
        assert gap["callers"] == [me]
        listed = run_cli("events", "--json", cwd=settings.cwd, env=cli_env)
        assert MARKER_TOOL in {e["tool_name"] for e in json.loads(listed.stdout)}, listed.stderr
    finally:
        await app.db.close()


class Done(BaseModel):
    """What the test action answers."""

    done: bool = Field(description="Always true")


async def test_an_action_whose_row_is_lost_after_it_acted_says_so_in_its_answer(settings: Settings) -> None:
    app = await short_app(settings)
    ledger: list[str] = []
    grabbed: list[sqlite3.Connection] = []

    @tool(title="Act", annotations=ADDITIVE)
    async def act(call: ToolCall) -> Done:
        """Do something, while another process takes the writer lock and keeps it."""
        ledger.append("acted")
        conn = sqlite3.connect(call.app.db.path, isolation_level=None, timeout=5)
        conn.execute("BEGIN IMMEDIATE")
        grabbed.append(conn)
        return Done(done=True)

    server = build_server(app)
    register(server, act)
    try:
        async with Client(server) as client:
            result = await client.call_tool("act", {})
            for conn in grabbed:
                conn.close()
            assert not result.is_error, text_of(result)
            assert result.structured_content == {"done": True}
            assert "NOT RECORDED: act was done" in text_of(result)
            assert "stayed locked" in text_of(result)
            assert ledger == ["acted"]
            assert await rows(app.db) == []
            ok = await client.call_tool("list_events", {})
            assert not ok.is_error
        assert await rows(app.db) == [("list_events", 1), (MARKER_TOOL, 0)]
        assert (await marker(app.db))["tools"] == {"act": 1}
    finally:
        await app.db.close()


async def test_on_a_full_disk_an_mcp_action_does_nothing_and_a_read_answers(
    tmp_path: Path, repo: Path, env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        settings = Settings.load({**env, "CODEX_MCP_DB": str(disk / "codex.db")}, cwd=repo)
        app = await short_app(settings)
        assert app.caller is not None
        caplog.set_level(logging.INFO, logger="codex_mcp")
        try:
            async with Client(build_server(app)) as client:
                filler = fill(disk)
                ended = await client.call_tool("terminate_instance", {})
                assert ended.is_error
                assert "the disk holding it is full" in text_of(ended) and str(app.db.path) in text_of(ended)
                assert (await instances_store.require(app.db, app.caller.id)).status == "running"
                read = await client.call_tool("get_instance", {"instance_id": app.caller.id})
                assert not read.is_error, text_of(read)
                filler.unlink()
                again = await client.call_tool("list_issues", {})
                assert not again.is_error, text_of(again)
            assert await rows(app.db) == [("list_issues", 1), (MARKER_TOOL, 0)]
            assert (await marker(app.db))["tools"] == {"get_instance": 1, "terminate_instance": 1}
        finally:
            await app.db.close()


async def test_a_caller_row_that_vanished_is_a_lost_row_too(app: App) -> None:
    """Not a disk fault, the same rule: an action's answer says when its row could not be written."""
    assert app.caller is not None
    ghost = app.caller.instance.model_copy(update={"id": "adhoc-a99", "agent_number": 99})
    ghost_app = App(settings=app.settings, db=app.db, caller=Caller(ghost, "explicit"))
    async with Client(build_server(ghost_app)) as client:
        result = await client.call_tool("query_instances", {})
        assert not result.is_error  # a read answers; its loss is only logged
        assert "NOT RECORDED" not in text_of(result)
    assert await rows(app.db) == []


def test_the_dashboard_says_while_its_actions_are_not_recorded(
    tmp_path: Path,
    repo: Path,
    cli_env: dict[str, str],
    tmux_socket: str,
    write_script: Callable[[dict[str, Any]], Path],
) -> None:
    """A person's action in the dashboard on a full disk is refused in words, and until the database
    takes rows again every page and action answer says that something was not recorded."""
    with small_disk(tmp_path / "disk", size="4m") as disk:
        env = {
            **cli_env,
            "CODEX_MCP_DB": str(disk / "codex.db"),
            "CODEX_MCP_TMUX_SOCKET": tmux_socket,
            "CODEX_MCP_AGENT_COMMAND": standin_command(write_script({})),
        }
        with running_dashboard(repo, env) as board:
            client = board.client()
            assert "NOT RECORDED" not in client.get("/").text
            filler = fill(disk)
            refused = client.post("/api/instances", json={"prompt": "look around"})
            assert refused.status_code >= 400, refused.text
            assert "full" in refused.json()["error"], refused.text
            assert refused.headers.get("x-codex-not-recorded") == "1", refused.text
            banner = client.get("/").text
            assert "NOT RECORDED: 1 action(s) taken here since" in banner, banner
            assert 'role="alert"' in banner

            filler.unlink()
            started = client.post("/api/instances", json={"prompt": "look around"})
            assert started.status_code == 201, started.text
            assert "x-codex-not-recorded" not in started.headers
            assert "NOT RECORDED" not in client.get("/").text
            client.post(f"/api/instances/{started.json()['id']}/kill", json={})
        conn = sqlite3.connect(disk / "codex.db")
        try:
            (metadata,) = conn.execute(
                "SELECT metadata FROM mcp_events WHERE tool_name = ?", (MARKER_TOOL,)
            ).fetchone()
        finally:
            conn.close()
        assert json.loads(metadata)["tools"] == {"start": 1}


async def test_a_merge_whose_record_fails_says_it_was_done_and_a_retry_records_it(
    settings: Settings, repo: Path
) -> None:
    """The target branch moved (git cannot take that back): when the database then refuses the row
    that records it, the answer says what was done and how to record it, never "nothing was kept"."""
    app = await short_app(settings)
    worktree = repo.parent / "work-5-a1"
    git(repo, "worktree", "add", "-q", "-b", "codex/work-5-a1", str(worktree), "main")
    commit_file(worktree, "feature.py", "x = 1\n", "feature")
    async with app.db.write() as tx:
        await instances_store.insert(
            tx, new_instance("work-5-a1", worktree, base_branch="main", issue_number=5, tmux_session="-")
        )
    old, new = git(repo, "rev-parse", "main"), git(repo, "rev-parse", "codex/work-5-a1")
    person = await person_caller(settings, app.db)
    grabbed: list[sqlite3.Connection] = []

    def merging(lose_the_lock: bool) -> Callable[[ToolCall], Awaitable[MergeResult]]:
        async def body(call: ToolCall) -> MergeResult:
            instance = await instances_store.require(app.db, "work-5-a1")
            result = await app.lifecycle.merge(
                instance, into=None, strategy="merge", to_agent=False, sender="a person"
            )
            if (write := merged_write(instance.id, result)) is not None:
                call.stage(write, done=landed(result))
            if lose_the_lock:  # another process takes the writer lock before this action's transaction
                conn = sqlite3.connect(app.db.path, isolation_level=None, timeout=5)
                conn.execute("BEGIN IMMEDIATE")
                grabbed.append(conn)
            return result

        return body

    try:
        with pytest.raises(DatabaseError) as raised:
            await run_person_action(app, person, "merge", {}, merging(True), via="cli")
        for conn in grabbed:
            conn.close()
        message = str(raised.value)
        assert f"merge was done (main moved from {old[:12]} to {new[:12]})" in message, message
        assert "could not record it" in message and "run merge again" in message, message
        assert "nothing was" not in message.replace("Nothing was undone", ""), message
        assert git(repo, "rev-parse", "main") == new  # what the answer says happened, happened
        assert (await instances_store.require(app.db, "work-5-a1")).merged_into is None

        again = await run_person_action(app, person, "merge", {}, merging(False), via="cli")
        assert again.outcome == "up_to_date"
        row = await instances_store.require(app.db, "work-5-a1")
        assert (row.merged_into, row.merged_commit) == ("main", new)
    finally:
        await app.db.close()
