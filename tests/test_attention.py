"""What needs a person first: ``ls`` orders running instances waiting, idle, working, unknown (the longest
in its state first), terminated last; ``ls`` and ``show`` say the activity and since when; ``hook`` is a
documented command that records quietly. Real SQLite files, the real CLI (in process and as a process).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from support import run_cli

from codex_mcp.attention import activity_label, age, needs_attention_first
from codex_mcp.cli import cli
from codex_mcp.store import instances as instances_store
from codex_mcp.store import open_database
from codex_mcp.store.instances import NewInstance

# (id, activity, seconds since it changed, running); created in this order (the last is the newest).
ROWS = [
    ("work-1-a1", "working", 600, True),
    ("work-2-a1", "waiting", 30, True),
    ("work-3-a1", None, None, True),
    ("work-4-a1", "idle", 300, True),
    ("work-5-a1", "waiting", 900, True),
    ("work-6-a1", "idle", 20, False),
    ("work-7-a1", "working", 5, True),
    ("work-8-a1", None, None, True),
    ("work-9-a1", "waiting", 1, False),
]
EXPECTED = [
    "work-5-a1",  # waiting 15m
    "work-2-a1",  # waiting 30s
    "work-4-a1",  # idle 5m
    "work-1-a1",  # working 10m
    "work-7-a1",  # working 5s
    "work-8-a1",  # unknown, newest first
    "work-3-a1",
    "work-9-a1",  # terminated, newest first
    "work-6-a1",
]


def seed(db_path: Path) -> None:
    async def main() -> None:
        db = await open_database(db_path)
        try:
            async with db.write() as tx:
                for n, (instance_id, activity, ago, running) in enumerate(ROWS):
                    await instances_store.insert(
                        tx,
                        NewInstance(
                            id=instance_id,
                            type="work",
                            worktree_path=f"/tmp/nowhere/{instance_id}",
                            branch_name=f"codex/{instance_id}",
                            tmux_session=f"codex-{instance_id}",
                            issue_number=n + 1,
                        ),
                    )
                    await tx.execute(
                        "UPDATE instances SET created_at = datetime('now', ?), activity = ?, "
                        "activity_at = CASE WHEN ? IS NULL THEN NULL ELSE datetime('now', ?) END, "
                        "activity_detail = ? WHERE id = ?",
                        (
                            f"-{100 - n} minutes",
                            activity,
                            ago,
                            f"-{ago} seconds",
                            "permission: Bash" if activity == "waiting" else None,
                            instance_id,
                        ),
                    )
                    if not running:
                        await instances_store.mark_terminated(tx, instance_id)
        finally:
            await db.close()

    anyio.run(main)


@pytest.fixture
def here(repo: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "200")
    assert CliRunner().invoke(cli, ["db", "migrate"]).exit_code == 0
    seed(repo / ".git" / "codex-mcp" / "codex.db")
    return repo


def ls(*args: str) -> str:
    result = CliRunner().invoke(cli, ["ls", *args], prog_name="codex-mcp")
    assert result.exit_code == 0, result.output
    return result.stdout


def test_ls_lists_what_needs_a_person_first(here: Path) -> None:
    assert [r["id"] for r in json.loads(ls("--all", "--json"))] == EXPECTED
    assert [r["id"] for r in json.loads(ls("--json"))] == [
        i for i in EXPECTED if i not in ("work-9-a1", "work-6-a1")
    ]
    newest = [r["id"] for r in json.loads(ls("--all", "--sort", "newest", "--json"))]
    assert newest == [r[0] for r in reversed(ROWS)]

    table = ls("--all").splitlines()
    rows = {line.split()[0]: line for line in table[2:]}
    assert [line.split()[0] for line in table[2:]] == EXPECTED
    # Seconds tick on while the test runs: minutes are stable, seconds are checked by their unit.
    assert "waiting 15m" in rows["work-5-a1"] and re.search(r"waiting \d+s ", rows["work-2-a1"])
    assert "idle 5m" in rows["work-4-a1"] and "working 10m" in rows["work-1-a1"]
    # Unknown is shown as unknown, never guessed; a terminated agent's last report is not shown as now.
    for unknown in ("work-3-a1", "work-8-a1", "work-6-a1", "work-9-a1"):
        assert "—" in rows[unknown] and "waiting" not in rows[unknown] and "idle" not in rows[unknown]


def test_show_says_the_activity_since_when_and_its_detail(here: Path) -> None:
    out = CliRunner().invoke(cli, ["show", "work-5-a1"]).stdout
    assert "      activity: waiting for 15m (since " in out
    assert "        detail: permission: Bash" in out
    unknown = CliRunner().invoke(cli, ["show", "work-3-a1"]).stdout
    assert "activity: unknown (nothing reported; only Claude Code agents report activity)" in unknown
    ended = CliRunner().invoke(cli, ["show", "work-9-a1"]).stdout
    assert "(last reported before it ended)" in ended
    data = json.loads(CliRunner().invoke(cli, ["show", "work-5-a1", "--json"]).stdout)["instance"]
    assert (
        data["activity"] == "waiting"
        and data["activity_detail"] == "permission: Bash"
        and data["activity_at"]
    )


def test_the_order_and_the_label_as_functions(here: Path) -> None:
    async def rows() -> list[instances_store.Instance]:
        db = await open_database(here / ".git" / "codex-mcp" / "codex.db")
        try:
            return await instances_store.list_dashboard(db, status=None)
        finally:
            await db.close()

    listed = anyio.run(rows)
    assert [r.id for r in needs_attention_first(listed)] == EXPECTED
    assert needs_attention_first([]) == []
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    assert age("2026-11-30 11:59:15", now=now) == "45s"
    assert age("2026-11-30 11:58:00", now=now) == "2m"
    assert age("2026-11-30 09:00:00", now=now) == "3h"
    assert age("2026-11-25 12:00:00", now=now) == "5d"
    assert age("2026-11-30 12:00:09", now=now) == "0s"  # a clock a little ahead is not negative
    assert age(None) == "" and age("not a time") == ""
    waiting = next(r for r in listed if r.id == "work-2-a1")
    assert activity_label(waiting).startswith("waiting ")


def test_hook_is_a_documented_command_that_stays_quiet(repo: Path, cli_env: dict[str, str]) -> None:
    shown = run_cli("--help", cwd=repo, env=cli_env)
    assert "hook" in shown.stdout and "Record a Claude Code hook event" in shown.stdout
    helped = run_cli("hook", "--help", cwd=repo, env=cli_env)
    assert helped.returncode == 0 and "always exits 0 and prints nothing" in " ".join(helped.stdout.split())
    # Through click (a global option first) as through the fast path: exit 0, nothing printed.
    for argv in (["--log-level", "INFO", "hook", "Stop"], ["hook"], ["hook", "Stop"]):
        done = subprocess.run(
            [sys.executable, "-m", "codex_mcp", *argv],
            cwd=repo,
            env=cli_env,
            input="not json",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), argv
