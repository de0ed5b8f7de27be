"""Reconcile: dead agents and dead tmux servers become `terminated`; tmux not answering is not
"session gone"; orphans are reported; `resume` brings a dead instance back in its worktree.

Everything runs on a private tmux server with real agents (the scripted stand-in, a tiny idle
process, or a fake `claude` executable that records its argv), against real repositories and SQLite.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support import SettingsMaker, cmdline, read_standin_log, run_cli, tmux_sessions, wait_for

from codex_mcp.app import App, open_app
from codex_mcp.errors import StateError
from codex_mcp.identity import resolve_caller
from codex_mcp.lifecycle import Lifecycle
from codex_mcp.lifecycle.liveness import pid_alive
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance

# ------------------------------------------------------------------------------------------- helpers


@pytest.fixture
def idle_agent(tmp_path: Path) -> str:
    """CODEX_MCP_AGENT_COMMAND for an agent that only waits (cheap to start many of)."""
    script = tmp_path / "idle_agent.py"
    script.write_text("import time\ntime.sleep(600)\n")
    return f"{sys.executable} -S {script} {{instance_id}}"


def no_grace(app: App, grace_seconds: float = 0.0) -> Lifecycle:
    """The app's lifecycle with another grace period (0: even a row just written may be reconciled)."""
    return Lifecycle(app.settings, app.db, grace_seconds=grace_seconds)


async def spawn(app: App, issue: int) -> Instance:
    instance = await app.lifecycle.commit(
        await app.lifecycle.prepare_work(issue_number=issue, base=None, prompt="go")
    )
    # The launcher execs the agent once it sees its row: the pane's pid then is the agent.
    await wait_for(
        lambda: (
            "codex_mcp.launch" not in " ".join(cmdline(instance.claude_pid)) and cmdline(instance.claude_pid)
        )
    )
    return instance


async def status(db: Database, instance_id: str) -> tuple[str, str | None]:
    row = await instances_store.require(db, instance_id)
    return row.status, row.terminated_at


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=True).stdout


def pane_dead(socket: str, session: str) -> bool:
    return tmux(socket, "display-message", "-p", "-t", f"={session}:", "#{pane_dead}").strip() == "1"


async def backdate(db: Database, years: int = 1) -> None:
    """Make every row older than any grace period (for the CLI, which runs with the real one)."""
    async with db.write() as tx:
        await tx.execute("UPDATE instances SET created_at = datetime('now', ?)", (f"-{years} years",))


def cli_environment(cli_env: dict[str, str], socket: str, **extra: str) -> dict[str, str]:
    return {**cli_env, "CODEX_MCP_TMUX_SOCKET": socket, **extra}


# ------------------------------------------------------------------------------------- a dead agent


@pytest.mark.parametrize("remain_on_exit", [False, True], ids=["session-closes", "pane-stays-dead"])
async def test_kill_9_of_an_agent_terminates_its_instance_after_the_grace_period(
    remain_on_exit: bool, lifecycle_settings: SettingsMaker, tmux_socket: str
) -> None:
    if remain_on_exit:  # the session outlives its agent: a dead pane is a dead agent too
        tmux(tmux_socket, "set-option", "-g", "remain-on-exit", "on")
    settings = lifecycle_settings({"work": []})
    async with open_app(settings) as app:
        victim = await spawn(app, 1)
        other = await spawn(app, 1)
        await wait_for(
            lambda: any(e.get("event") == "done" for e in read_standin_log(Path(victim.worktree_path)))
        )
        assert "codex_mcp.standin" in " ".join(cmdline(victim.claude_pid))

        assert victim.claude_pid is not None
        os.kill(victim.claude_pid, signal.SIGKILL)
        if remain_on_exit:
            await wait_for(lambda: pane_dead(tmux_socket, victim.id))
        else:
            await wait_for(lambda: "work-1-a1" not in tmux_sessions(tmux_socket))

        # A young row is left alone: its agent might still be starting.
        report = await no_grace(app, 3600.0).reconcile()
        assert report.terminated == [] and report.unreachable_sockets == []
        assert await status(app.db, victim.id) == ("running", None)

        report = await no_grace(app).reconcile()
        assert report.terminated == [victim.id]
        state, terminated_at = await status(app.db, victim.id)
        assert state == "terminated" and terminated_at is not None
        assert await status(app.db, other.id) == ("running", None)
        assert "work-1-a2" in tmux_sessions(tmux_socket)
        assert (await no_grace(app).reconcile()).terminated == []  # once is enough


# -------------------------------------------------------------------------------- a dead tmux server


