"""Helpers shared by the tests: real git repositories, the real CLI, tmux, waiting, MCP results.

Fixtures live in conftest.py (pytest finds them there); plain functions and constants live here and
are imported by name (``from support import git, wait_for``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from codex_mcp.cli import cli
from codex_mcp.ids import INSTANCE_TYPES
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store.instances import NewInstance

# The types of two conftest fixtures, for annotating the tests that take them.
SettingsMaker = Callable[..., Settings]
"""``lifecycle_settings``: Settings for spawning stand-in agents, given a script and extra variables."""
ScriptWriter = Callable[[dict[str, Any]], Path]
"""``write_script``: writes a stand-in script and returns its path."""

# The token the `gh` fixture's GitHub stand-in expects (a module overrides the `github_token` fixture).
GITHUB_TOKEN = "ghp_IssueCacheCanary0123456789abcdefXYZ"

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str, check: bool = True, strip: bool = True) -> str:
    """Run git in ``cwd``; its stdout, stripped (``strip=False``: exactly as printed, e.g. porcelain
    output whose leading spaces matter, or file contents)."""
    done = subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, check=check, env={**os.environ, **GIT_ENV}
    )
    return done.stdout.strip() if strip else done.stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("hello\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path.resolve()


def db_file(repo: Path) -> Path:
    """The default database of a repository (``<git dir>/codex-mcp/codex.db``)."""
    return repo / ".git" / "codex-mcp" / "codex.db"


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows read from a database file through a read-only connection of its own."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
        return conn.execute(sql, args).fetchall()


async def event_rows(db: Database, where: str = "1", params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """The ``mcp_events`` rows (matching ``where``), oldest first."""
    rows = await db.fetchall(f"SELECT * FROM mcp_events WHERE {where} ORDER BY id", params)
    return [dict(r) for r in rows]


def new_instance(instance_id: str, worktree: Path | str, **extra: Any) -> NewInstance:
    """An instance row to insert: the type read from the id, branch codex/<id>, tmux session codex-<id>;
    ``extra`` sets (or overrides) any other field."""
    kind = next(t for t in INSTANCE_TYPES if t == instance_id.split("-")[0])
    fields: dict[str, Any] = {
        "id": instance_id,
        "type": kind,
        "worktree_path": str(worktree),
        "branch_name": f"codex/{instance_id}",
        "tmux_session": f"codex-{instance_id}",
        **extra,
    }
    return NewInstance(**fields)


# ------------------------------------------------------------------------------------------- the CLI


def invoke(*args: str) -> Result:
    """Run a `codex-mcp` command in-process (click's runner), in the current folder and environment."""
    return CliRunner().invoke(cli, list(args), prog_name="codex-mcp")


def cli_ok(*args: str) -> Result:
    """Run a command in-process; it must succeed."""
    result = invoke(*args)
    assert result.exit_code == 0, f"{args}: exit {result.exit_code}\n{result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def one_line_error(result: Result, *needles: str) -> str:
    """The command failed with exactly one line on stderr, our prefix, nothing on stdout, no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("codex-mcp: error: "), line
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    return line


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], check: bool = False, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `codex-mcp` command (this interpreter's installation) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "codex_mcp", *args],
        cwd=cwd,
        env=env,
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@dataclass
class CliSession:
    """The real `codex-mcp` run as a subprocess in ``repo`` with ``env`` (agents on tmux ``socket``)."""

    repo: Path
    env: dict[str, str]
    socket: str

    @property
    def db_path(self) -> Path:
        return self.repo / ".git" / "codex-mcp" / "codex.db"

    def run(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, cwd=self.repo, env=self.env, input=input)

    def ok(self, *args: str, input: str | None = None) -> str:
        done = self.run(*args, input=input)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args, "--json"))

    def error(self, *args: str, code: int | None = None) -> str:
        """The command fails with exactly one line on stderr, nothing on stdout, no traceback."""
        done = self.run(*args)
        assert done.returncode != 0, (args, done.stdout)
        if code is not None:
            assert done.returncode == code, (args, done.returncode, done.stderr)
        assert done.stdout == "", done.stdout
        line = done.stderr.strip()
        assert "\n" not in line and "Traceback" not in line, done.stderr
        assert line.startswith("codex-mcp: error: "), line
        return line

    def query(self, sql: str, *params: object) -> list[dict[str, Any]]:
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        finally:
            conn.close()


def cmdline(pid: int | None) -> list[str]:
    """A process's argv from /proc ([] when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text().split("\0")[:-1]
    except (OSError, TypeError):
        return []


def unused_port_url() -> str:
    """A loopback URL nothing listens on (a port bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


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


# ------------------------------------------------------------------------- everything git holds


def commit_file(repo: Path, name: str, text: str | bytes, message: str | None = None) -> str:
    """Write ``name`` (text or bytes), commit it alone; the new commit's id."""
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message or f"add {name}")
    return git(repo, "rev-parse", "HEAD")


