"""How an agent is launched: its argv (never through a shell), its MCP config, its environment.

The default profile is Claude Code. ``CODEX_MCP_AGENT_COMMAND`` selects any other agent CLI: a
template split like a shell would split it, with placeholders ``{instance_id}`` ``{mcp_config}``
``{prompt_file}`` ``{worktree}``.

tmux refuses command lines longer than about 16 KB, so tmux never sees the agent's argv: it runs our
small launcher (``python -m codex_mcp.launch SPEC``), which reads the argv from a 0600 JSON file,
waits until the instance's row is committed, and execs the agent (keeping the pane's process id).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from codex_mcp import SERVER_NAME
from codex_mcp.errors import ConfigError, InputError, StateError
from codex_mcp.launch import LaunchSpec
from codex_mcp.settings import DEFAULT_GITHUB_API_URL, Settings

log = logging.getLogger(__name__)

# Environment passed on to agents (and so to their MCP servers). The tmux server may be an
# older process with another environment, so what matters is set explicitly by the launcher.
PASS_THROUGH_PREFIXES = ("CODEX_MCP_", "ANTHROPIC_", "CLAUDE_CODE_")
# CLAUDE_CONFIG_DIR: where a user keeps Claude Code's config (onboarding, trust); without it an agent
# would start at the onboarding screen and leave a stray ~/.claude.json.
PASS_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TERM",
    "IS_SANDBOX",
    "DISABLE_AUTOUPDATER",
    "CLAUDE_CONFIG_DIR",
)
# Claude Code's option for our tools: allows every tool of the `codex` server without a dialog.
CLAUDE_ALLOWED_TOOLS = f"mcp__{SERVER_NAME}"
# Claude Code hook events that report the agent's activity (`codex-mcp hook EVENT`, see hook.py).
HOOK_EVENTS = (
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PermissionRequest",
    "Notification",
    "Stop",
    "SessionEnd",
)
# Events whose matcher is a tool name: "*" is every tool.
_TOOL_EVENTS = ("PreToolUse", "PostToolUse", "PermissionRequest")
HOOK_TIMEOUT_SECONDS = 10
# Linux caps one argument at 128 KiB (MAX_ARG_STRLEN).
MAX_PROMPT_BYTES = 128 * 1024 - 1


def server_command() -> list[str]:
    """``codex-mcp`` of this very installation, by absolute path."""
    script = Path(sys.executable).parent / "codex-mcp"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("codex-mcp", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "codex_mcp"]


def mcp_config(
    instance_id: str, db_path: Path, *, server_url: str | None = None, token: str | None = None
) -> dict[str, object]:
    """The MCP config handed to an agent: our stdio server serving this instance, or, when a shared
    HTTP server is configured, its URL with the agent's own bearer token."""
    if server_url:
        if not token:
            raise ValueError("an HTTP MCP config needs the agent's token")
        return {
            "mcpServers": {
                SERVER_NAME: {
                    "type": "http",
                    "url": server_url,
                    "headers": {"Authorization": f"Bearer {token}"},
                }
            }
        }
    command = server_command()
    return {
        "mcpServers": {
            SERVER_NAME: {
                "type": "stdio",
                "command": command[0],
                "args": [*command[1:], "serve", "--instance", instance_id],
                "env": {"CODEX_MCP_INSTANCE": instance_id, "CODEX_MCP_DB": str(db_path)},
            }
        }
    }


@dataclass(frozen=True)
class AgentFiles:
    """Where an instance's launch files live (``<worktree>/.codex``, excluded from git status)."""

    worktree: Path

    @property
    def folder(self) -> Path:
        return self.worktree / ".codex"

    @property
    def mcp_config(self) -> Path:
        return self.folder / "mcp.json"

    @property
    def prompt(self) -> Path:
        return self.folder / "prompt.md"

    @property
    def settings(self) -> Path:
        """Claude Code settings holding our hooks (``claude --settings``)."""
        return self.folder / "settings.json"

    @property
    def launch_spec(self) -> Path:
        return self.folder / "launch.json"

    @property
    def feedback(self) -> Path:
        return self.folder / "feedback"


