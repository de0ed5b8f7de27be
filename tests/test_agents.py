"""Agent launch profiles, through a real spawn: tmux -> launcher -> exec of a fake agent.

The fake agent is a real executable (a tiny Python script named ``claude``, or any other name for
``CODEX_MCP_AGENT_COMMAND``) put first on PATH. It records the argv it received (as bytes), its
process id, working directory, terminal and part of its environment, then sleeps like an agent
waiting for input. Everything asserted here is what that process really saw.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import git, tmux_sessions, wait_for

from codex_mcp.agents import CLAUDE_ALLOWED_TOOLS, HOOK_EVENTS, MAX_PROMPT_BYTES, AgentFiles
from codex_mcp.app import open_app
from codex_mcp.errors import ConfigError, InputError
from codex_mcp.lifecycle import spawn
from codex_mcp.settings import Settings
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance

RECORDED_ENV = (
    "CODEX_MCP_INSTANCE",
    "CODEX_MCP_DB",
    "CODEX_MCP_TMUX_SOCKET",
    "CODEX_MCP_AGENT_COMMAND",
    "PATH",
    "HOME",
    "CLAUDE_CONFIG_DIR",
    "ANTHROPIC_API_KEY",
)

FAKE_AGENT = """\
#!{python}
# A fake agent: records what it was started with, then waits like an interactive agent.
import json, os, sys, time
record = {{
    "exe": sys.argv[0],
    "argv": sys.argv[1:],
    "argv_hex": [os.fsencode(a).hex() for a in sys.argv[1:]],
    "pid": os.getpid(),
    "cwd": os.getcwd(),
    "stdin_tty": os.isatty(0),
    "env": {{k: os.environ.get(k) for k in {names!r}}},
}}
name = os.environ.get("CODEX_MCP_INSTANCE", "unknown")
dest = os.path.join({records!r}, "%s.%d.json" % (name, os.getpid()))
with open(dest + ".tmp", "w", encoding="utf-8") as fh:
    json.dump(record, fh)
