"""Tables in a narrow terminal: ids and dates never wrap, no line is wider than the terminal.

A real database holds several instances with long issue titles and branch names, tool calls with long
errors, cached issues with long titles and settings; every table command runs at 80 and 60 columns
(what a split pane or a phone's SSH client gives). The listing commands also run as a real subprocess.
"""

from __future__ import annotations

import re
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from support import run_cli

from codex_mcp.cli import cli
from codex_mcp.store import events as events_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store import open_database
from codex_mcp.store import relationships as relationships_store

DATE = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
LONG_TITLE = "Make the frobnicator reticulate splines without blocking the event loop on slow disks"
LONG_ERROR = "instance 'work-9-a1' not found; call query_instances (or run `codex-mcp ls --all`) to list ids"

# (id, type, issue, branch, pull request)
INSTANCES = [
    ("work-5-a1", "work", 5, "codex/work-5-a1", None),
    (
        "work-12345-a12",
        "work",
        12345,
        "feature/a-rather-long-branch-name-for-the-splines-work",
        (4321, "open"),
    ),
    ("review-12345-a3", "review", 12345, "codex/review-12345-a3", None),
    ("adhoc-a7", "adhoc", None, "codex/adhoc-a7-experiment-with-a-long-name", (77, "merged")),
]
IDS = [i[0] for i in INSTANCES]
# (id, activity, seconds ago): shown as "waiting 2m", "working 3h"
ACTIVITY = [("work-5-a1", "waiting", 150), ("work-12345-a12", "working", 3 * 3600 + 30)]


def seed(path: Path) -> None:
    async def main() -> None:
        db = await open_database(path)
        try:
            async with db.write() as tx:
                await issues_store.upsert_many(
                    tx,
                    [
                        issues_store.Issue(
                            number=5,
                            title="Short title",
                            state="open",
                            labels=["bug"],
                            updated_at="2026-11-20 08:00:00",
                            repo_owner="octo",
                            repo_name="repo",
                        ),
                        issues_store.Issue(
                            number=12345,
                            title=LONG_TITLE,
                            state="open",
                            assignee="a-contributor-with-a-long-login",
                            labels=["enhancement", "good first issue", "needs-design-discussion"],
                            updated_at="2026-11-21 09:30:00",
                            repo_owner="octo",
                            repo_name="repo",
                        ),
                    ],
                )
                for instance_id, kind, issue, branch, pull in INSTANCES:
                    await instances_store.insert(
                        tx,
                        instances_store.NewInstance(
                            id=instance_id,
                            type=kind,  # type: ignore[arg-type]
                            worktree_path=str(path.parent / "wt" / instance_id),
                            branch_name=branch,
                            base_branch="main",
                            tmux_session=f"codex-{instance_id}",
                            issue_number=issue,
                            agent_number=1,
                        ),
                    )
                    if pull is not None:
                        await instances_store.set_pull_request(
                            tx,
                            instance_id,
                            number=pull[0],
                            url=f"https://github.com/octo/repo/pull/{pull[0]}",
                            state=pull[1],
                        )
                await relationships_store.add(
                    tx,
                    relationships_store.Relationship(
                        parent_instance="work-12345-a12",
                        child_instance="review-12345-a3",
                        relationship_type="spawned_review",
                    ),
                )
                for instance_id, tool, error in [
                    ("work-12345-a12", "spawn_review_instance", None),
                    ("review-12345-a3", "send_feedback", LONG_ERROR),
                    ("work-12345-a12", "query_instances", None),
                ]:
                    await events_store.record(
                        tx,
                        events_store.NewEvent(
                            instance_id=instance_id,
                            tool_name=tool,
                            success=error is None,
                            error_message=error,
                            metadata={"duration_ms": 1234.5},
                        ),
                    )
                await tx.execute(
                    "UPDATE instances SET created_at = '2026-11-2' || substr(id, -1) || ' 10:11:12'"
                )
                # What the agents' hooks report: one waits for a person, one works; the rest say nothing.
                for instance_id, activity, ago in ACTIVITY:
                    await tx.execute(
                        "UPDATE instances SET activity = ?, activity_at = datetime('now', ?), "
                        "activity_detail = 'permission: Bash' WHERE id = ?",
                        (activity, f"-{ago} seconds", instance_id),
                    )
        finally:
            await db.close()

    anyio.run(main)


