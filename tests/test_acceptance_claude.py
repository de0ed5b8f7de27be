"""Acceptance with the real Claude Code (npm ``@anthropic-ai/claude-code``), fully offline.

``ANTHROPIC_BASE_URL`` points at a local stand-in of the Messages API playing a scripted model
(tests/anthropic_standin.py). ``codex-mcp start`` launches the real ``claude`` in tmux with our
generated MCP config, no key pressed by anyone: the scripted model makes it call
``spawn_review_instance``; the reviewer -- again a real ``claude``, spawned by our MCP server -- calls
``send_feedback`` then ``terminate_instance``. Then: ``claude mcp list`` after ``codex-mcp install``.

Skipped, with the reason in the summary, when npm cannot install Claude Code (fixture ``npm_tools``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from anthropic_standin import AnthropicStandin, Call, Role
from http_server import serve
from npm_tools import NpmTools
from support import query, run_cli, tmux_sessions, wait_for

from codex_mcp.settings import Settings

pytestmark = pytest.mark.slow

TASK = "Please make the README friendlier."
REVIEWER_PROMPT = "Check the README wording, please."
FEEDBACK = "Scripted review: the README reads well. Approved."
API_KEY = "sk-ant-api03-standin-" + "0123456789abcdefghijklmnopqrst"
# Claude Code starts in about a second; the whole loop takes a few. Generous for slow CI machines.
LOOP_TIMEOUT = 90.0

ROLES = [
    # The review prompt starts "You are review-N-aK, reviewing the work of ..."; the work prompt ends
    # with "You are codex-mcp instance work-N-aK: ...". The review role is matched first.
    Role(
        name="review",
        match="You are review-",
        calls=(
            Call("send_feedback", {"feedback": FEEDBACK, "feedback_type": "approved"}),
            Call("terminate_instance", {}),
        ),
        final_text="Review sent.",
    ),
    Role(
        name="work",
        match="You are codex-mcp instance work-",
        calls=(Call("spawn_review_instance", {"reviewer_prompt": REVIEWER_PROMPT}),),
        final_text="Review requested; waiting for feedback.",
    ),
]


@pytest.fixture
def standin() -> Iterator[AnthropicStandin]:
    with AnthropicStandin(ROLES) as server:
        yield server


@pytest.fixture
def home() -> Path:
    """The temporary HOME (set by conftest's autouse fixture), past Claude Code's onboarding only.

    Folder trust is left to the product: it must trust each worktree it spawns (or find the repository
    trusted) so that no dialog blocks the agent.
    """
    path = Path(os.environ["HOME"])
    (path / ".claude.json").write_text(json.dumps({"hasCompletedOnboarding": True}), encoding="utf-8")
    return path


@pytest.fixture
def claude_env(
    npm_tools: NpmTools, cli_env: dict[str, str], home: Path, tmux_socket: str, standin: AnthropicStandin
) -> dict[str, str]:
    """Environment for `codex-mcp` and `claude`: Node 22 + claude on PATH, the stand-in as the API."""
    env = npm_tools.env(cli_env)
    for name in list(env):
        if name.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "CODEX_MCP_AGENT_")) or name == "CLAUDE_CONFIG_DIR":
            del env[name]  # no developer setting or real key leaks in; the real Claude profile is used
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=standin.url,
        # A token, not ANTHROPIC_API_KEY: Claude Code does not ask "use this API key?" about it.
        ANTHROPIC_AUTH_TOKEN="standin-token",
        CODEX_MCP_TMUX_SOCKET=tmux_socket,
        DISABLE_AUTOUPDATER="1",
        # For the `claude` the tests run themselves (agents get what the product passes on): telemetry
        # and error reports would try the internet.
        DISABLE_TELEMETRY="1",
        DISABLE_ERROR_REPORTING="1",
    )
    return env


# ---------------------------------------------------------------------------------------- helpers

# What Claude Code shows when it waits for a person: none of it may ever appear in an agent's pane.
DIALOGS = re.compile(
    r"Is this a project you created or one you trust|Do you want to use this API key|New MCP server found"
    r"|Enter to confirm · Esc to cancel|Do you want to proceed"
)


def pane(socket: str, session: str) -> str:
    done = subprocess.run(
        ["tmux", "-L", socket, "capture-pane", "-p", "-J", "-S", "-", "-t", f"={session}:"],
        capture_output=True,
        text=True,
    )
    return done.stdout if done.returncode == 0 else f"(no pane: {done.stderr.strip()})"


def agent_sessions(socket: str) -> list[str]:
    return sorted(tmux_sessions(socket) - {"_keep"})


def no_dialog(socket: str) -> None:
    """Fail at once (not after the timeout) when an agent sits at a dialog nobody will answer."""
    for session in agent_sessions(socket):
        text = pane(socket, session)
        if (found := DIALOGS.search(text)) is not None:
            raise AssertionError(f"{session} is blocked by a dialog ({found.group(0)!r}):\n{text.strip()}")


def diagnostics(socket: str, standin: AnthropicStandin, db: Path | None = None) -> str:
    parts = [f"tmux sessions: {agent_sessions(socket)}"]
    config = Path(os.environ["HOME"]) / ".claude.json"
    if config.exists():
        projects = json.loads(config.read_text(encoding="utf-8")).get("projects", {})
        trusted = {path: entry.get("hasTrustDialogAccepted") for path, entry in projects.items()}
        parts.append(f"~/.claude.json trust: {trusted}")
    for session in agent_sessions(socket):
        lines = [line.rstrip() for line in pane(socket, session).splitlines() if line.strip()]
        parts.append(f"---- pane {session}\n" + "\n".join(lines[-60:]))
    parts.append("---- stand-in requests\n" + standin.transcript())
    if db is not None and db.exists():
        rows = query(db, "SELECT instance_id, tool_name, success, error_message FROM mcp_events ORDER BY id")
        parts.append("---- mcp_events\n" + "\n".join(map(str, rows)))
    return "\n".join(parts)


def claude(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["claude", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def notice_answered(standin: AnthropicStandin) -> bool:
    """The work conversation got the pasted feedback notice as a user turn, and was answered."""
    requests = [r for r in standin.messages_requests() if r.role == "work"]
    notice = any("[codex] Review feedback from review-1-a1" in t for t in standin.user_texts("work"))
    return notice and requests[-1].kind == "final"


def server_line(listing: str) -> str:
    """The line `claude mcp list` prints about our server ("codex: <command> - ✔ Connected")."""
    return next((line for line in listing.splitlines() if line.startswith("codex:")), "")


def trust(home: Path, folder: Path) -> None:
    """What a person's earlier "Yes, I trust this folder" left in ~/.claude.json."""
    config = json.loads((home / ".claude.json").read_text(encoding="utf-8"))
    config.setdefault("projects", {}).setdefault(str(folder), {})["hasTrustDialogAccepted"] = True
    (home / ".claude.json").write_text(json.dumps(config), encoding="utf-8")


# ------------------------------------------------------------------------------------ the review loop


@pytest.mark.parametrize(
    ("transport", "repo_trusted", "auth"),
    [
        pytest.param("stdio", False, "token", id="stdio-untrusted-repo-token"),
        pytest.param("http", True, "api-key", id="http-trusted-repo-api-key"),
        pytest.param("http", False, "token", id="http-untrusted-repo-token"),
    ],
)
async def test_real_claude_code_runs_the_review_loop(
    transport: str,
    repo_trusted: bool,
    auth: str,
    repo: Path,
    claude_env: dict[str, str],
    standin: AnthropicStandin,
    tmux_socket: str,
    home: Path,
) -> None:
    """stdio: each claude starts its own `codex-mcp serve`; http: one shared server, each agent
    authenticated by the bearer token in its generated MCP config.

    An untrusted repository makes the product trust each worktree it spawns; a trusted one (a person's
    usual case) covers its worktrees, and the product must then not touch the trust records.
    ANTHROPIC_AUTH_TOKEN never asks; ANTHROPIC_API_KEY asks "use this API key?" unless approved, which
    the product does once.
    """
    if repo_trusted:
        trust(home, repo)
    if auth == "api-key":
        del claude_env["ANTHROPIC_AUTH_TOKEN"]
        claude_env["ANTHROPIC_API_KEY"] = API_KEY
    with contextlib.ExitStack() as stack:
        if transport == "http":
            server = stack.enter_context(serve(repo, claude_env, transport="http", port=0))
            claude_env["CODEX_MCP_SERVER_URL"] = server.url
            # Agents first: a server still holding their streams takes its full stop timeout.
            stack.callback(kill_agents, tmux_socket)
        await review_loop(repo, claude_env, standin, tmux_socket, home, transport, repo_trusted)
    # Every model request carried the credential given (the agents really were configured by us).
    sent = {r.headers.get("x-api-key") or r.headers.get("authorization") for r in standin.messages_requests()}
    assert sent == {API_KEY if auth == "api-key" else "Bearer standin-token"}
    approved = json.loads((home / ".claude.json").read_text(encoding="utf-8")).get("customApiKeyResponses")
    assert approved == ({"approved": [API_KEY[-20:]]} if auth == "api-key" else None)


def kill_agents(socket: str) -> None:
    for session in agent_sessions(socket):
        subprocess.run(["tmux", "-L", socket, "kill-session", "-t", f"={session}"], capture_output=True)


async def review_loop(
    repo: Path,
    claude_env: dict[str, str],
    standin: AnthropicStandin,
    tmux_socket: str,
    home: Path,
    transport: str,
    repo_trusted: bool,
) -> None:
    db = Settings.load(claude_env, cwd=repo).require_db_path()
    done = run_cli("start", "--issue", "1", "--prompt", TASK, "--json", cwd=repo, env=claude_env)
    assert done.returncode == 0, done.stderr
    work = json.loads(done.stdout)
    assert work["id"] == "work-1-a1" and work["status"] == "running"
    worktree = Path(work["worktree_path"])
    config = json.loads((worktree / ".codex" / "mcp.json").read_text(encoding="utf-8"))["mcpServers"]["codex"]
    assert config["type"] == transport
    feedback_folder = worktree / ".codex" / "feedback"

    def until(condition: Any) -> Any:
        def check() -> Any:
            no_dialog(tmux_socket)
            return condition()

        return check

    try:
        # The reviewer's send_feedback wrote the file into the work instance's worktree ...
        files = await wait_for(
            until(lambda: sorted(feedback_folder.glob("*.md"))), timeout=LOOP_TIMEOUT, interval=0.2
        )
        # ... terminated itself (its session is killed shortly after the answer) ...
        await wait_for(
            until(
                lambda: (
                    query(db, "SELECT status FROM instances WHERE id = 'review-1-a1'") == [("terminated",)]
                    and "review-1-a1" not in tmux_sessions(tmux_socket)
                )
            ),
            timeout=30,
            interval=0.2,
        )
        # ... and the notice pasted into the work agent's terminal reached its model as a user turn.
        await wait_for(until(lambda: notice_answered(standin)), timeout=30, interval=0.2)

        # The feedback file holds the scripted review.
        assert len(files) == 1
        text = files[0].read_text(encoding="utf-8")
        assert FEEDBACK in text and "type: approved" in text and "review-1-a1" in text

        # Database: both instances, the relationship, the successful tool calls.
        instances = dict(query(db, "SELECT id, status FROM instances WHERE type != 'adhoc'"))
        assert instances == {"work-1-a1": "running", "review-1-a1": "terminated"}
        assert query(
            db, "SELECT parent_instance, child_instance, relationship_type FROM instance_relationships"
        ) == [("work-1-a1", "review-1-a1", "spawned_review")]
        events = query(db, "SELECT instance_id, tool_name, success FROM mcp_events ORDER BY id")
        assert ("work-1-a1", "spawn_review_instance", 1) in events
        assert ("review-1-a1", "send_feedback", 1) in events
        assert ("review-1-a1", "terminate_instance", 1) in events
        assert not [e for e in events if not e[2]], events

        # tmux: the work agent is still there (waiting for its next turn), the reviewer is gone.
        assert agent_sessions(tmux_socket) == ["work-1-a1"]
        no_dialog(tmux_socket)

        # The stand-in saw real Claude Code load our tools through ToolSearch, call them, get results.
        calls = [(c["name"], c["input"]) for c in standin.tool_calls()]
        assert ("mcp__codex__spawn_review_instance", {"reviewer_prompt": REVIEWER_PROMPT}) in calls
        assert ("mcp__codex__send_feedback", {"feedback": FEEDBACK, "feedback_type": "approved"}) in calls
        assert ("mcp__codex__terminate_instance", {}) in calls
        assert any(
            '"review_instance_id":"review-1-a1"' in r.replace(" ", "") for r in standin.tool_results("work")
        )
        review_prompt = next(t for t in standin.user_texts("review") if "You are review-1-a1" in t)
        assert REVIEWER_PROMPT in review_prompt

        # Trust: the product trusted each worktree itself, or -- the repository being trusted already --
        # wrote nothing at all.
        projects = json.loads((home / ".claude.json").read_text(encoding="utf-8"))["projects"]
        for instance in ("work-1-a1", "review-1-a1"):
            entry = projects.get(str(worktree.parent / instance), {})
            assert (entry.get("hasTrustDialogAccepted") is True) is not repo_trusted, projects
    except BaseException:
        print(diagnostics(tmux_socket, standin, db))
        raise


# ------------------------------------------------------------------------------------ registration


def test_claude_mcp_list_shows_the_server_connected_after_user_install(
    repo: Path, claude_env: dict[str, str], home: Path
) -> None:
    done = run_cli("install", "--scope", "user", cwd=repo, env=claude_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip(), "install prints what it changed"
    config = json.loads((home / ".claude.json").read_text(encoding="utf-8"))
    assert "codex" in config["mcpServers"]

    listing = claude(claude_env, repo, "mcp", "list")
    line = server_line(listing.stdout)
    assert re.search(r"✔ Connected|\bConnected\b", line), listing.stdout + listing.stderr

    # Idempotent: a second install changes nothing.
    before = (home / ".claude.json").read_text(encoding="utf-8")
    again = run_cli("install", "--scope", "user", cwd=repo, env=claude_env)
    assert again.returncode == 0, again.stderr
    after = json.loads((home / ".claude.json").read_text(encoding="utf-8"))
    assert after["mcpServers"] == json.loads(before)["mcpServers"]


def test_project_install_writes_mcp_json_that_connects_once_approved(
    repo: Path, claude_env: dict[str, str], home: Path
) -> None:
    done = run_cli("install", "--scope", "project", cwd=repo, env=claude_env)
    assert done.returncode == 0, done.stderr
    assert "codex" in json.loads((repo / ".mcp.json").read_text(encoding="utf-8"))["mcpServers"]

    # Claude Code asks each person to approve a project's servers before starting them.
    pending = server_line(claude(claude_env, repo, "mcp", "list").stdout)
    assert "Pending approval" in pending, pending

    # Approving as a person does: trust the folder, enable the server in the local settings.
    trust(home, repo)
    (repo / ".claude").mkdir(exist_ok=True)
    (repo / ".claude" / "settings.local.json").write_text(
        json.dumps({"enabledMcpjsonServers": ["codex"]}), encoding="utf-8"
    )
    listing = claude(claude_env, repo, "mcp", "list")
    assert "Connected" in server_line(listing.stdout), listing.stdout + listing.stderr


def test_http_install_connects_with_a_token_and_is_refused_without(
    repo: Path, claude_env: dict[str, str], home: Path
) -> None:
    with serve(repo, claude_env, transport="http", port=0, operator_token=True) as server:
        claude_env["CODEX_MCP_SERVER_URL"] = server.url
        done = run_cli("install", "--scope", "user", "--transport", "http", cwd=repo, env=claude_env)
        assert done.returncode == 0, done.stderr
        entry = json.loads((home / ".claude.json").read_text(encoding="utf-8"))["mcpServers"]["codex"]
        # The entry names the variable; no token is ever written into a file.
        assert entry["url"] == server.url
        assert entry["headers"] == {"Authorization": "Bearer ${CODEX_MCP_TOKEN}"}

        refused = server_line(claude(claude_env, repo, "mcp", "list").stdout)
        assert "Connected" not in refused and "401" in refused, refused

        assert server.operator_token is not None
        listing = claude({**claude_env, "CODEX_MCP_TOKEN": server.operator_token}, repo, "mcp", "list")
        assert "Connected" in server_line(listing.stdout), listing.stdout + listing.stderr
