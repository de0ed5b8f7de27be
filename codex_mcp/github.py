"""The GitHub adapter: the only module that imports githubkit (lazily: it costs ~150 ms to import).

Where things come from:
- API base URL: ``CODEX_MCP_GITHUB_API_URL`` (GitHub Enterprise, or a test stand-in);
- repository ``owner/name``: ``CODEX_MCP_GITHUB_REPO``, else the ``origin`` remote's URL (https, ssh
  and scp-like forms), else ``user_config github.repo``;
- token: ``GITHUB_TOKEN``, else the encrypted ``github.token``. The token is never logged, recorded,
  stored in clear or returned.

Every failure becomes an UpstreamError (or ConfigError/StateError) whose text says what to do:
authentication, permissions, rate limits with the time to retry, a 422's validation details.
Rate limits are honoured by waiting when the wait is short (bounded), else reported.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import parse_qsl, urlsplit

import anyio

from codex_mcp import git
from codex_mcp.errors import ConfigError, UpstreamError
from codex_mcp.settings import DEFAULT_GITHUB_API_URL, GitHubLimits, Settings

if TYPE_CHECKING:
    from githubkit import GitHub
    from pydantic import TypeAdapter

log = logging.getLogger(__name__)

MAX_RATE_LIMIT_RETRIES = 3
_OWNER = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})"
_NAME = r"[A-Za-z0-9._-]{1,100}?"
_SCP = re.compile(rf"^(?:[^@/]+@)?(?P<host>[^:/]+):(?P<owner>{_OWNER})/(?P<name>{_NAME})(?:\.git)?/?\Z")
_PATH = re.compile(rf"^/(?P<owner>{_OWNER})/(?P<name>{_NAME})(?:\.git)?/?\Z")


@dataclass(frozen=True)
class RepoRef:
    owner: str
    name: str

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


def web_url(api_url: str) -> str:
    """The web address behind an API base URL (github.com for api.github.com, the host for GHE)."""
    parts = urlsplit(api_url)
    if parts.hostname == "api.github.com":
        return "https://github.com"
    path = parts.path.rstrip("/")
    if path.endswith("/api/v3"):
        path = path[: -len("/api/v3")]
    return f"{parts.scheme}://{parts.netloc}{path}"


def _github_hosts(api_url: str) -> set[str]:
    hosts = {"github.com"}
    host = urlsplit(api_url).hostname
    if host and host != "api.github.com":
        hosts.add(host)
    return hosts


def parse_remote_url(url: str, hosts: set[str]) -> RepoRef | None:
    """owner/name from a GitHub remote URL (https, ssh:// or scp-like), None for anything else."""
    url = url.strip()
    if "://" in url:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http", "ssh", "git") or parts.hostname not in hosts:
            return None
        m = _PATH.match(parts.path)
    else:
        m = _SCP.match(url)
        if m is not None and m.group("host").lower() not in hosts:  # host names ignore case
            return None
    return RepoRef(m.group("owner"), m.group("name")) if m else None


async def resolve_repo(settings: Settings, configured: str | None) -> RepoRef:
    if settings.github_repo:
        owner, name = settings.github_repo.split("/", 1)
        return RepoRef(owner, name)
    origin: str | None = None
    if settings.repo is not None:
        origin = await git.remote_url(settings.repo.toplevel)
        if origin:
            parsed = parse_remote_url(origin, _github_hosts(settings.github_api_url))
            if parsed is not None:
                return parsed
    if configured:
        owner, name = configured.split("/", 1)
        return RepoRef(owner, name)
    where = f"origin ({origin}) is not a GitHub repository URL" if origin else "there is no origin remote"
    raise ConfigError(
        f"cannot tell which GitHub repository this is: {where}; set CODEX_MCP_GITHUB_REPO=owner/name or "
        "`codex-mcp config set github.repo owner/name`"
    )


def token_missing() -> ConfigError:
    return ConfigError(
        "no GitHub token: set GITHUB_TOKEN, or store one with `codex-mcp config set github.token TOKEN --secret`"
    )


class PullRequestInfo:
    def __init__(self, number: int, url: str, state: str, merged: bool) -> None:
        self.number = number
        self.url = url
        self.state = "merged" if merged else state


@dataclass
class Page:
    status: int
    etag: str | None
    next_query: dict[str, str] | None
    items: list[dict[str, Any]]


class GitHubClient:
    """A thin async client over githubkit for the calls codex-mcp makes."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        repo: RepoRef,
        limits: GitHubLimits,
    ) -> None:
        from githubkit import GitHub

        self.repo = repo
        self.api_url = api_url.rstrip("/")
        self.timeout = limits.request_timeout
        self.max_wait = limits.max_rate_limit_wait
        self._gh: GitHub[Any] = GitHub(
            token,
            base_url=self.api_url + "/",
            timeout=self.timeout,
            auto_retry=False,  # rate limits are handled here, with a bounded wait
            http_cache=False,  # conditional requests are ours, with ETags kept in the database
            user_agent="codex-mcp",
        )

    async def __aenter__(self) -> GitHubClient:
        # One HTTP client (connections, TLS context) for every request until __aexit__; without it
        # githubkit builds a new one per request, which dominates a many-page sync.
        await self._gh.__aenter__()  # type: ignore[no-untyped-call]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._gh.__aexit__(*exc)

    async def call(
        self, what: str, fn: Callable[[], Awaitable[Any]], check: Callable[[Any], object] | None = None
    ) -> Any:
        """Run one request, waiting out short rate limits, mapping failures to actionable errors.

        The answer is validated against githubkit's model of it, by ``check`` when given (which must
        do that too), else by parsing it into that model.
        """
        from githubkit.exception import RateLimitExceeded

        for attempt in range(MAX_RATE_LIMIT_RETRIES + 1):
            try:
                resp = await fn()
                # Inside the mapping: an answer not shaped like GitHub's is a clear error.
                (check or _validate)(resp)
                return resp
            except RateLimitExceeded as exc:
                wait = max(exc.retry_after.total_seconds(), 0.0)
                if wait <= self.max_wait and attempt < MAX_RATE_LIMIT_RETRIES:
                    log.warning("GitHub rate limit while trying to %s; waiting %.0f s", what, wait)
                    await anyio.sleep(wait)
                    continue
                raise self.explain(exc, what) from None
            except Exception as exc:
                raise self.explain(exc, what) from None
        raise AssertionError("unreachable")

    def explain(self, exc: Exception, what: str) -> UpstreamError:
        """An actionable error for a failed request (never containing the token)."""
        import httpx
        from githubkit.exception import RateLimitExceeded, RequestError, RequestFailed, RequestTimeout

        repo = str(self.repo)
        if isinstance(exc, RateLimitExceeded):
            seconds = max(int(exc.retry_after.total_seconds() + 0.999), 0)
            at = datetime.now(UTC).timestamp() + seconds
            when = datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S UTC")
            return UpstreamError(
                f"GitHub's rate limit stopped the attempt to {what}; retry after {seconds} s (at {when})"
            )
        if isinstance(exc, RequestFailed):
            status = exc.response.status_code
            message, details = _error_body(exc.response)
            if status == 401:
                return UpstreamError(
                    f"GitHub rejected the token (401 {message or 'Bad credentials'}) while trying to {what}; "
                    "it is wrong, expired or revoked: set a valid one with GITHUB_TOKEN or "
                    "`codex-mcp config set github.token TOKEN --secret`"
                )
            if status == 403:
                return UpstreamError(
                    f"the token may not {what} in {repo} (403 {message or 'Forbidden'}); give it access to the "
                    "repository with the 'Pull requests' and 'Issues' permissions (or the 'repo' scope)"
                )
            if status == 404:
                return UpstreamError(
                    f"GitHub found no {repo} while trying to {what} (404): check CODEX_MCP_GITHUB_REPO / origin, "
                    "and that the token can see the repository"
                )
            if status == 422:
                return UpstreamError(
                    f"GitHub refused to {what} (422 {message or 'Validation Failed'}): "
                    + ("; ".join(details) if details else "check the branch names and fields")
                )
            if status >= 500:
                return UpstreamError(
                    f"GitHub failed while trying to {what} ({status}: a problem on GitHub's side); retry in a minute"
                )
            return UpstreamError(f"GitHub answered {status} {message} while trying to {what}")
        if isinstance(exc, RequestTimeout | httpx.TimeoutException):
            return UpstreamError(
                f"GitHub did not answer within {self.timeout:g} s while trying to {what}; retry"
            )
        # githubkit wraps transport failures (refused connection, DNS, TLS) in its RequestError.
        cause = exc.exc if isinstance(exc, RequestError) else exc
        if isinstance(cause, httpx.HTTPError):
            return UpstreamError(
                f"cannot reach GitHub at {self.api_url} to {what} ({type(cause).__name__}); check the network and "
                "CODEX_MCP_GITHUB_API_URL"
            )
        if _is_validation_error(exc):
            return UpstreamError(
                f"{self.api_url} answered, but not like GitHub's REST API, while trying to {what}; check "
                "CODEX_MCP_GITHUB_API_URL"
            )
        return UpstreamError(f"GitHub request to {what} failed: {type(exc).__name__}")

    # --------------------------------------------------------------------------------- pull requests
    async def default_branch(self) -> str:
        resp = await self.call(
            "read the repository", lambda: self._gh.rest.repos.async_get(self.repo.owner, self.repo.name)
        )
        return str(resp.parsed_data.default_branch)

    async def find_open_pull_request(self, head: str, base: str) -> PullRequestInfo | None:
        resp = await self.call(
            "list pull requests",
            lambda: self._gh.rest.pulls.async_list(
                self.repo.owner, self.repo.name, head=f"{self.repo.owner}:{head}", base=base, state="open"
            ),
        )
        for pr in resp.parsed_data:
            if pr.head.ref == head and pr.base.ref == base:
                return PullRequestInfo(pr.number, pr.html_url, pr.state, pr.merged_at is not None)
        return None

    async def create_pull_request(
        self, *, title: str, body: str, head: str, base: str, draft: bool
    ) -> tuple[PullRequestInfo, bool]:
        """Create it, or return the open one for the same head and base; (pull request, already existed)."""
        from githubkit.exception import RequestFailed

        already: list[RequestFailed] = []

        async def post() -> Any:
            try:
                return await self._gh.rest.pulls.async_create(
                    self.repo.owner, self.repo.name, title=title, head=head, base=base, body=body, draft=draft
                )
            except RequestFailed as exc:
                if exc.response.status_code == 422 and "already exists" in " ".join(
                    _error_body(exc.response)[1]
                ):
                    already.append(exc)
                    return None
                raise

        # Through call(): short rate limits (secondary limits hit creations first) are waited out, and an
        # answer not shaped like GitHub's is a clear error. Retrying is safe: a duplicate is a 422 below.
        resp = await self.call("create the pull request", post)
        if resp is None:
            existing = await self.find_open_pull_request(head, base)
            if existing is not None:
                return existing, True
            raise self.explain(already[-1], "create the pull request")
        pr = resp.parsed_data
        return PullRequestInfo(pr.number, pr.html_url, pr.state, pr.merged_at is not None), False

    async def pull_request_state(self, number: int, etag: str | None) -> tuple[str | None, str | None]:
        """Pull request ``number``'s state (open, closed or merged) and its ETag, asked with
        ``If-None-Match: etag``: an unchanged pull request answers 304 (state None), which costs no rate
        limit."""
        headers = {"If-None-Match": etag} if etag else None
        resp = await self.call(
            f"read pull request #{number}",
            lambda: self._gh.rest.pulls.async_get(self.repo.owner, self.repo.name, number, headers=headers),
        )
        new_etag = resp.headers.get("etag") or etag
        if resp.status_code == 304:
            return None, new_etag
        pr = resp.parsed_data  # validated by call()
        return ("merged" if pr.merged or pr.merged_at is not None else str(pr.state)), new_etag

    # ---------------------------------------------------------------------------------------- issues
    async def get_issue(self, number: int) -> dict[str, Any] | None:
        from githubkit.exception import RequestFailed

        async def fetch() -> Any:
            try:
                return await self._gh.rest.issues.async_get(self.repo.owner, self.repo.name, number)
            except RequestFailed as exc:
                if exc.response.status_code == 404:
                    return None
                raise

        resp = await self.call(f"read issue #{number}", fetch)  # validated there
        return None if resp is None else dict(resp.json())

    async def list_issues_page(self, query: dict[str, str], etag: str | None) -> Page:
        """One page of the repository's issues (and pull requests); 304 when ``etag`` still matches."""
        headers = {"If-None-Match": etag} if etag else None
        since = query.get("since")

        async def fetch() -> Any:
            return await self._gh.rest.issues.async_list_for_repo(
                self.repo.owner,
                self.repo.name,
                state="all",
                sort="updated",
                direction="asc",
                per_page=int(query.get("per_page", "100")),
                page=int(query.get("page", "1")),
                # GitHub documents since as YYYY-MM-DDTHH:MM:SSZ; githubkit would send its own datetime form.
                since=cast(Any, since) if since else _unset(),
                headers=headers,
            )

        body: list[Any] = []
        resp = await self.call("list issues", fetch, lambda r: body.append(_checked_json(r)))
        new_etag = resp.headers.get("etag") or etag
        next_query = _next_query(resp.headers.get("link", ""))
        if resp.status_code == 304:
            return Page(304, new_etag, next_query, [])
        return Page(resp.status_code, new_etag, next_query, list(body[-1]))


