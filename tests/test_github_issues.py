"""The GitHub issue cache end to end: `sync_issues` / `codex-mcp issues sync` against the GitHub stand-in
(a real HTTP server on 127.0.0.1), `list_issues` / `get_issue` / `codex-mcp issues ls` reading the cache,
pull-request states in `ls` / `show`, and `start --issue N` using (or fetching) the cached issue.

Every sync is checked against what GitHub received (exactly), the rows it left in ``github_issues``,
``github_sync_pages`` and ``instances``, and, through the tool, its ``mcp_events`` row. Every fault must
be a clear error that leaves the cache exactly as it was.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import pytest
from github_standin import GitHubStandIn, RecordedRequest, iso
from mcp import Client
from support import (
    GITHUB_TOKEN,
    cli_ok,
    db_file,
    event_rows,
    failed,
    invoke,
    ok,
    one_line_error,
    unused_port_url,
)

from codex_mcp import github as github_module
from codex_mcp.app import App
from codex_mcp.errors import StateError, UpstreamError
from codex_mcp.identity import Caller, resolve_caller
from codex_mcp.issue_cache import fetch_issue, sync
from codex_mcp.outcomes import SyncResult
from codex_mcp.server import build_server
from codex_mcp.settings import GitHubLimits, Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store.instances import NewInstance

TOKEN = GITHUB_TOKEN  # what the `gh` stand-in (conftest) expects
START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LISTING = "/repos/octo/flux/issues"
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
SQLITE_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
SENTINEL = "2000-01-01 00:00:00"
ISSUE_COLUMNS = {
    "number",
    "title",
    "body",
    "state",
    "assignee",
    "labels",
    "created_at",
    "updated_at",
    "synced_at",
    "repo_owner",
    "repo_name",
}


# --------------------------------------------------------------------------------------------- helpers


def minutes(n: float) -> str:
    stamp = iso(START + timedelta(minutes=n))
    assert stamp is not None
    return stamp


def github_env(gh: GitHubStandIn, env: dict[str, str], **overrides: str | None) -> dict[str, str]:
    mapping = {
        **env,
        "CODEX_MCP_GITHUB_API_URL": gh.base_url,
        "CODEX_MCP_GITHUB_REPO": "octo/flux",
        "GITHUB_TOKEN": TOKEN,
    }
    for key, value in overrides.items():
        if value is None:
            mapping.pop(key, None)
        else:
            mapping[key] = value
    return mapping


def listing(gh: GitHubStandIn) -> list[RecordedRequest]:
    """The issue-listing requests GitHub received, in order."""
    return [r for r in gh.requests_to(LISTING, "GET") if r.path == LISTING]


def pages_asked(gh: GitHubStandIn) -> list[tuple[str | None, str | None]]:
    """(page, since) of every listing request."""
    return [(r.query.get("page"), r.query.get("since")) for r in listing(gh)]


async def issue_rows(db: Database) -> dict[int, dict[str, Any]]:
    return {int(r["number"]): dict(r) for r in await db.fetchall("SELECT * FROM github_issues")}


async def page_rows(db: Database) -> list[dict[str, Any]]:
    rows = await db.fetchall("SELECT request, etag, next_request FROM github_sync_pages ORDER BY request")
    return [dict(r) for r in rows]


async def newest_cached(db: Database) -> str:
    row = await db.fetchone("SELECT MAX(updated_at) FROM github_issues")
    assert row is not None and row[0]
    return str(row[0])


async def mark_synced_at(db: Database, value: str = SENTINEL) -> None:
    async with db.write() as tx:
        await tx.execute("UPDATE github_issues SET synced_at = ?", (value,))


async def call(app: App, name: str, arguments: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    async with Client(build_server(app)) as client:
        return await client.call_tool(name, arguments or {}, **kwargs)


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def make_settings(gh: GitHubStandIn, env: dict[str, str], repo: Path) -> Callable[..., Settings]:
    """Settings for the repo talking to the stand-in; keyword overrides set (or, with None, drop) variables,
    ``limits`` replaces the GitHub request timeout and rate-limit bound."""

    def make(*, limits: GitHubLimits | None = None, **overrides: str | None) -> Settings:
        settings = Settings.load(github_env(gh, env, **overrides), cwd=repo)
        return settings if limits is None else replace(settings, github_limits=limits)

    return make


@pytest.fixture
async def gdb(make_settings: Callable[..., Settings]) -> AsyncIterator[Database]:
    database = await open_database(make_settings().require_db_path())
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def make_app(make_settings: Callable[..., Settings], gdb: Database) -> Callable[..., Any]:
    """An App (the adhoc instance of the repo as caller) with settings overridden like make_settings."""

    async def make(**overrides: Any) -> App:
        settings = make_settings(**overrides)
        return App(settings=settings, db=gdb, caller=await resolve_caller(settings, gdb))

    return make


# ------------------------------------------------------------------------------ 1. the first sync


async def test_first_sync_pages_through_every_issue_and_caches_each_field(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], gdb: Database
) -> None:
    gh.add_many_issues(246, START)  # 1..246, one a minute
    gh.add_issue(
        247,
        "Crash when saving 'naïve.txt' — \"quotes\" & <tags> 💥",
        body="Steps:\n1. save `naïve.txt`\n2. boom\n\n```py\nprint('x')\n```",
        state="closed",
        labels=["bug", "good first issue"],
        assignee="alice",
        created_at=START - timedelta(days=3),
        updated_at=minutes(300),
    )
    gh.add_issue(248, "Dark mode", labels=["enhancement"], created_at=START, updated_at=minutes(301))
    gh.add_issue(249, "Assigned, no labels", body="", assignee="bob", updated_at=minutes(302))
    gh.add_issue(250, "Newest issue", body="the newest", updated_at=minutes(303))
    open_pr = gh.add_pull("feature-a", title="An open pull request")["number"]
    merged_pr = gh.add_pull("feature-b", title="A merged one", merged_at=minutes(200))["number"]
    gh.add_issue(253, "A PR seen only through the issues view", pull_request=True, updated_at=minutes(100))
    assert {open_pr, merged_pr} == {251, 252}

    result = await sync(make_settings(), gdb)

    # Every page of the listing (253 items: 100 a page), then the listing from the new watermark once.
    newest = minutes(303)
    assert pages_asked(gh) == [("1", None), ("2", None), ("3", None), ("1", newest)]
    for request in listing(gh):
        assert request.query["per_page"] == "100"
        assert request.query["state"] == "all"
        assert request.headers["authorization"] in (f"token {TOKEN}", f"Bearer {TOKEN}")
        assert "if-none-match" not in request.headers  # nothing known yet
    assert [r.method for r in gh.requests] == ["GET"] * 4
    assert result == SyncResult(
        repository="octo/flux",
        fetched=250,
        changed=250,
        unchanged=0,
        pages=4,
        not_modified_pages=0,
        pull_requests_updated=0,
    )

    rows = await issue_rows(gdb)
    assert set(rows) == set(range(1, 251))  # pull requests left out
    assert rows[247] == {
        "number": 247,
        "title": "Crash when saving 'naïve.txt' — \"quotes\" & <tags> 💥",
        "body": "Steps:\n1. save `naïve.txt`\n2. boom\n\n```py\nprint('x')\n```",
        "state": "closed",
        "assignee": "alice",
        "labels": rows[247]["labels"],
        "created_at": iso(START - timedelta(days=3)),
        "updated_at": minutes(300),
        "synced_at": rows[247]["synced_at"],
        "repo_owner": "octo",
        "repo_name": "flux",
    }
    assert json.loads(rows[247]["labels"]) == ["bug", "good first issue"]  # a JSON array of names
    assert rows[248]["labels"] == '["enhancement"]' and rows[248]["assignee"] is None
    assert rows[249]["assignee"] == "bob" and rows[249]["body"] == "" and rows[249]["labels"] == "[]"
    assert rows[1] == {
        **rows[1],
        "title": "Issue 1",
        "body": None,
        "state": "open",
        "labels": "[]",
        "created_at": minutes(0),
        "updated_at": minutes(0),
    }
    for row in rows.values():
        assert SQLITE_TIME.fullmatch(row["synced_at"]), row
        assert ISO.fullmatch(row["created_at"]) and ISO.fullmatch(row["updated_at"])
        assert (row["repo_owner"], row["repo_name"]) == ("octo", "flux")
    cached = await issues_store.get(gdb, 247)
    assert cached is not None and cached.labels == ["bug", "good first issue"]

    # The ETags kept are those of the listing the next sync will ask: from the newest updated_at.
    pages = await page_rows(gdb)
    assert len(pages) == 1
    assert f"since={quote(newest, safe='')}" in pages[0]["request"]
    assert pages[0]["request"].startswith("octo/flux issues?")
    assert pages[0]["etag"] and pages[0]["next_request"] is None
    assert TOKEN not in json.dumps(pages)


async def test_a_fault_on_page_3_leaves_the_cache_empty(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], gdb: Database
) -> None:
    gh.add_many_issues(250, START)
    collecting: list[bool] = []

    async def progress(done: float, total: float | None, message: str) -> None:
        collecting.append(gc.isenabled())
        if done == 2:  # pages 1 and 2 are in hand: page 3 fails
            gh.fail_server_error(502)

    assert gc.isenabled()
    with pytest.raises(UpstreamError, match="502") as caught:
        await sync(make_settings(), gdb, progress=progress)

    assert "retry" in str(caught.value)
    # No garbage collection while the pages came in (they make no cycles); it runs again after the failure.
    assert collecting == [False, False] and gc.isenabled()
    assert pages_asked(gh) == [("1", None), ("2", None), ("3", None)]
    # Everything is written in one transaction at the end: nothing of pages 1 and 2 was kept.
    assert await issue_rows(gdb) == {}
    assert await page_rows(gdb) == []


async def test_a_fault_in_a_later_sync_keeps_the_previous_cache_and_etags(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], gdb: Database
) -> None:
    gh.add_many_issues(5, START)
    await sync(make_settings(), gdb)
    rows_before, pages_before = await issue_rows(gdb), await page_rows(gdb)
    gh.update_issue(2, title="Changed upstream", labels=["bug"])
    gh.add_issue(6, "New upstream")
    gh.clear_requests()

    async def progress(done: float, total: float | None, message: str) -> None:
        if done == 1:  # the changes are in hand; the listing from the new watermark fails
            gh.fail_server_error(500)

    with pytest.raises(UpstreamError, match="500"):
        await sync(make_settings(), gdb, progress=progress)

    assert [p for p, _ in pages_asked(gh)] == ["1", "1"]
    assert await issue_rows(gdb) == rows_before
    assert await page_rows(gdb) == pages_before

    result = await sync(make_settings(), gdb)  # and a retry catches up
    assert (result.fetched, result.changed) == (3, 2)  # since is inclusive: issue 5 again, unchanged
    rows = await issue_rows(gdb)
    assert rows[2]["title"] == "Changed upstream" and rows[6]["title"] == "New upstream"


# --------------------------------------------------------------------------- 2. incremental and 304s


async def test_incremental_sync_uses_since_and_etags_and_rewrites_only_what_changed(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], gdb: Database
) -> None:
    gh.add_many_issues(120, START)  # 1..120, one a minute
    same_time = START + timedelta(days=1)
    gh.add_many_issues(130, same_time, step=timedelta(0))  # 121..250, all updated at the same second
    pr = gh.add_pull("feature")["number"]
    settings = make_settings()

    first = await sync(settings, gdb)
    watermark = iso(same_time)
    assert pages_asked(gh) == [("1", None), ("2", None), ("3", None), ("1", watermark), ("2", watermark)]
    assert (first.fetched, first.changed, first.pages) == (250, 250, 5)
    stored = await page_rows(gdb)
    assert len(stored) == 2  # the two pages of the listing from the watermark, with page 1 -> page 2
    assert sorted(bool(p["next_request"]) for p in stored) == [False, True]
    etags = {p["request"]: p["etag"] for p in stored}
    await mark_synced_at(gdb)

    # Nothing changed: the same two requests, conditional, both answered 304.
    gh.clear_requests()
    second = await sync(settings, gdb)
    assert await newest_cached(gdb) == watermark
    assert pages_asked(gh) == [("1", watermark), ("2", watermark)]
    for request in listing(gh):
        assert ISO.fullmatch(request.query["since"])
        assert request.headers["if-none-match"] in etags.values()
    assert [r.headers["if-none-match"] for r in listing(gh)] == [
        etags[next(k for k in etags if "page=1&" in k)],
        etags[next(k for k in etags if "page=2&" in k)],
    ]
    assert second == SyncResult(
        repository="octo/flux",
        fetched=0,
        changed=0,
        unchanged=0,
        pages=2,
        not_modified_pages=2,
        pull_requests_updated=0,
    )
    assert {r["synced_at"] for r in (await issue_rows(gdb)).values()} == {SENTINEL}
    assert await page_rows(gdb) == stored

    # One issue changed and one is new: those arrive and only those are rewritten.
    gh.update_issue(5, title="Renamed", labels=["bug", "ui"], assignee="bob", state="closed")
    new_number = gh.next_number()
    assert new_number != pr
    gh.add_issue(new_number, "Brand new", body="fresh")
    gh.clear_requests()
    third = await sync(settings, gdb)
    first_request = listing(gh)[0]
    assert first_request.query["since"] == watermark
    assert first_request.headers["if-none-match"] == etags[next(k for k in etags if "page=1&" in k)]
    # Page 1 (issues 121..220) is as it was: 304; page 2 carries the changes (and 221..250 again).
    assert (third.changed, third.fetched, third.unchanged) == (2, 32, 30)
    assert third.not_modified_pages == 1
    rows = await issue_rows(gdb)
    assert rows[5]["title"] == "Renamed" and rows[5]["state"] == "closed" and rows[5]["assignee"] == "bob"
    assert json.loads(rows[5]["labels"]) == ["bug", "ui"]
    assert rows[new_number]["title"] == "Brand new" and rows[new_number]["body"] == "fresh"
    rewritten = {n for n, r in rows.items() if r["synced_at"] != SENTINEL}
    assert rewritten == {5, new_number}
    assert pr not in rows

    # And unchanged again: from the new watermark, only 304s.
    gh.clear_requests()
    fourth = await sync(settings, gdb)
    newest = await newest_cached(gdb)
    assert newest > watermark
    assert {since for _, since in pages_asked(gh)} == {newest}
    assert all("if-none-match" in r.headers for r in listing(gh))
    assert fourth.not_modified_pages == fourth.pages and fourth.changed == 0 and fourth.fetched == 0


async def test_an_issue_fetched_alone_does_not_hide_older_issues_from_the_next_sync(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], gdb: Database
) -> None:
    """`start --issue N` caches issue N; the sync after it must still fetch the issues updated before N."""
    gh.add_many_issues(5, START)
    gh.add_issue(9, "Recent one", body="text", updated_at=minutes(60))
    settings = make_settings()
    fetched = await fetch_issue(settings, gdb, 9)
    assert fetched is not None and fetched.title == "Recent one"
    assert set(await issue_rows(gdb)) == {9}

    result = await sync(settings, gdb)
    assert set(await issue_rows(gdb)) == {1, 2, 3, 4, 5, 9}
    assert pages_asked(gh)[0] == ("1", None)  # no sync yet: the whole listing
    assert (result.fetched, result.changed, result.unchanged) == (6, 5, 1)


# --------------------------------------------------------------------------- 3. pull-request states


def seed_instances(db_path: Path, worktree: Path, prs: dict[str, tuple[int, str]]) -> None:
    async def main() -> None:
        db = await open_database(db_path)
        try:
            async with db.write() as tx:
                for n, (instance_id, (number, url)) in enumerate(prs.items(), start=1):
                    await instances_store.insert(
                        tx,
                        NewInstance(
                            id=instance_id,
                            type="work",
                            worktree_path=str(worktree / instance_id),
                            branch_name=f"codex/{instance_id}",
                            base_branch="main",
                            tmux_session=instance_id,
                            issue_number=n,
                        ),
                    )
                    await instances_store.set_pull_request(
                        tx, instance_id, number=number, url=url, state="open"
                    )
        finally:
            await db.close()

    anyio.run(main)


def pr_states(db_path: Path) -> dict[str, tuple[int, str | None]]:
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT id, pr_number, pr_state FROM instances WHERE pr_number IS NOT NULL ORDER BY id"
        ).fetchall()
    conn.close()
    return {str(r[0]): (int(r[1]), r[2]) for r in rows}


@pytest.fixture
def here(
    gh: GitHubStandIn, repo: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., None]:
    """Run the CLI inside the repository with the stand-in's variables (call it again to change some)."""
    monkeypatch.chdir(repo)
    monkeypatch.setenv("COLUMNS", "250")

    def set_env(**overrides: str | None) -> None:
        for key in ("CODEX_MCP_GITHUB_API_URL", "CODEX_MCP_GITHUB_REPO", "GITHUB_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        for key, value in github_env(gh, env, **overrides).items():
            monkeypatch.setenv(key, value)

    set_env()
    return set_env


def test_sync_refreshes_pull_request_states_shown_by_ls_and_show(
    gh: GitHubStandIn, here: Callable[..., None], repo: Path, tmp_path: Path
) -> None:
    gh.add_many_issues(3, START)
    merged = gh.add_pull("codex/work-1-a1", title="Work on 1")
    closed = gh.add_pull("codex/work-2-a1", title="Work on 2")
    gh.add_pull("someone-else", title="Not ours")
    cli_ok("issues", "sync")  # creates the database
    path = db_file(repo)
    seed_instances(
        path,
        tmp_path,
        {
            "work-1-a1": (merged["number"], merged["html_url"]),
            "work-2-a1": (closed["number"], closed["html_url"]),
        },
    )

    out = cli_ok("issues", "sync").stdout
    assert "pull request state" not in out  # still open, as recorded
    assert pr_states(path) == {
        "work-1-a1": (merged["number"], "open"),
        "work-2-a1": (closed["number"], "open"),
    }

    gh.merge_pull(merged["number"])
    gh.update_issue(closed["number"], state="closed")
    data = json.loads(cli_ok("issues", "sync", "--json").stdout)
    assert data["pull_requests_updated"] == 2
    assert (data["fetched"], data["changed"]) == (1, 0)  # issue 3 again (since is inclusive), unchanged
    assert pr_states(path) == {
        "work-1-a1": (merged["number"], "merged"),
        "work-2-a1": (closed["number"], "closed"),
    }
    again = json.loads(cli_ok("issues", "sync", "--json").stdout)
    assert again["pull_requests_updated"] == 0

    table = cli_ok("ls").stdout
    assert f"#{merged['number']} (merged)" in table
    assert f"#{closed['number']} (closed)" in table
    listed = {r["id"]: r for r in json.loads(cli_ok("ls", "--json").stdout)}
    assert listed["work-1-a1"]["pr_state"] == "merged"
    assert listed["work-1-a1"]["pr_url"] == merged["html_url"]
    assert listed["work-1-a1"]["issue_title"] == "Issue 1"
    shown = cli_ok("show", "work-1-a1").stdout
    assert f"pull request: #{merged['number']} (merged) {merged['html_url']}" in shown
    shown_json = json.loads(cli_ok("show", "work-2-a1", "--json").stdout)
    assert shown_json["instance"]["pr_state"] == "closed"


# --------------------------------------------------------------------------- 4. another repository


async def test_a_sync_for_another_repository_is_refused_and_changes_nothing(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], make_app: Callable[..., Any], gdb: Database
) -> None:
    gh.add_many_issues(3, START)
    await sync(make_settings(), gdb)
    rows, pages = await issue_rows(gdb), await page_rows(gdb)
    gh.clear_requests()

    with pytest.raises(StateError) as caught:
        await sync(make_settings(CODEX_MCP_GITHUB_REPO="other/repo"), gdb)
    message = str(caught.value)
    assert "octo/flux" in message and "other/repo" in message and "CODEX_MCP_DB" in message

    app = await make_app(CODEX_MCP_GITHUB_REPO="other/repo")
    text = failed(await call(app, "sync_issues"))
    assert "octo/flux" in text and "other/repo" in text
    assert gh.requests == []  # refused before asking GitHub anything
    assert await issue_rows(gdb) == rows
    assert await page_rows(gdb) == pages
    events = await event_rows(gdb)
    assert [(e["tool_name"], e["success"]) for e in events] == [("sync_issues", 0)]
    assert "other/repo" in events[0]["error_message"]