async def test_kill_9_of_the_tmux_server_terminates_all_its_instances(
    lifecycle_settings: SettingsMaker, idle_agent: str, repo: Path, tmux_socket: str, cli_env: dict[str, str]
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=idle_agent)
    async with open_app(settings) as app:
        first = await spawn(app, 2)
        second = await spawn(app, 3)
        server_pid = int(tmux(tmux_socket, "display-message", "-p", "#{pid}").strip())
        os.kill(server_pid, signal.SIGKILL)
        await wait_for(
            lambda: subprocess.run(["tmux", "-L", tmux_socket, "ls"], capture_output=True).returncode != 0
        )
        await backdate(app.db)
        assert await status(app.db, first.id) == ("running", None)

    done = run_cli("reconcile", "--json", cwd=repo, env=cli_environment(cli_env, tmux_socket))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report["terminated"]) == sorted([first.id, second.id])
    assert report["unreachable_sockets"] == []
    assert report["orphan_sessions"] == []

    async with open_app(settings) as app:
        for instance in (first, second):
            state, terminated_at = await status(app.db, instance.id)
            assert state == "terminated" and terminated_at is not None


# ----------------------------------------------------------------------------- tmux does not answer


@pytest.mark.parametrize("how", ["not-installed", "broken", "refused"])
async def test_tmux_unreachable_is_not_session_gone(
    how: str,
    lifecycle_settings: SettingsMaker,
    idle_agent: str,
    repo: Path,
    tmux_socket: str,
    tmp_path: Path,
    cli_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=idle_agent)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if how == "not-installed":
        for tool in ("git", "python3"):
            (bin_dir / tool).symlink_to(shutil.which(tool) or tool)
        path = str(bin_dir)
    else:
        # What tmux 3.3 prints when the server is too new / when its socket refuses us (checked by hand:
        # a socket of another user, mode 000). Neither means "no server", so neither means "sessions gone".
        message = {
            "broken": "protocol version mismatch (client 8, server 9)",
            "refused": f"error connecting to /tmp/tmux-{os.getuid()}/{tmux_socket} (Permission denied)",
        }[how]
        fake = bin_dir / "tmux"
        fake.write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
        fake.chmod(0o755)
        path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    real_path = os.environ["PATH"]

    async with open_app(settings) as app:
        instance = await spawn(app, 4)
        # Really gone: a reconcile that took "no answer" for "no session" would terminate it.
        tmux(tmux_socket, "kill-session", "-t", "=work-4-a1")
        tmux(tmux_socket, "new-session", "-d", "-s", "work-99-a1")

        monkeypatch.setenv("PATH", path)
        report = await no_grace(app).reconcile(find_orphans=True)
        assert report.terminated == []
        assert report.unreachable_sockets == [tmux_socket]
        assert report.orphan_sessions == []  # unknown, not "none"
        assert await status(app.db, instance.id) == ("running", None)
        await no_grace(app).reconcile_quietly()  # what reads run first: never fails, changes nothing
        assert await status(app.db, instance.id) == ("running", None)

        if how == "broken":
            done = run_cli("reconcile", cwd=repo, env=cli_environment(cli_env, tmux_socket, PATH=path))
            assert done.returncode == 0, done.stderr
            assert "terminated: none" in done.stdout
            assert f"tmux did not answer on: {tmux_socket}" in done.stdout

        monkeypatch.setenv("PATH", real_path)
        report = await no_grace(app).reconcile(find_orphans=True)
        assert report.terminated == [instance.id]
        assert report.unreachable_sockets == [] and report.orphan_sessions == ["work-99-a1"]


# ---------------------------------------------------------------------------------- reads reconcile


async def test_reads_reconcile_lazily(
    lifecycle_settings: SettingsMaker, idle_agent: str, tmux_socket: str
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=idle_agent)
    async with open_app(settings) as app:
        dead = await spawn(app, 5)
        alive = await spawn(app, 5)
        tmux(tmux_socket, "kill-session", "-t", f"={dead.id}")
        assert await status(app.db, dead.id) == ("running", None)  # nothing has looked yet
        await backdate(app.db)  # the reads run the default grace period: both rows are past it

        reader = App(settings=settings, db=app.db, caller=await resolve_caller(settings, app.db))
        async with Client(build_server(reader)) as client:
            result = await client.call_tool("query_instances", {})
            assert not result.is_error, result.content
            running = {i["id"] for i in result.structured_content["instances"]}
            assert dead.id not in running and alive.id in running

            result = await client.call_tool("query_instances", {"status": "all", "issue_number": 5})
            rows = {i["id"]: i for i in result.structured_content["instances"]}
            assert rows[dead.id]["status"] == "terminated" and rows[dead.id]["terminated_at"]
            assert rows[alive.id]["status"] == "running"
            assert "terminated_at" not in rows[alive.id]  # null: an answer leaves it out

        state, terminated_at = await status(app.db, dead.id)
        assert state == "terminated" and terminated_at is not None