os.replace(dest + ".tmp", dest)
time.sleep(3600)
"""


@dataclass(frozen=True)
class FakeAgents:
    """Fake agent executables in ``bin`` (first on PATH); each start leaves a record in ``records``."""

    bin: Path
    records: Path

    def install(self, name: str) -> Path:
        path = self.bin / name
        path.write_text(
            FAKE_AGENT.format(python=sys.executable, names=RECORDED_ENV, records=str(self.records)),
            encoding="utf-8",
        )
        path.chmod(0o755)
        return path

    def records_of(self, instance_id: str) -> list[dict[str, Any]]:
        found = []
        for path in self.records.glob(f"{instance_id}.*.json"):
            found.append(json.loads(path.read_text(encoding="utf-8")))
        return found

    async def wait_record(
        self, instance_id: str, *, pid: int | None = None, timeout: float = 20
    ) -> dict[str, Any]:
        def ready() -> dict[str, Any] | None:
            for record in self.records_of(instance_id):
                if pid is None or record["pid"] == pid:
                    return record
            return None

        record: dict[str, Any] = await wait_for(ready, timeout=timeout)
        return record


def argv_bytes(record: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(h) for h in record["argv_hex"]]


def make_fake_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAgents:
    """A bin folder first on PATH (the launcher hands PATH on to the agent) with a fake ``claude``."""
    agents = FakeAgents(tmp_path / "bin", tmp_path / "records")
    agents.bin.mkdir(exist_ok=True)
    agents.records.mkdir(exist_ok=True)
    agents.install("claude")
    monkeypatch.setenv("PATH", f"{agents.bin}{os.pathsep}{os.environ.get('PATH', '')}")
    # The Claude Code profile edits $HOME/.claude.json (folder trust): never the real one.
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    return agents


@pytest.fixture
def fake_agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeAgents:
    return make_fake_agents(tmp_path, monkeypatch)


@pytest.fixture
def claude_settings(
    repo: Path, env: dict[str, str], tmux_socket: str, fake_agents: FakeAgents
) -> Callable[..., Settings]:
    """Settings with the default (Claude Code) profile on the private tmux server."""

    def make(**extra: str) -> Settings:
        return Settings.load({**env, "CODEX_MCP_TMUX_SOCKET": tmux_socket, **extra}, cwd=repo)

    return make


async def start(settings: Settings, prompt: str | None, issue: int | None = None) -> Instance:
    async with open_app(settings) as app:
        prepared = await app.lifecycle.prepare_work(
            issue_number=issue, base=None, prompt=prompt, type="work" if issue else "adhoc"
        )
        return await app.lifecycle.commit(prepared)


def nothing_created(repo: Path, tmux_socket: str) -> None:
    assert git(repo, "branch", "--list", "codex/*") == ""
    worktrees = repo / "worktrees"
    assert not worktrees.exists() or list(worktrees.iterdir()) == []
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert tmux_sessions(tmux_socket) == {"_keep"}


# ---------------------------------------------------------------------------------- Claude Code profile


async def test_claude_argv_config_environment_and_pid(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, repo: Path, tmux_socket: str
) -> None:
    settings = claude_settings()
    instance = await start(settings, "--help me, then fix everything")
    assert instance.id == "adhoc-a1"
    worktree = Path(instance.worktree_path)
    files = AgentFiles(worktree)
    record = await fake_agents.wait_record(instance.id)

    # The exact argv: the prompt after `--`, so neither multi-value option swallows it.
    session_id = instance.agent_session_id
    assert session_id is not None and str(uuid.UUID(session_id)) == session_id
    expected = [
        "--settings",
        str(files.settings),
        "--mcp-config",
        str(files.mcp_config),
        "--allowedTools",
        CLAUDE_ALLOWED_TOOLS,
        "--session-id",
        session_id,
        "--",
        instance.prompt,
    ]
    assert CLAUDE_ALLOWED_TOOLS == "mcp__codex"
    assert record["argv"] == expected
    assert Path(record["exe"]) == fake_agents.bin / "claude"
    spec = json.loads(files.launch_spec.read_text(encoding="utf-8"))
    assert spec["argv"] == ["claude", *expected]
    # A prompt starting with '-' arrives as the last element, unchanged.
    assert instance.prompt is not None and instance.prompt.startswith("--help me, then fix everything\n\n")
    assert record["argv"][-1] == instance.prompt
    assert Path(record["argv"][1]).is_absolute()

    # The pane's process is the agent itself (the launcher execs), in the worktree, on a terminal.
    assert instance.claude_pid == record["pid"]
    assert Path(record["cwd"]).resolve() == worktree.resolve()
    assert record["stdin_tty"] is True
    assert instance.tmux_session == instance.id and instance.id in tmux_sessions(tmux_socket)
    assert instance.tmux_socket == tmux_socket

    # The agent's environment names its instance and database (and the socket its spawns use).
    db_path = settings.require_db_path()
    assert record["env"]["CODEX_MCP_INSTANCE"] == instance.id
    assert record["env"]["CODEX_MCP_DB"] == str(db_path)
    assert record["env"]["CODEX_MCP_TMUX_SOCKET"] == tmux_socket
    assert record["env"]["PATH"].split(os.pathsep)[0] == str(fake_agents.bin)

    # The MCP config: server `codex`, this installation by absolute path, serving this instance.
    config = json.loads(files.mcp_config.read_text(encoding="utf-8"))
    assert set(config["mcpServers"]) == {"codex"}
    server = config["mcpServers"]["codex"]
    command = Path(server["command"])
    assert command.is_absolute() and command.is_file() and os.access(command, os.X_OK)
    assert command.parent == Path(sys.executable).parent  # this very installation (its venv)
    assert server["args"][-3:] == ["serve", "--instance", instance.id]
    assert server["env"] == {"CODEX_MCP_INSTANCE": instance.id, "CODEX_MCP_DB": str(db_path)}
    assert files.prompt.read_bytes().decode("utf-8") == instance.prompt

    # Only the user can read the launch files (the prompt and the environment are in them).
    for path in (files.mcp_config, files.prompt, files.launch_spec, files.settings):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    # The settings given with --settings hold our activity hooks: `codex-mcp hook EVENT` of this very
    # installation, quoted for the shell Claude Code runs them with, asynchronous but for SessionEnd.
    hooks = json.loads(files.settings.read_text(encoding="utf-8"))["hooks"]
    assert set(hooks) == set(HOOK_EVENTS)
    for event, entries in hooks.items():
        (entry,) = entries
        (hook,) = entry["hooks"]
        argv = shlex.split(hook["command"])
        assert Path(argv[0]).is_absolute() and Path(argv[0]).parent == Path(sys.executable).parent
        assert argv[-2:] == ["hook", event]
        assert hook["type"] == "command" and 0 < hook["timeout"] <= 10
        assert hook.get("async") is (None if event == "SessionEnd" else True)
        assert entry.get("matcher") == (
            "*" if event.endswith("ToolUse") or event == "PermissionRequest" else None
        )

    # The session id is stored for resume.
    async with open_app(settings) as app:
        row = await instances_store.require(app.db, instance.id)
    assert row.agent_session_id == session_id and row.claude_pid == record["pid"]


async def test_the_api_key_is_not_left_on_disk_once_the_agent_started(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-ant-api03-" + "k" * 40
    monkeypatch.setenv("ANTHROPIC_API_KEY", key)
    instance = await start(claude_settings(), "work")
    record = await fake_agents.wait_record(instance.id)
    assert record["env"]["ANTHROPIC_API_KEY"] == key  # the agent has it
    files = AgentFiles(Path(instance.worktree_path))
    spec = json.loads(files.launch_spec.read_text(encoding="utf-8"))
    assert spec["env"] == {} and spec["argv"][0] == "claude"
    assert stat.S_IMODE(files.launch_spec.stat().st_mode) == 0o600
    for path in files.folder.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


async def test_claude_resume_continues_the_recorded_conversation(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, tmux_socket: str
) -> None:
    settings = claude_settings()
    instance = await start(settings, "do it", issue=7)
    first = await fake_agents.wait_record(instance.id)
    subprocess.run(["tmux", "-L", tmux_socket, "kill-session", "-t", f"={instance.id}"], check=True)
    async with open_app(settings) as app:
        resumed = await app.lifecycle.resume(await instances_store.require(app.db, instance.id))
    assert resumed.status == "running" and resumed.claude_pid != first["pid"]
    second = await fake_agents.wait_record(instance.id, pid=resumed.claude_pid)
    assert second["argv"] == [
        "--settings",
        str(AgentFiles(Path(instance.worktree_path)).settings),
        "--mcp-config",
        str(AgentFiles(Path(instance.worktree_path)).mcp_config),
        "--allowedTools",
        "mcp__codex",
        "--resume",
        instance.agent_session_id,
    ]
    assert resumed.agent_session_id == instance.agent_session_id


async def test_claude_config_dir_is_passed_on_and_holds_the_trust(
    claude_settings: Callable[..., Settings],
    fake_agents: FakeAgents,
    repo: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user who keeps Claude Code's config in CLAUDE_CONFIG_DIR: the agent gets the variable (else it
    would start at onboarding), the worktree's trust lands in $CLAUDE_CONFIG_DIR/.claude.json, and no
    ~/.claude.json appears."""
    config_dir = tmp_path / "claude-config"
    config_dir.mkdir()
    (config_dir / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}), encoding="utf-8")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config_dir))
    instance = await start(claude_settings(), "work")
    record = await fake_agents.wait_record(instance.id)
    assert record["env"]["CLAUDE_CONFIG_DIR"] == str(config_dir)
    config = json.loads((config_dir / ".claude.json").read_text(encoding="utf-8"))
    assert config["hasCompletedOnboarding"] is True
    assert config["projects"][instance.worktree_path] == {"hasTrustDialogAccepted": True}
    home = Path(os.environ["HOME"])
    assert not (home / ".claude.json").exists()
    assert not (config_dir / ".claude.json.lock").exists()


