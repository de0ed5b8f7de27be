"""`codex-mcp start / ls / show / kill / attach / reconcile / resume` as real processes.

Every command runs as a subprocess of this interpreter's installation, on a private tmux server,
with stand-in agents (real MCP clients started by the real launcher) as the agents.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import CliSession, git, read_standin_log, standin_command, tmux_sessions, wait_for

from codex_mcp.store import issues as issues_store
from codex_mcp.store import open_database
from codex_mcp.store.issues import Issue

ISSUE_TITLE = "Make the widget spin"
ISSUE_BODY = "The widget must spin **clockwise**.\n\nSteps: 1. spin"


class Cli(CliSession):
    """The CLI session these tests drive, with what they read of rows and tmux."""

    def row(self, instance_id: str) -> dict[str, Any] | None:
        if not self.db_path.exists():
            return None
        conn = sqlite3.connect(self.db_path)
        conn.row_factory = sqlite3.Row
        try:
            found = conn.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchone()
        finally:
            conn.close()
        return dict(found) if found else None

    def agents_listed(self, *args: str) -> list[str]:
        """Ids `ls --json` lists, less the person's own identity (the main checkout's adhoc instance,
        registered by the first recorded action)."""
        return [r["id"] for r in self.json("ls", *args) if r["worktree_path"] != str(self.repo)]

    def ids(self) -> list[str]:
        if not self.db_path.exists():
            return []
        conn = sqlite3.connect(self.db_path)
        try:
            return [r[0] for r in conn.execute("SELECT id FROM instances ORDER BY id")]
        finally:
            conn.close()

    def backdate(self, instance_id: str, seconds: int = 120) -> None:
        """Age a row past reconcile's grace period (instead of sleeping through it)."""
        conn = sqlite3.connect(self.db_path)
        try:
            with conn:
                conn.execute(
                    "UPDATE instances SET created_at = datetime('now', ?) WHERE id = ?",
                    (f"-{seconds} seconds", instance_id),
                )
        finally:
            conn.close()

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def pane_pid(self, session: str) -> int:
        return int(self.tmux("list-panes", "-t", f"={session}:", "-F", "#{pane_pid}").stdout.split()[0])


@pytest.fixture
def make_cli(
    repo: Path, cli_env: dict[str, str], tmux_socket: str, write_script: Callable[[dict[str, Any]], Path]
) -> Callable[..., Cli]:
    def make(script: dict[str, Any] | None = None) -> Cli:
        env = {
            **cli_env,
            "CODEX_MCP_TMUX_SOCKET": tmux_socket,
            "CODEX_MCP_AGENT_COMMAND": standin_command(write_script(script or {})),
            "COLUMNS": "250",
        }
        return Cli(repo, env, tmux_socket)

    return make


async def cache_issue(cli: Cli) -> None:
    db = await open_database(cli.db_path)  # created and migrated, as the first command would
    try:
        async with db.write() as tx:
            await issues_store.upsert_many(
                tx,
                [
                    Issue(
                        number=4,
                        title=ISSUE_TITLE,
                        body=ISSUE_BODY,
                        state="open",
                        repo_owner="o",
                        repo_name="r",
                    )
                ],
            )
    finally:
        await db.close()


def standin_started(worktree: Path, count: int = 1) -> bool:
    return sum(1 for e in read_standin_log(worktree) if e.get("event") == "start") >= count


# ------------------------------------------------------------------------------------------------ start


async def test_start_with_a_cached_issue(make_cli: Callable[..., Cli], repo: Path) -> None:
    cli = make_cli()
    await cache_issue(cli)
    out = cli.ok("start", "--issue", "4", "--prompt", "Use the new spinner API.")
    assert "started work-4-a1" in out
    assert "codex-mcp attach work-4-a1" in out

    row = cli.row("work-4-a1")
    assert row is not None
    worktree = repo / "worktrees" / "work-4-a1"
    assert row["type"] == "work" and row["status"] == "running" and row["terminated_at"] is None
    assert row["worktree_path"] == str(worktree)
    assert row["branch_name"] == "codex/work-4-a1" and row["base_branch"] == "main"
    assert row["tmux_session"] == "work-4-a1" and row["tmux_socket"] == cli.socket
    assert row["issue_number"] == 4 and row["agent_number"] == 1
    assert row["claude_pid"] == cli.pane_pid("work-4-a1")
    assert git(worktree, "rev-parse", "--abbrev-ref", "HEAD") == "codex/work-4-a1"
    assert git(worktree, "rev-parse", "HEAD") == git(repo, "rev-parse", "main")

    # The issue's title and body are in the prompt, before the user's instructions.
    shown = cli.json("show", "work-4-a1")
    prompt = shown["instance"]["prompt"]
    assert prompt == row["prompt"]
    assert f"#4: {ISSUE_TITLE}" in prompt and ISSUE_BODY in prompt and "Use the new spinner API." in prompt
    assert prompt.index(ISSUE_BODY) < prompt.index("Use the new spinner API.")
    assert shown["instance"]["issue_title"] == ISSUE_TITLE

    # The stand-in agent really started in the worktree, through its MCP config.
    await wait_for(lambda: standin_started(worktree))

    # The worktrees root (and .codex/) stay out of git status, in the main checkout and the worktree.
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(worktree, "status", "--porcelain", "--untracked-files=all") == ""

    # `ls` shows it running, with the issue title.
    listing = cli.ok("ls")
    assert "work-4-a1" in listing and "running" in listing and ISSUE_TITLE in listing
    assert cli.agents_listed() == ["work-4-a1"]

    # A second start for the same issue takes the next agent number.
    assert "started work-4-a2" in cli.ok("start", "--issue", "4")
    assert {"work-4-a1", "work-4-a2"} <= tmux_sessions(cli.socket)