# --------------------------------------------------------------------------------------- 5. faults


def _bad_token(gh: GitHubStandIn) -> dict[str, Any]:
    return {"GITHUB_TOKEN": "ghp_wrongwrongwrongwrongwrongwrongwrong0"}


def _unauthorized(gh: GitHubStandIn) -> dict[str, Any]:
    gh.fail_unauthorized()
    return {}


def _forbidden(gh: GitHubStandIn) -> dict[str, Any]:
    gh.fail_forbidden()
    return {}


def _rate_limited(gh: GitHubStandIn) -> dict[str, Any]:
    gh.fail_rate_limited(reset_in=3600)
    return {}


def _too_many_too_long(gh: GitHubStandIn) -> dict[str, Any]:
    gh.fail_too_many(retry_after=120)
    return {}


def _server_error(gh: GitHubStandIn) -> dict[str, Any]:
    gh.fail_server_error(502)
    return {}


def _unavailable(gh: GitHubStandIn) -> dict[str, Any]:
    gh.fail_server_error(503)
    return {}


def _timeout(gh: GitHubStandIn) -> dict[str, Any]:
    gh.delay(5)
    return {"limits": GitHubLimits(request_timeout=0.5)}


def _not_github_html(gh: GitHubStandIn) -> dict[str, Any]:
    gh.not_github("html")
    return {}


