"""create_pull_request end to end: a real repository, a local bare repository as ``origin``, and the
GitHub stand-in (a real HTTP server on 127.0.0.1) playing GitHub's REST API.

Each test checks what GitHub received (exactly), what reached ``origin``, the instance's row and the
``mcp_events`` row; every fault must leave a failed event and no half-updated row; a canary token is
searched for everywhere it must never appear.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import string
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from github_standin import GitHubStandIn
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from support import GIT_ENV, event_rows, failed, git, ok, text_of, unused_port_url

from codex_mcp import github as github_module
from codex_mcp.app import App
from codex_mcp.identity import Caller
from codex_mcp.server import build_server
from codex_mcp.settings import GitHubLimits, Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import NewInstance
from codex_mcp.userconfig import UserConfig

INSTANCE = "work-1-a1"
BRANCH = "codex/work-1-a1"
LABEL = f"octo:{BRANCH}"
PULLS = "/repos/octo/flux/pulls"
# A short request timeout and rate-limit bound, so faults are quick to provoke.
FAST = GitHubLimits(request_timeout=1.0, max_rate_limit_wait=3.0)


# --------------------------------------------------------------------------------------------- helpers


def canary_token() -> str:
    alphabet = string.ascii_letters + string.digits
    return "ghp_" + "".join(secrets.choice(alphabet) for _ in range(36))


def commit(worktree: Path, name: str = "feature.txt", text: str = "work\n", message: str = "work") -> str:
    (worktree / name).write_text(text, encoding="utf-8")
    git(worktree, "add", name)
    git(worktree, "commit", "-q", "-m", message)
    return git(worktree, "rev-parse", "HEAD")


def origin_has(origin: Path, ref: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(origin), "rev-parse", "--verify", "--quiet", ref], capture_output=True, text=True
    )
    return done.stdout.strip() if done.returncode == 0 else None


@dataclass
class World:
    repo: Path
    origin: Path
    worktree: Path
    token: str
    gh: GitHubStandIn
    tmp: Path
    env: dict[str, str]
    databases: list[Database]

    def settings(self, *, limits: GitHubLimits | None = None, **overrides: str | None) -> Settings:
        mapping = {
            **self.env,
            "CODEX_MCP_GITHUB_API_URL": self.gh.base_url,
            "CODEX_MCP_GITHUB_REPO": "octo/flux",
            "GITHUB_TOKEN": self.token,
        }
        for key, value in overrides.items():
            if value is None:
                mapping.pop(key, None)
            else:
                mapping[key] = value
        settings = Settings.load(mapping, cwd=self.repo)
        return settings if limits is None else replace(settings, github_limits=limits)

    async def app(
        self, *, base_branch: str | None = "main", limits: GitHubLimits | None = None, **overrides: str | None
    ) -> App:
        settings = self.settings(limits=limits, **overrides)
        db = await open_database(settings.require_db_path())
        self.databases.append(db)
        if await instances_store.get(db, INSTANCE) is None:
            async with db.write() as tx:
                await instances_store.insert(
                    tx,
                    NewInstance(
                        id=INSTANCE,
                        type="work",
                        worktree_path=str(self.worktree),
                        branch_name=BRANCH,
                        base_branch=base_branch,
                        tmux_session=f"codex-{INSTANCE}",
                        issue_number=1,
                    ),
                )
        row = await instances_store.require(db, INSTANCE)
        return App(settings=settings, db=db, caller=Caller(row, "explicit"))


async def create(app: App, **arguments: Any) -> Any:
    args = {"title": "Add the feature", "description": "It adds the feature.", **arguments}
    async with Client(build_server(app)) as client:
        return await client.call_tool("create_pull_request", args)


async def pr_columns(app: App) -> tuple[Any, Any, Any]:
    row = await app.db.fetchone("SELECT pr_number, pr_url, pr_state FROM instances WHERE id = ?", (INSTANCE,))
    assert row is not None
    return row["pr_number"], row["pr_url"], row["pr_state"]


async def assert_failed_cleanly(app: App, message: str) -> None:
    """One failed create_pull_request event with the tool's message, and no pull request on the row."""
    recorded = await event_rows(app.db)
    assert [(e["tool_name"], e["success"]) for e in recorded] == [("create_pull_request", 0)]
    assert recorded[0]["instance_id"] == INSTANCE
    # The tool's text is the recorded message (the SDK prefixes "Error executing tool ...: ").
    assert recorded[0]["error_message"]
    assert message.endswith(recorded[0]["error_message"])
    assert await pr_columns(app) == (None, None, None)


