"""The dashboard's instance list at scale, and the person's own identity, over real HTTP and the real CLI.

A long list shows its first 200 rows (what needs a person sorted first, trees never cut) and a
"Show more" link that the live refresh keeps. The person's own identity (the adhoc instance of the
main checkout, under which their actions are recorded) is not an agent: `ls`, `/api/instances` and
the list leave it out; the dashboard links it as "you" and `events` and `show` call it "you".
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import websockets
from support import read_standin_log, run_cli, wait_for
from ui_server import Dashboard, running_dashboard

# Instance links in the list's table (each row's first cell), in display order.
ROW_LINK = re.compile(
    r'<td>(?:<span aria-hidden="true" class="tree">[^<]*</span>)?<a href="/instances/([^"]+)">'
)


def listed(page: str) -> list[str]:
    return ROW_LINK.findall(page)


def seed_many(repo: Path, env: dict[str, str]) -> None:
    """450 terminated work instances (work-1-a1 oldest), work-252-a1 with two reviews, and the oldest
    instance of all running and waiting for a person."""
    done = run_cli("db", "migrate", cwd=repo, env=env)
    assert done.returncode == 0, done.stderr
    conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
    rows = [("work-9999-a1", "work", "running", 9999, "2026-01-01 00:00:00")]
    rows += [
        (f"work-{k}-a1", "work", "terminated", k, f"2026-02-01 00:{k // 60:02d}:{k % 60:02d}")
        for k in range(1, 451)
    ]
    rows += [(f"review-252-a{n}", "review", "terminated", 252, f"2026-03-01 00:00:0{n}") for n in (1, 2)]
    with conn:
        conn.executemany(
            "INSERT INTO instances (id, type, status, worktree_path, branch_name, tmux_session, issue_number, "
            "agent_number, created_at) VALUES (?, ?, ?, '/nowhere/' || ?1, 'codex/' || ?1, ?1, ?, 1, ?)",
            rows,
        )
        # The oldest work reported waiting before it ended: history, not something waiting for you now.
        conn.execute(
            "UPDATE instances SET activity = 'waiting', activity_at = created_at "
            "WHERE id IN ('work-9999-a1', 'work-1-a1')"
        )
        conn.executemany(
            "INSERT INTO instance_relationships (parent_instance, child_instance, relationship_type) "
            "VALUES ('work-252-a1', ?, 'spawned_review')",
            [("review-252-a1",), ("review-252-a2",)],
        )
    conn.close()


def test_a_long_list_shows_its_first_200_rows_and_more_on_request(
    repo: Path, cli_env: dict[str, str]
) -> None:
    seed_many(repo, cli_env)
    with running_dashboard(repo, cli_env) as board:
        client = board.client()
        page = client.get("/?view=all").text
        ids = listed(page)
        # Waiting first although it is the oldest; then newest first; work-252-a1 is the 200th row and
        # its reviews come with it: a tree is never cut.
        assert ids[:3] == ["work-9999-a1", "work-450-a1", "work-449-a1"]
        assert ids[-3:] == ["work-252-a1", "review-252-a1", "review-252-a2"]
        assert len(ids) == 202
        assert "Showing 202 of 453 instances." in page
        assert '<a href="/?view=all&amp;limit=400">Show 200 more</a>' in page
        # The live refresh asks for the first page only (the default needs no parameter).
        assert 'data-src="/?view=all&amp;fragment=1"' in page

        more = client.get("/?view=all&limit=400").text
        assert len(listed(more)) == 400 and "Show 53 more" in more
        assert 'data-src="/?view=all&amp;limit=400&amp;fragment=1"' in more
        fragment = client.get("/?view=all&limit=400&fragment=1").text
        assert listed(fragment) == listed(more) and "<html" not in fragment

        everything = client.get("/?view=all&limit=600").text
        assert len(listed(everything)) == 453 and "more</a>" not in everything
        assert listed(everything)[-1] == "work-1-a1"
        assert set(listed(everything)) == {r[0] for r in _ids(repo)}
        # The active view: the one running instance, no "more".
        assert listed(client.get("/?view=active").text) == ["work-9999-a1"]

        bad = client.get("/?view=all&limit=lots")
        assert bad.status_code == 400 and "limit must be a whole number" in html.unescape(bad.text)


def _ids(repo: Path) -> list[tuple[str]]:
    conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
    try:
        return conn.execute("SELECT id FROM instances").fetchall()
    finally:
        conn.close()


async def test_the_person_is_you_not_an_agent(
    dashboard: Dashboard, repo: Path, ui_env: dict[str, str]
) -> None:
    client = dashboard.client()
    answer = await anyio.to_thread.run_sync(
        lambda: client.post("/api/instances", json={"prompt": "look around"})
    )
    assert answer.status_code == 201, answer.text
    made = answer.json()
    # adhoc-a1: the person's own identity (the main checkout), registered by that first action.
    assert made["id"] == "adhoc-a2"
    worktree = Path(made["worktree_path"])

    def answered() -> list[dict[str, Any]]:
        return [e for e in read_standin_log(worktree) if e.get("tool") == "query_instances"]

    # An agent's query_instances stays the whole truth: the person's row is there (type adhoc, no
    # agent pid, the main checkout), so every id an agent meets in list_events can be looked up.
    queried = (await wait_for(answered, timeout=60))[0]
    assert not queried["is_error"], queried
    assert {i["id"] for i in queried["result"]["instances"]} == {"adhoc-a1", "adhoc-a2"}

    def get(path: str) -> httpx.Response:
        return client.get(path)

    for view in ("active", "all"):
        page = (await anyio.to_thread.run_sync(get, f"/?view={view}")).text
        assert listed(page) == ["adhoc-a2"]
        assert 'You act as <a href="/instances/adhoc-a1">adhoc-a1</a>' in page
    assert [r["id"] for r in (await anyio.to_thread.run_sync(get, "/api/instances")).json()] == ["adhoc-a2"]
    person = (await anyio.to_thread.run_sync(get, "/api/instances/adhoc-a1")).json()
    assert person["instance"]["worktree_path"] == str(repo) and person["events"][0]["tool_name"] == "start"

    # Its page: "you", what they did, and no terminal, agent actions or work to land.
    page = (await anyio.to_thread.run_sync(get, "/instances/adhoc-a1")).text
    assert "<h1>adhoc-a1 (you)</h1>" in page and "<td>start</td>" in page
    for absent in ('id="terminal"', "Take over", ">Kill<", ">Merge<", "Send feedback", 'id="diff"'):
        assert absent not in page, absent
    kill = await anyio.to_thread.run_sync(lambda: client.post("/api/instances/adhoc-a1/kill", json={}))
    assert kill.status_code == 409 and "adhoc-a1 is you" in kill.json()["error"]
    agent_page = (await anyio.to_thread.run_sync(get, "/instances/adhoc-a2")).text
    assert 'id="terminal"' in agent_page and ">Kill<" in agent_page
    cookie = client.cookies[f"codex_mcp_{dashboard.port}"]
    options: Any = {
        "origin": dashboard.base,
        "additional_headers": {"cookie": f"codex_mcp_{dashboard.port}={cookie}"},
    }
    # Refused before the handshake (its session, if any, is the person's own terminal).
    with anyio.fail_after(60), pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(f"ws://{dashboard.host}/api/instances/adhoc-a1/terminal", **options):
            pass
    assert refused.value.response.status_code == 403

    # The command line: ls leaves it out, events and show call it you.
    def cli(*args: str) -> str:
        done = run_cli(*args, cwd=repo, env=ui_env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert [r["id"] for r in json.loads(await anyio.to_thread.run_sync(cli, "ls", "--all", "--json"))] == [
        "adhoc-a2"
    ]
    table = await anyio.to_thread.run_sync(cli, "ls", "--all")
    assert "adhoc-a2" in table and "adhoc-a1" not in table
    events = await anyio.to_thread.run_sync(
        lambda: run_cli("events", cwd=repo, env={**ui_env, "COLUMNS": "200"})
    )
    start_line = next(line for line in events.stdout.splitlines() if " start " in line)
    assert "you (adhoc-a1)" in start_line
    agent_line = next(line for line in events.stdout.splitlines() if "query_instances" in line)
    assert "adhoc-a2" in agent_line and "you" not in agent_line
    shown = await anyio.to_thread.run_sync(cli, "show", "adhoc-a1")
    assert shown.startswith("adhoc-a1 is you:")
    assert not (await anyio.to_thread.run_sync(cli, "show", "adhoc-a2")).startswith("adhoc-a2 is you")
    # Agent actions on "you" are refused from the command line too, changing nothing: a kill would
    # end the tmux session the person works in, feedback would be typed into their own pane.
    before = {
        r["id"]: r["status"] for r in json.loads(await anyio.to_thread.run_sync(cli, "ls", "--all", "--json"))
    }
    for argv in (
        ("kill", "adhoc-a1"),
        ("resume", "adhoc-a1"),
        ("feedback", "adhoc-a1", "hi"),
        ("merge", "adhoc-a1"),
    ):
        refused_cli = await anyio.to_thread.run_sync(partial(run_cli, *argv, cwd=repo, env=ui_env))
        assert refused_cli.returncode != 0 and "adhoc-a1 is you" in refused_cli.stderr, (
            argv,
            refused_cli.stderr,
        )
        assert "Traceback" not in refused_cli.stderr
    assert not (repo / ".codex" / "feedback").exists()
    row = json.loads(await anyio.to_thread.run_sync(cli, "show", "adhoc-a1", "--json"))["instance"]
    assert row["status"] == "running"
    after = {
        r["id"]: r["status"] for r in json.loads(await anyio.to_thread.run_sync(cli, "ls", "--all", "--json"))
    }
    assert after == before
    # JSON stays the row keyed by column names, as for any instance.
    assert (
        json.loads(await anyio.to_thread.run_sync(cli, "show", "adhoc-a1", "--json"))["instance"]["id"]
        == "adhoc-a1"
    )