def _not_github_json(gh: GitHubStandIn) -> dict[str, Any]:
    gh.not_github("json")
    return {}


def _unreachable(gh: GitHubStandIn) -> dict[str, Any]:
    return {"CODEX_MCP_GITHUB_API_URL": unused_port_url()}


def _no_token(gh: GitHubStandIn) -> dict[str, Any]:
    return {"GITHUB_TOKEN": None}


FAULTS = [
    pytest.param(_bad_token, ["401", "GITHUB_TOKEN", "list issues"], id="bad-token"),
    pytest.param(_unauthorized, ["401", "Bad credentials", "expired or revoked"], id="401"),
    pytest.param(_forbidden, ["403", "octo/flux", "'Issues' permissions"], id="403"),
    pytest.param(_rate_limited, ["rate limit", "retry after"], id="rate-limited-403"),
    pytest.param(_too_many_too_long, ["rate limit", "retry after 120 s"], id="rate-limited-429"),
    pytest.param(_server_error, ["502", "GitHub's side", "retry"], id="502"),
    pytest.param(_unavailable, ["503", "GitHub's side"], id="503"),
    pytest.param(_timeout, ["did not answer within 0.5 s", "retry"], id="timeout"),
    pytest.param(_not_github_html, ["not like GitHub's REST API", "CODEX_MCP_GITHUB_API_URL"], id="html"),
    pytest.param(_not_github_json, ["not like GitHub's REST API"], id="foreign-json"),
    pytest.param(_unreachable, ["cannot reach GitHub", "CODEX_MCP_GITHUB_API_URL"], id="unreachable"),
    pytest.param(_no_token, ["no GitHub token", "GITHUB_TOKEN"], id="no-token"),
]


