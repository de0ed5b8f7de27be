"""The local cache of the repository's GitHub issues: sync (incremental, conditional) and lookups.

A sync asks for every issue, open and closed, 100 a page, following ``Link: rel="next"``, ``since``
the newest ``updated_at`` the last sync saw; each page is requested with the ETag it had last time, so
an unchanged repository costs only 304s. When the newest ``updated_at`` moved, the listing is asked
once more from it, to keep the ETags of exactly the listing the next sync will ask. Pull requests
(items with a ``pull_request`` key) are not cached as issues, but their state refreshes the
``pr_state`` of instances that opened them. Everything is written in one transaction at the end: a
failed sync changes nothing.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

from codex_mcp.errors import CodexError, StateError
from codex_mcp.github import GitHubClient, client_for
from codex_mcp.outcomes import SyncResult
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store import github_sync as sync_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store.github_sync import SyncPage
from codex_mcp.store.issues import Issue
from codex_mcp.userconfig import UserConfig

log = logging.getLogger(__name__)

PER_PAGE = 100
MAX_PAGES = 10_000
LISTINGS = 2  # the listing since the last watermark, then once more from the new one
Progress = Callable[[float, float | None, str], Awaitable[None]]


async def github_client(settings: Settings, db: Database) -> GitHubClient:
    config = UserConfig(db, settings.secret_key_file)
    token = settings.github_token or await config.get("github.token")
    return await client_for(settings, token, await config.get("github.repo"))


def _request_key(repo: str, query: dict[str, str]) -> str:
    return f"{repo} issues?{urlencode(sorted(query.items()))}"


def _to_issue(item: dict[str, Any], owner: str, name: str) -> Issue:
    assignee = item.get("assignee") or {}
    return Issue(
        number=int(item["number"]),
        title=str(item.get("title") or ""),
        body=item.get("body"),
        state="closed" if item.get("state") == "closed" else "open",
        assignee=assignee.get("login") if isinstance(assignee, dict) else None,
        labels=[
            str(lbl.get("name")) if isinstance(lbl, dict) else str(lbl) for lbl in item.get("labels") or []
        ],
        created_at=item.get("created_at"),
        updated_at=item.get("updated_at"),
        repo_owner=owner,
        repo_name=name,
    )


async def sync(settings: Settings, db: Database, *, progress: Progress | None = None) -> SyncResult:
    with _collector_paused():
        client = await github_client(settings, db)  # the first one imports githubkit: no collection either
        async with client:  # one HTTP connection for every page
            return await _sync(client, db, progress)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection during a sync (it resumes when the sync ends, however it ends).

    A sync of 10,000 issues allocates a few million containers (each page's JSON tree, the models that
    validate it, the rows), all freed by reference counting: they hold no cycles. The collector would
    still walk them some 300 times, and every object of the interpreter three times: 0.2-0.4 s of a
    2 s sync, measured. In a server, other calls go without it for the sync's second or two too.
    """
    if not gc.isenabled():  # paused already (another sync in this process), or by the program
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def _sync(client: GitHubClient, db: Database, progress: Progress | None) -> SyncResult:
    repo = client.repo
    for owner, name in await issues_store.repositories(db):
        if (owner.lower(), name.lower()) != (repo.owner.lower(), repo.name.lower()):
            raise StateError(
                f"this database caches the issues of {owner}/{name}, not {repo}: one database serves one "
                "repository (issues are keyed by number); point CODEX_MCP_DB at another file for this one"
            )
    stored = await sync_store.listing(db)
    since = _last_since(stored, str(repo))
    received: dict[int, Issue] = {}
    pr_states: dict[int, str] = {}
    pages: list[SyncPage] = []
    not_modified = 0
    count = 0
    for _ in range(LISTINGS):
        pages = []  # only the last listing's pages are kept: the next sync asks exactly that listing
        query: dict[str, str] | None = {
            "per_page": str(PER_PAGE),
            "page": "1",
            **({"since": since} if since else {}),
        }
        while query is not None and count < MAX_PAGES:
            key = _request_key(str(repo), query)
            known = stored.get(key)
            page = await client.list_issues_page(query, known.etag if known else None)
            count += 1
            if page.status == 304:
                not_modified += 1
                next_query = (
                    page.next_query
                    if page.next_query is not None
                    else (_parse_key(known.next_request) if known and known.next_request else None)
                )
            else:
                next_query = page.next_query
                for item in page.items:
                    if "pull_request" in item:
                        merged = (item.get("pull_request") or {}).get("merged_at")
                        pr_states[int(item["number"])] = (
                            "merged" if merged else str(item.get("state") or "open")
                        )
                        continue
                    issue = _to_issue(item, repo.owner, repo.name)
                    received[issue.number] = issue
            if page.etag:
                pages.append(
                    SyncPage(
                        request=key,
                        etag=page.etag,
                        next_request=urlencode(sorted(next_query.items())) if next_query else None,
                    )
                )
            if progress is not None:
                await progress(float(count), None, f"page {count}: {len(received)} issues so far")
            query = next_query
        newest = max((i.updated_at for i in received.values() if i.updated_at), default=None)
        if newest is None or (since is not None and newest <= since):
            break
        # The watermark moved: list once more from it (GitHub's since is inclusive, so this costs a
        # page or so) only to keep that listing's ETags; the next sync asks exactly that listing, and
        # an unchanged repository then costs only 304s.
        since = newest
    cached = await issues_store.updated_at_of(db, list(received))
    changed = [
        i for i in received.values() if cached.get(i.number, "\0") != i.updated_at or i.number not in cached
    ]
    async with db.write() as tx:
        await issues_store.upsert_many(tx, changed)
        await sync_store.replace_all(tx, pages)
        prs = await instances_store.update_pr_states(tx, pr_states)
    return SyncResult(
        repository=str(repo),
        fetched=len(received),
        changed=len(changed),
        unchanged=len(received) - len(changed),
        pages=count,
        not_modified_pages=not_modified,
        pull_requests_updated=prs,
    )


def _last_since(stored: dict[str, SyncPage], repo: str) -> str | None:
    """The ``since`` of the last sync's listing (the newest ``updated_at`` that listing saw); None: none yet.

    Taken from the stored pages, not from the newest cached issue: an issue cached alone (fetch_issue)
    must not move the watermark past issues that no sync has fetched yet.
    """
    prefix = f"{repo} issues?"
    for request in stored:
        if request.startswith(prefix):
            return _parse_key(request[len(prefix) :]).get("since")
    return None


def _parse_key(query: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(query))


async def fetch_issue(settings: Settings, db: Database, number: int) -> Issue | None:
    """The issue from the cache, else from GitHub (then cached); None, with a warning, when unavailable."""
    cached = await issues_store.get(db, number)
    if cached is not None:
        return cached
    try:
        client = await github_client(settings, db)
        item = await client.get_issue(number)
    except CodexError as exc:
        log.warning(
            "issue #%s is not cached and could not be fetched (%s); going ahead without its text", number, exc
        )
        return None
    if item is None or "pull_request" in item:
        log.warning("issue #%s does not exist in the repository; going ahead without issue text", number)
        return None
    issue = _to_issue(item, client.repo.owner, client.repo.name)
    for owner, name in await issues_store.repositories(db):
        if (owner, name) != (client.repo.owner, client.repo.name):
            return issue  # another repository's cache: use it, do not mix it in
    async with db.write() as tx:
        await issues_store.upsert_many(tx, [issue])
    return issue