def posts(gh: GitHubStandIn) -> list[Any]:
    return gh.requests_to(PULLS, "POST")


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def github_token() -> str:
    """A fresh canary for each test (the conftest `gh` stand-in expects it), searched for where it must not be."""
    return canary_token()


@pytest.fixture
def origin(repo: Path, tmp_path: Path) -> Path:
    """A local bare repository as the repo's ``origin``, with main pushed to it."""
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main")
    return bare


@pytest.fixture
def worktree(repo: Path, origin: Path, tmp_path: Path) -> Path:
    path = tmp_path / "worktrees" / INSTANCE
    git(repo, "worktree", "add", "-q", "-b", BRANCH, str(path), "main")
    return path.resolve()


@pytest.fixture
async def world(
    repo: Path,
    origin: Path,
    worktree: Path,
    github_token: str,
    gh: GitHubStandIn,
    tmp_path: Path,
    env: dict[str, str],
) -> AsyncIterator[World]:
    w = World(repo, origin, worktree, github_token, gh, tmp_path, env, [])
    try:
        yield w
    finally:
        for db in w.databases:
            await db.close()


# --------------------------------------------------------------------------------------------- success


async def test_opens_the_pull_request_for_the_callers_branch(world: World) -> None:
    head = commit(world.worktree)
    app = await world.app()

    got = ok(await create(app, title="Add the feature", description="It adds the feature."))

    pull = world.gh.pulls[0]
    assert got == {
        "pr_number": pull["number"],
        "pr_url": pull["html_url"],
        "branch_name": BRANCH,
        "already_existed": False,
    }
    assert got["pr_url"] == f"{world.gh.html_base}/octo/flux/pull/{got['pr_number']}"
    # Exactly one create, with exactly these fields, authorised with the token.
    [post] = posts(world.gh)
    assert post.json == {
        "title": "Add the feature",
        "head": BRANCH,
        "base": "main",
        "body": "It adds the feature.",
        "draft": False,
    }
    assert post.headers["authorization"] in (f"Bearer {world.token}", f"token {world.token}")
    # The open pull request was looked up first, for this head and base only.
    [lookup] = world.gh.requests_to(PULLS, "GET")
    assert lookup.query["head"] == LABEL and lookup.query["base"] == "main"
    assert lookup.query.get("state", "open") == "open"
    assert [r.method for r in world.gh.requests] == ["GET", "POST"]
    # Pushed to origin with upstream set.
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") == head
    assert git(world.worktree, "rev-parse", "--abbrev-ref", "@{u}") == f"origin/{BRANCH}"
    # The row knows its pull request; one successful event.
    assert await pr_columns(app) == (got["pr_number"], got["pr_url"], "open")
    recorded = await event_rows(app.db)
    assert [(e["tool_name"], e["success"], e["instance_id"]) for e in recorded] == [
        ("create_pull_request", 1, INSTANCE)
    ]
    metadata = json.loads(recorded[0]["metadata"])
    assert metadata["base_branch"] == "main"
    assert metadata["args"]["description"]["redacted"] is True
    assert metadata["result"]["pr_number"] == got["pr_number"]