@pytest.mark.parametrize(("setup", "needles"), FAULTS)
async def test_each_fault_is_a_clear_error_a_failed_event_and_no_change(
    setup: Callable[[GitHubStandIn], dict[str, Any]],
    needles: list[str],
    gh: GitHubStandIn,
    make_settings: Callable[..., Settings],
    make_app: Callable[..., Any],
    gdb: Database,
) -> None:
    gh.add_many_issues(3, START)
    await sync(make_settings(), gdb)
    rows, pages = await issue_rows(gdb), await page_rows(gdb)
    gh.update_issue(1, title="Changed upstream")
    gh.add_issue(4, "New upstream")
    overrides = setup(gh)
    app = await make_app(**overrides)

    started = time.monotonic()
    text = failed(await call(app, "sync_issues"))
    assert time.monotonic() - started < 10  # no long wait

    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"
    assert TOKEN not in text and "internal error" not in text
    if "retry after" in needles:
        seconds = int(re.search(r"retry after (\d+) s", text).group(1))  # type: ignore[union-attr]
        assert 3500 <= seconds <= 3601
    assert await issue_rows(gdb) == rows  # nothing half-updated
    assert await page_rows(gdb) == pages
    events = await event_rows(gdb)
    assert [(e["tool_name"], e["success"]) for e in events] == [("sync_issues", 0)]
    assert events[0]["error_message"] and text.endswith(events[0]["error_message"])
    assert TOKEN not in json.dumps(events)