async def test_start_adhoc_prompt_file_json_and_bad_combinations(
    make_cli: Callable[..., Cli], repo: Path, tmp_path: Path
) -> None:
    cli = make_cli()
    prompt_file = tmp_path / "prompt.md"
    prompt_file.write_text('# Task\n\nRename `foo` to "bar"; don\'t touch $(anything).\n', encoding="utf-8")

    # Without an issue: adhoc, prompt read from the file; --json is the row keyed by column names.
    data = cli.json("start", "--prompt-file", str(prompt_file))
    assert data["id"] == "adhoc-a2" and data["type"] == "adhoc" and data["issue_number"] is None
    row = cli.row("adhoc-a2")
    assert row is not None
    for column, value in row.items():
        if column in (
            "token_hash",
            "task",
            "activity_order",
        ):  # a secret's hash; kept for forks; hooks' bookkeeping
            assert column not in data
            continue
        assert column in data, column
        assert data[column] == value, column
    assert data["prompt"].startswith(prompt_file.read_text(encoding="utf-8").rstrip("\n"))
    assert "adhoc-a2" in tmux_sessions(cli.socket)

    # Bad combinations: one line, nothing created.
    line = cli.error("start", "--prompt", "x", "--prompt-file", str(prompt_file), code=2)
    assert "--prompt" in line and "--prompt-file" in line and "not both" in line
    line = cli.error("start", "--type", "work", "--prompt", "x", code=2)
    assert "--issue" in line
    line = cli.error("start", "--prompt", "x", "--base", "no-such-branch")
    assert "no-such-branch" in line
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("Caf\u00e9 au lait\n".encode("latin-1"))  # not UTF-8: an input error, not a crash
    line = cli.error("start", "--prompt-file", str(latin1), code=2)
    assert "not UTF-8" in line and "byte 3 is 0xe9" in line and str(latin1) in line
    assert cli.ids() == ["adhoc-a1", "adhoc-a2"]  # adhoc-a1: the person's own identity (main checkout)
    assert tmux_sessions(cli.socket) == {"_keep", "adhoc-a2"}
    assert git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/codex").split() == [
        "codex/adhoc-a2"
    ]

    # Without an issue, `start` again is the next adhoc agent.
    assert cli.json("start", "--prompt", "again")["id"] == "adhoc-a3"


# ------------------------------------------------------------------------------------- show, tree, kill


async def test_show_tree_and_kill(make_cli: Callable[..., Cli], repo: Path) -> None:
    cli = make_cli({"work": [{"call": "spawn_review_instance", "args": {"reviewer_prompt": "look at x"}}]})
    cli.ok("start", "--issue", "4", "--prompt", "go")
    await wait_for(lambda: (cli.row("review-4-a1") or {}).get("status") == "running")
    await wait_for(lambda: standin_started(repo / "worktrees" / "review-4-a1"))

    out = cli.ok("show", "work-4-a1")
    assert "relationship tree:" in out
    assert "work-4-a1  <-" in out
    assert "└─ review-4-a1 (spawned_review, running)" in out
    assert "review-4-a1 (spawned_review)" in out  # children line
    assert "spawn_review_instance" in out  # its recent tool calls

    for viewed in ("work-4-a1", "review-4-a1"):
        data = cli.json("show", viewed)
        if viewed == "review-4-a1":
            assert [p["id"] for p in data["parents"]] == ["work-4-a1"]
        assert data["tree"]["root"] == "work-4-a1"
        assert data["tree"]["edges"] == [
            {
                "parent_instance": "work-4-a1",
                "child_instance": "review-4-a1",
                "relationship_type": "spawned_review",
                "child_status": "running",
            }
        ]

    # kill: session gone, row terminated, and it says what it kept (policy manual).
    out = cli.ok("kill", "review-4-a1")
    assert "review-4-a1 terminated (session killed)" in out
    assert "worktree kept, branch kept" in out
    assert "kept: policy manual keeps everything" in out
    assert "review-4-a1" not in tmux_sessions(cli.socket)
    row = cli.row("review-4-a1")
    assert row is not None and row["status"] == "terminated" and row["terminated_at"]
    assert (repo / "worktrees" / "review-4-a1").is_dir()
    assert git(repo, "for-each-ref", "refs/heads/codex/review-4-a1")
    assert "work-4-a1" in tmux_sessions(cli.socket)

    # The tree shows the terminated child; ls no longer lists it, ls --all does.
    assert "└─ review-4-a1 (spawned_review, terminated)" in cli.ok("show", "work-4-a1")
    assert cli.agents_listed() == ["work-4-a1"]
    assert set(cli.agents_listed("--all")) == {"work-4-a1", "review-4-a1"}

    # Killing again, a malformed id, an unknown id: one line each.
    assert "already terminated" in cli.error("kill", "review-4-a1")
    assert "not an instance id" in cli.error("kill", "bogus", code=2)
    assert "not found" in cli.error("kill", "work-99-a1", code=2)

    # kill --json
    data = cli.json("kill", "work-4-a1")
    assert data["instance_id"] == "work-4-a1" and data["session"] == "killed"
    assert data["cleanup"] == {
        "worktree": "kept",
        "branch": "kept",
        "kept_because": ["policy manual keeps everything"],
    }
    assert tmux_sessions(cli.socket) == {"_keep"}


