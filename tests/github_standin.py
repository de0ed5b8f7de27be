"""A loopback stand-in for the slice of GitHub's REST API that codex-mcp uses.

A real HTTP server on 127.0.0.1 (ephemeral port) in a background thread, answering with complete,
GitHub-shaped JSON (every field githubkit's pydantic models require), GitHub's error bodies,
``Link`` pagination, ``ETag``/``If-None-Match`` and rate-limit headers. Every request is recorded,
and faults (error statuses, rate limits, delays, non-GitHub answers) can be injected.

    with GitHubStandIn(expected_token="tok") as gh:
        gh.add_issue(1, "Bug")
        GitHub("tok", base_url=gh.base_url, auto_retry=False, http_cache=False)

The socket is bound in the constructor (so ``base_url`` and every URL inside the objects are known
before any data is added); ``start()`` only starts the serving thread. Always ``stop()`` it (or use
``with``). The stand-in's API is summarised in the docstring of :class:`GitHubStandIn`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import re
import socket
import threading
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["Fault", "GitHubStandIn", "RecordedRequest", "iso"]

DOCS = "https://docs.github.com/rest"
DOCS_CREATE_PR = "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"
DOCS_RATE_LIMIT = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
DOCS_SECONDARY = (
    "https://docs.github.com/free-pro-team@latest/rest/using-the-rest-api/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits"
)
RATE_LIMIT = 5000
REPO_ID = 641_234_567
OWNER_ID = 9_919_001
_MAX_PER_PAGE = 100
_DEFAULT_PER_PAGE = 30


# --------------------------------------------------------------------------------------------- helpers


def iso(value: datetime | str | None) -> str | None:
    """GitHub's timestamp format, ``YYYY-MM-DDTHH:MM:SSZ`` (naive datetimes are taken as UTC)."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    text = value.strip().replace(" ", "+")  # a raw '+' in a query string decodes to a space
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _node_id(prefix: str, number: int) -> str:
    return prefix + base64.urlsafe_b64encode(number.to_bytes(8, "big")).decode().rstrip("=")


def _sha(text: str) -> str:
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def _error(status: int, message: str, documentation_url: str = DOCS, **extra: Any) -> dict[str, Any]:
    """GitHub's error body: message, (errors), documentation_url, status (a string)."""
    return {"message": message, **extra, "documentation_url": documentation_url, "status": str(status)}


@dataclass
class RecordedRequest:
    """One request as the stand-in received it. ``req["method"]`` works as well as ``req.method``."""

    method: str
    path: str  # without the prefix and the query string, e.g. "/repos/octo/flux/issues"
    query: dict[str, str]  # last value wins for a repeated name
    headers: dict[str, str]  # names lowercased
    json: Any  # the parsed JSON body, or None
    body: bytes = b""
    raw_path: str = ""  # exactly as received, prefix and query included
    status: int | None = None  # the status answered (304 for a matching If-None-Match); None until sent

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


@dataclass
class Fault:
    """An injected answer (or delay) for the next ``times`` matching requests (``None``: until cleared)."""

    status: int | None  # None: only a delay, then the normal answer
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    path: str | None = None  # substring of the request path (prefix stripped, no query)
    method: str | None = None
    delay: float = 0.0
    github_headers: bool = True  # add the usual x-github-*/x-ratelimit-* headers

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path is None or self.path in path


# --------------------------------------------------------------------------------------------- server


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, standin: GitHubStandIn) -> None:
        self.standin = standin
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that timed out and hung up mid-answer is expected (delay()); nothing to report.
        pass

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every answer carries Content-Length
    server_version = "GitHub.com"
    sys_version = ""
    timeout = 30
    server: _Server
    recorded: RecordedRequest | None = None  # the request being answered (its status is noted on it)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        standin = self.server.standin
        try:
            standin._handle(self)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as exc:  # a bug in the stand-in: visible in standin.errors and as a 500
            standin.errors.append(exc)
            self.close_connection = True
            with contextlib.suppress(OSError):
                standin._send(self, 500, _json_bytes({"message": f"stand-in error: {exc!r}"}), {})

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


# --------------------------------------------------------------------------------------------- stand-in

_REPO_PATH = re.compile(r"^/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)(?P<rest>/.*)?$")


