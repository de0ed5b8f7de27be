"""``codex-mcp hook EVENT``: the real command in a subprocess, Claude Code's hook JSON on stdin, a real
database. Whatever happens it exits 0 and prints nothing (a failing or chatty hook shows up in the
agent's screen); what went wrong is one line in hook.log."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import git, run_cli, wait_for

from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import NewInstance

INSTANCE = "work-7-a1"
SQLITE_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


async def add_instance(db: Database, worktree: Path, instance_id: str = INSTANCE) -> None:
    async with db.write() as tx:
        await instances_store.insert(
            tx,
            NewInstance(
                id=instance_id,
                type="work",
                worktree_path=str(worktree),
                branch_name=f"codex/{instance_id}",
                tmux_session=instance_id,
                issue_number=7,
            ),
        )


def hook_env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_MCP_")}
    return {**base, **extra}


def hook(event: str, payload: Any, *, cwd: Path, env: dict[str, str]) -> None:
    """Run the hook like Claude Code does; it must exit 0 and print nothing, whatever happened."""
    data = (
        payload if isinstance(payload, bytes) else json.dumps({"hook_event_name": event, **payload}).encode()
    )
    done = subprocess.run(
        [sys.executable, "-m", "codex_mcp", "hook", event],
        input=data,
        capture_output=True,
        cwd=cwd,
        env=env,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def activity(db_path: Path, instance_id: str = INSTANCE) -> tuple[Any, ...]:
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as conn:
        row = conn.execute(
            "SELECT activity, activity_detail, activity_at FROM instances WHERE id = ?", (instance_id,)
        ).fetchone()
    assert row is not None
    return tuple(row)


def log_lines(folder: Path) -> list[str]:
    path = folder / "hook.log"
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@pytest.fixture
async def agent(db: Database, repo: Path) -> dict[str, str]:
    """An instance row, and the environment a spawned agent (and so its hooks) has."""
    await add_instance(db, repo)
    return hook_env(CODEX_MCP_DB=str(db.path), CODEX_MCP_INSTANCE=INSTANCE)


# ------------------------------------------------------------------------------------------- mapping


async def test_events_map_to_working_waiting_idle(db: Database, repo: Path, agent: dict[str, str]) -> None:
    assert activity(db.path)[:2] == (None, None)

    hook("UserPromptSubmit", {"prompt": "go"}, cwd=repo, env=agent)
    state, detail, at = activity(db.path)
    assert (state, detail) == ("working", None)
    assert SQLITE_TIME.match(at), at  # the format of every other timestamp

    hook("PreToolUse", {"tool_name": "Read", "tool_input": {}}, cwd=repo, env=agent)
    assert activity(db.path) == ("working", None, at)  # nothing changed, nothing rewritten

    hook("PermissionRequest", {"tool_name": "Bash", "tool_input": {"command": "ls"}}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("waiting", "permission: Bash")

    message = "Claude needs your permission to use Bash"
    hook("Notification", {"message": message, "notification_type": "permission_prompt"}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("waiting", message)

    hook(
        "PostToolUse", {"tool_name": "Bash", "tool_response": {"stdout": "x" * 100_000}}, cwd=repo, env=agent
    )
    assert activity(db.path)[:2] == ("working", None)

    answer = "All done.\nThe README   is friendlier now."
    hook("Stop", {"last_assistant_message": answer, "background_tasks": []}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", "All done. The README is friendlier now.")

    # The reminder 60 s after a turn ended is not a question for a person: still idle.
    idle_message = "Claude is waiting for your input"
    hook("Notification", {"message": idle_message, "notification_type": "idle_prompt"}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", "All done. The README is friendlier now.")

    # Session end: noted; whether the instance is gone is reconcile's business.
    hook("SessionEnd", {"reason": "prompt_input_exit"}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", "session ended: prompt_input_exit")

    before = activity(db.path)
    for event in ("SessionStart", "SubagentStop", "NoSuchEvent"):
        hook(event, {"source": "startup"}, cwd=repo, env=agent)
    hook("Notification", {"message": "Logged in", "notification_type": "auth_success"}, cwd=repo, env=agent)
    assert activity(db.path) == before
    assert log_lines(db.path.parent) == []  # nothing went wrong, nothing logged


async def test_stop_with_background_tasks_is_not_idle(
    db: Database, repo: Path, agent: dict[str, str]
) -> None:
    hook("UserPromptSubmit", {"prompt": "go"}, cwd=repo, env=agent)
    tasks = [{"id": "b1", "type": "local_agent", "status": "running", "description": "tests"}]
    hook(
        "Stop",
        {"last_assistant_message": "Started the tests.", "background_tasks": tasks},
        cwd=repo,
        env=agent,
    )
    assert activity(db.path)[:2] == ("working", "background tasks running")
    hook("Stop", {"last_assistant_message": "Tests pass.", "background_tasks": []}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", "Tests pass.")


async def test_a_notification_without_its_type_is_read_from_its_message(
    db: Database, repo: Path, agent: dict[str, str]
) -> None:
    hook("Notification", {"message": "Claude needs your permission to use Bash"}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("waiting", "Claude needs your permission to use Bash")
    hook("Notification", {"message": "Claude is waiting for your input"}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", None)


async def test_instance_and_database_found_from_the_worktree_without_variables(
    db: Database, repo: Path, tmp_path: Path
) -> None:
    """A hook outside our agents' environment: the database through the worktree's .git file (gitdir,
    then commondir), the instance as the running one whose worktree holds the folder."""
    worktree = tmp_path / "worktrees" / INSTANCE
    git(repo, "worktree", "add", "-q", "-b", f"codex/{INSTANCE}", str(worktree))
    await add_instance(db, worktree.resolve())
    (worktree / "src").mkdir()
    hook("UserPromptSubmit", {"prompt": "go"}, cwd=worktree / "src", env=hook_env())
    assert activity(db.path)[:2] == ("working", None)


# ------------------------------------------------------------------------------------------- failures


async def test_no_database_exits_quietly_and_creates_nothing(repo: Path, tmp_path: Path) -> None:
    missing_folder = tmp_path / "nowhere" / "codex.db"
    hook("Stop", {}, cwd=repo, env=hook_env(CODEX_MCP_DB=str(missing_folder), CODEX_MCP_INSTANCE=INSTANCE))
    assert not missing_folder.parent.exists()

    # A database folder that exists but holds no database: still none created, one line logged there.
    folder = tmp_path / "empty"
    folder.mkdir()
    hook(
        "Stop", {}, cwd=repo, env=hook_env(CODEX_MCP_DB=str(folder / "codex.db"), CODEX_MCP_INSTANCE=INSTANCE)
    )
    assert sorted(p.name for p in folder.iterdir()) == ["hook.log"]
    (line,) = log_lines(folder)
    assert "Stop" in line and "cannot open the database" in line and str(folder / "codex.db") in line

    # Outside any repository and without CODEX_MCP_DB: logged in the user's state folder.
    outside = tmp_path / "outside"
    outside.mkdir()
    state = tmp_path / "state"
    hook("PreToolUse", {}, cwd=outside, env=hook_env(XDG_STATE_HOME=str(state)))
    (line,) = log_lines(state / "codex-mcp")
    assert "no database" in line and "CODEX_MCP_DB" in line
    assert list(outside.iterdir()) == []


async def test_a_locked_database_is_given_up_on_and_logged(
    db: Database, repo: Path, agent: dict[str, str]
) -> None:
    hook("UserPromptSubmit", {"prompt": "go"}, cwd=repo, env=agent)
    before = activity(db.path)
    with contextlib.closing(sqlite3.connect(db.path, isolation_level=None)) as holder:
        holder.execute("BEGIN EXCLUSIVE")
        hook("Stop", {"background_tasks": []}, cwd=repo, env=agent)
        holder.execute("ROLLBACK")
    assert activity(db.path) == before
    (line,) = log_lines(db.path.parent)
    assert INSTANCE in line and "locked" in line
    # Once the lock is gone the next report lands.
    hook("Stop", {"background_tasks": []}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", None)


async def test_garbage_on_stdin_still_records_the_event(
    db: Database, repo: Path, agent: dict[str, str]
) -> None:
    hook("UserPromptSubmit", b"\xff\xfe not json at all {", cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("working", None)  # working events never read their JSON
    hook("Stop", b"\xff\xfe not json at all {", cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("idle", None)
    hook("Notification", b"[1, 2, 3]", cwd=repo, env=agent)  # JSON, but not an object
    assert activity(db.path)[:2] == ("waiting", "needs your attention")
    (line,) = log_lines(db.path.parent)
    assert "stdin is not JSON" in line


async def test_an_unknown_instance_changes_nothing(db: Database, repo: Path, agent: dict[str, str]) -> None:
    hook("Stop", {}, cwd=repo, env={**agent, "CODEX_MCP_INSTANCE": "work-99-a9"})
    assert activity(db.path) == (None, None, None)
    (line,) = log_lines(db.path.parent)
    assert "'work-99-a9' is not in" in line


async def test_an_older_report_finishing_late_is_dropped(
    db: Database, repo: Path, agent: dict[str, str]
) -> None:
    """Hooks run asynchronously: a UserPromptSubmit hook that started before the turn's Stop but finished
    after it must not turn the idle agent back to working."""
    from codex_mcp.store import activity as store

    with contextlib.closing(store.connect(str(db.path), busy_timeout=5)) as conn:
        assert store.record(conn, INSTANCE, "idle", "done", order=200.0) is not None
        assert store.record(conn, INSTANCE, "working", None, order=100.0) is None
        assert activity(db.path)[:2] == ("idle", "done")
        # The same state reported again changes nothing visible, but moves the order on.
        assert store.record(conn, INSTANCE, "idle", "done", order=300.0) is None
        assert store.record(conn, INSTANCE, "waiting", "late", order=250.0) is None
        change = store.record(conn, INSTANCE, "working", None, order=400.0)
    assert change is not None and (change.before, change.after) == ("idle", "working")


# ------------------------------------------------------------------------------------------- notify

NOTIFY_SCRIPT = """\
import json, os, sys, time
with open(sys.argv[1], "a", encoding="utf-8") as fh:
    fh.write(json.dumps({"argv": sys.argv[2:], "pid": os.getpid()}) + "\\n")