async def test_a_short_secondary_rate_limit_is_waited_out(
    gh: GitHubStandIn, make_app: Callable[..., Any], gdb: Database
) -> None:
    gh.add_many_issues(3, START)
    gh.fail_too_many(retry_after=1)
    app = await make_app()

    started = time.monotonic()
    data = ok(await call(app, "sync_issues"))
    elapsed = time.monotonic() - started

    assert elapsed >= 0.9  # it waited the retry-after
    assert (data["fetched"], data["changed"]) == (3, 3)
    assert pages_asked(gh)[:2] == [("1", None), ("1", None)]  # the refused page, asked again
    assert set(await issue_rows(gdb)) == {1, 2, 3}
    assert [(e["tool_name"], e["success"]) for e in await event_rows(gdb)] == [("sync_issues", 1)]


async def test_the_rate_limit_wait_is_bounded(
    gh: GitHubStandIn,
    make_settings: Callable[..., Settings],
    gdb: Database,
) -> None:
    gh.add_many_issues(3, START)
    # A lower bound turns the wait into an error.
    gh.fail_too_many(retry_after=1)
    started = time.monotonic()
    with pytest.raises(UpstreamError, match=r"retry after 1 s"):
        await sync(make_settings(limits=GitHubLimits(max_rate_limit_wait=0.5)), gdb)
    assert time.monotonic() - started < 0.9
    assert len(listing(gh)) == 1
    assert await issue_rows(gdb) == {}

    # A limit that keeps coming back is retried a bounded number of times, then reported.
    gh.clear_faults()
    gh.clear_requests()
    gh.fail_too_many(retry_after=0, times=None)
    with pytest.raises(UpstreamError, match="rate limit"):
        await sync(make_settings(limits=GitHubLimits(max_rate_limit_wait=30.0)), gdb)
    assert len(listing(gh)) == github_module.MAX_RATE_LIMIT_RETRIES + 1
    assert await issue_rows(gdb) == {}


