"""Helpers shared by the tests: real git repositories, the real CLI, tmux, waiting, MCP results.

Fixtures live in conftest.py (pytest finds them there); plain functions and constants live here and
are imported by name (``from support import git, wait_for``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from codex_mcp.settings import Settings

# The types of two conftest fixtures, for annotating the tests that take them.
SettingsMaker = Callable[..., Settings]
"""``lifecycle_settings``: Settings for spawning stand-in agents, given a script and extra variables."""
ScriptWriter = Callable[[dict[str, Any]], Path]
"""``write_script``: writes a stand-in script and returns its path."""

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=True, env={**os.environ, **GIT_ENV}
    )
    return done.stdout.strip()


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path.resolve()


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], check: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the real `codex-mcp` command (this interpreter's installation) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "codex_mcp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def tmux_sessions(socket: str) -> set[str]:
    done = subprocess.run(
        ["tmux", "-L", socket, "list-sessions", "-F", "#{session_name}"], capture_output=True, text=True
    )
    return set(done.stdout.split()) if done.returncode == 0 else set()


def standin_command(script: Path) -> str:
    """CODEX_MCP_AGENT_COMMAND running the scripted stand-in agent (a real MCP client)."""
    return (
        f"{sys.executable} -m codex_mcp.standin --mcp-config {{mcp_config}} --instance {{instance_id}} "
        f"--script {script}"
    )


def read_standin_log(worktree: Path) -> list[dict[str, Any]]:
    path = worktree / ".codex" / "standin.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Await a condition (polling): the first truthy value, or fail after ``timeout`` seconds."""
    import anyio

    with anyio.fail_after(timeout):
        while True:
            value = predicate()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return value
            await anyio.sleep(interval)


# Every tool the server publishes (the snapshot test pins their schemas).
EXPECTED_TOOLS = {
    "query_instances",
    "get_instance",
    "list_events",
    "spawn_review_instance",
    "fork_instance",
    "send_feedback",
    "terminate_instance",
    "create_pull_request",
    "sync_issues",
    "list_issues",
    "get_issue",
}


def text_of(result: Any) -> str:
    """The text content of a tool result."""
    return "\n".join(getattr(c, "text", "") for c in result.content)


def ok(result: Any) -> dict[str, Any]:
    """The structured content of a successful tool result (fails the test with the error text otherwise)."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def failed(result: Any) -> str:
    """The error text of a failed tool result."""
    assert result.is_error, result.structured_content
    return text_of(result)