class GitHubStandIn:
    """A GitHub REST API stand-in on 127.0.0.1.

    Constructor (keyword-only): ``owner="octo"``, ``repo="flux"``, ``default_branch="main"``,
    ``expected_token=None`` (None: any or no Authorization accepted), ``prefix=""`` (e.g. "/api/v3"
    for GitHub Enterprise style), ``html_base=None`` (web address; default: the server's root, i.e.
    ``base_url`` without a trailing /api/v3, like GHE), ``branches=None`` (branches that exist for a
    PR's base; default {default_branch}), ``private=False``.

    Lifecycle: ``start()``, ``stop()`` (idempotent), ``with GitHubStandIn() as gh``; ``base_url``,
    ``port``, ``html_base``, ``api_repo_url``.

    State: ``owner``, ``repo``, ``default_branch``, ``expected_token``, ``branches`` (set),
    ``issues`` (dict number -> GitHub issue dict, PRs included), ``pulls`` (list of full PR dicts),
    ``requests`` (list of RecordedRequest), ``faults`` (list of Fault), ``errors`` (exceptions raised
    inside the stand-in while answering; should stay empty).
    Data: ``add_issue``, ``add_many_issues``, ``update_issue``, ``add_pull``, ``merge_pull``,
    ``next_number``, ``user(login)``, ``repository()``. Change data through these (the listing cache is
    invalidated by them, not by editing the returned dicts by hand).
    Faults: ``fail``, ``fail_unauthorized``, ``fail_forbidden``, ``fail_rate_limited``, ``fail_too_many``,
    ``fail_server_error``, ``delay``, ``not_github``, ``clear_faults``.
    Requests: ``requests_to``, ``last_request``, ``clear_requests``.
    """

    def __init__(
        self,
        *,
        owner: str = "octo",
        repo: str = "flux",
        default_branch: str = "main",
        expected_token: str | None = None,
        prefix: str = "",
        html_base: str | None = None,
        branches: Iterable[str] | None = None,
        private: bool = False,
    ) -> None:
        self.owner = owner
        self.repo = repo
        self.default_branch = default_branch
        self.expected_token = expected_token
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.private = private
        self.branches: set[str] = set(branches) if branches is not None else {default_branch}
        self.branches.add(default_branch)
        self.issues: dict[int, dict[str, Any]] = {}
        self.pulls: list[dict[str, Any]] = []
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.errors: list[BaseException] = []  # exceptions raised inside the stand-in (should stay empty)
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._version = 0  # bumped on every change of issues/pulls: invalidates the listing cache
        self._cache: dict[Any, list[dict[str, Any]]] = {}
        self._max_updated: str = ""
        self._users: dict[str, dict[str, Any]] = {}
        self._labels: dict[str, dict[str, Any]] = {}
        self._created = _now() - timedelta(days=365)
        self._httpd: _Server | None = _Server(self)  # bound and listening now; served by start()
        self.port: int = self._httpd.server_address[1]
        root = f"http://127.0.0.1:{self.port}"
        self.base_url = root + self.prefix
        web_path = self.prefix[: -len("/api/v3")] if self.prefix.endswith("/api/v3") else self.prefix
        self.html_base = (html_base or root + web_path).rstrip("/")
        self.api_repo_url = f"{self.base_url}/repos/{owner}/{repo}"
        self._issue_template = self._make_issue_template()

    # ----------------------------------------------------------------------------------------- lifecycle

    def start(self) -> GitHubStandIn:
        if self._httpd is None:
            raise RuntimeError("the stand-in was stopped; create a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="github-standin",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes delayed answers
        if self._thread is not None:
            httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        httpd.close_connections()
        httpd.server_close()

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------------------------------- objects

    def user(self, login: str, *, type: str = "User") -> dict[str, Any]:
        """A complete SimpleUser for ``login`` (cached; the same dict is shared)."""
        found = self._users.get(login)
        if found is not None:
            return found
        uid = OWNER_ID if login == self.owner else 10_000_000 + zlib.crc32(login.encode()) % 80_000_000
        api = f"{self.base_url}/users/{login}"
        found = {
            "login": login,
            "id": uid,
            "node_id": _node_id("U_kgDO", uid),
            "avatar_url": f"https://avatars.githubusercontent.com/u/{uid}?v=4",
            "gravatar_id": "",
            "url": api,
            "html_url": f"{self.html_base}/{login}",
            "followers_url": f"{api}/followers",
            "following_url": f"{api}/following{{/other_user}}",
            "gists_url": f"{api}/gists{{/gist_id}}",
            "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
            "subscriptions_url": f"{api}/subscriptions",
            "organizations_url": f"{api}/orgs",
            "repos_url": f"{api}/repos",
            "events_url": f"{api}/events{{/privacy}}",
            "received_events_url": f"{api}/received_events",
            "type": type,
            "user_view_type": "public",
            "site_admin": False,
        }
        self._users[login] = found
        return found

    def _label(self, name: str) -> dict[str, Any]:
        found = self._labels.get(name)
        if found is None:
            lid = 5_000_000_000 + zlib.crc32(name.encode()) % 1_000_000_000
            found = {
                "id": lid,
                "node_id": _node_id("LA_kwDO", lid),
                "url": f"{self.api_repo_url}/labels/{name.replace(' ', '%20')}",
                "name": name,
                "color": f"{zlib.crc32(name.encode()[::-1]) & 0xFFFFFF:06x}",
                "default": name in ("bug", "documentation", "enhancement", "good first issue", "question"),
                "description": None,
                "archived_by": None,
            }
            self._labels[name] = found
        return found

    def repository(self) -> dict[str, Any]:
        """The full repository object (FullRepository) as GET /repos/{o}/{r} answers it."""
        api = self.api_repo_url
        web = f"{self.html_base}/{self.owner}/{self.repo}"
        host = urlsplit(self.html_base).netloc
        open_count = sum(1 for issue in self.issues.values() if issue["state"] == "open")
        pushed = max(self._max_updated, iso(self._created) or "")
        return {
            "id": REPO_ID,
            "node_id": _node_id("R_kgDO", REPO_ID),
            "name": self.repo,
            "full_name": f"{self.owner}/{self.repo}",
            "private": self.private,
            "owner": self.user(self.owner),
            "html_url": web,
            "description": "A repository served by the codex-mcp GitHub stand-in",
            "fork": False,
            "url": api,
            "forks_url": f"{api}/forks",
            "keys_url": f"{api}/keys{{/key_id}}",
            "collaborators_url": f"{api}/collaborators{{/collaborator}}",
            "teams_url": f"{api}/teams",
            "hooks_url": f"{api}/hooks",
            "issue_events_url": f"{api}/issues/events{{/number}}",
            "events_url": f"{api}/events",
            "assignees_url": f"{api}/assignees{{/user}}",
            "branches_url": f"{api}/branches{{/branch}}",
            "tags_url": f"{api}/tags",
            "blobs_url": f"{api}/git/blobs{{/sha}}",
            "git_tags_url": f"{api}/git/tags{{/sha}}",
            "git_refs_url": f"{api}/git/refs{{/sha}}",
            "trees_url": f"{api}/git/trees{{/sha}}",
            "statuses_url": f"{api}/statuses/{{sha}}",
            "languages_url": f"{api}/languages",
            "stargazers_url": f"{api}/stargazers",
            "contributors_url": f"{api}/contributors",
            "subscribers_url": f"{api}/subscribers",
            "subscription_url": f"{api}/subscription",
            "commits_url": f"{api}/commits{{/sha}}",
            "git_commits_url": f"{api}/git/commits{{/sha}}",
            "comments_url": f"{api}/comments{{/number}}",
            "issue_comment_url": f"{api}/issues/comments{{/number}}",
            "contents_url": f"{api}/contents/{{+path}}",
            "compare_url": f"{api}/compare/{{base}}...{{head}}",
            "merges_url": f"{api}/merges",
            "archive_url": f"{api}/{{archive_format}}{{/ref}}",
            "downloads_url": f"{api}/downloads",
            "issues_url": f"{api}/issues{{/number}}",
            "pulls_url": f"{api}/pulls{{/number}}",
            "milestones_url": f"{api}/milestones{{/number}}",
            "notifications_url": f"{api}/notifications{{?since,all,participating}}",
            "labels_url": f"{api}/labels{{/name}}",
            "releases_url": f"{api}/releases{{/id}}",
            "deployments_url": f"{api}/deployments",
            "created_at": iso(self._created),
            "updated_at": pushed,
            "pushed_at": pushed,
            "git_url": f"git://{host}/{self.owner}/{self.repo}.git",
            "ssh_url": f"git@{host}:{self.owner}/{self.repo}.git",
            "clone_url": f"{web}.git",
            "svn_url": web,
            "homepage": None,
            "size": 1024,
            "stargazers_count": 3,
            "watchers_count": 3,
            "language": "Python",
            "has_issues": True,
            "has_projects": True,
            "has_downloads": True,
            "has_wiki": False,
            "has_pages": False,
            "has_discussions": False,
            "forks_count": 0,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "open_issues_count": open_count,
            "license": {
                "key": "mit",
                "name": "MIT License",
                "spdx_id": "MIT",
                "url": f"{self.base_url}/licenses/mit",
                "node_id": "MDc6TGljZW5zZTEz",
            },
            "allow_forking": True,
            "is_template": False,
            "web_commit_signoff_required": False,
            "topics": [],
            "visibility": "private" if self.private else "public",
            "forks": 0,
            "open_issues": open_count,
            "watchers": 3,
            "default_branch": self.default_branch,
            "permissions": {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True},
            "temp_clone_token": "",
            "allow_squash_merge": True,
            "allow_merge_commit": True,
            "allow_rebase_merge": True,
            "allow_auto_merge": False,
            "delete_branch_on_merge": False,
            "allow_update_branch": False,
            "use_squash_pr_title_as_default": False,
            "squash_merge_commit_message": "COMMIT_MESSAGES",
            "squash_merge_commit_title": "COMMIT_OR_PR_TITLE",
            "merge_commit_message": "PR_TITLE",
            "merge_commit_title": "MERGE_MESSAGE",
            "network_count": 0,
            "subscribers_count": 1,
        }

    def _make_issue_template(self) -> dict[str, Any]:
        return {
            "url": "",
            "repository_url": self.api_repo_url,
            "labels_url": "",
            "comments_url": "",
            "events_url": "",
            "html_url": "",
            "id": 0,
            "node_id": "",
            "number": 0,
            "title": "",
            "user": self.user(self.owner),
            "labels": [],
            "state": "open",
            "locked": False,
            "assignee": None,
            "assignees": [],
            "milestone": None,
            "comments": 0,
            "created_at": "",
            "updated_at": "",
            "closed_at": None,
            "author_association": "OWNER",
            "type": None,
            "active_lock_reason": None,
            "sub_issues_summary": {"total": 0, "completed": 0, "percent_completed": 0},
            "issue_dependencies_summary": {
                "blocked_by": 0,
                "total_blocked_by": 0,
                "blocking": 0,
                "total_blocking": 0,
            },
            "body": None,
            "closed_by": None,
            "reactions": None,
            "timeline_url": "",
            "performed_via_github_app": None,
            "state_reason": None,
        }

    def _new_issue(self, number: int, title: str, created: str, updated: str) -> dict[str, Any]:
        issue = self._issue_template.copy()
        url = f"{self.api_repo_url}/issues/{number}"
        iid = 3_000_000_000 + number
        issue.update(
            url=url,
            labels_url=url + "/labels{/name}",
            comments_url=url + "/comments",
            events_url=url + "/events",
            html_url=f"{self.html_base}/{self.owner}/{self.repo}/issues/{number}",
            id=iid,
            node_id=_node_id("I_kwDO", iid),
            number=number,
            title=title,
            labels=[],
            created_at=created,
            updated_at=updated,
            reactions={
                "url": url + "/reactions",
                "total_count": 0,
                "+1": 0,
                "-1": 0,
                "laugh": 0,
                "hooray": 0,
                "confused": 0,
                "heart": 0,
                "rocket": 0,
                "eyes": 0,
            },
            timeline_url=url + "/timeline",
        )
        return issue

    def _pull_marker(self, number: int, merged_at: str | None) -> dict[str, Any]:
        return {
            "url": f"{self.api_repo_url}/pulls/{number}",
            "html_url": f"{self.html_base}/{self.owner}/{self.repo}/pull/{number}",
            "diff_url": f"{self.html_base}/{self.owner}/{self.repo}/pull/{number}.diff",
            "patch_url": f"{self.html_base}/{self.owner}/{self.repo}/pull/{number}.patch",
            "merged_at": merged_at,
        }

    def _set_state(self, issue: dict[str, Any], state: str) -> None:
        if state not in ("open", "closed"):
            raise ValueError(f"state must be 'open' or 'closed', not {state!r}")
        issue["state"] = state
        if state == "closed":
            issue["closed_at"] = issue["closed_at"] or issue["updated_at"]
            issue["closed_by"] = issue["closed_by"] or self.user(self.owner)
            issue["state_reason"] = issue["state_reason"] or "completed"
        else:
            reopened = issue["closed_at"] is not None
            issue["closed_at"] = issue["closed_by"] = None
            issue["state_reason"] = "reopened" if reopened else None

    def _set_assignee(self, issue: dict[str, Any], assignee: str | None) -> None:
        who = self.user(assignee) if assignee else None
        issue["assignee"] = who
        issue["assignees"] = [who] if who else []

    def _touch(self, updated: str) -> None:
        self._version += 1
        self._cache.clear()
        self._max_updated = max(self._max_updated, updated)

    def _bump_time(self) -> str:
        """Now, or one second after the newest updated_at if that is later (strictly increasing)."""
        now = _now()
        if self._max_updated:
            latest = _parse_time(self._max_updated) + timedelta(seconds=1)
            now = max(now, latest)
        return iso(now) or ""

    # ----------------------------------------------------------------------------------------- data

    def add_issue(
        self,
        number: int,
        title: str,
        body: str | None = None,
        state: str = "open",
        labels: Iterable[str] = (),
        assignee: str | None = None,
        created_at: datetime | str | None = None,
        updated_at: datetime | str | None = None,
        pull_request: bool = False,
        merged_at: datetime | str | None = None,
        *,
        user: str | None = None,
        comments: int = 0,
        draft: bool = False,
    ) -> dict[str, Any]:
        """Add (or replace) issue ``number``; returns the stored GitHub-shaped dict (mutable, live).

        created_at defaults to now, updated_at to created_at; a closed issue gets closed_at =
        updated_at. ``pull_request=True`` adds GitHub's ``pull_request`` key (the item only shows in
        the issues views; use ``add_pull`` for a PR that also shows in /pulls).
        """
        with self._lock:
            created = iso(created_at) or iso(_now()) or ""
            updated = iso(updated_at) or created
            issue = self._new_issue(number, title, created, updated)
            issue["body"] = body
            issue["comments"] = comments
            if user is not None:
                issue["user"] = self.user(user)
                issue["author_association"] = "OWNER" if user == self.owner else "CONTRIBUTOR"
            issue["labels"] = [self._label(name) for name in labels]
            self._set_assignee(issue, assignee)
            if pull_request:
                # GitHub puts draft and pull_request right after active_lock_reason.
                issue["draft"] = draft
                issue["pull_request"] = self._pull_marker(number, iso(merged_at))
            self._set_state(issue, state)
            self.issues[number] = issue
            self._touch(updated)
            return issue

    def add_many_issues(
        self,
        n: int,
        start_time: datetime | str,
        *,
        start_number: int | None = None,
        step: timedelta = timedelta(minutes=1),
        state: str = "open",
        title: str = "Issue {number}",
    ) -> range:
        """Add ``n`` open issues fast (10,000 in ~0.1 s): numbers from ``start_number`` (default: next
        free), created_at = updated_at = start_time + i * step. Returns the range of numbers."""
        start = _parse_time(start_time) if isinstance(start_time, str) else start_time
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        with self._lock:
            first = self.next_number() if start_number is None else start_number
            step_s = step.total_seconds()
            base = start.timestamp()
            fromts = datetime.fromtimestamp
            for i in range(n):
                number = first + i
                stamp = fromts(base + i * step_s, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                issue = self._new_issue(number, title.format(number=number), stamp, stamp)
                if state != "open":
                    self._set_state(issue, state)
                self.issues[number] = issue
            if n:
                self._touch(iso(fromts(base + (n - 1) * step_s, UTC)) or "")
            return range(first, first + n)

    def update_issue(self, number: int, **changes: Any) -> dict[str, Any]:
        """Change issue ``number`` and bump its updated_at (to now, or 1 s past the newest updated_at).

        Accepted: title, body, state ('open'/'closed'), labels (names), assignee (login or None),
        comments, locked, updated_at (explicit), merged_at (PR items); anything else is set verbatim.
        An open PR with that number is updated alike (title, body, state, updated_at).
        """
        with self._lock:
            issue = self.issues[number]
            updated = iso(changes.pop("updated_at", None)) or self._bump_time()
            issue["updated_at"] = updated
            if "labels" in changes:
                issue["labels"] = [self._label(name) for name in changes.pop("labels")]
            if "assignee" in changes:
                self._set_assignee(issue, changes.pop("assignee"))
            merged_at = iso(changes.pop("merged_at", None))
            if merged_at and "pull_request" in issue:
                issue["pull_request"] = {**issue["pull_request"], "merged_at": merged_at}
            state = changes.pop("state", None)
            issue.update(changes)
            if state is not None and state != issue["state"]:
                issue["closed_at"] = None if state == "closed" else issue["closed_at"]
                self._set_state(issue, state)
            pull = self._pull(number)
            if pull is not None:
                for key in ("title", "body", "state", "updated_at", "closed_at", "labels"):
                    pull[key] = issue[key]
                if merged_at:
                    pull.update(merged_at=merged_at, merged=True, merged_by=self.user(self.owner))
            self._touch(updated)
            return issue

    def next_number(self) -> int:
        """The number the next issue or PR gets (issues and PRs share numbers, like GitHub)."""
        with self._lock:
            used = max(self.issues, default=0)
            return max(used, max((p["number"] for p in self.pulls), default=0)) + 1

    def _pull(self, number: int) -> dict[str, Any] | None:
        return next((p for p in self.pulls if p["number"] == number), None)

    def _branch_ref(self, label_owner: str, ref: str, *, for_base: bool) -> dict[str, Any]:
        repo = self.repository()
        return {
            "label": f"{label_owner}:{ref}",
            "ref": ref,
            "sha": _sha(f"{label_owner}:{ref}:{'base' if for_base else 'head'}"),
            "user": self.user(label_owner),
            "repo": repo,
        }

    def add_pull(
        self,
        head: str,
        base: str | None = None,
        title: str = "A pull request",
        body: str | None = None,
        *,
        state: str = "open",
        draft: bool = False,
        merged_at: datetime | str | None = None,
        number: int | None = None,
        created_at: datetime | str | None = None,
    ) -> dict[str, Any]:
        """Add a pull request (shows in /pulls, and in /issues with a ``pull_request`` key); returns the
        full PR dict. ``head`` is "branch" or "owner:branch"; ``base`` defaults to default_branch."""
        with self._lock:
            base = base or self.default_branch
            head_owner, _, head_ref = head.rpartition(":")
            head_owner = head_owner or self.owner
            number = self.next_number() if number is None else number
            created = iso(created_at) or self._bump_time()
            merged = iso(merged_at)
            issue = self.add_issue(
                number,
                title,
                body,
                state="closed" if merged else state,
                created_at=created,
                updated_at=max(created, merged or ""),
                pull_request=True,
                merged_at=merged,
                user=head_owner,
                draft=draft,
            )
            url = f"{self.api_repo_url}/pulls/{number}"
            web = f"{self.html_base}/{self.owner}/{self.repo}/pull/{number}"
            head_obj = self._branch_ref(head_owner, head_ref, for_base=False)
            pull = {
                "url": url,
                "id": 2_000_000_000 + number,
                "node_id": _node_id("PR_kwDO", 2_000_000_000 + number),
                "html_url": web,
                "diff_url": web + ".diff",
                "patch_url": web + ".patch",
                "issue_url": issue["url"],
                "number": number,
                "state": issue["state"],
                "locked": False,
                "title": title,
                "user": issue["user"],
                "body": body,
                "created_at": issue["created_at"],
                "updated_at": issue["updated_at"],
                "closed_at": issue["closed_at"],
                "merged_at": merged,
                "merge_commit_sha": _sha(f"merge:{number}") if merged else None,
                "assignee": None,
                "assignees": [],
                "requested_reviewers": [],
                "requested_teams": [],
                "labels": [],
                "milestone": None,
                "draft": draft,
                "commits_url": url + "/commits",
                "review_comments_url": url + "/comments",
                "review_comment_url": f"{self.api_repo_url}/pulls/comments{{/number}}",
                "comments_url": issue["comments_url"],
                "statuses_url": f"{self.api_repo_url}/statuses/{head_obj['sha']}",
                "head": head_obj,
                "base": self._branch_ref(self.owner, base, for_base=True),
                "_links": {
                    "self": {"href": url},
                    "html": {"href": web},
                    "issue": {"href": issue["url"]},
                    "comments": {"href": issue["comments_url"]},
                    "review_comments": {"href": url + "/comments"},
                    "review_comment": {"href": f"{self.api_repo_url}/pulls/comments{{/number}}"},
                    "commits": {"href": url + "/commits"},
                    "statuses": {"href": f"{self.api_repo_url}/statuses/{head_obj['sha']}"},
                },
                "author_association": issue["author_association"],
                "auto_merge": None,
                "active_lock_reason": None,
                # Only in the full object (GET /pulls/{n}, POST /pulls), not in the list:
                "merged": bool(merged),
                "mergeable": None,  # GitHub computes it in the background
                "rebaseable": None,
                "mergeable_state": "unknown",
                "merged_by": self.user(self.owner) if merged else None,
                "comments": 0,
                "review_comments": 0,
                "maintainer_can_modify": False,
                "commits": 1,
                "additions": 1,
                "deletions": 0,
                "changed_files": 1,
            }
            self.pulls.append(pull)
            self._touch(pull["updated_at"])
            return pull

    def merge_pull(self, number: int) -> dict[str, Any]:
        """Mark PR ``number`` merged and closed (issue item too); returns the PR dict."""
        with self._lock:
            stamp = self._bump_time()
            self.update_issue(number, state="closed", updated_at=stamp, merged_at=stamp)
            return self._pull(number) or {}

    # ----------------------------------------------------------------------------------------- faults

    def fail(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int | None = 1,
        path: str | None = None,
        method: str | None = None,
        *,
        github_headers: bool = True,
    ) -> Fault:
        """Answer the next ``times`` matching requests (None: all, until clear_faults) with ``status``.

        ``body``: dict/list -> JSON; str/bytes -> sent as is (text/html if it starts with '<');
        None -> GitHub's {"message": <reason>, "documentation_url", "status"}. ``path`` is a substring of
        the request path (prefix stripped), ``method`` e.g. "POST". ``headers`` override the usual
        x-github-* / x-ratelimit-* headers (left out with ``github_headers=False``).
        """
        out_headers = {k.lower(): str(v) for k, v in (headers or {}).items()}
        if body is None:
            body = _error(status, HTTPStatus(status).phrase)
        if isinstance(body, dict | list):
            payload = _json_bytes(body)
            out_headers.setdefault("content-type", "application/json; charset=utf-8")
        else:
            payload = body.encode() if isinstance(body, str) else bytes(body)
            kind = "text/html" if payload.lstrip().startswith(b"<") else "text/plain"
            out_headers.setdefault("content-type", f"{kind}; charset=utf-8")
        fault = Fault(status, payload, out_headers, times, path, method, github_headers=github_headers)
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail_unauthorized(
        self, times: int | None = 1, path: str | None = None, method: str | None = None
    ) -> Fault:
        """401 Bad credentials."""
        return self.fail(401, _error(401, "Bad credentials"), times=times, path=path, method=method)

    def fail_forbidden(
        self, times: int | None = 1, path: str | None = None, method: str | None = None
    ) -> Fault:
        """403 "Resource not accessible by personal access token" (rate limit not exhausted)."""
        body = _error(
            403,
            "Resource not accessible by personal access token",
            "https://docs.github.com/rest/issues/issues#list-repository-issues",
        )
        headers = {"x-accepted-github-permissions": "issues=read; pull_requests=write"}
        return self.fail(403, body, headers, times=times, path=path, method=method)

    def fail_rate_limited(
        self, reset_in: int = 60, times: int | None = 1, path: str | None = None, method: str | None = None
    ) -> Fault:
        """403 primary rate limit: x-ratelimit-remaining 0, x-ratelimit-reset = now + reset_in (epoch s)."""
        reset = int(_now().timestamp()) + reset_in
        body = _error(
            403,
            f"API rate limit exceeded for user ID {OWNER_ID}. If you reach out to GitHub Support for help, "
            f"please include the request ID {self._request_id()} and timestamp {_now():%Y-%m-%d %H:%M:%S} UTC.",
            DOCS_RATE_LIMIT + "#about-the-primary-rate-limit",
        )
        headers = {
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": "0",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-used": str(RATE_LIMIT),
            "x-ratelimit-resource": "core",
        }
        return self.fail(403, body, headers, times=times, path=path, method=method)

    def fail_too_many(
        self, retry_after: int = 2, times: int | None = 1, path: str | None = None, method: str | None = None
    ) -> Fault:
        """429 secondary rate limit with retry-after (seconds)."""
        body = _error(
            429,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
            f"If you reach out to GitHub Support for help, please include the request ID {self._request_id()}.",
            DOCS_SECONDARY,
        )
        return self.fail(429, body, {"retry-after": str(retry_after)}, times=times, path=path, method=method)

    def fail_server_error(
        self,
        status: int = 502,
        times: int | None = 1,
        path: str | None = None,
        method: str | None = None,
        body: Any = None,
    ) -> Fault:
        """5xx with GitHub's {"message": "Server Error"} (or ``body``)."""
        message = "Server Error" if status in (500, 502) else HTTPStatus(status).phrase
        return self.fail(
            status, body if body is not None else {"message": message}, times=times, path=path, method=method
        )

    def delay(
        self, seconds: float, times: int | None = 1, path: str | None = None, method: str | None = None
    ) -> Fault:
        """Sleep ``seconds`` before answering the next matching requests normally (cut short by stop())."""
        fault = Fault(None, times=times, path=path, method=method, delay=seconds)
        with self._lock:
            self.faults.append(fault)
        return fault

    def not_github(
        self, kind: str = "html", times: int | None = 1, path: str | None = None, method: str | None = None
    ) -> Fault:
        """200 that is not GitHub: kind="html" (a captive-portal/proxy page) or "json" (a foreign shape)."""
        if kind == "html":
            body: Any = (
                "<!DOCTYPE html>\n<html><head><title>Sign in to the network</title></head>"
                "<body><h1>Corporate proxy</h1><p>Please sign in.</p></body></html>\n"
            )
        elif kind == "json":
            body = {"status": "ok", "result": {"items": "this is not GitHub"}, "version": 2}
        else:
            raise ValueError("kind must be 'html' or 'json'")
        return self.fail(200, body, times=times, path=path, method=method, github_headers=False)

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take(self, method: str, path: str, *, delay: bool) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.status is None) == delay and fault.matches(method, path):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
            return None

    # ----------------------------------------------------------------------------------------- requests

    def requests_to(self, path: str | None = None, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests whose path contains ``path`` (and with that method)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (path is None or path in r.path) and (method is None or r.method == method.upper())
            ]

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # ----------------------------------------------------------------------------------------- HTTP

    def _request_id(self) -> str:
        return uuid.uuid4().hex[:20].upper()

    def _github_headers(self, version: str | None = None) -> dict[str, str]:
        used = min(len(self.requests), RATE_LIMIT - 1)
        return {
            "x-github-api-version-selected": version or "2022-11-28",
            "x-github-media-type": "github.v3; format=json",
            "x-github-request-id": self._request_id(),
            "x-ratelimit-limit": str(RATE_LIMIT),
            "x-ratelimit-remaining": str(RATE_LIMIT - used),
            "x-ratelimit-reset": str(int(_now().timestamp()) + 3600),
            "x-ratelimit-used": str(used),
            "x-ratelimit-resource": "core",
            "x-oauth-scopes": "repo",
            "vary": "Accept, Authorization, Cookie, X-GitHub-OTP,Accept-Encoding, Accept, X-Requested-With",
        }

    def _handle(self, handler: _Handler) -> None:
        split = urlsplit(handler.path)
        method = handler.command.upper()
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw else None
            bad_json = False
        except ValueError:
            parsed, bad_json = None, True
        routed = split.path == self.prefix or split.path.startswith(self.prefix + "/") or not self.prefix
        path = split.path[len(self.prefix) :] if routed else split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        record = RecordedRequest(method, path, query, headers, parsed, raw, handler.path)
        with self._lock:
            self.requests.append(record)
        handler.recorded = record

        delayed = self._take(method, path, delay=True)
        if delayed is not None:
            self._stopping.wait(delayed.delay)
        fault = self._take(method, path, delay=False)
        if fault is not None and fault.status is not None:
            out = {
                **(self._github_headers(headers.get("x-github-api-version")) if fault.github_headers else {}),
                **fault.headers,
            }
            self._send(handler, fault.status, fault.body, out)
            return

        if self.expected_token is not None and not self._authorized(headers.get("authorization", "")):
            self._send_json(handler, 401, _error(401, "Bad credentials"))
            return
        if bad_json:
            self._send_json(handler, 400, _error(400, "Problems parsing JSON"))
            return
        if not routed:
            self._send_json(handler, 404, _error(404, "Not Found"))
            return
        with self._lock:
            status, payload, extra = self._route(method, path, query, parsed)
        self._send_json(handler, status, payload, extra, if_none_match=headers.get("if-none-match"))

    def _authorized(self, value: str) -> bool:
        scheme, _, token = value.strip().partition(" ")
        return scheme.lower() in ("bearer", "token") and token.strip() == self.expected_token

    def _send_json(
        self,
        handler: _Handler,
        status: int,
        payload: Any,
        extra: dict[str, str] | None = None,
        if_none_match: str | None = None,
    ) -> None:
        body = _json_bytes(payload)
        headers = {
            **self._github_headers(handler.headers.get("x-github-api-version")),
            "content-type": "application/json; charset=utf-8",
            **(extra or {}),
        }
        if status == 200 and handler.command == "GET":
            etag = f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()}"'
            headers["etag"] = etag
            headers["cache-control"] = "private, max-age=60, s-maxage=60"
            if if_none_match and etag in {t.strip().removeprefix("W/") for t in if_none_match.split(",")}:
                headers.pop("content-type")
                headers.pop("link", None)
                self._send(handler, 304, b"", headers)
                return
        self._send(handler, status, body, headers)

    def _send(self, handler: _Handler, status: int, body: bytes, headers: dict[str, str]) -> None:
        if handler.recorded is not None:
            handler.recorded.status = status
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        if status != 304:
            handler.send_header("content-length", str(len(body)))
        handler.end_headers()
        if status != 304 and handler.command != "HEAD":
            handler.wfile.write(body)

    # ----------------------------------------------------------------------------------------- routes

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str] | None]:
        not_found = (404, _error(404, "Not Found"), None)
        match = _REPO_PATH.match(path)
        if match is None:
            return not_found
        if (match["owner"].lower(), match["repo"].lower()) != (self.owner.lower(), self.repo.lower()):
            return not_found
        rest = (match["rest"] or "").rstrip("/")
        if rest == "" and method == "GET":
            return 200, self.repository(), None
        if rest == "/issues" and method == "GET":
            return self._list_issues(path, query)
        if rest.startswith("/issues/") and method == "GET" and rest[8:].isdigit():
            issue = self.issues.get(int(rest[8:]))
            return (200, issue, None) if issue is not None else not_found
        if rest == "/pulls" and method == "GET":
            return self._list_pulls(path, query)
        if rest == "/pulls" and method == "POST":
            return self._create_pull(body)
        if rest.startswith("/pulls/") and method == "GET" and rest[7:].isdigit():
            pull = self._pull(int(rest[7:]))
            return (200, pull, None) if pull is not None else not_found
        return not_found

    def _paginate(
        self, items: list[dict[str, Any]], path: str, query: dict[str, str]
    ) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        try:
            per_page = int(query.get("per_page", _DEFAULT_PER_PAGE))
        except ValueError:
            per_page = _DEFAULT_PER_PAGE
        per_page = min(per_page, _MAX_PER_PAGE) if per_page > 0 else _DEFAULT_PER_PAGE
        try:
            page = max(1, int(query.get("page", 1)))
        except ValueError:
            page = 1
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        if last == 1 and page == 1:
            return chunk, None

        def link(n: int) -> str:
            params = {**query, "page": str(n)}  # keeps the client's order; page replaced in place
            return f"<{self.base_url}{path}?{urlencode(params)}>"

        rels = []
        if page > 1:
            rels.append(f'{link(min(page - 1, last))}; rel="prev"')
        if page < last:
            rels.append(f'{link(page + 1)}; rel="next"')
            rels.append(f'{link(last)}; rel="last"')
        if page > 1:
            rels.append(f'{link(1)}; rel="first"')
        return chunk, {"link": ", ".join(rels)}

    def _list_issues(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str] | None]:
        state = query.get("state", "open")
        sort = query.get("sort", "created")
        direction = query.get("direction", "desc")
        invalid = [
            name
            for name, value, allowed in (
                ("state", state, ("open", "closed", "all")),
                ("sort", sort, ("created", "updated", "comments")),
                ("direction", direction, ("asc", "desc")),
            )
            if value not in allowed
        ]
        since = ""
        if query.get("since"):
            try:
                moment = _parse_time(query["since"])
            except ValueError:
                invalid.append("since")
            else:
                if moment.microsecond:  # whole-second timestamps: >= since is >= the next second
                    moment = moment.replace(microsecond=0) + timedelta(seconds=1)
                since = iso(moment) or ""
        if invalid:
            return 422, self._validation_failed("Issue", invalid[0]), None
        labels = tuple(name.strip() for name in query.get("labels", "").split(",") if name.strip())
        assignee = query.get("assignee")
        key = ("issues", self._version, state, sort, direction, since, labels, assignee)
        items = self._cache.get(key)
        if items is None:
            items = [
                issue
                for issue in self.issues.values()
                if (state == "all" or issue["state"] == state)
                and (not since or issue["updated_at"] >= since)
                and (not labels or set(labels) <= {label["name"] for label in issue["labels"]})
                and self._assignee_matches(issue, assignee)
            ]
            field_name = {"created": "created_at", "updated": "updated_at", "comments": "comments"}[sort]
            items.sort(key=lambda i: (i[field_name], i["number"]), reverse=direction == "desc")
            self._cache = {key: items}
        chunk, headers = self._paginate(items, path, query)
        return 200, chunk, headers

    @staticmethod
    def _assignee_matches(issue: dict[str, Any], assignee: str | None) -> bool:
        if assignee is None:
            return True
        if assignee == "none":
            return issue["assignee"] is None
        if assignee == "*":
            return issue["assignee"] is not None
        return any(user["login"].lower() == assignee.lower() for user in issue["assignees"])

    def _simple(self, pull: dict[str, Any]) -> dict[str, Any]:
        full_only = (
            "merged",
            "mergeable",
            "rebaseable",
            "mergeable_state",
            "merged_by",
            "comments",
            "review_comments",
            "maintainer_can_modify",
            "commits",
            "additions",
            "deletions",
            "changed_files",
        )
        return {k: v for k, v in pull.items() if k not in full_only}

    def _list_pulls(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str] | None]:
        state = query.get("state", "open")
        head = query.get("head", "")
        base = query.get("base")
        sort = query.get("sort", "created")
        direction = query.get("direction", "desc" if sort == "created" else "asc")
        if state not in ("open", "closed", "all"):
            return 422, self._validation_failed("PullRequest", "state"), None
        # Like GitHub: a head without "owner:" is silently ignored (the filter needs user:ref-name).
        head_label = head if ":" in head else None
        items = [
            pull
            for pull in self.pulls
            if (state == "all" or pull["state"] == state)
            and (head_label is None or pull["head"]["label"].lower() == head_label.lower())
            and (base is None or pull["base"]["ref"] == base)
        ]
        field_name = {"created": "created_at", "updated": "updated_at"}.get(sort, "created_at")
        items.sort(key=lambda p: (p[field_name], p["number"]), reverse=direction == "desc")
        chunk, headers = self._paginate(items, path, query)
        return 200, [self._simple(p) for p in chunk], headers

    @staticmethod
    def _validation_failed(resource: str, field_name: str, documentation_url: str = DOCS) -> dict[str, Any]:
        return _error(
            422,
            "Validation Failed",
            documentation_url,
            errors=[{"resource": resource, "field": field_name, "code": "invalid"}],
        )

    def _create_pull(self, body: Any) -> tuple[int, Any, dict[str, str] | None]:
        if not isinstance(body, dict):
            return 400, _error(400, "Problems parsing JSON", DOCS_CREATE_PR), None
        for name in ("head", "base"):
            if not isinstance(body.get(name), str) or not body[name]:
                message = f'Invalid request.\n\n"{name}" wasn\'t supplied.'
                return 422, _error(422, message, DOCS_CREATE_PR), None
        if not body.get("title") and not body.get("issue"):
            message = 'Invalid request.\n\n"title" wasn\'t supplied.'
            return 422, _error(422, message, DOCS_CREATE_PR), None
        head_owner, _, head_ref = body["head"].rpartition(":")
        label = f"{head_owner or self.owner}:{head_ref}"
        base = body["base"]
        if base not in self.branches:
            return 422, self._validation_failed("PullRequest", "base", DOCS_CREATE_PR), None
        if any(
            p["state"] == "open" and p["head"]["label"].lower() == label.lower() and p["base"]["ref"] == base
            for p in self.pulls
        ):
            error = {
                "resource": "PullRequest",
                "code": "custom",
                "message": f"A pull request already exists for {label}.",
            }
            return 422, _error(422, "Validation Failed", DOCS_CREATE_PR, errors=[error]), None
        pull = self.add_pull(
            label, base, body.get("title") or "", body.get("body"), draft=bool(body.get("draft", False))
        )
        return 201, pull, {"location": pull["url"]}

    # ----------------------------------------------------------------------------------------- misc

    def __repr__(self) -> str:
        return f"<GitHubStandIn {self.base_url} {self.owner}/{self.repo}>"