async def test_get_instance_checks_the_agents_it_shows(
    lifecycle_settings: SettingsMaker, idle_agent: str, tmux_socket: str
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=idle_agent)
    async with open_app(settings) as app:
        dead = await spawn(app, 6)
        await backdate(app.db)
        assert dead.claude_pid is not None
        os.kill(dead.claude_pid, signal.SIGKILL)
        # Both gone before the read: the process reaped (a kill is delivered asynchronously; an empty
        # session list can also mean tmux did not answer), and its session ended.
        pid = dead.claude_pid
        await wait_for(lambda: not pid_alive(pid) and dead.id not in tmux_sessions(tmux_socket))
        assert await status(app.db, dead.id) == ("running", None)  # nothing has looked yet

        reader = App(settings=settings, db=app.db, caller=await resolve_caller(settings, app.db))
        async with Client(build_server(reader)) as client:
            result = await client.call_tool("get_instance", {"instance_id": dead.id})
            assert not result.is_error, result.content
            shown = result.structured_content["instance"]
            assert shown["status"] == "terminated" and shown["terminated_at"]


@pytest.mark.parametrize("survives", [False, True], ids=["agent-dies", "agent-outlives-its-session"])
async def test_long_running_servers_reconcile_in_the_background(
    survives: bool, lifecycle_settings: SettingsMaker, tmux_socket: str, tmp_path: Path
) -> None:
    # An agent that ignores the hangup tmux sends when its session is killed keeps its pid alive: only
    # the periodic tmux pass can see that its session is gone.
    script = tmp_path / "agent.py"
    script.write_text(
        "import signal, time\n"
        + ("signal.signal(signal.SIGHUP, signal.SIG_IGN)\n" if survives else "")
        + "time.sleep(600)\n"
    )
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=f"{sys.executable} -S {script} {{instance_id}}")
    async with open_app(settings) as app:
        victim = await spawn(app, 7)
        other = await spawn(app, 7)
        assert victim.claude_pid is not None
        try:
            tmux(tmux_socket, "kill-session", "-t", f"={victim.id}")
            if survives:
                assert cmdline(victim.claude_pid), "the agent should outlive its session"
            async with anyio.create_task_group() as group:
                group.start_soon(partial(no_grace(app).keep_reconciled, pid_seconds=0.05, tmux_seconds=0.3))
                await wait_for(lambda: _is_terminated(app.db, victim.id))
                group.cancel_scope.cancel()
            assert await status(app.db, other.id) == ("running", None)
        finally:
            if survives and cmdline(victim.claude_pid):
                os.kill(victim.claude_pid, signal.SIGKILL)


async def _is_terminated(db: Database, instance_id: str) -> bool:
    return (await status(db, instance_id))[0] == "terminated"


def process_state(pid: int) -> str:
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
async def test_an_agent_that_exited_but_was_not_collected_yet_is_not_alive(tmp_path: Path) -> None:
    """tmux can close an agent's session before it collects the exited process: a zombie, which
    ``kill(pid, 0)`` still finds. Reads must see that agent as gone."""
    # A command name with ") Z (" in it: /proc's stat is read from the last parenthesis.
    named = tmp_path / "agent) Z (x"
    named.symlink_to(shutil.which("sleep") or "/bin/sleep")
    child = subprocess.Popen([str(named), "60"])
    try:
        assert process_state(child.pid) != "Z"
        assert pid_alive(child.pid)
        child.kill()
        await wait_for(lambda: process_state(child.pid) == "Z")  # exited, not collected by us, its parent
        os.kill(child.pid, 0)  # what the check alone used to see: still there
        assert not pid_alive(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)


# ------------------------------------------------------------------------------------------- orphans