# ------------------------------------------------------------------------------------------------ attach


async def test_attach(make_cli: Callable[..., Cli]) -> None:
    cli = make_cli()
    cli.ok("start", "--prompt", "hi")
    cli.ok("start", "--prompt", "bye")
    cli.ok("kill", "adhoc-a3")
    line = cli.error("attach", "adhoc-a3")
    assert "terminated" in line and "codex-mcp resume adhoc-a3" in line
    assert "not an instance id" in cli.error("attach", "adhoc-a1;x", code=2)
    assert "not found" in cli.error("attach", "work-9-a9", code=2)

    # A terminal inside another tmux session (on the same server) runs `codex-mcp attach`.
    argv = [sys.executable, "-m", "codex_mcp", "attach", "adhoc-a2"]
    env_args = [arg for name, value in cli.env.items() for arg in ("-e", f"{name}={value}")]
    cli.tmux(
        "new-session",
        "-d",
        "-s",
        "terminal",
        "-x",
        "120",
        "-y",
        "40",
        "-c",
        str(cli.repo),
        *env_args,
        "--",
        *argv,
    )

    def attached() -> list[str]:
        out = cli.tmux("list-clients", "-F", "#{session_name}", check=False).stdout.split()
        return out

    assert await wait_for(attached, timeout=15) == ["adhoc-a2"]
    # The attaching process is `tmux attach` itself (attach replaced itself), in the pane.
    pane_cmd = cli.tmux("display-message", "-p", "-t", "=terminal:", "#{pane_current_command}").stdout.strip()
    assert pane_cmd == "tmux"


# ------------------------------------------------------------------------------------ reconcile, resume


async def test_reconcile_and_resume(make_cli: Callable[..., Cli], repo: Path) -> None:
    cli = make_cli()
    cli.ok("start", "--prompt", "hi")
    worktree = repo / "worktrees" / "adhoc-a2"
    first_pid = cli.row("adhoc-a2")["claude_pid"]  # type: ignore[index]

    cli.tmux("kill-session", "-t", "=adhoc-a2")
    cli.tmux("new-session", "-d", "-s", "work-77-a1")  # looks like ours, has no row

    # Inside the grace period (10 s after creation) a missing session is not judged yet.
    out = cli.ok("reconcile")
    assert "terminated: none" in out
    assert "tmux sessions named like instances, with no running instance: work-77-a1" in out
    assert cli.row("adhoc-a2")["status"] == "running"  # type: ignore[index]

    cli.backdate("adhoc-a2")
    out = cli.ok("reconcile")
    assert "terminated: adhoc-a2" in out
    assert "folders under the worktrees root with no running instance:" in out
    assert f"  {worktree}" in out.splitlines()
    row = cli.row("adhoc-a2")
    assert row is not None and row["status"] == "terminated" and row["terminated_at"]
    data = cli.json("reconcile")
    assert data["terminated"] == [] and data["orphan_worktrees"] == [str(worktree)]
    assert data["orphan_sessions"] == ["work-77-a1"] and data["unreachable_sockets"] == []
    assert cli.agents_listed() == []

    # resume: the agent restarts in its worktree, the row is running again with the new pane pid.
    starts_before = sum(1 for e in read_standin_log(worktree) if e.get("event") == "start")
    out = cli.ok("resume", "adhoc-a2")
    assert out.startswith("resumed adhoc-a2: tmux session adhoc-a2")
    row = cli.row("adhoc-a2")
    assert row is not None and row["status"] == "running" and row["terminated_at"] is None
    assert row["claude_pid"] == cli.pane_pid("adhoc-a2") != first_pid
    await wait_for(lambda: standin_started(worktree, starts_before + 1))
    assert "still running" in cli.error("resume", "adhoc-a2")
    out = cli.ok("reconcile")
    assert "terminated: none" in out and str(worktree) not in out
