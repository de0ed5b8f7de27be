"""``codex-mcp install``: register the server with Claude Code, the way Claude Code expects, once.

- ``--scope project`` writes the ``codex`` entry into the repository's ``.mcp.json`` (shared with
  the team; Claude Code asks each person to approve it once).
- ``--scope user`` registers it for you everywhere: through ``claude mcp add-json --scope user`` when
  the ``claude`` command is present, else directly in ``~/.claude.json`` (only that entry changes).

stdio (default): Claude Code starts ``codex-mcp serve`` (this installation, absolute path) per
session; the server works out its instance from the folder. http: the entry points at the shared
server (``CODEX_MCP_SERVER_URL``, else http://127.0.0.1:<port>/mcp) with the header
``Authorization: Bearer ${CODEX_MCP_TOKEN}``, expanded by Claude Code from your environment, so no
token is ever written into a file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Literal

from codex_mcp import SERVER_NAME
from codex_mcp.agents import claude_config_lock, claude_config_path, server_command
from codex_mcp.errors import ConfigError, UpstreamError
from codex_mcp.settings import Settings

Scope = Literal["project", "user"]
Transport = Literal["stdio", "http"]


def server_entry(settings: Settings, transport: Transport) -> dict[str, Any]:
    if transport == "http":
        url = settings.server_url or f"http://127.0.0.1:{settings.port}/mcp"
        return {"type": "http", "url": url, "headers": {"Authorization": "Bearer ${CODEX_MCP_TOKEN}"}}
    command = server_command()
    return {"type": "stdio", "command": command[0], "args": [*command[1:], "serve"], "env": {}}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path} ({exc}); fix or move it, then run install again") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; fix or move it, then run install again")
    return data


def _write_json(path: Path, data: dict[str, Any], default_mode: int) -> None:
    mode = path.stat().st_mode & 0o777 if path.exists() else default_mode
    tmp = path.with_name(f".{path.name}.codex-mcp.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, path)


def _set_entry(path: Path, entry: dict[str, Any], default_mode: int) -> str:
    data = _read_json(path)
    servers = data.setdefault("mcpServers", {})
    if not isinstance(servers, dict):
        raise ConfigError(f"{path}: mcpServers is not an object; fix it, then run install again")
    previous = servers.get(SERVER_NAME)
    if previous == entry:
        return f"{path}: server '{SERVER_NAME}' already registered, nothing changed"
    servers[SERVER_NAME] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json(path, data, default_mode)
    verb = "updated" if previous is not None else "added"
    return f"{path}: {verb} server '{SERVER_NAME}' ({entry['type']})"


def install(settings: Settings, *, scope: Scope, transport: Transport, use_claude: bool = True) -> list[str]:
    """Register the server; the lines describing what changed (or that nothing did)."""
    entry = server_entry(settings, transport)
    lines: list[str] = []
    if scope == "project":
        if settings.repo is None:
            raise ConfigError(
                f"{settings.cwd} is not inside a git repository; run install there, or use --scope user"
            )
        lines.append(_set_entry(settings.repo.toplevel / ".mcp.json", entry, 0o644))
    else:
        config = claude_config_path(dict(os.environ))
        current = _read_json(config).get("mcpServers", {})
        claude = shutil.which("claude") if use_claude else None
        if isinstance(current, dict) and current.get(SERVER_NAME) == entry:
            lines.append(f"{config}: server '{SERVER_NAME}' already registered, nothing changed")
        elif claude is not None:
            if isinstance(current, dict) and SERVER_NAME in current:
                _claude(claude, "mcp", "remove", "--scope", "user", SERVER_NAME)
            _claude(claude, "mcp", "add-json", "--scope", "user", SERVER_NAME, json.dumps(entry))
            lines.append(f"claude mcp add-json --scope user {SERVER_NAME}: registered ({entry['type']})")
        else:
            with claude_config_lock(config):  # Claude Code may be rewriting it right now
                lines.append(_set_entry(config, entry, 0o600))
    if transport == "http":
        lines.append(
            "the entry sends `Authorization: Bearer ${CODEX_MCP_TOKEN}`: export CODEX_MCP_TOKEN before starting "
            "Claude Code (e.g. the read-only token `codex-mcp serve --transport http --operator-token` prints); "
            "spawned agents get their own tokens, and stdio needs none"
        )
    return lines


def _claude(claude: str, *args: str) -> None:
    try:
        done = subprocess.run([claude, *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpstreamError(
            f"`claude {' '.join(args[:3])}` did not run ({exc}); retry, or use it by hand"
        ) from exc
    if done.returncode != 0:
        reason = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise UpstreamError(
            f"`claude {' '.join(args[:3])}` failed: {reason[-1] if reason else done.returncode}"
        )