async def test_orphan_sessions_and_worktrees_are_reported(
    lifecycle_settings: SettingsMaker,
    idle_agent: str,
    repo: Path,
    tmux_socket: str,
    cli_env: dict[str, str],
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=idle_agent)
    root = repo / "worktrees"
    async with open_app(settings) as app:
        running = await spawn(app, 6)
        ended = await spawn(app, 6)
        tmux(tmux_socket, "kill-session", "-t", f"={ended.id}")
        tmux(tmux_socket, "new-session", "-d", "-s", "work-99-a1")  # named like ours, no row
        tmux(tmux_socket, "new-session", "-d", "-s", "notes")  # not ours at all
        (root / "stray").mkdir()
        (root / "work-98-a1").mkdir()
        (root / "a-file.txt").write_text("not a worktree\n")

        subprocess.run(["git", "branch", "codex/review-6-a9", "main"], cwd=repo, check=True)  # no row owns it
        report = await no_grace(app).reconcile(find_orphans=True)
        assert report.terminated == [ended.id]
        assert report.orphan_sessions == ["work-99-a1"]
        assert report.orphan_branches == ["codex/review-6-a9"]  # the instances' own branches are owned
        # A terminated instance's kept worktree has no running row either: listed, for the person to decide.
        expected = sorted(str(root / name) for name in ("stray", "work-98-a1", ended.id))
        assert report.orphan_worktrees == expected
        assert running.worktree_path not in report.orphan_worktrees

        plain = await no_grace(app).reconcile()  # the cheap one run before reads does not look for orphans
        assert plain.orphan_sessions == [] and plain.orphan_worktrees == []

    done = run_cli("reconcile", cwd=repo, env=cli_environment(cli_env, tmux_socket))
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "terminated: none" in out
    assert "work-99-a1" in out and "notes" not in out and "_keep" not in out
    assert "codex/* branches no instance owns" in out and "codex/review-6-a9" in out
    for path in expected:
        assert f"  {path}\n" in out
    assert running.worktree_path not in out

    done = run_cli("reconcile", "--json", cwd=repo, env=cli_environment(cli_env, tmux_socket))
    report = json.loads(done.stdout)
    assert report["orphan_sessions"] == ["work-99-a1"] and report["orphan_worktrees"] == expected


async def test_a_running_instance_whose_worktree_was_deleted_is_flagged(
    lifecycle_settings: SettingsMaker, idle_agent: str, repo: Path, tmux_socket: str, cli_env: dict[str, str]
) -> None:
    settings = lifecycle_settings(CODEX_MCP_AGENT_COMMAND=idle_agent)
    async with open_app(settings) as app:
        kept = await spawn(app, 7)
        lost = await spawn(app, 7)
        shutil.rmtree(lost.worktree_path)
        report = await no_grace(app).reconcile(find_orphans=True)
        assert report.missing_worktrees == [lost.id]
        assert report.terminated == []  # its agent still runs: flagged for a person, not ended
        assert kept.id not in report.missing_worktrees
    done = run_cli("reconcile", cwd=repo, env=cli_environment(cli_env, tmux_socket))
    assert done.returncode == 0, done.stderr
    assert (
        f"running instances whose worktree is gone (kill them, or restore the folder): {lost.id}"
        in done.stdout
    )
    done = run_cli("reconcile", "--json", cwd=repo, env=cli_environment(cli_env, tmux_socket))
    assert json.loads(done.stdout)["missing_worktrees"] == [lost.id]


# -------------------------------------------------------------------------------------------- resume


@pytest.mark.parametrize("remain_on_exit", [False, True], ids=["session-closes", "pane-stays-dead"])
async def test_resume_restarts_a_dead_instance_in_its_worktree(
    remain_on_exit: bool, lifecycle_settings: SettingsMaker, tmux_socket: str
) -> None:
    if remain_on_exit:  # the dead agent's pane stays: resume must replace it, not call it running
        tmux(tmux_socket, "set-option", "-g", "remain-on-exit", "on")
    settings = lifecycle_settings({"work": []})
    async with open_app(settings) as app:
        instance = await spawn(app, 7)
        worktree = Path(instance.worktree_path)
        await wait_for(lambda: any(e.get("event") == "done" for e in read_standin_log(worktree)))

        with pytest.raises(StateError, match="still running in tmux session work-7-a1"):
            await app.lifecycle.resume(await instances_store.require(app.db, instance.id))

        assert instance.claude_pid is not None
        os.kill(instance.claude_pid, signal.SIGKILL)
        if remain_on_exit:
            await wait_for(lambda: pane_dead(tmux_socket, instance.id))
        else:
            await wait_for(lambda: instance.id not in tmux_sessions(tmux_socket))
        assert (await no_grace(app).reconcile()).terminated == [instance.id]

        resumed = await app.lifecycle.resume(await instances_store.require(app.db, instance.id))
        assert resumed.status == "running" and resumed.terminated_at is None
        assert resumed.claude_pid != instance.claude_pid
        assert resumed.worktree_path == instance.worktree_path and resumed.branch_name == instance.branch_name
        assert instance.id in tmux_sessions(tmux_socket) and not pane_dead(tmux_socket, instance.id)
        # The agent really runs again, in the same worktree, as the same instance.
        await wait_for(
            lambda: (
                [e.get("instance") for e in read_standin_log(worktree) if e.get("event") == "start"]
                == [instance.id] * 2
            )
        )
        assert "codex_mcp.standin" in " ".join(cmdline(resumed.claude_pid))
        assert (await no_grace(app).reconcile()).terminated == []  # and it counts as alive

        with pytest.raises(StateError, match="still running"):
            await app.lifecycle.resume(resumed)


