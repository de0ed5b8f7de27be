"""Acceptance with the real MCP Inspector CLI (`@modelcontextprotocol/inspector --cli`), from npm.

Over stdio (the command Claude Code runs) and over streamable HTTP with an `Authorization` header:
`tools/list --strict` is clean (the Inspector reports tool-schema portability problems on stderr and
exits 6 on an error-severity one), a read tool succeeds, and a tool error exits 5 (the Inspector's
TOOL_ERROR exit code; 3 is AUTH_REQUIRED). Skipped, with the reason, when npm cannot install it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from http_server import RunningServer, serve
from npm_tools import NpmTools
from support import EXPECTED_TOOLS

from codex_mcp import tokens
from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import NewInstance

pytestmark = pytest.mark.slow

EXIT_TOOL_ERROR = 5
EXIT_AUTH_REQUIRED = 3


def codex_mcp_command() -> list[str]:
    """This installation's `codex-mcp` (what `claude mcp add` would be given)."""
    script = Path(sys.executable).parent / "codex-mcp"
    return [str(script)] if script.exists() else [sys.executable, "-m", "codex_mcp"]


def inspector(
    npm_tools: NpmTools, cwd: Path, env: dict[str, str], target: list[str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [npm_tools.exe("mcp-inspector"), "--cli", *target, *args, "--format", "json"],
        cwd=cwd,
        env=npm_tools.env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def result_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return dict(json.loads(done.stdout)["result"])


def inspector_complaints(stderr: str) -> list[str]:
    """stderr without our server's own log lines (a stdio server's stderr is passed through)."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("codex-mcp ")]


def http_target(server: RunningServer, token: str | None) -> list[str]:
    target = [server.url, "--transport", "http"]
    if token is not None:
        target += ["--header", f"Authorization: Bearer {token}"]
    return target


async def add_work_instance(db: Database, repo: Path) -> str:
    token = tokens.new_token()[0]
    worktree = repo / "worktrees" / "work-4-a1"
    worktree.mkdir(parents=True)
    async with db.write() as tx:
        await instances_store.insert(
            tx,
            NewInstance(
                id="work-4-a1",
                type="work",
                worktree_path=str(worktree),
                branch_name="codex/work-4-a1",
                tmux_session="work-4-a1",
                issue_number=4,
                token_hash=tokens.hash_token(token),
            ),
        )
    return token


def test_stdio_tools_list_strict_call_and_tool_error(
    npm_tools: NpmTools, repo: Path, cli_env: dict[str, str]
) -> None:
    stdio = [*codex_mcp_command(), "serve"]

    listed = inspector(npm_tools, repo, cli_env, stdio, "--method", "tools/list", "--strict")
    assert {t["name"] for t in result_of(listed)["tools"]} == EXPECTED_TOOLS
    assert inspector_complaints(listed.stderr) == [], listed.stderr

    called = inspector(
        npm_tools, repo, cli_env, stdio, "--method", "tools/call", "--tool-name", "query_instances"
    )
    result = result_of(called)
    assert result.get("isError") is not True, result
    # Without an instance, a stdio server acts for the adhoc instance of the folder it runs in.
    assert result["structuredContent"]["caller_instance_id"] == "adhoc-a1"

    failed = inspector(
        npm_tools,
        repo,
        cli_env,
        stdio,
        "--method",
        "tools/call",
        "--tool-name",
        "get_instance",
        "--tool-arg",
        "instance_id=work-999-a9",
    )
    assert failed.returncode == EXIT_TOOL_ERROR, failed.stdout + failed.stderr
    assert "work-999-a9" in failed.stdout + failed.stderr


async def test_http_with_header(
    npm_tools: NpmTools, repo: Path, db: Database, cli_env: dict[str, str]
) -> None:
    agent_token = await add_work_instance(db, repo)
    with serve(repo, cli_env, operator_token=True) as server:
        assert server.operator_token is not None

        listed = inspector(
            npm_tools,
            repo,
            cli_env,
            http_target(server, server.operator_token),
            "--method",
            "tools/list",
            "--strict",
        )
        assert {t["name"] for t in result_of(listed)["tools"]} == EXPECTED_TOOLS
        assert inspector_complaints(listed.stderr) == [], listed.stderr

        # A person with the operator token reads, as the adhoc instance of the server's folder ...
        called = inspector(
            npm_tools,
            repo,
            cli_env,
            http_target(server, server.operator_token),
            "--method",
            "tools/call",
            "--tool-name",
            "query_instances",
        )
        content = result_of(called)["structuredContent"]
        adhoc = await db.fetchone("SELECT id FROM instances WHERE type = 'adhoc'")
        assert adhoc is not None and content["caller_instance_id"] == adhoc["id"]
        assert "work-4-a1" in {i["id"] for i in content["instances"]}
        # ... an agent with its own token acts as itself.
        called = inspector(
            npm_tools,
            repo,
            cli_env,
            http_target(server, agent_token),
            "--method",
            "tools/call",
            "--tool-name",
            "query_instances",
        )
        assert result_of(called)["structuredContent"]["caller_instance_id"] == "work-4-a1"

        failed = inspector(
            npm_tools,
            repo,
            cli_env,
            http_target(server, server.operator_token),
            "--method",
            "tools/call",
            "--tool-name",
            "get_instance",
            "--tool-arg",
            "instance_id=work-999-a9",
        )
        assert failed.returncode == EXIT_TOOL_ERROR, failed.stdout + failed.stderr

        # A write tool with the read-only operator token is a tool error, not a change.
        refused = inspector(
            npm_tools,
            repo,
            cli_env,
            http_target(server, server.operator_token),
            "--method",
            "tools/call",
            "--tool-name",
            "terminate_instance",
            "--tool-arg",
            "instance_id=work-4-a1",
        )
        assert refused.returncode == EXIT_TOOL_ERROR, refused.stdout + refused.stderr
        assert "read-only" in refused.stdout + refused.stderr

        # Without a token the server answers 401, which the Inspector reports as "auth required"
        # (--stored-auth-only: never start an interactive OAuth login).
        anonymous = inspector(
            npm_tools,
            repo,
            cli_env,
            http_target(server, None),
            "--method",
            "tools/list",
            "--stored-auth-only",
        )
        assert anonymous.returncode == EXIT_AUTH_REQUIRED, anonymous.stdout + anonymous.stderr

    found = await instances_store.get(db, "work-4-a1")
    assert found is not None and found.status == "running"
