"""A tmux server codex-mcp starts inherits no secret of the person's shell (issue 11, item 8)."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from codex_mcp.tmux import Tmux


@pytest.fixture
def fresh_socket() -> Iterator[str]:
    """A socket name no server runs on yet: the server is started by codex-mcp itself."""
    name = f"codex-env-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True, check=False)


async def test_the_tmux_server_we_start_holds_no_token_or_key(
    fresh_socket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = {
        "GITHUB_TOKEN": "ghp_" + "x" * 36,
        "GH_TOKEN": "gho_" + "y" * 36,
        "ANTHROPIC_API_KEY": "sk-ant-" + "z" * 30,
        "AWS_SECRET_ACCESS_KEY": "w" * 40,
        "CODEX_MCP_TOKEN": "agent-token-value",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    tmux = Tmux(fresh_socket)
    await tmux.new_session("probe", tmp_path, ["sleep", "30"])

    shown = subprocess.run(
        ["tmux", "-L", fresh_socket, "show-environment", "-g"], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split("=", 1)[0] for line in shown.splitlines() if "=" in line}
    for name, value in secrets.items():
        assert name not in names and value not in shown, name
    # What a terminal needs is still there.
    assert {"PATH", "HOME", "LANG"} <= names
    # A window a person opens in the session inherits the same scrubbed environment.
    subprocess.run(
        ["tmux", "-L", fresh_socket, "new-window", "-t", "probe", "-d", "--", "sleep", "30"], check=True
    )
    pane_env = subprocess.run(
        ["tmux", "-L", fresh_socket, "show-environment", "-t", "probe"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "GITHUB_TOKEN" not in pane_env and secrets["GITHUB_TOKEN"] not in pane_env