@dataclass(frozen=True)
class AgentProfile:
    """An agent CLI: Claude Code (``template is None``) or a ``CODEX_MCP_AGENT_COMMAND`` template."""

    template: tuple[str, ...] | None = None

    @property
    def name(self) -> str:
        return "claude" if self.template is None else self.template[0]

    def executable(self) -> str:
        return "claude" if self.template is None else self.template[0]

    def check_available(self, path: str | None = None) -> str:
        exe = self.executable()
        found = shutil.which(exe, path=path)
        if not found:
            hint = (
                "install Claude Code (npm install -g @anthropic-ai/claude-code)"
                if self.template is None
                else "fix CODEX_MCP_AGENT_COMMAND"
            )
            raise StateError(f"agent command {exe!r} was not found on PATH; {hint}, then retry")
        return found

    def argv(
        self, *, instance_id: str, files: AgentFiles, prompt: str, session_id: str, resume: bool
    ) -> list[str]:
        if self.template is None:
            argv = [
                "claude",
                "--settings",
                str(files.settings),
                "--mcp-config",
                str(files.mcp_config),
                "--allowedTools",
                CLAUDE_ALLOWED_TOOLS,
            ]
            if resume:
                return [*argv, "--resume", session_id]
            # `--mcp-config` and `--allowedTools` take several values: without `--` the prompt would be
            # read as one more of them. After `--`, a prompt starting with `-` is still the prompt.
            return [*argv, "--session-id", session_id, "--", prompt]
        values = {
            "instance_id": instance_id,
            "mcp_config": str(files.mcp_config),
            "prompt_file": str(files.prompt),
            "worktree": str(files.worktree),
        }
        # One pass per word: a substituted value (a path holding "{worktree}") is never expanded again.
        pattern = re.compile("|".join(re.escape("{" + key + "}") for key in values))
        return [pattern.sub(lambda m: values[m.group(0)[1:-1]], word) for word in self.template]


def claude_settings() -> dict[str, object]:
    """Settings handed to Claude Code with ``--settings``: our activity hooks, nothing else.

    They add to the user's own settings and hooks (never edited). Each command is this installation's
    ``codex-mcp hook EVENT`` by absolute path, quoted for the shell Claude Code runs hook commands with.
    ``async``: a hook never delays the agent's turn. SessionEnd runs synchronously, briefly: there is no
    turn left to delay, and an asynchronous hook could be cut off by the exit it reports.
    """
    command = server_command()
    hooks: dict[str, list[dict[str, object]]] = {}
    for event in HOOK_EVENTS:
        hook: dict[str, object] = {
            "type": "command",
            "command": shlex.join([*command, "hook", event]),
            "timeout": HOOK_TIMEOUT_SECONDS,
        }
        if event != "SessionEnd":
            hook["async"] = True
        entry: dict[str, object] = {"hooks": [hook]}
        if event in _TOOL_EVENTS:
            entry = {"matcher": "*", **entry}
        hooks[event] = [entry]
    return {"hooks": hooks}


def profile_from(template: tuple[str, ...] | None) -> AgentProfile:
    return AgentProfile(template=template)


def new_session_id() -> str:
    return str(uuid.uuid4())


def agent_environment(instance_id: str, db_path: Path, settings: Settings) -> dict[str, str]:
    """The agent's environment: ours (filtered), plus what makes its own spawns behave like ours."""
    env = {k: v for k, v in os.environ.items() if k.startswith(PASS_THROUGH_PREFIXES) or k in PASS_THROUGH}
    # Settings may come from flags or an injected mapping rather than os.environ: hand them on, so the
    # agent's server spawns on the same tmux socket, with the same agent command, in the same places.
    env["CODEX_MCP_INSTANCE"] = instance_id
    env["CODEX_MCP_DB"] = str(db_path)
    for name, value in (
        ("CODEX_MCP_TMUX_SOCKET", settings.tmux_socket),
        ("CODEX_MCP_AGENT_COMMAND", shlex.join(settings.agent_command) if settings.agent_command else None),
        ("CODEX_MCP_WORKTREES", str(settings.worktrees) if settings.worktrees else None),
        ("CODEX_MCP_SECRET_KEY_FILE", str(settings.secret_key_file) if settings.secret_key_file else None),
        ("CODEX_MCP_SERVER_URL", settings.server_url),
        ("CODEX_MCP_GITHUB_REPO", settings.github_repo),
    ):
        if value:
            env[name] = value
        else:
            env.pop(name, None)
    if settings.github_api_url != DEFAULT_GITHUB_API_URL:
        env["CODEX_MCP_GITHUB_API_URL"] = settings.github_api_url
    return env