release = sys.argv[1] + ".release"
while not os.path.exists(release):  # stays alive until the test lets it go: the hook must not wait
    time.sleep(0.02)
"""


def calls(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_notify_command_hears_waiting_and_finished_turns_verbatim(
    db: Database, repo: Path, agent: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    script, out = tmp_path / "notify.py", tmp_path / "calls.jsonl"
    script.write_text(NOTIFY_SCRIPT, encoding="utf-8")
    command = f"{sys.executable} {script} {out} 'id={{instance_id}}' {{activity}} '{{message}}'"
    done = run_cli("config", "set", "notify.command", command, cwd=repo, env=cli_env)
    assert done.returncode == 0, done.stderr
    try:
        hook("UserPromptSubmit", {"prompt": "go"}, cwd=repo, env=agent)
        message = "Claude needs your permission: $(touch pwned); rm -rf / `id` | & \"q\" 'q' {activity} \\n"
        hook(
            "Notification",
            {"message": message, "notification_type": "permission_prompt"},
            cwd=repo,
            env=agent,
        )
        first = await wait_for(lambda: calls(out), timeout=30)
        # The hook returned while the notify command still runs: it never waits for it.
        assert alive(first[0]["pid"])
        # Arguments arrive verbatim: no shell ran, and a placeholder inside the message stays as it is.
        assert first[0]["argv"] == [f"id={INSTANCE}", "waiting", " ".join(message.split())]
        assert not (repo / "pwned").exists()

        # Still waiting (a second notification): nobody is told twice.
        hook(
            "Notification",
            {"message": "still waiting", "notification_type": "permission_prompt"},
            cwd=repo,
            env=agent,
        )
        hook("PostToolUse", {"tool_name": "Bash"}, cwd=repo, env=agent)
        hook(
            "Stop",
            {"last_assistant_message": "Done; see README.", "background_tasks": []},
            cwd=repo,
            env=agent,
        )
        finished = await wait_for(lambda: calls(out)[1:], timeout=30)
        assert finished[0]["argv"] == [f"id={INSTANCE}", "idle", "Done; see README."]
        # idle -> idle (the 60 s reminder) and working are not news.
        hook("Notification", {"message": "x", "notification_type": "idle_prompt"}, cwd=repo, env=agent)
        hook("UserPromptSubmit", {"prompt": "again"}, cwd=repo, env=agent)
        assert len(calls(out)) == 2
    finally:
        (tmp_path / "calls.jsonl.release").touch()
    assert log_lines(db.path.parent) == []


async def test_a_notify_command_that_cannot_start_is_logged(
    db: Database, repo: Path, agent: dict[str, str], cli_env: dict[str, str], tmp_path: Path
) -> None:
    done = run_cli(
        "config", "set", "notify.command", str(tmp_path / "no-such-notifier"), cwd=repo, env=cli_env
    )
    assert done.returncode == 0, done.stderr
    hook("PermissionRequest", {"tool_name": "Bash"}, cwd=repo, env=agent)
    assert activity(db.path)[:2] == ("waiting", "permission: Bash")
    (line,) = log_lines(db.path.parent)
    assert "notify.command did not start" in line and "no-such-notifier" in line


def test_notify_command_is_checked_when_set(repo: Path, cli_env: dict[str, str]) -> None:
    bad = run_cli("config", "set", "notify.command", "notify-send {instance}", cwd=repo, env=cli_env)
    assert bad.returncode != 0 and "unknown placeholder {instance}" in bad.stderr
    unbalanced = run_cli("config", "set", "notify.command", "notify-send 'oops", cwd=repo, env=cli_env)
    assert unbalanced.returncode != 0 and "quoting" in unbalanced.stderr
    secret = run_cli("config", "set", "--secret", "notify.command", "notify-send x", cwd=repo, env=cli_env)
    assert secret.returncode != 0 and "drop --secret" in secret.stderr


# ------------------------------------------------------------------------------------------- imports

HEAVY = ("click", "rich", "pydantic", "aiosqlite", "anyio", "mcp", "libtmux", "git", "githubkit")
# Standard modules that each cost the hook a measurable share of its budget (benchmarks, figure 10): json
# and pathlib import re (and enum), the sqlite3 package imports datetime, typing is big on its own.
SLOW_STDLIB = ("re", "enum", "json", "datetime", "sqlite3", "pathlib", "typing", "dataclasses")
PROBE = """\
import os, sys
# The hook leaves through os._exit (no atexit, no teardown): report the loaded modules on the way out.
def report(status, _exit=os._exit):
    print(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[1].split(","))), flush=True)
    _exit(status)
