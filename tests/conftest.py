"""Shared fixtures: real git repositories, real SQLite files, a clean environment."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from github_standin import GitHubStandIn
from npm_tools import NpmTools, install
from support import GIT_ENV, GITHUB_TOKEN, ScriptWriter, SettingsMaker, make_repo, standin_command
from ui_server import Dashboard, running_dashboard

from codex_mcp.app import App
from codex_mcp.identity import resolve_caller
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database


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


@pytest.fixture
def write_script(tmp_path: Path) -> ScriptWriter:
    """Write a stand-in script ({"work": [steps], "review": [...]}) and return its path."""
    counter = iter(range(1_000_000))

    def write(script: dict[str, Any]) -> Path:
        path = tmp_path / f"script-{next(counter)}.json"
        path.write_text(json.dumps(script), encoding="utf-8")
        return path

    return write


@pytest.fixture
def lifecycle_settings(
    repo: Path, env: dict[str, str], tmux_socket: str, write_script: ScriptWriter
) -> SettingsMaker:
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


@pytest.fixture
def github_token() -> str | None:
    """The token the ``gh`` stand-in expects (None: any, or none). Modules override this fixture."""
    return GITHUB_TOKEN


@pytest.fixture
def gh(github_token: str | None) -> Iterator[GitHubStandIn]:
    """The GitHub stand-in (a real HTTP server on 127.0.0.1) serving octo/flux; it must end error-free."""
    with GitHubStandIn(owner="octo", repo="flux", expected_token=github_token) as standin:
        yield standin
    assert standin.errors == []


@pytest.fixture(scope="session")
def npm_tools() -> NpmTools:
    """Node 22 + the MCP Inspector, the conformance suite and Claude Code (see npm_tools.py)."""
    return install()


# ------------------------------------------------------------------------------- MCP results, logging


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


# ------------------------------------------------------------------------------------ the dashboard


@pytest.fixture
def ui_script() -> dict[str, Any]:
    """What the stand-in agents of the dashboard tests do, per instance type (a module overrides it)."""
    return {"adhoc": [{"call": "query_instances"}]}


@pytest.fixture
def ui_env(
    cli_env: dict[str, str], tmux_socket: str, write_script: ScriptWriter, ui_script: dict[str, Any]
) -> dict[str, str]:
    """The CLI environment with stand-in agents (``ui_script``) on the private tmux socket."""
    return {
        **cli_env,
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
        "CODEX_MCP_AGENT_COMMAND": standin_command(write_script(ui_script)),
    }


@pytest.fixture
def dashboard(repo: Path, ui_env: dict[str, str]) -> Iterator[Dashboard]:
    """`codex-mcp ui` running on ``repo`` with ``ui_env``, logged-in clients from ``dashboard.client()``."""
    with running_dashboard(repo, ui_env) as board:
        yield board
