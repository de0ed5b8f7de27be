"""`codex-mcp install`: registration with Claude Code, idempotent, touching nothing else."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from codex_mcp.install import install
from codex_mcp.settings import Settings


def fake_claude(folder: Path, log: Path) -> Path:
    """A real `claude` executable that records its argv and, for add-json, writes ~/.claude.json like Claude."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "claude"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(log)!r}, 'a') as fh: fh.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "args = sys.argv[1:]\n"
        "path = os.path.join(os.environ['HOME'], '.claude.json')\n"
        "data = json.load(open(path)) if os.path.exists(path) else {}\n"
        "if args[:2] == ['mcp', 'add-json']:\n"
        "    data.setdefault('mcpServers', {})[args[4]] = json.loads(args[5])\n"
        "elif args[:2] == ['mcp', 'remove']:\n"
        "    data.get('mcpServers', {}).pop(args[4], None)\n"
        "json.dump(data, open(path, 'w'))\n"
    )
    script.chmod(0o755)
    return folder


def test_project_scope_writes_mcp_json_once_and_keeps_other_servers(repo: Path, env: dict[str, str]) -> None:
    (repo / ".mcp.json").write_text(json.dumps({"mcpServers": {"other": {"command": "x"}}, "extra": 1}))
    settings = Settings.load(env, cwd=repo)
    first = install(settings, scope="project", transport="stdio")
    assert first == [f"{repo / '.mcp.json'}: added server 'codex' (stdio)"]
    data = json.loads((repo / ".mcp.json").read_text())
    assert data["extra"] == 1 and data["mcpServers"]["other"] == {"command": "x"}
    entry = data["mcpServers"]["codex"]
    assert entry["type"] == "stdio" and Path(entry["command"]).is_absolute()
    assert entry["args"][-1] == "serve"
    before = (repo / ".mcp.json").read_bytes()
    assert install(settings, scope="project", transport="stdio") == [
        f"{repo / '.mcp.json'}: server 'codex' already registered, nothing changed"
    ]
    assert (repo / ".mcp.json").read_bytes() == before
    # Switching transport updates the entry (and only it).
    lines = install(settings, scope="project", transport="http")
    assert lines[0] == f"{repo / '.mcp.json'}: updated server 'codex' (http)"
    entry = json.loads((repo / ".mcp.json").read_text())["mcpServers"]["codex"]
    assert entry == {
        "type": "http",
        "url": "http://127.0.0.1:3001/mcp",
        "headers": {"Authorization": "Bearer ${CODEX_MCP_TOKEN}"},
    }


def test_user_scope_without_claude_edits_only_its_entry(
    repo: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".claude.json").write_text(json.dumps({"numStartups": 3, "mcpServers": {"a": {"command": "a"}}}))
    (home / ".claude.json").chmod(0o600)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no claude here
    settings = Settings.load({**env, "CODEX_MCP_SERVER_URL": "http://127.0.0.1:4555/mcp"}, cwd=repo)
    lines = install(settings, scope="user", transport="http")
    assert lines[0] == f"{home / '.claude.json'}: added server 'codex' (http)"
    data = json.loads((home / ".claude.json").read_text())
    assert data["numStartups"] == 3 and data["mcpServers"]["a"] == {"command": "a"}
    assert data["mcpServers"]["codex"]["url"] == "http://127.0.0.1:4555/mcp"
    assert stat.S_IMODE((home / ".claude.json").stat().st_mode) == 0o600


def test_user_scope_without_claude_follows_claude_config_dir(
    repo: Path, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = tmp_path / "claude-config"
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no claude here
    lines = install(Settings.load(env, cwd=repo), scope="user", transport="stdio")
    assert lines == [f"{config_dir / '.claude.json'}: added server 'codex' (stdio)"]
    assert "codex" in json.loads((config_dir / ".claude.json").read_text())["mcpServers"]
    assert not (Path(os.environ["HOME"]) / ".claude.json").exists()


def test_user_scope_uses_claude_mcp_add_json_when_claude_is_there(
    repo: Path, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "claude-argv.jsonl"
    monkeypatch.setenv("PATH", f"{fake_claude(tmp_path / 'bin', log)}:{os.environ['PATH']}")
    settings = Settings.load(env, cwd=repo)
    assert install(settings, scope="user", transport="stdio") == [
        "claude mcp add-json --scope user codex: registered (stdio)"
    ]
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls[0][:5] == ["mcp", "add-json", "--scope", "user", "codex"]
    assert json.loads(calls[0][5])["args"][-1] == "serve"
    # Idempotent: registered already -> claude is not called again.
    assert install(settings, scope="user", transport="stdio")[0].endswith(
        "already registered, nothing changed"
    )
    assert len(log.read_text().splitlines()) == 1
    # A changed entry is replaced through claude: remove, then add-json.
    install(settings, scope="user", transport="http")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert [c[:2] for c in calls[1:]] == [["mcp", "remove"], ["mcp", "add-json"]]


def test_install_cli_prints_what_changed(repo: Path, cli_env: dict[str, str]) -> None:
    from support import run_cli

    first = run_cli("install", cwd=repo, env=cli_env)
    assert first.returncode == 0, first.stderr
    assert "added server 'codex'" in first.stdout
    again = run_cli("install", cwd=repo, env=cli_env)
    assert "nothing changed" in again.stdout
    bad = run_cli("install", "--scope", "galaxy", cwd=repo, env=cli_env)
    assert bad.returncode == 2
