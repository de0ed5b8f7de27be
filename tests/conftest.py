"""Shared fixtures: real git repositories, real SQLite files, a clean environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from codex_mcp.app import App
from codex_mcp.identity import resolve_caller
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No developer variable leaks in, and the default key file never lands in the real home."""
    for name in list(os.environ):
        if name.startswith("CODEX_MCP_") or name in ("GITHUB_TOKEN", "TMUX", "TMUX_PANE"):
            monkeypatch.delenv(name, raising=False)
    data_home = tmp_path_factory.mktemp("xdg-data")
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    # Nothing may read or write the real home (~/.claude.json, ~/.gitconfig, ...).
    monkeypatch.setenv("HOME", str(tmp_path_factory.mktemp("home")))
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


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


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A real git repository with one commit on main."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """Environment for Settings.load / subprocesses: a key file under tmp, no leaks from the host."""
    return {"CODEX_MCP_SECRET_KEY_FILE": str(tmp_path / "keys" / "secret.key")}


@pytest.fixture
def settings(repo: Path, env: dict[str, str]) -> Settings:
    """Settings for the repo: the default database (<git common dir>/codex-mcp/codex.db)."""
    return Settings.load(env, cwd=repo)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(settings.require_db_path())
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def app(settings: Settings, db: Database) -> App:
    """An App whose caller is the adhoc instance registered for the repo."""
    return App(settings=settings, db=db, caller=await resolve_caller(settings, db))


@pytest.fixture
def cli_env(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """A full environment for running `codex-mcp` as a subprocess."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_MCP_")}
    yield {**base, **env}


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


# ------------------------------------------------------------------------------ tmux and stand-in agents


@pytest.fixture
def tmux_socket() -> Iterator[str]:
    """A private tmux server (its own -L socket) that survives its last session, killed afterwards."""
    name = f"codex-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["tmux", "-L", name, "new-session", "-d", "-s", "_keep"], check=True)
    subprocess.run(["tmux", "-L", name, "set-option", "-g", "exit-empty", "off"], check=True)
    try:
        yield name
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)


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


@pytest.fixture
def write_script(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a stand-in script ({"work": [steps], "review": [...]}) and return its path."""
    counter = iter(range(1_000_000))

    def write(script: dict[str, Any]) -> Path:
        path = tmp_path / f"script-{next(counter)}.json"
        path.write_text(json.dumps(script), encoding="utf-8")
        return path

    return write


@pytest.fixture
def lifecycle_settings(
    repo: Path, env: dict[str, str], tmux_socket: str, write_script: Callable[[dict[str, Any]], Path]
) -> Callable[..., Settings]:
    """Settings for spawning in `repo` on the private tmux server, agents being stand-ins.

    Call it with a script (default: agents that do nothing but stay alive) and optional extra variables.
    """

    def make(script: dict[str, Any] | None = None, **extra: str) -> Settings:
        path = write_script(script or {})
        mapping = {
            **env,
            "CODEX_MCP_TMUX_SOCKET": tmux_socket,
            "CODEX_MCP_AGENT_COMMAND": standin_command(path),
            **extra,
        }
        return Settings.load(mapping, cwd=repo)

    return make


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


@pytest.fixture(scope="session")
def npm_tools() -> Any:
    """Node 22 + the MCP Inspector, the conformance suite and Claude Code (see npm_tools.py)."""
    from npm_tools import install

    return install()


# ------------------------------------------------------------------------------- MCP results, logging

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


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """CLI commands and servers configure the root logger (a handler on a stream): undo it afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