def _validate(resp: Any) -> None:
    """Parse a response's body against githubkit's model now (it is parsed lazily otherwise)."""
    if resp is None or getattr(resp, "status_code", None) in (204, 304):
        return
    resp.parsed_data  # noqa: B018


def _checked_json(resp: Any) -> Any:
    """The body as plain JSON data (None for 204 and 304), validated against githubkit's model of it.

    What :func:`_validate` checks, with the bytes parsed once instead of twice (``parsed_data`` parses
    them into models, ``json()`` again into the plain data the cache keeps). A page of 100 issues is
    ~200 kB: the time a page costs besides the request fell from 4.2 to 3.1 ms, measured.
    """
    if resp is None or getattr(resp, "status_code", None) in (204, 304):
        return None
    model = getattr(resp, "_data_model", None)  # the model the endpoint declares (githubkit keeps it there)
    if model is None:  # not where this githubkit keeps it: validate its own way
        _validate(resp)
        return resp.json()
    data = resp.json()
    _adapter(model).validate_python(data)
    return data


@functools.cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(model)


def _unset() -> Any:
    from githubkit.utils import UNSET

    return UNSET


def _is_validation_error(exc: Exception) -> bool:
    from pydantic import ValidationError

    return isinstance(exc, ValidationError | ValueError)


def _error_body(response: Any) -> tuple[str, list[str]]:
    try:
        body = response.json()
    except Exception:
        return "", []
    if not isinstance(body, dict):
        return "", []
    details = []
    for err in body.get("errors") or []:
        if isinstance(err, dict):
            text = err.get("message") or " ".join(
                f"{k}={err[k]}" for k in ("resource", "field", "code") if err.get(k)
            )
            details.append(str(text))
        else:
            details.append(str(err))
    return str(body.get("message") or ""), details


def _next_query(link: str) -> dict[str, str] | None:
    for part in link.split(","):
        if 'rel="next"' in part:
            url = part.split(";")[0].strip().strip("<>")
            return dict(parse_qsl(urlsplit(url).query))
    return None


async def client_for(settings: Settings, token: str | None, configured_repo: str | None) -> GitHubClient:
    if not token:
        raise token_missing()
    repo = await resolve_repo(settings, configured_repo)
    return GitHubClient(
        api_url=settings.github_api_url or DEFAULT_GITHUB_API_URL,
        token=token,
        repo=repo,
        limits=settings.github_limits,
    )
