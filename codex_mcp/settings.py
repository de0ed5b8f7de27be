"""Settings: the contract's environment variables plus command-line flags, as one frozen object.

Read from an injectable mapping (``os.environ`` by default) so tests never touch the process
environment. A bad value raises a ConfigError naming the variable (or flag) and the value.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from codex_mcp import git
from codex_mcp.errors import ConfigError, InputError
from codex_mcp.ids import validate_instance_id

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Transport = Literal["stdio", "http", "sse"]

DEFAULT_PORT = 3001
DEFAULT_GITHUB_API_URL = "https://api.github.com"
AGENT_PLACEHOLDERS = frozenset({"instance_id", "mcp_config", "prompt_file", "worktree"})
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
_SOCKET = re.compile(r"^[A-Za-z0-9._-]{1,100}\Z")


class Secret(str):
    """A string whose repr never shows its value (tokens end up in reprs of settings in logs)."""

    def __repr__(self) -> str:
        return "Secret('***')"


@dataclass(frozen=True)
class GitHubLimits:
    """How long a GitHub request may take, and the longest rate-limit wait sat out instead of reported.

    No environment variable sets them: the program runs with these defaults; tests pass shorter ones
    (``dataclasses.replace(settings, github_limits=...)``) to provoke timeouts and limits quickly.
    """

    request_timeout: float = 20.0
    max_rate_limit_wait: float = 30.0


@dataclass(frozen=True)
class Settings:
    cwd: Path
    repo: git.RepoLocation | None
    db_path: Path | None
    instance: str | None = None
    tmux_socket: str | None = None
    agent_command: tuple[str, ...] | None = None
    worktrees: Path | None = None
    github_api_url: str = DEFAULT_GITHUB_API_URL
    github_repo: str | None = None
    github_token: Secret | None = field(default=None, repr=False)
    secret_key_file: Path | None = None
    server_url: str | None = None
    port: int = DEFAULT_PORT
    log_level: LogLevel = "INFO"
    transport: Transport = "stdio"
    github_limits: GitHubLimits = GitHubLimits()

    def require_db_path(self) -> Path:
        if self.db_path is None:
            raise ConfigError(
                f"no database: {self.cwd} is not inside a git repository; run codex-mcp inside your "
                "repository or set CODEX_MCP_DB to the SQLite file to use"
            )
        return self.db_path

    @classmethod
    def load(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        locate: Callable[[Path], git.RepoLocation | None] = git.locate,
        **flags: Any,
    ) -> Settings:
        """Build settings: a flag given (not None) wins over its environment variable.

        Flags: db, instance, tmux_socket, worktrees, port, log_level, transport. ``locate`` finds the
        repository the working folder lies in (a git process; a caller that knows it already says so).
        """
        env = os.environ if environ is None else environ
        here = (cwd or Path.cwd()).resolve()
        unknown = set(flags) - {
            "db",
            "instance",
            "tmux_socket",
            "worktrees",
            "port",
            "log_level",
            "transport",
        }
        if unknown:
            raise TypeError(f"unknown settings flags: {sorted(unknown)}")

        def pick(flag: str, var: str) -> tuple[str, str] | None:
            """(source name, raw value) for a setting, the flag first; empty variables count as unset."""
            value = flags.get(flag)
            if value is not None:
                return f"--{flag.replace('_', '-')}", str(value)
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                return var, raw
            return None

        repo = locate(here)

        db_path: Path | None
        if (got := pick("db", "CODEX_MCP_DB")) is not None:
            db_path = _path(*got, here)
        elif repo is not None:
            db_path = repo.common_dir / "codex-mcp" / "codex.db"
        else:
            db_path = None

        instance = None
        if (got := pick("instance", "CODEX_MCP_INSTANCE")) is not None:
            try:
                instance = validate_instance_id(got[1].strip())
            except InputError as exc:
                raise ConfigError(f"{got[0]}={got[1]!r}: {exc}") from None

        tmux_socket = None
        if (got := pick("tmux_socket", "CODEX_MCP_TMUX_SOCKET")) is not None:
            if not _SOCKET.match(got[1]):
                raise ConfigError(
                    f"{got[0]}={got[1]!r} is not a tmux socket name; use letters, digits, '.', '_' or '-' "
                    "(it is passed to tmux -L)"
                )
            tmux_socket = got[1]

        agent_command = None
        if (got := pick("agent_command", "CODEX_MCP_AGENT_COMMAND")) is not None:
            agent_command = parse_agent_command(*got)

        worktrees = None
        if (got := pick("worktrees", "CODEX_MCP_WORKTREES")) is not None:
            worktrees = _path(*got, repo.toplevel if repo else here)

        github_api_url = DEFAULT_GITHUB_API_URL
        if (got := pick("github_api_url", "CODEX_MCP_GITHUB_API_URL")) is not None:
            github_api_url = _url(*got).rstrip("/")

        github_repo = None
        if (got := pick("github_repo", "CODEX_MCP_GITHUB_REPO")) is not None:
            if not _REPO.match(got[1]):
                raise ConfigError(f"{got[0]}={got[1]!r} is not a GitHub repository; use the form owner/name")
            github_repo = got[1]

        github_token = None
        if (got := pick("github_token", "GITHUB_TOKEN")) is not None:
            github_token = Secret(got[1].strip())

        secret_key_file = None
        if (got := pick("secret_key_file", "CODEX_MCP_SECRET_KEY_FILE")) is not None:
            secret_key_file = _path(*got, here)

        server_url = None
        if (got := pick("server_url", "CODEX_MCP_SERVER_URL")) is not None:
            server_url = _url(*got)

        port = DEFAULT_PORT
        if (got := pick("port", "CODEX_MCP_PORT")) is not None:
            try:
                port = int(got[1])
            except ValueError:
                port = -1
            if not 0 <= port <= 65535:
                raise ConfigError(f"{got[0]}={got[1]!r} is not a TCP port; use a number from 0 to 65535")

        log_level: LogLevel = "INFO"
        if (got := pick("log_level", "CODEX_MCP_LOG_LEVEL")) is not None:
            level = got[1].strip().upper()
            if level == "WARN":
                level = "WARNING"
            if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
                raise ConfigError(
                    f"{got[0]}={got[1]!r} is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL"
                )
            log_level = level  # type: ignore[assignment]

        transport: Transport = "stdio"
        if (got := pick("transport", "CODEX_MCP_TRANSPORT")) is not None:
            if got[1] not in ("stdio", "http", "sse"):
                raise ConfigError(f"{got[0]}={got[1]!r} is not a transport; use stdio, http or sse")
            transport = got[1]  # type: ignore[assignment]

        return cls(
            cwd=here,
            repo=repo,
            db_path=db_path,
            instance=instance,
            tmux_socket=tmux_socket,
            agent_command=agent_command,
            worktrees=worktrees,
            github_api_url=github_api_url,
            github_repo=github_repo,
            github_token=github_token,
            secret_key_file=secret_key_file,
            server_url=server_url,
            port=port,
            log_level=log_level,
            transport=transport,
        )


def parse_agent_command(source: str, raw: str) -> tuple[str, ...]:
    """Split a command template like a POSIX shell would (no shell ever runs it) and check placeholders."""
    try:
        argv = tuple(shlex.split(raw))
    except ValueError as exc:
        raise ConfigError(
            f"{source}={raw!r} cannot be split into arguments ({exc}); check the quoting"
        ) from None
    if not argv:
        raise ConfigError(f"{source} is empty; give the agent command, e.g. 'my-agent --mcp {{mcp_config}}'")
    for word in argv:
        for name in _PLACEHOLDER.findall(word):
            if name not in AGENT_PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in sorted(AGENT_PLACEHOLDERS))
                raise ConfigError(f"{source}: unknown placeholder {{{name}}} in {raw!r}; known: {known}")
    return argv


def _path(source: str, raw: str, base: Path) -> Path:
    if "\x00" in raw:
        raise ConfigError(f"{source}={raw!r} is not a usable path (it contains a NUL byte)")
    path = Path(raw).expanduser()
    return path if path.is_absolute() else (base / path)


def _url(source: str, raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{source}={raw!r} is not an http(s) URL; use e.g. https://host[:port]/path")
    return raw.strip()
