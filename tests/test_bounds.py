"""One definition of a valid issue number and instance id, used everywhere (issue 11, item 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from support import git, run_cli

from codex_mcp.app import App
from codex_mcp.errors import InputError
from codex_mcp.ids import MAX_ISSUE_NUMBER, parse_instance_id
from codex_mcp.server import build_server

HUGE = [MAX_ISSUE_NUMBER + 1, 1_099_511_627_776, 2**80]


def test_ids_beyond_the_issue_range_are_not_ids() -> None:
    assert parse_instance_id(f"work-{MAX_ISSUE_NUMBER}-a1").issue_number == MAX_ISSUE_NUMBER
    for number in HUGE:
        with pytest.raises(InputError, match="is not an instance id"):
            parse_instance_id(f"work-{number}-a1")


@pytest.mark.parametrize("number", HUGE)
def test_cli_refuses_out_of_range_issue_numbers_and_creates_nothing(
    repo: Path, cli_env: dict[str, str], number: int
) -> None:
    branches = git(repo, "branch", "--list")
    for args in (["ls", "--issue", str(number)], ["start", "--issue", str(number), "--prompt", "x"]):
        done = run_cli(*args, cwd=repo, env=cli_env)
        assert done.returncode == 2, (args, done.returncode, done.stderr)
        assert "Traceback" not in done.stderr and str(MAX_ISSUE_NUMBER) in done.stderr, done.stderr
    assert git(repo, "branch", "--list") == branches
    assert not (repo / "worktrees").exists()
    listed = run_cli("ls", "--all", "--json", cwd=repo, env=cli_env)
    assert listed.returncode == 0 and not [i for i in json.loads(listed.stdout) if i["type"] == "work"]


async def test_tools_refuse_out_of_range_issue_numbers_with_a_recorded_error(app: App) -> None:
    async with Client(build_server(app)) as client:
        for name, arguments in (
            ("get_issue", {"number": 2**80}),
            ("get_issue", {"number": MAX_ISSUE_NUMBER + 1}),
            ("query_instances", {"issue_number": 2**40}),
        ):
            result = await client.call_tool(name, arguments)
            assert result.is_error, (name, result.structured_content)
            text = " ".join(getattr(c, "text", "") for c in result.content)
            assert "internal error" not in text and str(MAX_ISSUE_NUMBER) in text, text
    rows = await app.db.fetchall("SELECT tool_name, success FROM mcp_events ORDER BY id")
    assert [(r[0], r[1]) for r in rows] == [("get_issue", 0), ("get_issue", 0), ("query_instances", 0)]