async def test_draft_is_sent_as_asked(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    ok(await create(app, draft=True))
    [post] = posts(world.gh)
    assert post.json["draft"] is True
    assert world.gh.pulls[0]["draft"] is True


ODD_TITLES = [
    "Fix \"quotes\" and 'apostrophes' and `backticks` \\ back\\slashes\\n",
    "Ünïcödé 日本語 עברית émoji 🚀🧪👩🏽‍💻 and $(rm -rf /) ${HOME} `id` && | ; > < * ? ~ # % &amp;",
]
ODD_DESCRIPTION = (
    "# Heading\n\n"
    "* a *markdown* list with **bold**, _it_, [a link](https://example.invalid/?a=1&b=2#frag)\n"
    "```python\nprint('code \"fence\"')\n```\n"
    "Tabs\there, CRLF\r\nlines, a lone \r carriage return, trailing spaces   \n"
    "Backslashes: \\ \\\\ \\n \\u0000 C:\\path\\to\\file\n"
    "Shell: $(whoami) `uname -a` ${PATH} 'single' \"double\" ; rm -rf / && echo pwned | cat > /tmp/x\n"
    'JSON-ish: {"key": [1, 2, {"n": null}]} </script><script>alert(1)</script>\n'
    "Unicode: Ω≈ç√∫ — “curly” ‘quotes’ … ½ ∞ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \u200b zero-width \u202e RTL override\n"  # noqa: RUF001
    "Emoji: 🎉🔥👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 \U0001f9ea\n"
    "Control: \x01\x07\x1b[31mred\x1b[0m\x7f\n"
    "Trailing newline too\n"
)


@pytest.mark.parametrize("title", ODD_TITLES, ids=["quotes-backslashes", "unicode-shell"])
async def test_title_and_description_arrive_exactly(world: World, title: str) -> None:
    commit(world.worktree)
    app = await world.app()

    got = ok(await create(app, title=title, description=ODD_DESCRIPTION))

    [post] = posts(world.gh)
    assert post.json["title"] == title
    assert post.json["body"] == ODD_DESCRIPTION
    assert json.loads(post.body.decode("utf-8"))["body"] == ODD_DESCRIPTION
    assert world.gh.pulls[0]["title"] == title and world.gh.pulls[0]["body"] == ODD_DESCRIPTION
    # The event keeps the description only as length and digest.
    [event] = await event_rows(app.db)
    assert event["success"] == 1
    assert ODD_DESCRIPTION not in (event["metadata"] or "")
    assert got["already_existed"] is False


async def test_empty_description_is_sent_as_an_empty_body(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    ok(await create(app, description=""))
    [post] = posts(world.gh)
    assert post.json["body"] == ""


# --------------------------------------------------------------------------------------------- refusals


async def test_no_commits_ahead_of_the_base_is_refused_before_anything_happens(world: World) -> None:
    app = await world.app()

    message = failed(await create(app))

    assert "no commits ahead of main" in message
    assert "commit" in message and "create_pull_request again" in message
    assert posts(world.gh) == []
    assert world.gh.pulls == []
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") is None
    await assert_failed_cleanly(app, message)


async def test_blank_title_is_refused(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    message = failed(await create(app, title="   "))
    assert "title" in message
    assert posts(world.gh) == []
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") is None
    await assert_failed_cleanly(app, message)


# --------------------------------------------------------------------------------------------- idempotence


async def test_a_second_call_returns_the_open_pull_request_and_pushes_new_commits(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    first = ok(await create(app))

    newer = commit(world.worktree, "more.txt", "more\n", "more work")
    world.gh.clear_requests()
    second = ok(await create(app, title="Another title", description="Another body"))

    assert second == {**first, "already_existed": True}
    assert len(world.gh.pulls) == 1
    # Found up front, so nothing was posted the second time.
    assert posts(world.gh) == []
    [lookup] = world.gh.requests_to(PULLS, "GET")
    assert lookup.query["head"] == LABEL and lookup.query["base"] == "main"
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") == newer
    assert await pr_columns(app) == (first["pr_number"], first["pr_url"], "open")
    assert [e["success"] for e in await event_rows(app.db)] == [1, 1]


async def test_already_exists_answer_returns_the_existing_pull_request(world: World) -> None:
    commit(world.worktree)
    existing = world.gh.add_pull(LABEL, "main", title="Opened elsewhere")
    # The up-front lookup misses it (a stale answer), so the create runs into GitHub's 422.
    world.gh.fail(200, body=[], path="/pulls", method="GET", times=1)
    app = await world.app()

    got = ok(await create(app))

    assert got == {
        "pr_number": existing["number"],
        "pr_url": existing["html_url"],
        "branch_name": BRANCH,
        "already_existed": True,
    }
    assert len(world.gh.pulls) == 1
    assert [(r.method, r.path) for r in world.gh.requests] == [
        ("GET", PULLS),
        ("POST", PULLS),
        ("GET", PULLS),
    ]
    assert world.gh.requests[2].query["head"] == LABEL
    assert await pr_columns(app) == (existing["number"], existing["html_url"], "open")
    assert [e["success"] for e in await event_rows(app.db)] == [1]


async def test_a_closed_pull_request_for_the_branch_is_not_reused(world: World) -> None:
    commit(world.worktree)
    old = world.gh.add_pull(LABEL, "main", title="Closed one", state="closed")
    app = await world.app()

    got = ok(await create(app))

    assert got["already_existed"] is False
    assert got["pr_number"] != old["number"]
    assert len(posts(world.gh)) == 1


async def test_other_validation_failures_show_githubs_details(world: World) -> None:
    commit(world.worktree)
    world.gh.fail(
        422,
        body={
            "message": "Validation Failed",
            "errors": [
                {"resource": "PullRequest", "code": "custom", "message": "No commits between main and x"}
            ],
            "documentation_url": "https://docs.github.com/rest",
            "status": "422",
        },
        path="/pulls",
        method="POST",
    )
    app = await world.app()

    message = failed(await create(app))

    assert "422" in message and "No commits between main and x" in message
    await assert_failed_cleanly(app, message)


# --------------------------------------------------------------------------------------------- base branch


async def test_base_branch_parameter_is_used(world: World) -> None:
    git(world.repo, "branch", "develop", "main")
    git(world.repo, "push", "-q", "origin", "develop")
    git(world.repo, "fetch", "-q", "origin")
    world.gh.branches.add("develop")
    commit(world.worktree)
    app = await world.app(base_branch="main")

    got = ok(await create(app, base_branch="develop"))

    [post] = posts(world.gh)
    assert post.json["base"] == "develop" and post.json["head"] == BRANCH
    [lookup] = world.gh.requests_to(PULLS, "GET")
    assert lookup.query["base"] == "develop"
    assert world.gh.pulls[0]["base"]["ref"] == "develop"
    [event] = await event_rows(app.db)
    assert json.loads(event["metadata"])["base_branch"] == "develop"
    assert got["already_existed"] is False


async def test_without_a_base_branch_the_repositorys_default_branch_is_used(
    repo: Path, tmp_path: Path, github_token: str, env: dict[str, str]
) -> None:
    # The repository's default branch on GitHub is "trunk" (not the local main).
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "trunk", str(bare))
    git(repo, "branch", "trunk", "main")
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "-u", "origin", "main", "trunk")
    tree = tmp_path / "worktrees" / INSTANCE
    git(repo, "worktree", "add", "-q", "-b", BRANCH, str(tree), "trunk")
    commit(tree)
    with GitHubStandIn(default_branch="trunk", expected_token=github_token) as standin:
        w = World(repo, bare, tree.resolve(), github_token, standin, tmp_path, env, [])
        try:
            app = await w.app(base_branch=None)
            ok(await create(app))
        finally:
            for db in w.databases:
                await db.close()
    assert standin.errors == []
    assert [(r.method, r.path) for r in standin.requests] == [
        ("GET", "/repos/octo/flux"),
        ("GET", PULLS),
        ("POST", PULLS),
    ]
    assert standin.requests[2].json["base"] == "trunk"
    assert standin.requests[1].query["base"] == "trunk"


async def test_a_base_branch_that_does_not_exist_is_refused(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    message = failed(await create(app, base_branch="nope"))
    assert "nope" in message and "base_branch" in message
    assert posts(world.gh) == []
    await assert_failed_cleanly(app, message)


# --------------------------------------------------------------------------------------------- faults

# (what, inject, words the message must hold, whether the branch was pushed before the failure)
Inject = Callable[[GitHubStandIn], Any]
FAULTS: list[tuple[str, Inject, list[str], bool]] = [
    (
        "401-lookup",
        lambda gh: gh.fail_unauthorized(path="/pulls", method="GET"),
        ["401", "token", "GITHUB_TOKEN"],
        False,
    ),
    (
        "401-create",
        lambda gh: gh.fail_unauthorized(path="/pulls", method="POST"),
        ["401", "token", "GITHUB_TOKEN"],
        True,
    ),
    ("403-lookup", lambda gh: gh.fail_forbidden(path="/pulls", method="GET"), ["403", "permission"], False),
    ("403-create", lambda gh: gh.fail_forbidden(path="/pulls", method="POST"), ["403", "permission"], True),
    (
        "502-lookup",
        lambda gh: gh.fail_server_error(502, path="/pulls", method="GET"),
        ["502", "GitHub's side", "retry"],
        False,
    ),
    (
        "503-create",
        lambda gh: gh.fail_server_error(503, path="/pulls", method="POST"),
        ["503", "GitHub's side", "retry"],
        True,
    ),
    (
        "500-create",
        lambda gh: gh.fail_server_error(500, path="/pulls", method="POST"),
        ["500", "GitHub's side", "retry"],
        True,
    ),
    (
        "not-github-html-lookup",
        lambda gh: gh.not_github("html", path="/pulls", method="GET"),
        ["not like GitHub's REST API", "CODEX_MCP_GITHUB_API_URL"],
        False,
    ),
    (
        "not-github-json-lookup",
        lambda gh: gh.not_github("json", path="/pulls", method="GET"),
        ["not like GitHub's REST API", "CODEX_MCP_GITHUB_API_URL"],
        False,
    ),
    (
        "not-github-html-create",
        lambda gh: gh.not_github("html", path="/pulls", method="POST"),
        ["not like GitHub's REST API", "CODEX_MCP_GITHUB_API_URL"],
        True,
    ),
    (
        "not-github-json-create",
        lambda gh: gh.not_github("json", path="/pulls", method="POST"),
        ["not like GitHub's REST API", "CODEX_MCP_GITHUB_API_URL"],
        True,
    ),
    (
        "timeout-lookup",
        lambda gh: gh.delay(5, path="/pulls", method="GET"),
        ["did not answer within 1 s", "retry"],
        False,
    ),
    (
        "timeout-create",
        lambda gh: gh.delay(5, path="/pulls", method="POST"),
        ["did not answer within 1 s", "retry"],
        True,
    ),
]


@pytest.mark.parametrize(("inject", "words", "pushed"), [f[1:] for f in FAULTS], ids=[f[0] for f in FAULTS])
async def test_github_faults_are_clear_errors_with_a_failed_event_and_no_row_change(
    world: World, inject: Inject, words: list[str], pushed: bool
) -> None:
    head = commit(world.worktree)
    inject(world.gh)
    app = await world.app(limits=FAST)

    with anyio.fail_after(30):
        message = failed(await create(app))

    for word in words:
        assert word in message, message
    assert "internal error" not in message
    assert world.token not in message
    await assert_failed_cleanly(app, message)
    # A failed lookup stops before the push; a failed create comes after it.
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") == (head if pushed else None)
    if not pushed:
        assert posts(world.gh) == []


async def test_primary_rate_limit_says_when_to_retry(world: World) -> None:
    commit(world.worktree)
    world.gh.fail_rate_limited(reset_in=120, path="/pulls", method="GET")
    app = await world.app(limits=FAST)

    message = failed(await create(app))

    assert "rate limit" in message
    found = re.search(r"retry after (\d+) s \(at \d\d:\d\d:\d\d UTC\)", message)
    assert found is not None, message
    assert 110 <= int(found.group(1)) <= 125
    await assert_failed_cleanly(app, message)
    assert posts(world.gh) == []
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") is None


async def test_secondary_rate_limit_beyond_the_bound_says_when_to_retry(world: World) -> None:
    commit(world.worktree)
    world.gh.fail_too_many(retry_after=45, path="/pulls", method="GET")
    app = await world.app(limits=FAST)

    with anyio.fail_after(20):
        message = failed(await create(app))

    found = re.search(r"retry after (\d+) s", message)
    assert found is not None, message
    assert 44 <= int(found.group(1)) <= 46
    await assert_failed_cleanly(app, message)
    assert len(world.gh.requests_to(PULLS, "GET")) == 1  # not retried: the wait is beyond the bound


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_short_secondary_rate_limit_is_waited_out(world: World, method: str) -> None:
    commit(world.worktree)
    world.gh.fail_too_many(retry_after=1, path="/pulls", method=method)
    app = await world.app(limits=FAST)

    started = anyio.current_time()
    with anyio.fail_after(20):
        got = ok(await create(app))
    elapsed = anyio.current_time() - started

    assert got["already_existed"] is False
    assert elapsed >= 0.9  # it did wait
    assert len(world.gh.requests_to(PULLS, method)) == 2  # the limited request, then its retry
    assert len(world.gh.pulls) == 1
    assert await pr_columns(app) == (got["pr_number"], got["pr_url"], "open")
    assert [e["success"] for e in await event_rows(app.db)] == [1]


async def test_a_rate_limit_that_persists_is_not_waited_forever(world: World) -> None:
    commit(world.worktree)
    world.gh.fail_too_many(retry_after=1, times=None, path="/pulls", method="GET")
    app = await world.app(limits=FAST)

    with anyio.fail_after(30):
        message = failed(await create(app))

    assert re.search(r"retry after \d+ s", message), message
    assert len(world.gh.requests_to(PULLS, "GET")) == 1 + github_module.MAX_RATE_LIMIT_RETRIES
    await assert_failed_cleanly(app, message)


async def test_a_bad_token_is_a_token_error(world: World) -> None:
    commit(world.worktree)
    app = await world.app(GITHUB_TOKEN="ghp_" + "x" * 36)  # the stand-in expects world.token

    message = failed(await create(app))

    assert "401" in message and "token" in message and "GITHUB_TOKEN" in message
    await assert_failed_cleanly(app, message)
    assert world.gh.pulls == []


async def test_no_token_is_a_token_error_without_any_request(world: World) -> None:
    commit(world.worktree)
    app = await world.app(GITHUB_TOKEN=None)

    message = failed(await create(app))

    assert "no GitHub token" in message and "GITHUB_TOKEN" in message
    assert "config set github.token" in message
    assert world.gh.requests == []
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") is None
    await assert_failed_cleanly(app, message)


async def test_an_unreachable_api_is_a_network_error(world: World) -> None:
    commit(world.worktree)
    url = unused_port_url()
    app = await world.app(limits=FAST, CODEX_MCP_GITHUB_API_URL=url)

    message = failed(await create(app))

    assert "cannot reach GitHub" in message and url in message and "CODEX_MCP_GITHUB_API_URL" in message
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") is None
    await assert_failed_cleanly(app, message)


# --------------------------------------------------------------------------------------------- push faults


async def test_a_rejected_push_is_a_clear_error_and_nothing_is_created(world: World) -> None:
    # Someone else pushed a different commit to the branch on origin.
    other = world.tmp / "other"
    git(world.tmp, "clone", "-q", str(world.origin), str(other))
    git(other, "switch", "-q", "-c", BRANCH)
    theirs = commit(other, "theirs.txt", "theirs\n", "their work")
    git(other, "push", "-q", "origin", BRANCH)
    commit(world.worktree, "mine.txt", "mine\n", "my work")
    app = await world.app()

    message = failed(await create(app))

    assert "rejected" in message and "non-fast-forward" in message
    assert "rebase" in message and f"git pull --rebase origin {BRANCH}" in message
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") == theirs  # untouched
    assert posts(world.gh) == []
    assert world.gh.pulls == []
    await assert_failed_cleanly(app, message)


async def test_no_origin_remote_is_a_clear_error(world: World) -> None:
    git(world.repo, "remote", "remove", "origin")
    commit(world.worktree)
    app = await world.app()

    message = failed(await create(app))

    assert "origin" in message and "git remote add origin" in message
    assert posts(world.gh) == []
    await assert_failed_cleanly(app, message)


async def test_an_origin_that_is_gone_is_a_clear_error(world: World) -> None:
    shutil.rmtree(world.origin)
    commit(world.worktree)
    app = await world.app()

    message = failed(await create(app))

    assert "origin" in message
    assert "internal error" not in message
    assert posts(world.gh) == []
    await assert_failed_cleanly(app, message)


@pytest.mark.parametrize("origin_kind", ["no-origin", "local-path", "another-host"])
async def test_without_a_configured_repository_a_non_github_origin_is_a_clear_error(
    world: World, origin_kind: str
) -> None:
    if origin_kind == "no-origin":
        git(world.repo, "remote", "remove", "origin")
    elif origin_kind == "another-host":
        git(world.repo, "remote", "set-url", "origin", "https://gitlab.example.invalid/octo/flux.git")
    commit(world.worktree)
    app = await world.app(CODEX_MCP_GITHUB_REPO=None)

    message = failed(await create(app))

    assert "which GitHub repository" in message and "CODEX_MCP_GITHUB_REPO" in message
    assert "config set github.repo" in message
    assert ("no origin remote" in message) == (origin_kind == "no-origin")
    assert world.gh.requests == []
    await assert_failed_cleanly(app, message)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/flux.git",
        "https://github.com/octo/flux",
        "ssh://git@github.com/octo/flux.git",
        "git@github.com:octo/flux.git",
    ],
)
async def test_the_repository_is_read_from_origins_url(world: World, url: str) -> None:
    # origin's fetch URL names the GitHub repository; pushes go to the local bare repository.
    git(world.repo, "remote", "set-url", "origin", url)
    git(world.repo, "remote", "set-url", "--push", "origin", str(world.origin))
    head = commit(world.worktree)
    app = await world.app(CODEX_MCP_GITHUB_REPO=None)

    got = ok(await create(app))

    [post] = posts(world.gh)
    assert post.path == PULLS and post.json["head"] == BRANCH
    assert origin_has(world.origin, f"refs/heads/{BRANCH}") == head
    assert got["pr_url"].endswith(f"/octo/flux/pull/{got['pr_number']}")


async def test_the_configured_repository_is_used_when_origin_is_not_github(world: World) -> None:
    commit(world.worktree)
    app = await world.app(CODEX_MCP_GITHUB_REPO=None)
    await UserConfig(app.db, app.settings.secret_key_file).set("github.repo", "octo/flux")

    ok(await create(app))

    assert [r.path for r in posts(world.gh)] == [PULLS]


async def test_a_repository_github_does_not_know_is_a_404_error(world: World) -> None:
    commit(world.worktree)
    app = await world.app(CODEX_MCP_GITHUB_REPO="octo/missing")

    message = failed(await create(app))

    assert "404" in message and "octo/missing" in message and "CODEX_MCP_GITHUB_REPO" in message
    await assert_failed_cleanly(app, message)
    assert world.gh.pulls == []


async def test_github_enterprise_style_api_url(
    repo: Path, origin: Path, worktree: Path, github_token: str, tmp_path: Path, env: dict[str, str]
) -> None:
    commit(worktree)
    with GitHubStandIn(prefix="/api/v3", expected_token=github_token) as standin:
        w = World(repo, origin, worktree, github_token, standin, tmp_path, env, [])
        try:
            app = await w.app()
            got = ok(await create(app))
        finally:
            for db in w.databases:
                await db.close()
    assert standin.errors == []
    assert standin.base_url.endswith("/api/v3")
    assert [r.raw_path.split("?")[0] for r in standin.requests] == [f"/api/v3{PULLS}"] * 2
    # The link is the web address (no /api/v3).
    assert got["pr_url"] == f"{standin.html_base}/octo/flux/pull/{got['pr_number']}"
    assert "/api/v3" not in got["pr_url"]


# --------------------------------------------------------------------------------------------- the token


async def test_the_token_can_come_from_the_encrypted_config(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # aiosqlite logs statements with their parameters at DEBUG
    commit(world.worktree)
    app = await world.app(GITHUB_TOKEN=None)
    await UserConfig(app.db, app.settings.secret_key_file).set("github.token", world.token, secret=True)

    ok(await create(app))

    [post] = posts(world.gh)
    assert post.headers["authorization"].endswith(" " + world.token)
    for db in world.databases:
        await db.close()
    world.databases.clear()
    assert files_holding(world.tmp, world.token.encode()) == []  # stored encrypted only
    assert caplog.records and world.token not in caplog.text


async def test_github_token_wins_over_the_config(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    await UserConfig(app.db, app.settings.secret_key_file).set("github.token", canary_token(), secret=True)

    ok(await create(app))

    assert posts(world.gh)[0].headers["authorization"].endswith(" " + world.token)


# --------------------------------------------------------------------------------------------- the caller


async def test_a_terminated_instance_cannot_open_a_pull_request(world: World) -> None:
    commit(world.worktree)
    app = await world.app()
    async with app.db.write() as tx:
        await instances_store.mark_terminated(tx, INSTANCE)

    message = failed(await create(app))

    assert "terminated" in message
    assert world.gh.requests == []
    await assert_failed_cleanly(app, message)


async def test_a_worktree_on_another_branch_is_refused(world: World) -> None:
    commit(world.worktree)
    git(world.worktree, "switch", "-q", "-c", "elsewhere")
    app = await world.app()

    message = failed(await create(app))

    assert "elsewhere" in message and f"git switch {BRANCH}" in message
    assert world.gh.requests == []
    assert origin_has(world.origin, "refs/heads/elsewhere") is None
    await assert_failed_cleanly(app, message)


# --------------------------------------------------------------------------------------------- canary


def files_holding(root: Path, secret: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret in p.read_bytes()]


def assert_token_absent(token: str, *texts: str) -> None:
    for text in texts:
        assert token not in text


async def test_the_token_never_leaks(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "githubkit", "codex_mcp", "mcp"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    commit(world.worktree)
    app = await world.app(limits=FAST)
    results: list[Any] = []

    world.gh.fail_unauthorized(path="/pulls", method="GET")
    results.append(await create(app, description=f"mentions {world.token} in the body"))
    world.gh.fail_server_error(502, path="/pulls", method="POST")
    results.append(await create(app))
    world.gh.delay(5, path="/pulls", method="GET")
    results.append(await create(app))
    results.append(await create(app, title="The title", description="The body"))
    results.append(await create(app))
    for db in world.databases:
        await db.close()
    world.databases.clear()

    assert [r.is_error for r in results] == [True, True, True, False, False]
    # The token did go to GitHub, in the Authorization header only.
    assert all(r.headers.get("authorization", "").endswith(world.token) for r in world.gh.requests)
    secret = world.token.encode()
    # Nowhere under the test's directory: the database (and -wal/-shm), repository, worktree, origin.
    db_path = world.settings().require_db_path()
    assert db_path.exists()
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(db_path) + suffix)
        if candidate.exists():
            assert secret not in candidate.read_bytes(), candidate
    assert files_holding(world.tmp, secret) == []
    # Not in the events (read back through a fresh connection).
    db = await open_database(db_path)
    try:
        rows = [dict(r) for r in await db.fetchall("SELECT * FROM mcp_events")]
        instance_rows = [dict(r) for r in await db.fetchall("SELECT * FROM instances")]
    finally:
        await db.close()
    assert len(rows) == 5
    assert_token_absent(world.token, json.dumps(rows), json.dumps(instance_rows))
    # Not in any tool result.
    for result in results:
        assert_token_absent(world.token, text_of(result), json.dumps(result.structured_content))
    # Not in the logs (at DEBUG, httpx/httpcore/githubkit included).
    assert caplog.records, "nothing was logged at DEBUG"
    assert_token_absent(world.token, caplog.text, *(repr(r.args) for r in caplog.records))


@pytest.mark.slow
async def test_the_token_never_reaches_a_real_servers_stderr(world: World, cli_env: dict[str, str]) -> None:
    commit(world.worktree)
    app = await world.app()
    for db in world.databases:
        await db.close()
    world.databases.clear()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "codex_mcp", "serve", "--instance", INSTANCE],
        cwd=world.repo,
        env={
            **cli_env,
            **GIT_ENV,
            "GITHUB_TOKEN": world.token,
            "CODEX_MCP_GITHUB_API_URL": world.gh.base_url,
            "CODEX_MCP_GITHUB_REPO": "octo/flux",
            "CODEX_MCP_LOG_LEVEL": "DEBUG",
        },
    )
    stderr_path = world.tmp / "server-stderr.log"
    world.gh.fail_unauthorized(path="/pulls", method="GET")
    with stderr_path.open("w", encoding="utf-8") as errlog, anyio.fail_after(120):
        async with Client(stdio_client(params, errlog=errlog)) as client:
            refused = await client.call_tool("create_pull_request", {"title": "T", "description": "D"})
            made = await client.call_tool("create_pull_request", {"title": "T", "description": "D"})
    assert refused.is_error and "GITHUB_TOKEN" in text_of(refused)
    got = ok(made)
    assert got["branch_name"] == BRANCH and got["already_existed"] is False
    stderr = stderr_path.read_text(encoding="utf-8")
    assert "DEBUG" in stderr  # the server did log at DEBUG
    assert world.token not in stderr
    assert_token_absent(world.token, text_of(refused), text_of(made), json.dumps(made.structured_content))
    assert files_holding(world.tmp, world.token.encode()) == []
    assert app.caller is not None