def world(repo: Path) -> dict[str, Any]:
    """Everything landing or diffing must leave as it was (or change only as intended)."""
    state: dict[str, Any] = {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "stash": git(repo, "stash", "list"),
        "scratch": sorted(
            str(p)
            for p in (Path(git(repo, "rev-parse", "--git-common-dir")).resolve() / "codex-mcp").rglob("*")
        )
        if (repo / ".git" / "codex-mcp").exists()
        else [],
    }
    for line in state["worktrees"].splitlines():
        if not line.startswith("worktree "):
            continue
        wt = Path(line.removeprefix("worktree "))
        index = Path(git(wt, "rev-parse", "--path-format=absolute", "--git-path", "index"))
        files = {
            str(p.relative_to(wt)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(wt.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(wt).parts
        }
        state[str(wt)] = {
            "head": git(wt, "rev-parse", "HEAD"),
            # --no-optional-locks: a plain `git status` would itself rewrite the index it inspects.
            "status": git(wt, "--no-optional-locks", "status", "--porcelain=v1", "--untracked-files=all"),
            "staged": git(wt, "--no-optional-locks", "diff", "--cached"),
            "unstaged": git(wt, "--no-optional-locks", "diff"),
            "index": hashlib.sha1(index.read_bytes()).hexdigest(),
            "files": files,
        }
    return state


# ------------------------------------------------------------------------------ what a command imports
# Runs the console script with the arguments given (stdin passed through) and writes the name of every
# module it loaded, at exit, to the file named first: `[sys.executable, "-c", MODULES_PROBE, out, *args]`.
MODULES_PROBE = """\
import atexit, sys
out, sys.argv = sys.argv[1], ["codex-mcp", *sys.argv[2:]]
def report():
    with open(out, "w", encoding="utf-8") as f:
        f.write(" ".join(sorted(sys.modules)))
atexit.register(report)
from codex_mcp.entry import main
main()
"""

# A raw stdio client's first two lines: initialize (id 1), then the initialized notification.
HANDSHAKE: list[dict[str, Any]] = [
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"},
        },
    },
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]


def count_registrations(server: Any) -> list[str]:
    """The names of the tools registered on ``server`` from now on, one entry per SDK registration."""
    added: list[str] = []
    add_tool = server.add_tool

    def counting_add_tool(*args: Any, **kwargs: Any) -> None:
        added.append(kwargs["name"])
        add_tool(*args, **kwargs)

    server.add_tool = counting_add_tool
    return added


def tickets_taken(db_path: Path) -> int:
    """The append queue's counter (store/append_queue.py), read by another process: closing a descriptor
    of the file in a process drops the record locks that process holds on it (a test's own queue)."""
    path = Path(f"{db_path}-queue")
    if not path.exists():
        return 0
    out = subprocess.run(["od", "-An", "-tu8", "-N8", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip() or 0)
