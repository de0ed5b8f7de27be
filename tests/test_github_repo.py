"""Which GitHub repository, through which API, with which token: remote URL parsing, the precedence of
CODEX_MCP_GITHUB_REPO / origin / ``github.repo``, GITHUB_TOKEN / encrypted ``github.token``, web
addresses, and a GitHub Enterprise-style stand-in (``/api/v3``) end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from github_standin import GitHubStandIn
from support import git, make_repo

from codex_mcp.errors import ConfigError
from codex_mcp.github import RepoRef, _github_hosts, parse_remote_url, resolve_repo, web_url
from codex_mcp.issue_cache import github_client, sync
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.userconfig import UserConfig

GITHUB = {"github.com"}
ENV_TOKEN = "ghp_FromTheEnvironment0123456789abcdefgh"
CONFIG_TOKEN = "ghp_FromEncryptedConfig0123456789abcdef"


# ------------------------------------------------------------------------------ parse_remote_url


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/octo/flux",
        "https://github.com/octo/flux.git",
        "https://github.com/octo/flux/",
        "https://github.com/octo/flux.git/",
        "http://github.com/octo/flux",
        "https://user:secret@github.com/octo/flux.git",
        "ssh://git@github.com/octo/flux.git",
        "ssh://git@github.com:22/octo/flux.git",
        "ssh://git@github.com/octo/flux",
        "git://github.com/octo/flux.git",
        "git@github.com:octo/flux.git",
        "git@github.com:octo/flux",
        "git@github.com:octo/flux/",
        "github.com:octo/flux.git",
        "  git@github.com:octo/flux.git\n",
        # Host names ignore case, in every form.
        "https://GitHub.com/octo/flux",
        "ssh://git@GITHUB.COM/octo/flux.git",
        "git@GitHub.com:octo/flux.git",
    ],
)
def test_github_remote_urls_give_owner_and_name(url: str) -> None:
    assert parse_remote_url(url, GITHUB) == RepoRef("octo", "flux")


@pytest.mark.parametrize(
    ("url", "owner", "name"),
    [
        ("https://github.com/Octo-Org/flux.js.git", "Octo-Org", "flux.js"),
        ("git@github.com:o/n.git", "o", "n"),
        ("git@github.com:octo/my_repo-2.0", "octo", "my_repo-2.0"),
        ("https://github.com/octo/.github", "octo", ".github"),
    ],
)
def test_names_keep_their_dots_dashes_and_case(url: str, owner: str, name: str) -> None:
    assert parse_remote_url(url, GITHUB) == RepoRef(owner, name)


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/octo/flux.git",
        "git@gitlab.com:octo/flux.git",
        "ssh://git@bitbucket.org/octo/flux.git",
        "https://github.com.evil.example/octo/flux.git",
        "https://api.github.com/repos/octo/flux",
        "/srv/git/flux.git",
        "../flux.git",
        "file:///srv/git/octo/flux.git",
        "https://github.com/octo/flux/tree/main",
        "https://github.com/octo/flux/pulls",
        "git@github.com:octo/flux/extra.git",
        "https://github.com/octo",
        "https://github.com/",
        "https://github.com/-octo/flux",
        "https://github.com/oc_to/flux",
        "git@github.com:octo!/flux.git",
        "https://github.com/octo/fl%20ux",
        "https://github.com/" + "o" * 40 + "/flux",
        "ftp://github.com/octo/flux.git",
        "",
    ],
)
def test_anything_else_is_refused(url: str) -> None:
    assert parse_remote_url(url, GITHUB) is None


def test_a_github_enterprise_host_is_taken_from_the_api_url() -> None:
    assert _github_hosts("https://api.github.com") == {"github.com"}
    hosts = _github_hosts("https://ghe.example.com/api/v3")
    assert hosts == {"github.com", "ghe.example.com"}
    assert parse_remote_url("git@ghe.example.com:team/app.git", hosts) == RepoRef("team", "app")
    assert parse_remote_url("https://ghe.example.com/team/app", hosts) == RepoRef("team", "app")
    assert parse_remote_url("ssh://git@ghe.example.com/team/app.git", hosts) == RepoRef("team", "app")
    assert parse_remote_url("git@github.com:octo/flux.git", hosts) == RepoRef("octo", "flux")
    # Without that API URL the enterprise host is not GitHub.
    assert parse_remote_url("git@ghe.example.com:team/app.git", GITHUB) is None
    assert parse_remote_url("git@other.example.com:team/app.git", hosts) is None


# ------------------------------------------------------------------------------ resolve_repo


@pytest.fixture
def settings_for(repo: Path, env: dict[str, str]) -> Iterator[Callable[..., Settings]]:
    def make(cwd: Path | None = None, **variables: str) -> Settings:
        return Settings.load({**env, **variables}, cwd=cwd or repo)

    yield make


async def test_the_repository_comes_from_the_variable_then_origin_then_config(
    repo: Path, settings_for: Callable[..., Settings]
) -> None:
    make = settings_for
    git(repo, "remote", "add", "origin", "git@github.com:o/n.git")

    from_env = make(CODEX_MCP_GITHUB_REPO="env-owner/env.name")
    assert await resolve_repo(from_env, "cfg/repo") == RepoRef("env-owner", "env.name")
    assert await resolve_repo(make(), "cfg/repo") == RepoRef("o", "n")
    assert await resolve_repo(make(), None) == RepoRef("o", "n")

    git(repo, "remote", "remove", "origin")
    assert await resolve_repo(make(), "cfg/repo") == RepoRef("cfg", "repo")
    with pytest.raises(ConfigError) as caught:
        await resolve_repo(make(), None)
    message = str(caught.value)
    assert "CODEX_MCP_GITHUB_REPO" in message and "no origin remote" in message
    assert "github.repo" in message


async def test_a_remote_that_is_not_github_is_named_in_the_error(
    repo: Path, settings_for: Callable[..., Settings]
) -> None:
    make = settings_for
    git(repo, "remote", "add", "origin", "https://gitlab.com/octo/flux.git")
    with pytest.raises(ConfigError) as caught:
        await resolve_repo(make(), None)
    message = str(caught.value)
    assert "https://gitlab.com/octo/flux.git" in message and "not a GitHub repository URL" in message
    assert "CODEX_MCP_GITHUB_REPO" in message
    # Anything else still wins over such a remote.
    assert await resolve_repo(make(), "cfg/repo") == RepoRef("cfg", "repo")
    assert await resolve_repo(make(CODEX_MCP_GITHUB_REPO="a/b"), None) == RepoRef("a", "b")


async def test_an_enterprise_origin_is_recognised_through_the_api_url(
    repo: Path, settings_for: Callable[..., Settings]
) -> None:
    make = settings_for
    git(repo, "remote", "add", "origin", "git@ghe.example.com:team/app.git")
    ghe = make(CODEX_MCP_GITHUB_API_URL="https://ghe.example.com/api/v3")
    assert await resolve_repo(ghe, None) == RepoRef("team", "app")
    with pytest.raises(ConfigError, match=r"ghe\.example\.com"):
        await resolve_repo(make(), None)


async def test_outside_a_repository_only_the_variable_or_config_can_tell(
    tmp_path: Path, settings_for: Callable[..., Settings]
) -> None:
    make = settings_for
    outside = tmp_path / "outside"
    outside.mkdir()
    settings = make(cwd=outside)
    assert settings.repo is None
    assert await resolve_repo(settings, "cfg/repo") == RepoRef("cfg", "repo")
    with pytest.raises(ConfigError, match="CODEX_MCP_GITHUB_REPO"):
        await resolve_repo(settings, None)


def test_a_malformed_repository_variable_is_refused_up_front(repo: Path, env: dict[str, str]) -> None:
    for bad in ("flux", "octo/flux/extra", "-octo/flux", "octo/fl ux", "https://github.com/octo/flux"):
        with pytest.raises(ConfigError, match="CODEX_MCP_GITHUB_REPO"):
            Settings.load({**env, "CODEX_MCP_GITHUB_REPO": bad}, cwd=repo)


# ------------------------------------------------------------------------------ tokens and config


@pytest.fixture
async def repo_db(repo: Path, env: dict[str, str]) -> AsyncIterator[Database]:
    database = await open_database(Settings.load(env, cwd=repo).require_db_path())
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
def github_token() -> None:
    """The `gh` stand-in accepts any token here (the test reads which one was sent)."""
    return None


async def test_github_token_wins_over_the_encrypted_config_token(
    repo: Path, env: dict[str, str], repo_db: Database, gh: GitHubStandIn
) -> None:
    base = {**env, "CODEX_MCP_GITHUB_API_URL": gh.base_url, "CODEX_MCP_GITHUB_REPO": "octo/flux"}
    key_file = Path(env["CODEX_MCP_SECRET_KEY_FILE"])
    entry = await UserConfig(repo_db, key_file).set("github.token", CONFIG_TOKEN, secret=True)
    assert entry.is_encrypted and entry.value != CONFIG_TOKEN
    gh.add_issue(1, "One")

    sent: list[set[str]] = []
    for variables in ({"GITHUB_TOKEN": ENV_TOKEN}, {}, {"GITHUB_TOKEN": "   "}):  # blank counts as unset
        gh.clear_requests()
        await sync(Settings.load({**base, **variables}, cwd=repo), repo_db)
        sent.append({r.headers.get("authorization", "") for r in gh.requests})

    assert sent[0] in ({f"Bearer {ENV_TOKEN}"}, {f"token {ENV_TOKEN}"})
    assert sent[1] in ({f"Bearer {CONFIG_TOKEN}"}, {f"token {CONFIG_TOKEN}"})
    assert sent[2] == sent[1]

    # The config token is stored encrypted: never in clear in the database files.
    db_dir = Path(repo_db.path).parent
    for path in db_dir.iterdir():
        if path.is_file():
            data = path.read_bytes()
            assert CONFIG_TOKEN.encode() not in data and ENV_TOKEN.encode() not in data, path


async def test_no_token_at_all_is_a_clear_error(repo: Path, env: dict[str, str], repo_db: Database) -> None:
    settings = Settings.load({**env, "CODEX_MCP_GITHUB_REPO": "octo/flux"}, cwd=repo)
    with pytest.raises(ConfigError) as caught:
        await github_client(settings, repo_db)
    assert "GITHUB_TOKEN" in str(caught.value) and "github.token" in str(caught.value)


async def test_the_configured_repository_is_used_when_nothing_else_tells(
    repo: Path, env: dict[str, str], repo_db: Database
) -> None:
    await UserConfig(repo_db).set("github.repo", "cfg-owner/cfg.repo")
    settings = Settings.load({**env, "GITHUB_TOKEN": ENV_TOKEN}, cwd=repo)
    client = await github_client(settings, repo_db)
    assert client.repo == RepoRef("cfg-owner", "cfg.repo")
    assert client.api_url == "https://api.github.com"
    git(repo, "remote", "add", "origin", "https://github.com/from/origin.git")
    assert (await github_client(settings, repo_db)).repo == RepoRef("from", "origin")
    env_wins = Settings.load({**env, "GITHUB_TOKEN": ENV_TOKEN, "CODEX_MCP_GITHUB_REPO": "e/v"}, cwd=repo)
    assert (await github_client(env_wins, repo_db)).repo == RepoRef("e", "v")


# ------------------------------------------------------------------------------ web addresses and GHE


@pytest.mark.parametrize(
    ("api", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://api.github.com/", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("https://ghe.example.com/api/v3/", "https://ghe.example.com"),
        ("https://example.com/github/api/v3", "https://example.com/github"),
        ("http://127.0.0.1:8080/api/v3", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_web_url(api: str, web: str) -> None:
    assert web_url(api) == web


async def test_a_github_enterprise_style_api_works_end_to_end(tmp_path: Path, env: dict[str, str]) -> None:
    with GitHubStandIn(owner="octo", repo="flux", expected_token=ENV_TOKEN, prefix="/api/v3") as ghe:
        assert ghe.base_url.endswith("/api/v3")
        assert web_url(ghe.base_url) == ghe.html_base
        ghe.add_many_issues(120, "2024-03-01T12:00:00Z")
        ghe.add_issue(
            121, "Enterprise issue", body="on GHE", labels=["bug"], updated_at="2024-04-01T00:00:00Z"
        )
        ghe.add_pull("feature")

        # The repository comes from an origin on the enterprise host (no CODEX_MCP_GITHUB_REPO).
        repo = make_repo(tmp_path / "ghe-repo")
        git(repo, "remote", "add", "origin", f"{ghe.html_base}/octo/flux.git")
        settings = Settings.load(
            {**env, "CODEX_MCP_GITHUB_API_URL": ghe.base_url + "/", "GITHUB_TOKEN": ENV_TOKEN}, cwd=repo
        )
        assert settings.github_api_url == ghe.base_url
        db = await open_database(settings.require_db_path())
        try:
            first = await sync(settings, db)
            second = await sync(settings, db)
            rows = await db.fetchall("SELECT number, title, repo_owner, repo_name FROM github_issues")
        finally:
            await db.close()

        assert (first.repository, first.fetched, first.changed) == ("octo/flux", 121, 121)
        assert second.not_modified_pages == second.pages and second.changed == 0
        assert len(rows) == 121 and {(r[2], r[3]) for r in rows} == {("octo", "flux")}
        assert "Enterprise issue" in {r[1] for r in rows}
        listing = [r for r in ghe.requests if r.path == "/repos/octo/flux/issues"]
        assert listing and all(r.raw_path.startswith("/api/v3/repos/octo/flux/issues?") for r in listing)
        assert [r.query["page"] for r in listing[:2]] == ["1", "2"]
        assert all(r.headers["authorization"].endswith(ENV_TOKEN) for r in ghe.requests)
    assert ghe.errors == []