# ------------------------------------------------------------------------------ 6. reading the cache


async def seed_issues(gh: GitHubStandIn, settings: Settings, db: Database) -> None:
    gh.add_issue(
        1, "Crash on save", body="Saving naïve.txt crashes", labels=["bug"], assignee="alice",
        created_at=minutes(0), updated_at=minutes(1),
    )  # fmt: skip
    gh.add_issue(2, "Dark mode", labels=["enhancement", "ui"], assignee="bob", updated_at=minutes(2))
    gh.add_issue(
        3, "Old crash", body="fixed long ago", state="closed", labels=["bug"], assignee="alice",
        updated_at=minutes(3),
    )  # fmt: skip
    gh.add_issue(4, "Docs typo", body="The README says CRASH twice", updated_at=minutes(4))
    gh.add_issue(5, "A pull request", pull_request=True, updated_at=minutes(5))
    await sync(settings, db)


async def test_list_issues_and_get_issue_read_the_cache(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], make_app: Callable[..., Any], gdb: Database
) -> None:
    await seed_issues(gh, make_settings(), gdb)
    gh.clear_requests()
    app = await make_app()

    async def numbers(**arguments: Any) -> list[int]:
        data = ok(await call(app, "list_issues", arguments))
        assert data["count"] == len(data["issues"])
        return [i["number"] for i in data["issues"]]

    assert await numbers() == [4, 2, 1]  # open by default, most recently updated first
    assert await numbers(state="closed") == [3]
    assert await numbers(state="all") == [4, 3, 2, 1]  # never the pull request
    assert await numbers(label="bug") == [1]
    assert await numbers(label="bug", state="all") == [3, 1]
    assert await numbers(label="ui") == [2]
    assert await numbers(label="u") == []  # whole label names only
    assert await numbers(assignee="alice", state="all") == [3, 1]
    assert await numbers(assignee="nobody") == []
    assert await numbers(text="crash", state="all") == [4, 3, 1]  # title or body, any case
    assert await numbers(text="SAVING NAÏVE") == [1]  # any letters in any case (Unicode case folding)
    assert await numbers(label="bug", assignee="alice", text="old", state="all") == [3]
    limited = ok(await call(app, "list_issues", {"state": "all", "limit": 2}))
    assert [i["number"] for i in limited["issues"]] == [4, 3]
    assert (limited["count"], limited["truncated"]) == (2, True)
    assert ok(await call(app, "list_issues", {"state": "all", "limit": 4}))["truncated"] is False

    issue = ok(await call(app, "get_issue", {"number": 1}))
    assert issue == {
        "number": 1,
        "title": "Crash on save",
        "body": "Saving naïve.txt crashes",
        "state": "open",
        "assignee": "alice",
        "labels": ["bug"],
        "created_at": minutes(0),
        "updated_at": minutes(1),
        "synced_at": issue["synced_at"],
        "repo_owner": "octo",
        "repo_name": "flux",
    }
    assert SQLITE_TIME.fullmatch(issue["synced_at"])
    for missing in (99, 5):
        text = failed(await call(app, "get_issue", {"number": missing}))
        assert f"issue #{missing} is not in the cache" in text and "sync_issues" in text
    assert gh.requests == []  # reads never reach GitHub
    outcomes = [(e["tool_name"], e["success"]) for e in await event_rows(gdb)]
    assert outcomes[-3:] == [("get_issue", 1), ("get_issue", 0), ("get_issue", 0)]
    assert ("list_issues", 1) in outcomes


