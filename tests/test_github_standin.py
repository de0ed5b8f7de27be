"""Self-test of the GitHub stand-in: githubkit itself must parse every answer into its models."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from github_standin import GitHubStandIn, iso
from githubkit import GitHub
from githubkit.exception import (
    PrimaryRateLimitExceeded,
    RateLimitExceeded,
    RequestFailed,
    RequestTimeout,
    SecondaryRateLimitExceeded,
)
from pydantic import ValidationError

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
LINK = re.compile(r'<(?P<url>[^<>]+)>; rel="(?P<rel>\w+)"')


def as_list(parsed: Any) -> list[Any]:
    """A listing's ``parsed_data`` as a list. githubkit annotates it ``list[Model]`` inside classes that
    have a method named ``list``, which mypy reads as that method (not iterable, not indexable)."""
    return list(parsed)


def links(header: str | None) -> dict[str, httpx.URL]:
    return {m["rel"]: httpx.URL(m["url"]) for m in LINK.finditer(header or "")}


@pytest.fixture
def standin() -> Iterator[GitHubStandIn]:
    with GitHubStandIn(expected_token="tok") as server:
        yield server
    assert server.errors == []


@pytest.fixture
async def gh(standin: GitHubStandIn) -> AsyncIterator[GitHub[Any]]:
    client = GitHub("tok", base_url=standin.base_url, auto_retry=False, http_cache=False)
    async with client:
        yield client


# ----------------------------------------------------------------------------------------- lifecycle


def test_lifecycle_binds_before_start_and_frees_the_port() -> None:
    server = GitHubStandIn()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
    server.start()
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/repos/octo/flux").status_code == 200  # no sleep: bound before the thread
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=1):
        pass


def test_never_started_stand_in_stops_cleanly() -> None:
    server = GitHubStandIn()
    server.stop()


# ----------------------------------------------------------------------------------------- endpoints


async def test_repository_parses(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    resp = await gh.rest.repos.async_get("octo", "flux")
    repo = resp.parsed_data
    assert type(repo).__name__ == "FullRepository"
    assert (repo.full_name, repo.default_branch, repo.owner.login) == ("octo/flux", "main", "octo")
    assert repo.url == f"{standin.base_url}/repos/octo/flux"
    assert resp.headers["etag"].startswith('"') and resp.headers["x-ratelimit-limit"] == "5000"
    request = standin.last_request
    assert (request.method, request.path, request.json) == ("GET", "/repos/octo/flux", None)
    assert request.headers["authorization"] == "token tok"
    assert request["headers"]["x-github-api-version"]


async def test_issue_get_and_404(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_issue(7, "Crash on start", "stack trace", labels=["bug"], assignee="alice", created_at=START)
    issue = (await gh.rest.issues.async_get("octo", "flux", 7)).parsed_data
    assert (issue.number, issue.title, issue.body, issue.state) == (
        7,
        "Crash on start",
        "stack trace",
        "open",
    )
    assert [label.name for label in issue.labels if not isinstance(label, str)] == ["bug"]
    assert len(issue.labels) == 1
    assert issue.assignees and issue.assignees[0].login == "alice"
    assert issue.created_at == START and issue.updated_at == START
    assert not issue.pull_request
    assert issue.html_url == f"{standin.html_base}/octo/flux/issues/7"

    with pytest.raises(RequestFailed) as failed:
        await gh.rest.issues.async_get("octo", "flux", 8)
    assert failed.value.response.status_code == 404
    body = failed.value.response.json()
    assert body["message"] == "Not Found" and body["status"] == "404" and body["documentation_url"]

    with pytest.raises(RequestFailed) as failed:
        await gh.rest.repos.async_get("octo", "other")
    assert failed.value.response.status_code == 404


async def test_issue_listing_paginates_over_three_pages_via_link(
    standin: GitHubStandIn, gh: GitHub[Any]
) -> None:
    standin.add_many_issues(250, START)
    resp = await gh.rest.issues.async_list_for_repo("octo", "flux", state="all", per_page=100, page=1)
    assert len(resp.parsed_data) == 100
    header = resp.headers["link"]
    assert re.fullmatch(r'<[^<>]+>; rel="next", <[^<>]+>; rel="last"', header)
    rels = links(header)
    assert rels["next"].params["page"] == "2" and rels["last"].params["page"] == "3"
    assert rels["next"].params["state"] == "all" and rels["next"].params["per_page"] == "100"
    assert str(rels["next"]).startswith(standin.base_url + "/repos/octo/flux/issues?")

    seen = [issue.number for issue in as_list(resp.parsed_data)]
    page = 1
    while "next" in links(resp.headers.get("link")):
        page += 1
        resp = await gh.rest.issues.async_list_for_repo("octo", "flux", state="all", per_page=100, page=page)
        seen += [issue.number for issue in as_list(resp.parsed_data)]
    assert page == 3 and len(resp.parsed_data) == 50
    assert set(links(resp.headers["link"])) == {"prev", "first"}
    assert sorted(seen) == list(range(1, 251)) and seen[0] == 250  # newest first by default

    # githubkit's own paginator follows rel="next" too.
    paginated: list[int] = []
    item: Any  # its items are typed from the listing's annotation (see as_list())
    async for item in gh.rest.paginate(
        gh.rest.issues.async_list_for_repo, owner="octo", repo="flux", state="all", per_page=100
    ):
        paginated.append(item.number)
    assert sorted(paginated) == list(range(1, 251))
    assert [r.query.get("page") for r in standin.requests[-3:]] == [None, "2", "3"]


async def test_single_page_has_no_link_and_default_per_page_is_30(
    standin: GitHubStandIn, gh: GitHub[Any]
) -> None:
    standin.add_many_issues(5, START)
    resp = await gh.rest.issues.async_list_for_repo("octo", "flux")
    assert len(resp.parsed_data) == 5 and "link" not in resp.headers
    standin.add_many_issues(40, START)
    resp = await gh.rest.issues.async_list_for_repo("octo", "flux")
    assert len(resp.parsed_data) == 30 and links(resp.headers["link"])["last"].params["page"] == "2"


async def test_state_since_sort_labels_assignee_filters(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_issue(1, "old", created_at=START, updated_at=START)
    standin.add_issue(
        2, "edge", created_at=START, updated_at=START + timedelta(hours=1), labels=["bug", "ui"]
    )
    standin.add_issue(3, "new", created_at=START, updated_at=START + timedelta(hours=2), assignee="bob")
    standin.add_issue(4, "closed", state="closed", created_at=START, updated_at=START + timedelta(hours=3))

    async def numbers(**params: object) -> list[int]:
        resp = await gh.rest.issues.async_list_for_repo("octo", "flux", **params)  # type: ignore[arg-type]
        return [issue.number for issue in as_list(resp.parsed_data)]

    assert await numbers() == [3, 2, 1]  # open only, created desc then number desc
    assert await numbers(state="closed") == [4]
    since = START + timedelta(hours=1)
    assert await numbers(state="all", since=since, sort="updated", direction="asc") == [2, 3, 4]
    assert await numbers(state="all", since=since + timedelta(microseconds=1)) == [4, 3]
    assert standin.requests_to("/issues")[-1].query["since"].startswith("2024-03-01")
    assert await numbers(labels="bug") == [2]
    assert await numbers(labels="bug,ui") == [2]
    assert await numbers(labels="bug,nope") == []
    assert await numbers(assignee="bob") == [3]
    assert await numbers(assignee="none") == [2, 1]
    assert await numbers(assignee="*") == [3]


async def test_update_issue_bumps_updated_at(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_many_issues(3, START)
    before = standin.issues[1]["updated_at"]
    updated = dict(standin.update_issue(1, title="renamed", state="closed", labels=["done"]))
    assert updated["updated_at"] > before and updated["closed_at"] == updated["updated_at"]
    resp = await gh.rest.issues.async_list_for_repo(
        "octo", "flux", state="all", since=datetime.fromisoformat(updated["updated_at"])
    )
    [issue] = as_list(resp.parsed_data)
    assert (issue.number, issue.title, issue.state, issue.state_reason) == (
        1,
        "renamed",
        "closed",
        "completed",
    )
    again = standin.update_issue(1, state="open")
    assert again["updated_at"] > updated["updated_at"] and again["closed_at"] is None
    assert again["state_reason"] == "reopened"


async def test_pull_request_items_carry_pull_request(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_issue(1, "plain issue", created_at=START)
    standin.add_issue(2, "a PR", created_at=START, pull_request=True)
    standin.add_issue(3, "merged", state="closed", created_at=START, pull_request=True, merged_at=START)
    resp = await gh.rest.issues.async_list_for_repo("octo", "flux", state="all")
    by_number = {issue.number: issue for issue in as_list(resp.parsed_data)}
    assert not by_number[1].pull_request
    pr = by_number[2].pull_request
    assert pr and pr.html_url == f"{standin.html_base}/octo/flux/pull/2" and pr.merged_at is None
    assert pr.url == f"{standin.base_url}/repos/octo/flux/pulls/2"
    assert pr.diff_url and pr.patch_url
    merged = by_number[3].pull_request
    assert merged and merged.merged_at == START
    raw = httpx.get(f"{standin.base_url}/repos/octo/flux/issues/2", headers={"Authorization": "Bearer tok"})
    assert set(raw.json()["pull_request"]) == {"url", "html_url", "diff_url", "patch_url", "merged_at"}


async def test_etag_and_if_none_match(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_many_issues(3, START)
    first = await gh.rest.issues.async_list_for_repo("octo", "flux", state="all", per_page=100, page=1)
    etag = first.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{40}"', etag)
    again = await gh.rest.issues.async_list_for_repo(
        "octo", "flux", state="all", per_page=100, page=1, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    assert standin.last_request.headers["if-none-match"] == etag
    standin.update_issue(2, body="changed")
    changed = await gh.rest.issues.async_list_for_repo(
        "octo", "flux", state="all", per_page=100, page=1, headers={"If-None-Match": etag}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert [issue.body for issue in as_list(changed.parsed_data) if issue.number == 2] == ["changed"]


async def test_create_and_list_pull_requests(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_issue(4, "an issue")
    resp = await gh.rest.pulls.async_create(
        "octo", "flux", title="Work 1", head="codex/work-1-a1", base="main", body="Closes #4", draft=True
    )
    assert resp.status_code == 201
    pull = resp.parsed_data
    assert type(pull).__name__ == "PullRequest"
    assert pull.number == 5 and pull.html_url == f"{standin.html_base}/octo/flux/pull/5"
    assert (pull.head.label, pull.head.ref, pull.base.ref, pull.draft) == (
        "octo:codex/work-1-a1",
        "codex/work-1-a1",
        "main",
        True,
    )
    assert (pull.state, pull.merged, pull.mergeable) == ("open", False, None)
    assert standin.last_request.json == {
        "title": "Work 1",
        "head": "codex/work-1-a1",
        "base": "main",
        "body": "Closes #4",
        "draft": True,
    }
    assert standin.last_request.headers["content-type"] == "application/json"

    # The PR shares the issue numbering and shows in the issues listing.
    issue = (await gh.rest.issues.async_get("octo", "flux", 5)).parsed_data
    assert issue.pull_request and issue.pull_request.html_url == pull.html_url

    listed = await gh.rest.pulls.async_list(
        "octo", "flux", head="octo:codex/work-1-a1", base="main", state="open"
    )
    assert [p.number for p in as_list(listed.parsed_data)] == [5]
    assert type(as_list(listed.parsed_data)[0]).__name__ == "PullRequestSimple"
    assert standin.last_request.query == {"head": "octo:codex/work-1-a1", "base": "main", "state": "open"}
    none = await gh.rest.pulls.async_list("octo", "flux", head="octo:other", base="main", state="open")
    assert none.parsed_data == []
    # Like GitHub, a head without "owner:" is ignored.
    loose = await gh.rest.pulls.async_list("octo", "flux", head="other", base="main", state="open")
    assert [p.number for p in as_list(loose.parsed_data)] == [5]
    full = (await gh.rest.pulls.async_get("octo", "flux", 5)).parsed_data
    assert full.number == 5

    standin.merge_pull(5)
    closed = await gh.rest.pulls.async_list("octo", "flux", state="closed")
    assert as_list(closed.parsed_data)[0].merged_at is not None
    assert (await gh.rest.pulls.async_list("octo", "flux")).parsed_data == []


async def test_create_pull_validation_errors(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.add_pull("codex/work-1-a1", title="existing")
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.pulls.async_create("octo", "flux", title="again", head="codex/work-1-a1", base="main")
    assert failed.value.response.status_code == 422
    assert failed.value.response.json() == {
        "message": "Validation Failed",
        "errors": [
            {
                "resource": "PullRequest",
                "code": "custom",
                "message": "A pull request already exists for octo:codex/work-1-a1.",
            }
        ],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
        "status": "422",
    }
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.pulls.async_create("octo", "flux", title="t", head="codex/work-2", base="nope")
    body = failed.value.response.json()
    assert failed.value.response.status_code == 422 and body["message"] == "Validation Failed"
    assert body["errors"] == [{"resource": "PullRequest", "field": "base", "code": "invalid"}]
    # Another base for the same head is allowed, as on GitHub.
    standin.branches.add("release")
    created = await gh.rest.pulls.async_create(
        "octo", "flux", title="t", head="codex/work-1-a1", base="release"
    )
    assert created.status_code == 201


async def test_wrong_or_missing_token_is_401(standin: GitHubStandIn) -> None:
    async with GitHub("wrong", base_url=standin.base_url, auto_retry=False, http_cache=False) as bad:
        with pytest.raises(RequestFailed) as failed:
            await bad.rest.repos.async_get("octo", "flux")
    assert failed.value.response.status_code == 401
    assert failed.value.response.json()["message"] == "Bad credentials"
    assert httpx.get(f"{standin.base_url}/repos/octo/flux").status_code == 401
    ok = httpx.get(f"{standin.base_url}/repos/octo/flux", headers={"Authorization": "Bearer tok"})
    assert ok.status_code == 200
    standin.expected_token = None
    assert httpx.get(f"{standin.base_url}/repos/octo/flux").status_code == 200


async def test_enterprise_prefix() -> None:
    with GitHubStandIn(prefix="/api/v3", owner="acme", repo="widgets", default_branch="trunk") as server:
        assert server.base_url.endswith("/api/v3") and not server.html_base.endswith("/api/v3")
        async with GitHub("any", base_url=server.base_url, auto_retry=False, http_cache=False) as client:
            repo = (await client.rest.repos.async_get("acme", "widgets")).parsed_data
            created = await client.rest.pulls.async_create(
                "acme", "widgets", title="t", head="b", base="trunk"
            )
        assert repo.default_branch == "trunk" and repo.html_url == f"{server.html_base}/acme/widgets"
        assert created.parsed_data.html_url == f"{server.html_base}/acme/widgets/pull/1"
        assert server.requests[0].path == "/repos/acme/widgets"
        assert server.requests[0].raw_path == "/api/v3/repos/acme/widgets"
        root = httpx.get(server.base_url.removesuffix("/api/v3") + "/repos/acme/widgets")
        assert root.status_code == 404
    assert server.errors == []


# ----------------------------------------------------------------------------------------- faults


async def test_fail_unauthorized_forbidden_server_error(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.fail_unauthorized()
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.repos.async_get("octo", "flux")
    assert failed.value.response.status_code == 401
    assert failed.value.response.json()["message"] == "Bad credentials"

    standin.fail_forbidden()
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.repos.async_get("octo", "flux")
    assert not isinstance(failed.value, RateLimitExceeded)
    response = failed.value.response
    assert response.status_code == 403 and response.headers["x-ratelimit-remaining"] != "0"
    assert response.json()["message"] == "Resource not accessible by personal access token"

    standin.fail_server_error(times=2)
    for _ in range(2):
        with pytest.raises(RequestFailed) as failed:
            await gh.rest.repos.async_get("octo", "flux")
        assert failed.value.response.status_code == 502
    standin.fail_server_error(status=503)
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.repos.async_get("octo", "flux")
    assert failed.value.response.status_code == 503
    assert (await gh.rest.repos.async_get("octo", "flux")).status_code == 200  # faults used up


async def test_rate_limits(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.fail_rate_limited(reset_in=120)
    with pytest.raises(PrimaryRateLimitExceeded) as primary:
        await gh.rest.repos.async_get("octo", "flux")
    headers = primary.value.response.headers
    assert primary.value.response.status_code == 403
    assert (
        headers["x-ratelimit-remaining"] == "0"
        and headers["x-ratelimit-used"] == headers["x-ratelimit-limit"]
    )
    assert abs(int(headers["x-ratelimit-reset"]) - (time.time() + 120)) < 5
    assert timedelta(seconds=100) < primary.value.retry_after <= timedelta(seconds=120)
    assert primary.value.response.json()["message"].startswith("API rate limit exceeded for")

    standin.fail_too_many(retry_after=2)
    with pytest.raises(SecondaryRateLimitExceeded) as secondary:
        await gh.rest.repos.async_get("octo", "flux")
    assert secondary.value.response.status_code == 429
    assert secondary.value.response.headers["retry-after"] == "2"
    assert secondary.value.retry_after == timedelta(seconds=2)


async def test_fault_filters_by_path_and_method(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.fail(418, {"message": "teapot"}, headers={"X-Extra": "1"}, path="/pulls", method="POST")
    assert (await gh.rest.pulls.async_list("octo", "flux")).status_code == 200  # GET: not matched
    assert (await gh.rest.repos.async_get("octo", "flux")).status_code == 200  # path: not matched
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.pulls.async_create("octo", "flux", title="t", head="x", base="main")
    assert failed.value.response.status_code == 418
    assert failed.value.response.headers["x-extra"] == "1"
    assert failed.value.response.json() == {"message": "teapot"}
    assert standin.pulls == []  # the faulted request did not reach the endpoint

    standin.fail(500, times=None, path="/issues")
    for _ in range(3):
        with pytest.raises(RequestFailed):
            await gh.rest.issues.async_list_for_repo("octo", "flux")
    standin.clear_faults()
    assert (await gh.rest.issues.async_list_for_repo("octo", "flux")).status_code == 200
    standin.fail(404)
    with pytest.raises(RequestFailed) as failed:
        await gh.rest.repos.async_get("octo", "flux")
    assert failed.value.response.json() == {
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest",
        "status": "404",
    }


async def test_delay_provokes_a_client_timeout(standin: GitHubStandIn) -> None:
    standin.delay(2.0)
    async with GitHub(
        "tok", base_url=standin.base_url, auto_retry=False, http_cache=False, timeout=0.2
    ) as client:
        started = time.perf_counter()
        with pytest.raises(RequestTimeout):
            await client.rest.repos.async_get("octo", "flux")
        assert time.perf_counter() - started < 1.5
        assert (await client.rest.repos.async_get("octo", "flux")).status_code == 200  # delay used up


async def test_delay_then_normal_answer(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.delay(0.2, path="/repos/octo/flux")
    started = time.perf_counter()
    resp = await gh.rest.repos.async_get("octo", "flux")
    assert resp.status_code == 200 and time.perf_counter() - started >= 0.2


async def test_not_github(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    standin.not_github()
    resp = await gh.rest.repos.async_get("octo", "flux")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "x-github-request-id" not in resp.headers
    with pytest.raises(ValueError):  # JSONDecodeError (or a validation error), never a model
        _ = resp.parsed_data

    standin.not_github("json")
    resp = await gh.rest.issues.async_list_for_repo("octo", "flux")
    assert resp.status_code == 200
    with pytest.raises(ValidationError):
        _ = resp.parsed_data


async def test_request_log(standin: GitHubStandIn, gh: GitHub[Any]) -> None:
    since = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    await gh.rest.issues.async_list_for_repo(
        "octo", "flux", state="all", per_page=100, page=1, since=since, headers={"If-None-Match": '"abc"'}
    )
    await gh.rest.pulls.async_create("octo", "flux", title="T", head="h", base="main", body=None)
    get, post = standin.requests
    assert (get.method, get.path) == ("GET", "/repos/octo/flux/issues")
    assert get.query["state"] == "all" and get.query["per_page"] == "100" and get.query["page"] == "1"
    assert datetime.fromisoformat(get.query["since"]) == since
    assert get.headers["if-none-match"] == '"abc"' and get.headers["authorization"] == "token tok"
    assert get.json is None
    assert (post.method, post.path, post.json) == (
        "POST",
        "/repos/octo/flux/pulls",
        {"title": "T", "head": "h", "base": "main", "body": None},
    )
    assert standin.requests_to("/pulls", "POST") == [post]
    standin.clear_requests()
    assert standin.requests == []


# ----------------------------------------------------------------------------------------- scale


def test_ten_thousand_issues_hundred_pages_fast(standin: GitHubStandIn) -> None:
    started = time.perf_counter()
    numbers = standin.add_many_issues(10_000, START)
    built = time.perf_counter() - started
    assert len(standin.issues) == 10_000 and numbers == range(1, 10_001)
    assert standin.issues[10_000]["updated_at"] == iso(START + timedelta(minutes=9_999))
    seen: set[int] = set()
    with httpx.Client(base_url=standin.base_url, headers={"Authorization": "Bearer tok"}) as client:
        url: str | None = "/repos/octo/flux/issues?state=all&sort=updated&direction=asc&per_page=100&page=1"
        pages = 0
        while url:
            resp = client.get(url)
            assert resp.status_code == 200
            seen.update(item["number"] for item in resp.json())
            pages += 1
            next_link = links(resp.headers.get("link")).get("next")
            url = str(next_link) if next_link else None
    elapsed = time.perf_counter() - started
    assert pages == 100 and seen == set(range(1, 10_001))
    assert built < 2.0, built
    assert elapsed < 8.0, elapsed