@pytest.fixture
def fake_claude(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `claude` executable first on PATH that records its argv (one JSON line per start) and waits.

    HOME points into tmp: the Claude profile records folder trust in ~/.claude.json.
    """
    bin_dir = tmp_path / "claude-bin"
    bin_dir.mkdir()
    record = tmp_path / "claude-argv.jsonl"
    script = bin_dir / "claude"
    script.write_text(
        f"#!{sys.executable} -S\n"
        "import json, os, sys, time\n"
        f"with open({str(record)!r}, 'a') as fh:\n"
        "    fh.write(json.dumps({'pid': os.getpid(), 'cwd': os.getcwd(), 'argv': sys.argv[1:]}) + '\\n')\n"
        "time.sleep(600)\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    return record


def starts(record: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


async def test_resume_with_the_claude_profile_continues_the_conversation(
    repo: Path,
    env: dict[str, str],
    tmux_socket: str,
    fake_claude: Path,
    cli_env: dict[str, str],
) -> None:
    settings = Settings.load({**env, "CODEX_MCP_TMUX_SOCKET": tmux_socket}, cwd=repo)
    assert settings.agent_command is None  # the default profile: Claude Code
    async with open_app(settings) as app:
        instance = await spawn(app, 8)
        session_id = instance.agent_session_id
        assert session_id
        first = (await wait_for(lambda: starts(fake_claude)))[0]
        assert first["pid"] == instance.claude_pid and first["cwd"] == instance.worktree_path
        argv = first["argv"]
        assert argv[argv.index("--session-id") + 1] == session_id and "--resume" not in argv

        assert instance.claude_pid is not None
        os.kill(instance.claude_pid, signal.SIGKILL)
        await wait_for(lambda: instance.id not in tmux_sessions(tmux_socket))
        assert (await no_grace(app).reconcile()).terminated == [instance.id]

    environment = cli_environment(
        {**cli_env, "PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}, tmux_socket
    )
    done = run_cli("resume", instance.id, cwd=repo, env=environment)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"resumed {instance.id}: tmux session {instance.id} -L {tmux_socket}")

    spec = json.loads((Path(instance.worktree_path) / ".codex" / "launch.json").read_text())
    assert spec["argv"][0] == "claude" and spec["argv"][-2:] == ["--resume", session_id]
    assert "--session-id" not in spec["argv"]
    second = (await wait_for(lambda: starts(fake_claude)[1:]))[0]
    assert second["argv"][-2:] == ["--resume", session_id] and second["cwd"] == instance.worktree_path
    async with open_app(settings) as app:
        resumed = await instances_store.require(app.db, instance.id)
        assert resumed.status == "running" and resumed.terminated_at is None
        assert resumed.claude_pid == second["pid"] != instance.claude_pid
        assert resumed.agent_session_id == session_id

    done = run_cli("resume", instance.id, cwd=repo, env=environment)
    assert done.returncode == 1
    assert "still running" in done.stderr and "attach" in done.stderr and "Traceback" not in done.stderr
    assert len(starts(fake_claude)) == 2


# The background loop's pid passes, like a read's check, load no reconcile chapter while every agent is
# alive: 32 servers started together would otherwise all import it in the middle of their first calls.
QUIET_PASSES = """\
import sys, anyio
from codex_mcp.app import open_app
from codex_mcp.settings import Settings

async def main():
    async with open_app(Settings.load()) as app:
        await app.lifecycle.reconcile_quietly()
        with anyio.move_on_after(0.3):
            await app.lifecycle.keep_reconciled(pid_seconds=0.01, tmux_seconds=3600)
        print(sorted(m for m in sys.modules if m.startswith("codex_mcp.lifecycle.")))

anyio.run(main)
"""


def test_the_pid_passes_load_no_reconcile_chapter(repo: Path, cli_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", QUIET_PASSES],
        cwd=repo,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(["codex_mcp.lifecycle.liveness"])
