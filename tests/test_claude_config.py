"""The two documented changes codex-mcp makes to Claude Code's config so no dialog blocks an agent."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from codex_mcp.agents import prepare_claude_config
from codex_mcp.errors import ConfigError

KEY = "sk-ant-api03-" + "x" * 40 + "ABCDEFGHIJKLMNOPQRST"


def test_untrusted_repository_gets_only_its_worktree_trusted(tmp_path: Path) -> None:
    home = tmp_path / "home"
    config = home / ".claude.json"
    home.mkdir()
    original = {"theme": "dark", "projects": {"/elsewhere": {"allowedTools": ["Bash"]}}, "numStartups": 7}
    config.write_text(json.dumps(original))
    config.chmod(0o600)
    changes = prepare_claude_config(
        worktree=tmp_path / "wt", main_root=tmp_path / "repo", env={"HOME": str(home)}
    )
    assert changes == [f"trusted folder {tmp_path / 'wt'}"]
    data = json.loads(config.read_text())
    assert data["projects"][str(tmp_path / "wt")] == {"hasTrustDialogAccepted": True}
    # Nothing else changed, and the file kept its mode.
    del data["projects"][str(tmp_path / "wt")]
    assert data == original
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_trusted_repository_covers_its_worktrees_so_nothing_is_written(tmp_path: Path) -> None:
    config = tmp_path / ".claude.json"
    text = json.dumps({"projects": {str(tmp_path / "repo"): {"hasTrustDialogAccepted": True}}})
    config.write_text(text)
    assert (
        prepare_claude_config(
            worktree=tmp_path / "wt", main_root=tmp_path / "repo", env={"HOME": str(tmp_path)}
        )
        == []
    )
    assert config.read_text() == text


def test_api_key_is_approved_once_and_a_rejection_is_respected(tmp_path: Path) -> None:
    trusted = {"projects": {str(tmp_path / "repo"): {"hasTrustDialogAccepted": True}}}
    config = tmp_path / ".claude.json"
    config.write_text(json.dumps(trusted))
    env = {"HOME": str(tmp_path), "ANTHROPIC_API_KEY": KEY}
    assert prepare_claude_config(worktree=tmp_path / "wt", main_root=tmp_path / "repo", env=env) == [
        "approved the ANTHROPIC_API_KEY in use"
    ]
    assert json.loads(config.read_text())["customApiKeyResponses"]["approved"] == [KEY[-20:]]
    assert prepare_claude_config(worktree=tmp_path / "wt", main_root=tmp_path / "repo", env=env) == []

    config.write_text(
        json.dumps({**trusted, "customApiKeyResponses": {"approved": [], "rejected": [KEY[-20:]]}})
    )
    assert prepare_claude_config(worktree=tmp_path / "wt", main_root=tmp_path / "repo", env=env) == []
    # With ANTHROPIC_AUTH_TOKEN Claude Code does not ask about the key at all.
    config.write_text(json.dumps(trusted))
    env_token = {**env, "ANTHROPIC_AUTH_TOKEN": "token"}
    assert prepare_claude_config(worktree=tmp_path / "wt", main_root=tmp_path / "repo", env=env_token) == []


def test_missing_config_is_created_private_and_minimal(tmp_path: Path) -> None:
    config_dir = tmp_path / "claude-dir"
    changes = prepare_claude_config(
        worktree=tmp_path / "wt", main_root=tmp_path / "repo", env={"CLAUDE_CONFIG_DIR": str(config_dir)}
    )
    assert changes == [f"trusted folder {tmp_path / 'wt'}"]
    config = config_dir / ".claude.json"
    assert json.loads(config.read_text()) == {
        "projects": {str(tmp_path / "wt"): {"hasTrustDialogAccepted": True}}
    }
    assert stat.S_IMODE(config.stat().st_mode) == 0o600


def test_unreadable_config_is_a_clear_error_and_left_alone(tmp_path: Path) -> None:
    config = tmp_path / ".claude.json"
    config.write_text("{not json")
    with pytest.raises(ConfigError, match=r"cannot read Claude Code's config"):
        prepare_claude_config(
            worktree=tmp_path / "wt", main_root=tmp_path / "repo", env={"HOME": str(tmp_path)}
        )
    assert config.read_text() == "{not json"