def make_private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents readable by the user only (0700); existing ones stay.

    ``.codex/`` holds prompts, launch specs and review feedback: other local users must not read them.
    """
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made by a concurrent spawn a moment ago
            os.mkdir(folder, 0o700)


def write_private(path: Path, text: str) -> None:
    """Write a file only the user can read, atomically, in folders only the user can read."""
    make_private_dirs(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_launch_files(
    *,
    profile: AgentProfile,
    instance_id: str,
    files: AgentFiles,
    prompt: str,
    session_id: str,
    db_path: Path,
    settings: Settings,
    main_root: Path,
    token: str | None = None,
    resume: bool = False,
) -> list[str]:
    """Write prompt, MCP config and launch spec; the argv tmux runs (the launcher).

    Blocking (file writes, and up to 10 s waiting for Claude Code's config lock): async callers run
    it in a worker thread, never on the event loop.
    """
    if len(prompt.encode("utf-8")) > MAX_PROMPT_BYTES:
        raise ConfigError(
            f"the prompt is {len(prompt.encode('utf-8'))} bytes; agents accept at most {MAX_PROMPT_BYTES} "
            "(one command-line argument); shorten it or put the details in a file the agent can read"
        )
    if "\x00" in prompt:
        # No argument can carry a NUL: the agent would never start while the row says running.
        raise InputError("the prompt contains a NUL byte, which cannot be passed to an agent; remove it")
    env = agent_environment(instance_id, db_path, settings)
    if profile.template is None:
        for change in prepare_claude_config(worktree=files.worktree, main_root=main_root, env=env):
            log.info("%s: Claude Code config: %s", instance_id, change)
    write_private(files.prompt, prompt)
    if profile.template is None:
        write_private(files.settings, json.dumps(claude_settings(), indent=2) + "\n")
    config = mcp_config(instance_id, db_path, server_url=settings.server_url, token=token)
    write_private(files.mcp_config, json.dumps(config, indent=2) + "\n")
    argv = profile.argv(
        instance_id=instance_id, files=files, prompt=prompt, session_id=session_id, resume=resume
    )
    spec = LaunchSpec(instance_id=instance_id, db=str(db_path), argv=argv, env=env, cwd=str(files.worktree))
    write_private(files.launch_spec, spec.to_json())
    return [sys.executable, "-m", "codex_mcp.launch", str(files.launch_spec)]


# ------------------------------------------------------------------------------- Claude Code dialogs
# A freshly spawned Claude Code must not stop at a dialog nobody will answer. `--allowedTools
# mcp__codex` (in the argv) covers the tool-permission prompt for our own tools. Folder trust and
# the "use this API key?" question live in Claude's own config file; we make exactly these two
# documented changes there, when needed, and nothing else.


def claude_config_path(env: dict[str, str]) -> Path:
    config_dir = env.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        return Path(config_dir) / ".claude.json"
    return Path(env.get("HOME") or Path.home()) / ".claude.json"


def prepare_claude_config(*, worktree: Path, main_root: Path, env: dict[str, str]) -> list[str]:
    """Trust ``worktree`` unless its repository is trusted already, and approve the API key Claude
    would otherwise ask about; the list of changes made (empty when none was needed)."""
    path = claude_config_path(env)
    with claude_config_lock(path):
        return _prepare_locked(path, worktree=worktree, main_root=main_root, env=env)


@contextmanager
def claude_config_lock(path: Path, timeout: float = 10.0) -> Iterator[None]:
    """Claude Code's own lock on its config file: a directory ``<config>.lock`` (proper-lockfile).

    A running Claude Code rewrites the whole file from the copy it read; without taking its lock,
    an entry we add can be overwritten a moment later (seen with a reviewer's trust entry).
    """
    lock = path.with_name(path.name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.mkdir(lock)
            break
        except FileExistsError:
            try:
                if time.time() - lock.stat().st_mtime > timeout:  # left behind by a crashed writer
                    os.rmdir(lock)
                    continue
            except OSError:
                continue
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"Claude Code's config {path} stayed locked ({lock} exists) for {timeout:.0f} s; if no "
                    f"Claude Code is writing it, remove {lock} and retry"
                ) from None
            time.sleep(0.02)
    try:
        yield
    finally:
        with suppress(OSError):
            os.rmdir(lock)


def _prepare_locked(path: Path, *, worktree: Path, main_root: Path, env: dict[str, str]) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read Claude Code's config {path} ({exc}); fix or move it, then retry"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"Claude Code's config {path} is not a JSON object; fix or move it, then retry")
    changes: list[str] = []
    projects = data.setdefault("projects", {})
    if isinstance(projects, dict):
        repo_entry = projects.get(str(main_root))
        trusted = isinstance(repo_entry, dict) and repo_entry.get("hasTrustDialogAccepted") is True
        if not trusted:
            entry = projects.setdefault(str(worktree), {})
            if isinstance(entry, dict) and entry.get("hasTrustDialogAccepted") is not True:
                entry["hasTrustDialogAccepted"] = True
                changes.append(f"trusted folder {worktree}")
    key = env.get("ANTHROPIC_API_KEY")
    if key and not env.get("ANTHROPIC_AUTH_TOKEN"):
        responses = data.setdefault("customApiKeyResponses", {})
        if isinstance(responses, dict):
            tail = key[-20:]
            approved = responses.setdefault("approved", [])
            rejected = responses.get("rejected") or []
            # A key the user rejected stays rejected: that was their answer.
            if isinstance(approved, list) and tail not in approved and tail not in rejected:
                approved.append(tail)
                changes.append("approved the ANTHROPIC_API_KEY in use")
    if changes:
        mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.codex-mcp.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        os.replace(tmp, path)
    return changes