def long_prompt(size: int) -> str:
    """A prompt of ``size`` UTF-8 bytes mixing ASCII, multi-byte characters, quotes and control bytes."""
    unit = "line $(x) `y` 'q' \"d\" \\; C-c Enter é ✓ 𝄞 \t\r\x1b[31m\n"
    text = (unit * (size // len(unit.encode()) + 1)).encode("utf-8")
    # Cut at a character boundary, then pad with ASCII to the exact size.
    cut = text[:size].decode("utf-8", "ignore").encode("utf-8")
    return (cut + b"z" * (size - len(cut))).decode("utf-8")


async def test_waiting_for_claude_codes_config_lock_leaves_the_event_loop_free(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, tmp_path: Path
) -> None:
    """A spawn waiting for ``~/.claude.json.lock`` (held by a running Claude Code) waits off the loop:
    every other coroutine of the process (the shared HTTP server's other agents) keeps running."""
    settings = claude_settings()
    lock = tmp_path / "home" / ".claude.json.lock"
    lock.mkdir()  # what Claude Code holds while it rewrites its config
    finished = anyio.Event()
    spawned: list[Instance] = []

    async with open_app(settings) as app:
        worktree = await app.lifecycle.worktrees_root() / "adhoc-a1"
        prompt_file = AgentFiles(worktree).prompt

        async def spawn() -> None:
            try:
                prepared = await app.lifecycle.prepare_work(
                    issue_number=None, base=None, prompt="go", type="adhoc"
                )
                spawned.append(await app.lifecycle.commit(prepared))
            finally:
                finished.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(spawn)
            # The spawn has made its worktree and is now waiting for the lock (the prompt comes after it).
            await wait_for(lambda: worktree.is_dir())
            ticks = 0
            for _ in range(50):
                await anyio.sleep(0.01)  # scheduled again and again while the spawn waits
                assert await app.db.fetchall("SELECT id FROM instances") == []  # and the store answers
                ticks += 1
            assert ticks == 50
            assert not finished.is_set() and lock.is_dir() and not prompt_file.exists()
            lock.rmdir()  # Claude Code is done with its config
            await finished.wait()

    assert [i.id for i in spawned] == ["adhoc-a1"]
    assert prompt_file.exists()
    config = json.loads((tmp_path / "home" / ".claude.json").read_text(encoding="utf-8"))
    assert config["projects"][str(worktree)]["hasTrustDialogAccepted"] is True
    await fake_agents.wait_record("adhoc-a1")


async def test_a_prompt_longer_than_tmux_accepts_arrives_whole(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents
) -> None:
    prompt = long_prompt(60_000)
    assert len(prompt.encode()) == 60_000  # tmux refuses command lines over ~16 KB
    instance = await start(claude_settings(), prompt)
    record = await fake_agents.wait_record(instance.id)
    assert instance.prompt is not None and instance.prompt.startswith(prompt)
    assert argv_bytes(record)[-1] == instance.prompt.encode("utf-8")
    assert argv_bytes(record)[-2] == b"--"


async def test_the_largest_prompt_arrives_and_one_byte_more_is_refused_leaving_nothing(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, repo: Path, tmux_socket: str
) -> None:
    settings = claude_settings()
    sha = git(repo, "rev-parse", "HEAD")

    async def spawn_exact(size: int) -> Instance:
        def make_prompt(instance_id: str, worktree: Path, branch: str) -> str:
            return long_prompt(size)

        async with open_app(settings) as app:
            prepared = await spawn.prepare(
                app.lifecycle.workspace,
                type="adhoc",
                issue_number=None,
                base_branch="main",
                start_sha=sha,
                make_prompt=make_prompt,
                task=None,
            )
            return await app.lifecycle.commit(prepared)

    # One byte over the limit: a clear error, and the branch and worktree made before are undone.
    with pytest.raises(ConfigError, match=rf"{MAX_PROMPT_BYTES + 1} bytes.*at most {MAX_PROMPT_BYTES}"):
        await spawn_exact(MAX_PROMPT_BYTES + 1)
    nothing_created(repo, tmux_socket)
    async with open_app(settings) as app:
        assert await app.db.fetchall("SELECT id FROM instances") == []

    # Exactly at the limit (Linux: one argument of 128 KiB including its NUL): it arrives whole.
    instance = await spawn_exact(MAX_PROMPT_BYTES)
    record = await fake_agents.wait_record(instance.id)
    assert argv_bytes(record)[-1] == long_prompt(MAX_PROMPT_BYTES).encode("utf-8")


async def test_a_user_prompt_over_128_kib_is_refused_before_anything_exists(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, repo: Path, tmux_socket: str
) -> None:
    settings = claude_settings()
    with pytest.raises(ConfigError, match="bytes; agents accept at most"):
        await start(settings, "x" * (128 * 1024 + 10), issue=5)
    nothing_created(repo, tmux_socket)
    async with open_app(settings) as app:
        assert await app.db.fetchall("SELECT id FROM instances") == []
    assert list(fake_agents.records.iterdir()) == []


# ------------------------------------------------------------------------------ CODEX_MCP_AGENT_COMMAND


async def test_agent_command_template_is_split_like_a_shell_and_run_without_one(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, tmp_path: Path
) -> None:
    fake_agents.install("my-agent")
    canary = tmp_path / "CANARY"
    template = (
        "my-agent --id={instance_id} --config {mcp_config} "
        "\"two words {worktree}\" '$(touch {canary})' '`touch {canary}`' ';' 'touch' {canary_q} "
        "--prompt={prompt_file} plain\\ escaped '{instance_id}{instance_id}' '' \"a'b\" \\$HOME '~' '*'"
    ).format(
        instance_id="{instance_id}",
        mcp_config="{mcp_config}",
        worktree="{worktree}",
        prompt_file="{prompt_file}",
        canary=canary,
        canary_q=f"'{canary}'",
    )
    settings = claude_settings(CODEX_MCP_AGENT_COMMAND=template)
    instance = await start(settings, "hello; touch " + str(canary))
    record = await fake_agents.wait_record(instance.id)
    files = AgentFiles(Path(instance.worktree_path))
    assert Path(record["exe"]) == fake_agents.bin / "my-agent"
    assert record["argv"] == [
        f"--id={instance.id}",
        "--config",
        str(files.mcp_config),
        f"two words {instance.worktree_path}",
        f"$(touch {canary})",
        f"`touch {canary}`",
        ";",
        "touch",
        str(canary),
        f"--prompt={files.prompt}",
        "plain escaped",
        f"{instance.id}{instance.id}",
        "",
        "a'b",
        "$HOME",
        "~",
        "*",
    ]
    assert files.prompt.read_bytes().decode("utf-8") == instance.prompt
    assert Path(record["cwd"]).resolve() == Path(instance.worktree_path).resolve()
    assert record["env"]["CODEX_MCP_INSTANCE"] == instance.id
    assert instance.claude_pid == record["pid"]
    assert not canary.exists()


async def test_placeholder_values_are_not_expanded_again(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, tmp_path: Path
) -> None:
    # A worktrees root whose path itself looks like placeholders: each word is substituted once.
    root = tmp_path / "odd {worktree} {instance_id} root"
    fake_agents.install("my-agent")
    settings = claude_settings(
        CODEX_MCP_AGENT_COMMAND="my-agent {mcp_config} {worktree} {prompt_file}",
        CODEX_MCP_WORKTREES=str(root),
    )
    instance = await start(settings, "go")
    record = await fake_agents.wait_record(instance.id)
    worktree = root.resolve() / instance.id
    assert instance.worktree_path == str(worktree)
    files = AgentFiles(worktree)
    assert record["argv"] == [str(files.mcp_config), str(worktree), str(files.prompt)]


async def test_unknown_placeholder_is_an_error_before_anything_is_created(
    repo: Path, env: dict[str, str], tmux_socket: str
) -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \{prompt\}"):
        Settings.load({**env, "CODEX_MCP_AGENT_COMMAND": "agent {prompt}"}, cwd=repo)
    nothing_created(repo, tmux_socket)


async def test_missing_agent_command_is_a_clear_error_leaving_nothing(
    claude_settings: Callable[..., Settings], repo: Path, tmux_socket: str
) -> None:
    settings = claude_settings(CODEX_MCP_AGENT_COMMAND="no-such-agent-xyz {prompt_file}")
    with pytest.raises(Exception, match="'no-such-agent-xyz' was not found on PATH"):
        await start(settings, "go")
    nothing_created(repo, tmux_socket)


async def test_a_prompt_with_a_nul_byte_is_refused_leaving_nothing(
    claude_settings: Callable[..., Settings], fake_agents: FakeAgents, repo: Path, tmux_socket: str
) -> None:
    # No argv element can carry a NUL: without the check the launcher dies and the row says running.
    settings = claude_settings()
    with pytest.raises(InputError, match="NUL byte"):
        await start(settings, "abc\x00def")
    nothing_created(repo, tmux_socket)
    async with open_app(settings) as app:
        assert await app.db.fetchall("SELECT id FROM instances") == []
