"""A person's actions from the CLI are recorded like tool calls: one ``mcp_events`` row each, under the
person's identity (the main checkout's instance, even when the command runs inside an agent's
worktree with the agent's variables), ``actor: person``, ``via: cli``, success or failure; reading
leaves nothing. Every command runs as a real process; agents are stand-ins on a private tmux server;
GitHub is the stand-in.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from github_standin import GitHubStandIn
from support import MODULES_PROBE, run_cli, standin_command

TOKEN = "ghp_" + "r" * 36
SECRET = "ghp_" + "s" * 36


@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(owner="octo", repo="flux", expected_token=TOKEN) as standin:
        yield standin


def events(db_path: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db_path) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM mcp_events ORDER BY id")]
    conn.close()
    return rows


def person_id(db_path: Path, repo: Path) -> str:
    with sqlite3.connect(db_path) as conn:
        (found,) = conn.execute("SELECT id FROM instances WHERE worktree_path = ?", (str(repo),)).fetchone()
    conn.close()
    return str(found)


def test_every_cli_action_leaves_one_event_under_the_persons_identity(
    repo: Path,
    cli_env: dict[str, str],
    tmux_socket: str,
    write_script: Callable[[dict[str, Any]], Path],
    gh: GitHubStandIn,
) -> None:
    env = {
        **cli_env,
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
        "CODEX_MCP_AGENT_COMMAND": standin_command(write_script({})),
        "CODEX_MCP_GITHUB_API_URL": gh.base_url,
        "CODEX_MCP_GITHUB_REPO": "octo/flux",
        "GITHUB_TOKEN": TOKEN,
        "COLUMNS": "200",
    }
    db_path = repo / ".git" / "codex-mcp" / "codex.db"
    seen = 0

    def step(
        name: str, *args: str, code: int = 0, cwd: Path = repo, extra: dict[str, str] | None = None
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        """Run one command; exactly one new event, named ``name``, as the person; (process, event)."""
        nonlocal seen
        done = run_cli(*args, cwd=cwd, env={**env, **(extra or {})})
        assert done.returncode == code, (args, done.stdout, done.stderr)
        if code:  # a refusal stays one line, as before recording
            assert done.stdout == "" and done.stderr.startswith("codex-mcp: error: "), done.stderr
        rows = events(db_path)
        new, seen = rows[seen:], len(rows)
        assert [(e["tool_name"], e["success"]) for e in new] == [(name, int(code == 0))], (args, new)
        event = new[0]
        metadata = json.loads(event["metadata"])
        assert metadata["actor"] == "person" and metadata["via"] == "cli" and metadata["user"], metadata
        assert event["instance_id"] == person_id(db_path, repo)
        return done, event

    done, event = step("start", "start", "--issue", "3", "--prompt", "Make it spin.")
    assert done.stdout.startswith("started work-3-a1: tmux session work-3-a1")
    args = json.loads(event["metadata"])["args"]
    assert args["issue_number"] == 3 and args["prompt"]["redacted"] is True  # prompts only as a digest
    worktree = repo / "worktrees" / "work-3-a1"
    assert person_id(db_path, repo) != "work-3-a1"

    _, event = step("start", "start", "--prompt", "x", "--base", "no-such-branch", code=2)
    assert "no-such-branch" in event["error_message"]
    prompt_file = repo.parent / "prompt.md"
    prompt_file.write_text("Make it spin.\n", encoding="utf-8")
    _, event = step("start", "start", "--prompt", "x", "--prompt-file", str(prompt_file), code=2)
    assert "not both" in event["error_message"]

    done, event = step("config set", "config", "set", "notify.command", "notify-send {instance_id}")
    assert done.stdout == "notify.command = notify-send {instance_id}\n"
    recorded = json.loads(event["metadata"])["args"]
    assert recorded["key"] == "notify.command"
    assert recorded["value"]["redacted"] and recorded["value"]["len"] == len("notify-send {instance_id}")
    done, event = step("config set", "config", "set", "github.token", SECRET, "--secret")
    assert done.stdout == "github.token = ******** (encrypted)\n"
    assert SECRET not in json.dumps(events(db_path))  # a secret's value is never recorded
    step("config set", "config", "set", "terminal.theme", "purple", code=2)
    done, _ = step("config unset", "config", "unset", "notify.command")
    assert done.stdout == "notify.command removed\n"

    done, _ = step("issues sync", "issues", "sync")
    assert done.stdout.startswith("octo/flux: 0 issue(s) received")

    # Run inside the agent's worktree, with the agent's own variables: still the person's action.
    agent = {"CODEX_MCP_INSTANCE": "work-3-a1"}
    done, event = step("kill", "kill", "work-3-a1", cwd=worktree, extra=agent)
    assert done.stdout.startswith("work-3-a1 terminated (session killed)")
    assert json.loads(event["metadata"])["args"] == {"instance_id": "work-3-a1"}
    _, event = step("kill", "kill", "work-3-a1", code=1, cwd=worktree, extra=agent)
    assert "already terminated" in event["error_message"]
    step("kill", "kill", "work-99-a1", code=2)

    done, _ = step("resume", "resume", "work-3-a1")
    assert done.stdout.startswith("resumed work-3-a1: tmux session work-3-a1")
    done, _ = step("reconcile", "reconcile")
    assert done.stdout.startswith("terminated: none")

    # Reading is not an action: nothing more is recorded.
    for reading in (("ls", "--all"), ("show", "work-3-a1"), ("events",), ("config", "ls")):
        assert run_cli(*reading, cwd=repo, env=env).returncode == 0, reading
    assert len(events(db_path)) == seen


# The MCP SDK (its types alone cost a command most of a second) and the web stack serve MCP and the
# dashboard; a person's action from the command line is recorded without them.
SERVING_ONLY = ("mcp", "mcp_types", "starlette", "uvicorn", "sse_starlette")


@pytest.mark.parametrize(
    "action", [("issues", "sync"), ("config", "set", "editor.command", "vim {path}")], ids=" ".join
)
def test_a_recorded_cli_action_does_not_import_the_mcp_sdk(
    repo: Path, cli_env: dict[str, str], gh: GitHubStandIn, tmp_path: Path, action: tuple[str, ...]
) -> None:
    env = {**cli_env, "CODEX_MCP_GITHUB_API_URL": gh.base_url, "CODEX_MCP_GITHUB_REPO": "octo/flux"}
    loaded = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", MODULES_PROBE, str(loaded), *action],
        cwd=repo,
        env={**env, "GITHUB_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modules = {m.split(".")[0] for m in loaded.read_text(encoding="utf-8").split()}
    assert "codex_mcp" in modules and "click" in modules  # the probe saw the command run
    assert sorted(modules & set(SERVING_ONLY)) == []
    (event,) = events(repo / ".git" / "codex-mcp" / "codex.db")  # recorded all the same
    assert (event["tool_name"], event["success"]) == (" ".join(action[:2]), 1)