os._exit = report
sys.argv = ["codex-mcp", "hook", sys.argv[2]]
from codex_mcp.entry import main
main()
"""


@pytest.mark.parametrize("event", ["Stop", "PreToolUse"])
async def test_the_hook_command_imports_nothing_heavy(
    db: Database, repo: Path, agent: dict[str, str], event: str
) -> None:
    """`codex-mcp hook` is dispatched before the CLI: no click, rich, pydantic or async store loads, nor
    the slow parts of the standard library."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, ",".join(HEAVY + SLOW_STDLIB), event],
        input=b'{"background_tasks": []}',
        capture_output=True,
        cwd=repo,
        env=agent,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"[]\n", b"")
    assert activity(db.path)[0] == ("idle" if event == "Stop" else "working")


JSON_SAMPLES = [
    b'{"hook_event_name": "Stop", "background_tasks": [], "stop_hook_active": false}',
    b' \r\n\t{"message": "caf\\u00e9 \\ud83d\\ude00 \\"q\\" \xe2\x9c\x93", "n": -1.5e3, "i": 12, "z": null} \n',
    b'{"nested": {"a": [1, [2, {"b": true}]], "nan": NaN, "inf": -Infinity}, "same": 1, "same": 2}',
    b"[1, 2, 3]",
    b'"just a string"',
]
JSON_GARBAGE = [b"\xff\xfe not json at all {", b"", b"   ", b'{"a": 1} {"b": 2}', b'{"a": 1,}', b"{'a': 1}"]


@pytest.mark.parametrize("raw", JSON_SAMPLES)
def test_the_hooks_json_reader_reads_what_json_reads(raw: bytes) -> None:
    """The hook parses its stdin without importing json (that would import re): same values."""
    from codex_mcp.hook import _loads

    assert json.dumps(_loads(raw)) == json.dumps(json.loads(raw))


@pytest.mark.parametrize("raw", JSON_GARBAGE)
def test_the_hooks_json_reader_refuses_what_json_refuses(raw: bytes) -> None:
    from codex_mcp.hook import _loads

    with pytest.raises(ValueError):
        json.loads(raw)
    with pytest.raises(ValueError):
        _loads(raw)
