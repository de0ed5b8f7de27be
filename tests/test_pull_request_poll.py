"""Following pull requests: merged and closed ones are seen, unchanged ones cost a 304, failures change
nothing and never end the poll loop; `issues sync` and `serve --transport http` refresh them too.

GitHub is the stand-in (a real HTTP server on 127.0.0.1); the database is a real SQLite file.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from github_standin import GitHubStandIn, RecordedRequest
from http_server import serve
from support import run_cli, wait_for

from codex_mcp.errors import ConfigError, UpstreamError
from codex_mcp.pulls import poll_pull_requests, polling_pull_requests, refresh_pull_request_states
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import NewInstance

TOKEN = "ghp_" + "t" * 36
REPO_PULLS = "/repos/octo/flux/pulls"


@pytest.fixture
def gh() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(owner="octo", repo="flux", expected_token=TOKEN) as standin:
        yield standin
    assert standin.errors == []


def github_env(env: dict[str, str], gh: GitHubStandIn) -> dict[str, str]:
    return {
        **env,
        "CODEX_MCP_GITHUB_API_URL": gh.base_url,
        "CODEX_MCP_GITHUB_REPO": "octo/flux",
        "GITHUB_TOKEN": TOKEN,
    }


@pytest.fixture
def gh_settings(repo: Path, env: dict[str, str], gh: GitHubStandIn) -> Settings:
    return Settings.load(github_env(env, gh), cwd=repo)


@pytest.fixture
async def gdb(gh_settings: Settings) -> AsyncIterator[Database]:
    database = await open_database(gh_settings.require_db_path())
    try:
        yield database
    finally:
        await database.close()


async def add_instance(
    db: Database, instance_id: str, pr_number: int | None, *, running: bool = True
) -> None:
    async with db.write() as tx:
        await instances_store.insert(
            tx,
            NewInstance(
                id=instance_id,
                type="work",
                worktree_path=f"/tmp/nowhere/{instance_id}",
                branch_name=f"codex/{instance_id}",
                base_branch="main",
                tmux_session=f"codex-{instance_id}",
                issue_number=1,
            ),
        )
        if pr_number is not None:
            await instances_store.set_pull_request(
                tx,
                instance_id,
                number=pr_number,
                url=f"https://github.com/octo/flux/pull/{pr_number}",
                state="open",
            )
        if not running:
            await instances_store.mark_terminated(tx, instance_id)


async def state_of(db: Database, instance_id: str) -> str | None:
    row = await instances_store.require(db, instance_id)
    return row.pr_state


async def has_state(db: Database, instance_id: str, state: str) -> bool:
    return await state_of(db, instance_id) == state


def pull_gets(gh: GitHubStandIn, number: int) -> list[RecordedRequest]:
    return [r for r in gh.requests_to(f"{REPO_PULLS}/{number}", "GET") if r.path == f"{REPO_PULLS}/{number}"]


async def test_merged_and_closed_pull_requests_are_seen_and_unchanged_ones_cost_a_304(
    gh: GitHubStandIn, gh_settings: Settings, gdb: Database
) -> None:
    merged = gh.add_pull("codex/work-1-a1", title="one")["number"]
    closed = gh.add_pull("codex/work-1-a2", title="two")["number"]
    still_open = gh.add_pull("codex/work-1-a3", title="three")["number"]
    await add_instance(gdb, "work-1-a1", merged)
    await add_instance(gdb, "work-1-a2", closed)
    await add_instance(gdb, "work-1-a3", still_open)

    # First round: every state is read (nothing changed yet: all open), each with no ETag to send.
    assert await refresh_pull_request_states(gh_settings, gdb) == 0
    for number in (merged, closed, still_open):
        (first,) = pull_gets(gh, number)
        assert "if-none-match" not in first.headers and first.status == 200

    gh.merge_pull(merged)
    gh.update_issue(closed, state="closed")
    assert await refresh_pull_request_states(gh_settings, gdb) == 2
    assert await state_of(gdb, "work-1-a1") == "merged"
    assert await state_of(gdb, "work-1-a2") == "closed"
    assert await state_of(gdb, "work-1-a3") == "open"
    # The unchanged pull request was asked with its ETag and answered 304 (no rate limit spent).
    second = pull_gets(gh, still_open)[1]
    assert second.headers["if-none-match"] and second.status == 304

    # A third round: nothing changed anywhere, every request is a 304, no row changes.
    gh.clear_requests()
    assert await refresh_pull_request_states(gh_settings, gdb) == 0
    for number in (merged, closed, still_open):
        (again,) = pull_gets(gh, number)
        assert again.headers["if-none-match"] and again.status == 304


async def test_only_running_instances_are_polled_and_none_means_no_request(
    gh: GitHubStandIn, gh_settings: Settings, gdb: Database
) -> None:
    await add_instance(gdb, "work-1-a1", None)
    assert await refresh_pull_request_states(gh_settings, gdb) == 0
    assert gh.requests == []  # no pull request to follow: GitHub is not asked at all

    number = gh.add_pull("codex/work-1-a2")["number"]
    await add_instance(gdb, "work-1-a2", number, running=False)
    gh.merge_pull(number)
    assert await refresh_pull_request_states(gh_settings, gdb) == 0
    assert gh.requests == [] and await state_of(gdb, "work-1-a2") == "open"


async def test_errors_and_rate_limits_change_nothing_and_say_what_happened(
    gh: GitHubStandIn, gh_settings: Settings, gdb: Database
) -> None:
    number = gh.add_pull("codex/work-1-a1")["number"]
    await add_instance(gdb, "work-1-a1", number)
    gh.merge_pull(number)

    gh.fail_server_error(502, path=f"{REPO_PULLS}/{number}")
    with pytest.raises(UpstreamError, match="502"):
        await refresh_pull_request_states(gh_settings, gdb)
    assert await state_of(gdb, "work-1-a1") == "open"

    gh.fail_rate_limited(reset_in=3600, path=f"{REPO_PULLS}/{number}")
    with pytest.raises(UpstreamError, match="rate limit"):
        await refresh_pull_request_states(gh_settings, gdb)
    assert await state_of(gdb, "work-1-a1") == "open"

    assert await refresh_pull_request_states(gh_settings, gdb) == 1
    assert await state_of(gdb, "work-1-a1") == "merged"


async def test_without_github_configured_the_refresh_is_a_config_error_and_asks_nothing(
    gh: GitHubStandIn, repo: Path, env: dict[str, str], gdb: Database
) -> None:
    await add_instance(gdb, "work-1-a1", gh.add_pull("codex/work-1-a1")["number"])
    settings = Settings.load({**github_env(env, gh), "GITHUB_TOKEN": ""}, cwd=repo)
    with pytest.raises(ConfigError, match="token"):
        await refresh_pull_request_states(settings, gdb)
    assert gh.requests == []


async def test_the_loop_logs_failures_and_goes_on_until_it_sees_the_merge(
    gh: GitHubStandIn, gh_settings: Settings, gdb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    number = gh.add_pull("codex/work-1-a1")["number"]
    await add_instance(gdb, "work-1-a1", number)
    gh.merge_pull(number)
    gh.fail_server_error(500, times=2, path=f"{REPO_PULLS}/{number}")
    caplog.set_level(logging.WARNING, logger="codex_mcp.pulls")

    async with anyio.create_task_group() as group:
        group.start_soon(lambda: poll_pull_requests(gh_settings, gdb, interval=0.05))
        await wait_for(lambda: has_state(gdb, "work-1-a1", "merged"))
        group.cancel_scope.cancel()
    warnings = [r.getMessage() for r in caplog.records if r.name == "codex_mcp.pulls"]
    assert len(warnings) == 2 and all("500" in w and "next round" in w for w in warnings), warnings


async def test_the_loop_is_quiet_when_github_is_not_configured(
    gh: GitHubStandIn, repo: Path, env: dict[str, str], gdb: Database, caplog: pytest.LogCaptureFixture
) -> None:
    number = gh.add_pull("codex/work-1-a1")["number"]
    await add_instance(gdb, "work-1-a1", number)
    settings = Settings.load({**github_env(env, gh), "GITHUB_TOKEN": ""}, cwd=repo)
    caplog.set_level(logging.INFO, logger="codex_mcp")
    rounds: list[int] = []

    async def count_rounds() -> None:
        # Three rounds of the loop go by (it sleeps between them), then it is stopped.
        while len(rounds) < 3:
            rounds.append(1)
            await anyio.sleep(0.05)

    async with polling_pull_requests(settings, gdb, interval=0.01):
        await count_rounds()
    assert gh.requests == []
    assert [r for r in caplog.records if r.levelno >= logging.INFO and r.name == "codex_mcp.pulls"] == []


async def test_issues_sync_keeps_the_pull_requests_etags(
    gh: GitHubStandIn, gh_settings: Settings, gdb: Database
) -> None:
    from codex_mcp.issue_cache import sync

    number = gh.add_pull("codex/work-1-a1")["number"]
    await add_instance(gdb, "work-1-a1", number)
    await refresh_pull_request_states(gh_settings, gdb)
    await sync(gh_settings, gdb)  # replaces the listing's ETags, not the pull requests'
    gh.clear_requests()
    await refresh_pull_request_states(gh_settings, gdb)
    (again,) = pull_gets(gh, number)
    assert again.status == 304


# ------------------------------------------------------------------------------ the CLI and the server


async def test_issues_sync_refreshes_them_and_ls_and_show_show_the_state(
    gh: GitHubStandIn, repo: Path, cli_env: dict[str, str], gh_settings: Settings, gdb: Database
) -> None:
    merged = gh.add_pull("codex/work-1-a1")["number"]
    closed = gh.add_pull("codex/work-1-a2")["number"]
    await add_instance(gdb, "work-1-a1", merged)
    await add_instance(gdb, "work-1-a2", closed)
    # Changed on GitHub without touching the issue listing's view of them: only the per-PR poll sees it.
    gh.merge_pull(merged)
    gh.update_issue(closed, state="closed")
    env = {**github_env(cli_env, gh), "COLUMNS": "200"}

    done = run_cli("issues", "sync", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    assert "pull request state(s) updated" in done.stdout
    assert await state_of(gdb, "work-1-a1") == "merged"
    assert await state_of(gdb, "work-1-a2") == "closed"

    listed = run_cli("ls", cwd=repo, env=env)
    assert f"#{merged} (merged)" in listed.stdout and f"#{closed} (closed)" in listed.stdout, listed.stdout
    shown = run_cli("show", "work-1-a1", cwd=repo, env=env)
    assert f"pull request: #{merged} (merged)" in shown.stdout, shown.stdout


async def test_serve_over_http_polls_them(
    gh: GitHubStandIn, repo: Path, cli_env: dict[str, str], gdb: Database
) -> None:
    number = gh.add_pull("codex/work-1-a1")["number"]
    await add_instance(gdb, "work-1-a1", number)
    env = github_env(cli_env, gh)
    assert run_cli("config", "set", "github.poll_seconds", "1", cwd=repo, env=env).returncode == 0

    with serve(repo, env):
        await wait_for(lambda: pull_gets(gh, number))  # the first round: still open
        gh.merge_pull(number)
        await wait_for(lambda: has_state(gdb, "work-1-a1", "merged"))