def test_issues_sync_and_issues_ls_commands(gh: GitHubStandIn, here: Callable[..., None]) -> None:
    gh.add_issue(1, "Crash on save", body="boom", labels=["bug"], assignee="alice", updated_at=minutes(1))
    gh.add_issue(2, "Dark mode", labels=["ui"], updated_at=minutes(2))
    gh.add_issue(3, "Old crash", state="closed", labels=["bug"], updated_at=minutes(3))
    gh.add_pull("feature")

    empty = cli_ok("issues", "ls").stdout
    assert "No cached issues match" in empty and "issues sync" in empty

    out = cli_ok("issues", "sync").stdout
    assert out.strip() == (
        "octo/flux: 3 issue(s) received, 3 new or changed, 0 unchanged; 2 page(s), 0 not modified"
    )
    again = json.loads(cli_ok("issues", "sync", "--json").stdout)
    assert again == {
        "repository": "octo/flux",
        "fetched": 0,
        "changed": 0,
        "unchanged": 0,
        "pages": 1,
        "not_modified_pages": 1,
        "pull_requests_updated": 0,
    }

    table = cli_ok("issues", "ls").stdout
    assert "Crash on save" in table and "Dark mode" in table and "Old crash" not in table
    assert "alice" in table and minutes(2) in table
    rows = json.loads(cli_ok("issues", "ls", "--json", "--state", "all").stdout)
    assert [r["number"] for r in rows] == [3, 2, 1]
    assert all(set(r) == ISSUE_COLUMNS for r in rows)  # keyed by the table's column names
    assert rows[2]["labels"] == ["bug"] and rows[2]["assignee"] == "alice" and rows[2]["body"] == "boom"

    def numbers(*args: str) -> list[int]:
        return [r["number"] for r in json.loads(cli_ok("issues", "ls", "--json", *args).stdout)]

    assert numbers("--label", "bug", "--state", "all") == [3, 1]
    assert numbers("--assignee", "alice") == [1]
    assert numbers("--text", "CRASH", "--state", "closed") == [3]
    assert numbers("--state", "all", "--limit", "1") == [3]
    assert numbers("--label", "nope") == []
    assert "No cached issues match" in cli_ok("issues", "ls", "--label", "nope").stdout

    # A failure is one line on stderr and a non-zero exit; the cache is untouched.
    here(GITHUB_TOKEN="ghp_wrongwrongwrongwrongwrongwrongwrong0")
    line = one_line_error(invoke("issues", "sync"), "401", "GITHUB_TOKEN")
    assert "ghp_wrong" not in line
    here(GITHUB_TOKEN=None)
    one_line_error(invoke("issues", "sync"), "no GitHub token")
    assert numbers("--state", "all") == [3, 2, 1]


# ------------------------------------------------------------------------------ 7. start --issue N