@pytest.fixture
def here(repo: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(repo)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "migrate"]).exit_code == 0
    seed(repo / ".git" / "codex-mcp" / "codex.db")
    return repo


def table_at(width: int, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    result = CliRunner().invoke(cli, list(args), prog_name="codex-mcp")
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_fits(out: str, width: int, whole: list[str]) -> None:
    """No line wider than ``width``; every id and date appears whole on one line."""
    lines = out.splitlines()
    too_wide = [line for line in lines if len(line) > width]
    assert not too_wide, f"lines wider than {width}:\n" + "\n".join(too_wide) + "\n\n" + out
    for text in whole:
        assert any(text in line for line in lines), f"{text!r} is not whole on one line:\n{out}"
    for line in lines:
        # A date cut in two would leave its halves at a line's end or start.
        assert not re.search(r"\d{4}-\d{2}-\d{2}\s*[│|]?\s*$", line), f"a date wraps:\n{out}"


WIDTHS = [80, 60]


@pytest.mark.parametrize("width", WIDTHS)
def test_ls_in_a_narrow_terminal(here: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    out = table_at(width, monkeypatch, "ls", "--all")
    dates = [f"2026-11-2{i[-1]} 10:11:12" for i in IDS]
    assert_fits(out, width, IDS + dates)
    assert "#12345" in out  # the issue column survives, its title shortened
    # Activity is among the last columns to go: it is what a person scans the list for.
    assert "waiting 2m" in out and "working 3h" in out, out
    assert out.splitlines()[2].startswith("work-5-a1"), out  # the waiting agent comes first
    assert len(out.splitlines()) <= 3 + 2 * len(IDS), out  # header, rule, rows: each at most two lines


@pytest.mark.parametrize("width", WIDTHS)
def test_events_in_a_narrow_terminal(here: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    out = table_at(width, monkeypatch, "events")
    assert_fits(out, width, ["work-12345-a12", "review-12345-a3"])
    assert len(DATE.findall(out)) == 3, out
    if width == 80:  # room for whole tool names once the duration and ok columns are left out
        assert "spawn_review_instance" in out and "1234.5" not in out


@pytest.mark.parametrize("width", WIDTHS)
def test_show_in_a_narrow_terminal(here: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    out = table_at(width, monkeypatch, "show", "review-12345-a3")
    table = out[out.index("recent tool calls") :]
    assert_fits(table, width, ["send_feedback"])
    assert len(DATE.findall(table)) == 1, table


@pytest.mark.parametrize("width", WIDTHS)
def test_issues_ls_in_a_narrow_terminal(here: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    out = table_at(width, monkeypatch, "issues", "ls")
    assert_fits(out, width, ["12345", "2026-11-21 09:30:00", "2026-11-20 08:00:00"])
    assert "Make the frobnicator" in out  # the title keeps room; labels and assignee give way first


@pytest.mark.parametrize("width", WIDTHS)
def test_config_ls_in_a_narrow_terminal(here: Path, monkeypatch: pytest.MonkeyPatch, width: int) -> None:
    ok = CliRunner().invoke(cli, ["config", "set", "editor.command", "code --wait --new-window {path}"])
    assert ok.exit_code == 0, ok.output
    out = table_at(width, monkeypatch, "config", "ls")
    assert_fits(out, width, ["editor.command", "terminal.theme"])
    assert len(DATE.findall(out)) == 1, out


@pytest.mark.parametrize("width", WIDTHS)
def test_ls_as_a_real_process(here: Path, cli_env: dict[str, str], width: int) -> None:
    done = run_cli("ls", "--all", cwd=here, env={**cli_env, "COLUMNS": str(width)})
    assert done.returncode == 0, done.stderr
    assert_fits(done.stdout, width, IDS)


def test_ls_in_a_wide_terminal_shows_every_column_whole(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = table_at(270, monkeypatch, "ls", "--all")
    header = out.splitlines()[0]
    for column in (
        "id",
        "type",
        "status",
        "activity",
        "issue",
        "branch",
        "tmux session",
        "pull request",
        "created (UTC)",
    ):
        assert column in header, header
    for text in (
        LONG_TITLE,
        "feature/a-rather-long-branch-name-for-the-splines-work",
        "#4321 (open)",
        "codex-adhoc-a7",
    ):
        assert text in out, out
    assert "…" not in out
    assert len(out.splitlines()) == 2 + len(IDS)  # one line a row
