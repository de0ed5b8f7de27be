"""The dashboard's doors, tried over real HTTP and WebSockets against a real `codex-mcp ui` process.

A terminal that types into an agent's shell is remote code execution: each test is one way in that
must stay shut (and leave nothing changed), or the one way in that must work.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from support import run_cli
from ui_server import Dashboard, running_dashboard


@pytest.fixture
def dashboard(repo: Path, cli_env: dict[str, str]) -> Iterator[Dashboard]:
    with running_dashboard(repo, cli_env) as board:
        yield board


@pytest.fixture
def read_only_dashboard(repo: Path, cli_env: dict[str, str]) -> Iterator[Dashboard]:
    with running_dashboard(repo, cli_env, "--read-only") as board:
        yield board


def instance_count(repo: Path) -> int:
    path = repo / ".git" / "codex-mcp" / "codex.db"
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM instances").fetchone()[0])
    finally:
        conn.close()


def test_without_the_cookie_every_route_is_closed(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.base) as anonymous:
        for path in ("/", "/start", "/issues", "/api/instances", "/api/events", "/api/issues", "/api/stream"):
            answer = anonymous.get(path)
            assert answer.status_code == 401, path
            assert dashboard.token not in answer.text
        assert anonymous.get("/api/instances").json()["error"].startswith("not logged in")


def test_login_sets_a_strict_http_only_cookie_and_leaves_no_secret_behind(dashboard: Dashboard) -> None:
    with httpx.Client(base_url=dashboard.base) as browser:
        answer = browser.get(dashboard.login_url)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/"
        cookie = answer.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        session = browser.cookies[f"codex_mcp_{dashboard.port}"]
        page = browser.get("/")
        assert page.status_code == 200
        assert "<h1>Instances</h1>" in page.text
        assert dashboard.token not in page.text and session not in page.text
        # The link is spent: a second use (someone who saw it in the history) gets nothing.
        again = httpx.get(dashboard.login_url)
        assert again.status_code == 403 and "set-cookie" not in again.headers


def test_a_wrong_token_does_not_log_in_nor_spend_the_right_one(dashboard: Dashboard) -> None:
    wrong = httpx.get(f"{dashboard.base}/login?token=not-the-token")
    assert wrong.status_code == 403 and "set-cookie" not in wrong.headers
    forged = httpx.get(f"{dashboard.base}/api/instances", cookies={f"codex_mcp_{dashboard.port}": "forged"})
    assert forged.status_code == 401
    assert dashboard.client().get("/api/instances").status_code == 200


def test_a_rebinding_host_is_refused_even_with_the_cookie(dashboard: Dashboard) -> None:
    client = dashboard.client()
    answer = client.get("/api/instances", headers={"host": f"evil.example:{dashboard.port}"})
    assert answer.status_code == 421
    local = {"host": f"localhost:{dashboard.port}", "origin": f"http://localhost:{dashboard.port}"}
    assert client.get("/api/instances", headers=local).status_code == 200
    # The Origin must be the very host asked for, not merely another loopback name.
    mixed = {"host": f"localhost:{dashboard.port}", "origin": dashboard.base}
    assert client.get("/api/instances", headers=mixed).status_code == 403


def test_a_post_from_a_foreign_origin_or_without_origin_changes_nothing(
    dashboard: Dashboard, repo: Path
) -> None:
    client = dashboard.client()
    before = instance_count(repo)
    foreign = client.post("/api/instances", json={"prompt": "x"}, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403
    client.headers.pop("origin")
    missing = client.post("/api/instances", json={"prompt": "x"})
    assert missing.status_code == 403 and "Origin" in missing.json()["error"]
    assert instance_count(repo) == before


async def test_a_websocket_from_another_origin_or_without_the_cookie_is_refused(dashboard: Dashboard) -> None:
    cookie = dashboard.client().cookies[f"codex_mcp_{dashboard.port}"]
    url = f"ws://{dashboard.host}/api/instances/adhoc-a1/terminal"
    attempts = [
        {
            "origin": "http://evil.example",
            "additional_headers": {"cookie": f"codex_mcp_{dashboard.port}={cookie}"},
        },
        {"origin": dashboard.base},
        {"additional_headers": {"cookie": f"codex_mcp_{dashboard.port}={cookie}"}},
    ]
    for options in attempts:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, open_timeout=30, **options):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403, options
    await asyncio.sleep(0)


def test_read_only_refuses_actions_on_the_server(read_only_dashboard: Dashboard, repo: Path) -> None:
    client = read_only_dashboard.client()
    before = instance_count(repo)
    started = client.post("/api/instances", json={"prompt": "x"})
    assert started.status_code == 403 and "--read-only" in started.json()["error"]
    killed = client.post("/api/instances/adhoc-a1/kill", json={})
    assert killed.status_code == 403
    assert instance_count(repo) == before
    page = client.get("/start").text
    assert "<form" not in page and "read-only" in page


def test_another_address_needs_allow_remote(repo: Path, cli_env: dict[str, str]) -> None:
    done = run_cli("ui", "--host", "0.0.0.0", "--port", "0", cwd=repo, env=cli_env)
    assert done.returncode == 2
    assert "--allow-remote" in done.stderr and done.stdout == ""