@pytest.fixture
def start_settings(gh: GitHubStandIn, lifecycle_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def make(**overrides: str | None) -> Settings:
        mapping = github_env(gh, {}, **overrides)
        return lifecycle_settings(None, **mapping)

    return make


async def start_issue(settings: Settings, db: Database, issue: int) -> Any:
    app = App(settings=settings, db=db)
    prepared = await app.lifecycle.prepare_work(issue_number=issue, base=None, prompt="Please fix it.")
    return await app.lifecycle.commit(prepared)


async def test_start_uses_the_cached_issue_else_fetches_it_else_goes_ahead(
    gh: GitHubStandIn,
    start_settings: Callable[..., Settings],
    gdb: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="codex_mcp")
    body = 'Steps:\n1. open `naïve.txt`\n2. "save" & <crash>\n'
    gh.add_issue(7, "Crash on save 💥", body=body, updated_at=minutes(7))
    settings = start_settings()
    await sync(settings, gdb)
    gh.update_issue(7, title="Renamed on GitHub since")  # the cache is what start uses
    gh.add_issue(8, "Not cached yet", body="Fetched when missing.", updated_at=minutes(8))
    gh.clear_requests()

    cached = await start_issue(settings, gdb, 7)
    assert cached.prompt.startswith(
        f"# GitHub issue #7: Crash on save 💥\n\n{body.strip()}\n\nPlease fix it."
    )
    assert cached.issue_number == 7 and cached.issue_title == "Crash on save 💥"
    assert gh.requests == []  # from the cache: GitHub not asked

    fetched = await start_issue(settings, gdb, 8)
    assert fetched.prompt.startswith(
        "# GitHub issue #8: Not cached yet\n\nFetched when missing.\n\nPlease fix it."
    )
    assert [(r.method, r.path) for r in gh.requests] == [("GET", "/repos/octo/flux/issues/8")]
    assert gh.requests[0].headers["authorization"].endswith(TOKEN)
    row = await issues_store.get(gdb, 8)
    assert row is not None and (row.title, row.body, row.repo_owner, row.repo_name) == (
        "Not cached yet",
        "Fetched when missing.",
        "octo",
        "flux",
    )
    assert fetched.issue_title == "Not cached yet"
    assert caplog.records == []

    # GitHub unreachable: the instance starts anyway, with a warning and no issue text.
    unreachable = start_settings(CODEX_MCP_GITHUB_API_URL=unused_port_url())
    gone = await start_issue(unreachable, gdb, 9)
    assert gone.prompt.startswith("# GitHub issue #9\n\nPlease fix it.")
    assert gone.status == "running" and gone.issue_title is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("#9" in w and "cannot reach GitHub" in w and "going ahead" in w for w in warnings), warnings
    assert await issues_store.get(gdb, 9) is None


def _fetch_without_token(gh: GitHubStandIn) -> dict[str, str | None]:
    return {"GITHUB_TOKEN": None}


def _fetch_not_github(gh: GitHubStandIn) -> dict[str, str | None]:
    gh.not_github("html")
    return {}


def _fetch_unauthorized(gh: GitHubStandIn) -> dict[str, str | None]:
    gh.fail_unauthorized()
    return {}


def _fetch_server_error(gh: GitHubStandIn) -> dict[str, str | None]:
    gh.fail_server_error(502)
    return {}


def _fetch_missing(gh: GitHubStandIn) -> dict[str, str | None]:
    return {}


def _fetch_a_pull_request(gh: GitHubStandIn) -> dict[str, str | None]:
    gh.add_pull("feature", number=12)  # GET /issues/12 answers, with a pull_request key
    return {}


@pytest.mark.parametrize(
    ("prepare", "needle"),
    [
        pytest.param(_fetch_without_token, "no GitHub token", id="no-token"),
        pytest.param(_fetch_not_github, "not like GitHub's REST API", id="not-github"),
        pytest.param(_fetch_unauthorized, "401", id="401"),
        pytest.param(_fetch_server_error, "502", id="502"),
        pytest.param(_fetch_missing, "does not exist", id="missing"),
        pytest.param(_fetch_a_pull_request, "does not exist", id="a-pull-request"),
    ],
)
async def test_fetch_issue_goes_ahead_without_text_when_it_cannot(
    prepare: Callable[[GitHubStandIn], dict[str, str | None]],
    needle: str,
    gh: GitHubStandIn,
    make_settings: Callable[..., Settings],
    gdb: Database,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="codex_mcp")
    overrides = prepare(gh)
    assert await fetch_issue(make_settings(**overrides), gdb, 12) is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "#12" in warnings[0] and needle in warnings[0], warnings
    assert TOKEN not in warnings[0]
    assert await issue_rows(gdb) == {}


async def test_fetch_issue_does_not_mix_in_another_repositorys_issue(
    gh: GitHubStandIn, make_settings: Callable[..., Settings], gdb: Database
) -> None:
    async with gdb.write() as tx:
        await issues_store.upsert_many(
            tx,
            [
                issues_store.Issue(
                    number=1, title="Elsewhere", state="open", repo_owner="acme", repo_name="lib"
                )
            ],
        )
    gh.add_issue(2, "Here")
    found = await fetch_issue(make_settings(), gdb, 2)
    assert found is not None and found.title == "Here"
    assert set(await issue_rows(gdb)) == {1}  # used for the prompt, not cached next to acme/lib's issues


# --------------------------------------------------------------------------------------- 8. progress


async def test_sync_issues_reports_progress_when_asked(
    gh: GitHubStandIn, make_app: Callable[..., Any], gdb: Database
) -> None:
    gh.add_many_issues(250, START)
    gh.add_pull("feature")
    app = await make_app()
    seen: list[tuple[float, float | None, str | None, bool]] = []
    done = False

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message, done))

    async with Client(build_server(app)) as client:
        result = await client.call_tool("sync_issues", {}, progress_callback=on_progress)
        done = True
        await anyio.sleep(0.3)  # anything still coming would arrive now

    data = ok(result)
    assert data["pages"] == 4
    assert [p for p, *_ in seen] == [1.0, 2.0, 3.0, 4.0]  # one per page, increasing
    assert all(not after for *_, after in seen)  # none after the result
    assert all(message and "page" in message for _, _, message, _ in seen)

    # Without a progress token, the same call sends none and still works.
    async with Client(build_server(app)) as client:
        quiet = ok(await client.call_tool("sync_issues", {}))
    assert quiet["not_modified_pages"] == quiet["pages"]


async def test_the_tool_records_the_sync_result(
    gh: GitHubStandIn, make_app: Callable[..., Any], gdb: Database
) -> None:
    gh.add_many_issues(2, START)
    app = await make_app()
    data = ok(await call(app, "sync_issues"))
    events = await event_rows(gdb)
    assert isinstance(app.caller, Caller)
    assert [(e["tool_name"], e["success"], e["instance_id"]) for e in events] == [
        ("sync_issues", 1, app.caller.id)
    ]
    metadata = json.loads(events[0]["metadata"])
    assert metadata["result"]["fetched"] == data["fetched"] == 2
    assert TOKEN not in events[0]["metadata"]
