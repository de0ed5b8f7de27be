"""Activity with the real Claude Code, offline: the hooks codex-mcp registers through ``--settings`` move
``instances.activity`` as the agent works, finishes, or stops at a permission dialog, and
``notify.command`` hears about it.

The Messages API is the scripted stand-in (tests/anthropic_standin.py). Claude Code's config lives in a
temporary ``CLAUDE_CONFIG_DIR`` (onboarding done there, nothing in ``$HOME``): the agent must find it, and
no ``~/.claude.json`` may appear. Skipped, with the reason, when npm cannot install Claude Code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic_standin import AnthropicStandin, Call, Role
from npm_tools import NpmTools
from support import query, run_cli, tmux_sessions, wait_for

from codex_mcp.settings import Settings

pytestmark = pytest.mark.slow

FINAL = "All done: the README is friendlier."
TIMEOUT = 90.0
ROLES = [
    Role(name="answer", match="Please answer right away.", calls=(), final_text=FINAL),
    # Bash is not among the allowed tools (only mcp__codex is), and the person's own settings ask before
    # any Bash command (auto mode would otherwise run a harmless one): Claude Code opens a permission dialog.
    Role(
        name="bash",
        match="Please create the marker file.",
        calls=(
            Call("Bash", {"command": "touch activity-marker", "description": "Create a marker"}, server=""),
        ),
        final_text="Created.",
    ),
]

NOTIFY_SCRIPT = """\
import json, sys
with open(sys.argv[1], "a", encoding="utf-8") as fh:
    fh.write(json.dumps(sys.argv[2:]) + "\\n")
"""


@pytest.fixture
def standin() -> Iterator[AnthropicStandin]:
    with AnthropicStandin(ROLES) as server:
        yield server


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """Claude Code's config folder, past onboarding; trust is left to the product."""
    folder = tmp_path / "claude-config"
    folder.mkdir()
    (folder / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}), encoding="utf-8")
    return folder


@pytest.fixture
def claude_env(
    npm_tools: NpmTools,
    cli_env: dict[str, str],
    config_dir: Path,
    tmux_socket: str,
    standin: AnthropicStandin,
) -> dict[str, str]:
    env = npm_tools.env(cli_env)
    for name in list(env):
        if name.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "CODEX_MCP_AGENT_")):
            del env[name]
    env.update(
        HOME=os.environ["HOME"],
        CLAUDE_CONFIG_DIR=str(config_dir),
        ANTHROPIC_BASE_URL=standin.url,
        ANTHROPIC_AUTH_TOKEN="standin-token",
        CODEX_MCP_TMUX_SOCKET=tmux_socket,
        DISABLE_AUTOUPDATER="1",
    )
    return env


def row(db: Path, instance_id: str) -> tuple[Any, ...]:
    (found,) = query(
        db, "SELECT activity, activity_detail, activity_at FROM instances WHERE id = ?", instance_id
    )
    return found


def pane(socket: str, session: str) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-t", f"={session}:"],
        capture_output=True,
        text=True,
    )
    return done.stdout


def notified(out: Path) -> list[list[str]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


def start(repo: Path, env: dict[str, str], tmp_path: Path, prompt: str) -> tuple[str, Path, Path]:
    """notify.command set, then `codex-mcp start`: (instance id, database, notify output)."""
    script, out = tmp_path / "notify.py", tmp_path / "notified.jsonl"
    script.write_text(NOTIFY_SCRIPT, encoding="utf-8")
    command = f"{sys.executable} {script} {out} {{instance_id}} {{activity}} {{message}}"
    assert run_cli("config", "set", "notify.command", command, cwd=repo, env=env).returncode == 0
    done = run_cli("start", "--issue", "1", "--prompt", prompt, "--json", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    instance = json.loads(done.stdout)
    return instance["id"], Settings.load(env, cwd=repo).require_db_path(), out


async def test_a_finished_turn_goes_from_working_to_idle(
    repo: Path,
    claude_env: dict[str, str],
    config_dir: Path,
    tmux_socket: str,
    standin: AnthropicStandin,
    tmp_path: Path,
) -> None:
    instance_id, db, out = start(repo, claude_env, tmp_path, "Please answer right away.")
    try:
        await wait_for(lambda: row(db, instance_id)[0] == "idle", timeout=TIMEOUT, interval=0.1)
        state, detail, at = row(db, instance_id)
        assert (state, detail) == ("idle", FINAL)
        assert at is not None
        # The person was told the turn ended, and it ended a turn that was working: the notification
        # is only sent on working -> idle.
        assert await wait_for(lambda: notified(out), timeout=30) == [[instance_id, "idle", FINAL]]
        # The model was asked (the agent really ran), and CLAUDE_CONFIG_DIR was honoured throughout: the
        # worktree's trust went there, and no ~/.claude.json appeared.
        assert [r for r in standin.messages_requests() if r.role == "answer"]
        projects = json.loads((config_dir / ".claude.json").read_text(encoding="utf-8"))["projects"]
        assert any(entry.get("hasTrustDialogAccepted") for entry in projects.values())
        assert not (Path(claude_env["HOME"]) / ".claude.json").exists()
    except BaseException:
        print(pane(tmux_socket, instance_id), standin.transcript(), row(db, instance_id), sep="\n----\n")
        raise


async def test_a_tool_that_is_not_allowed_makes_the_agent_wait(
    repo: Path,
    claude_env: dict[str, str],
    config_dir: Path,
    tmux_socket: str,
    standin: AnthropicStandin,
    tmp_path: Path,
) -> None:
    # The person's own settings (kept, and read beside ours): ask before any Bash command.
    (config_dir / "settings.json").write_text(
        json.dumps({"permissions": {"ask": ["Bash"]}}), encoding="utf-8"
    )
    instance_id, db, out = start(repo, claude_env, tmp_path, "Please create the marker file.")
    try:
        await wait_for(lambda: row(db, instance_id)[0] == "waiting", timeout=TIMEOUT, interval=0.1)
        assert row(db, instance_id)[1] == "permission: Bash"
        assert await wait_for(lambda: notified(out), timeout=30) == [
            [instance_id, "waiting", "permission: Bash"]
        ]
        # It really is waiting for a person: the dialog is on screen, and nothing ran.
        assert instance_id in tmux_sessions(tmux_socket)
        assert await wait_for(lambda: "Do you want to proceed" in pane(tmux_socket, instance_id), timeout=30)
        (worktree,) = query(db, "SELECT worktree_path FROM instances WHERE id = ?", instance_id)[0]
        assert not (Path(worktree) / "activity-marker").exists()
    except BaseException:
        print(pane(tmux_socket, instance_id), standin.transcript(), row(db, instance_id), sep="\n----\n")
        raise
