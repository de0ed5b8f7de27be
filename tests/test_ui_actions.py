"""The dashboard's actions over real HTTP: each one a person's action, recorded like a tool call.

A real `codex-mcp ui` process, real instances (stand-in agents that sit still) on a private tmux
socket, a real git repository, the GitHub stand-in where GitHub is needed. Every state change is
checked in the database (an `mcp_events` row under the person's identity, via "ui") and every
refusal is checked to say why, in words, and to change nothing.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from github_standin import GitHubStandIn
from support import git, run_cli, standin_command, tmux_sessions, wait_for
from ui_server import Dashboard, running_dashboard

from codex_mcp.demo import FEEDBACK


@pytest.fixture
def quiet_env(
    cli_env: dict[str, str], tmux_socket: str, write_script: Callable[[dict[str, Any]], Path]
) -> dict[str, str]:
    """Agents that start, then wait: nothing changes unless the test (the person) acts."""
    return {
        **cli_env,
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
        "CODEX_MCP_AGENT_COMMAND": standin_command(write_script({})),
    }


@pytest.fixture
def dashboard(repo: Path, quiet_env: dict[str, str]) -> Iterator[Dashboard]:
    with running_dashboard(repo, quiet_env) as board:
        yield board


def query(repo: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


def person_events(repo: Path) -> list[dict[str, Any]]:
    """The recorded actions of the person (the adhoc instance of the main checkout), oldest first."""
    rows = query(
        repo,
        "SELECT e.tool_name, e.success, e.error_message, e.metadata, e.instance_id FROM mcp_events e "
        "JOIN instances i ON i.id = e.instance_id WHERE i.worktree_path = ? ORDER BY e.id",
        str(repo),
    )
    for row in rows:
        row["metadata"] = json.loads(row["metadata"])
    return rows


def start(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = client.post("/api/instances", json={"prompt": "look around", **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_start_kill_and_resume_are_the_persons_actions_via_the_dashboard(
    dashboard: Dashboard, repo: Path, tmux_socket: str
) -> None:
    client = dashboard.client()
    made = start(client)
    assert made["status"] == "running" and made["tmux_session"] in tmux_sessions(tmux_socket)
    assert client.post(f"/api/instances/{made['id']}/kill", json={}).status_code == 200
    assert made["tmux_session"] not in tmux_sessions(tmux_socket)
    assert client.post(f"/api/instances/{made['id']}/resume", json={}).status_code == 200
    refused = client.post(f"/api/instances/{made['id']}/resume", json={})
    assert refused.status_code == 409, refused.text

    rows = person_events(repo)
    assert [(r["tool_name"], r["success"]) for r in rows] == [
        ("start", 1),
        ("kill", 1),
        ("resume", 1),
        ("resume", 0),
    ]
    person = rows[0]["instance_id"]
    assert person != made["id"]
    for row in rows:
        assert row["metadata"]["actor"] == "person" and row["metadata"]["via"] == "ui"
    assert rows[1]["metadata"]["args"]["instance_id"] == made["id"]
    assert "running" in rows[3]["error_message"]
    # The prompt is kept only as a digest, as for every recorded call.
    assert rows[0]["metadata"]["args"]["prompt"] != "look around"


def test_review_and_fork_as_a_person_and_their_refusals(
    dashboard: Dashboard, repo: Path, quiet_env: dict[str, str], tmux_socket: str
) -> None:
    client = dashboard.client()
    work = start(client, issue=7)
    assert work["id"] == "work-7-a1"
    done = run_cli("config", "set", "reviews.max_iterations", "1", cwd=repo, env=quiet_env)
    assert done.returncode == 0, done.stderr

    # A form post (the page's button) opens the new reviewer's page.
    reviewed = client.post(f"/api/instances/{work['id']}/review", data={})
    assert reviewed.status_code == 303 and reviewed.headers["location"] == "/instances/review-7-a1"
    again = client.post(f"/api/instances/{work['id']}/review", json={})
    assert again.status_code == 409 and "reviews.max_iterations" in again.json()["error"]
    forked = client.post(f"/api/instances/{work['id']}/fork", json={"prompt": "try it another way"})
    assert forked.status_code == 200, forked.text
    assert forked.json()["instance_id"] == "work-7-a2"
    refused = client.post("/api/instances/review-7-a1/fork", data={})
    assert refused.status_code == 403
    assert "review instances do not fork" in refused.text and 'href="/instances/review-7-a1"' in refused.text

    edges = query(
        repo,
        "SELECT parent_instance, child_instance, relationship_type FROM instance_relationships ORDER BY id",
    )
    assert [tuple(e.values()) for e in edges] == [
        ("work-7-a1", "review-7-a1", "spawned_review"),
        ("work-7-a1", "work-7-a2", "created_fork"),
    ]
    ids = {r["id"] for r in query(repo, "SELECT id FROM instances")}
    assert "review-7-a2" not in ids and "work-7-a3" not in ids  # the refusals made nothing
    listing = client.get("/").text
    assert "review round 1 of 1" in listing and 'href="/instances/work-7-a2"' in listing

    # A terminated instance is neither reviewed nor forked.
    assert client.post(f"/api/instances/{work['id']}/kill", json={}).status_code == 200
    late = client.post(f"/api/instances/{work['id']}/fork", json={})
    assert late.status_code == 409 and "terminated" in late.json()["error"]
    rows = [(r["tool_name"], r["success"]) for r in person_events(repo) if r["metadata"]["via"] == "ui"]
    assert rows == [
        ("start", 1),
        ("review", 1),
        ("review", 0),
        ("fork", 1),
        ("fork", 0),
        ("kill", 1),
        ("fork", 0),
    ]


def test_create_pull_request_says_why_not_in_the_page(dashboard: Dashboard, repo: Path) -> None:
    client = dashboard.client()
    made = start(client)
    page = client.get(f"/instances/{made['id']}").text
    assert 'action="/api/instances/' + made["id"] + '/pull-request"' in page
    assert ">Create pull request</button>" in page
    # This repository has no GitHub: the page says what is missing and how to set it up.
    answer = client.post(
        f"/api/instances/{made['id']}/pull-request",
        data={"title": "Tidy", "description": "x", "draft": "true"},
    )
    assert answer.status_code == 503 and 'role="alert"' in answer.text
    assert "GitHub" in answer.text and "GITHUB_TOKEN" in answer.text, answer.text
    assert f'href="/instances/{made["id"]}"' in answer.text
    assert query(repo, "SELECT pr_number FROM instances WHERE id = ?", made["id"]) == [{"pr_number": None}]
    failed = [r for r in person_events(repo) if r["tool_name"] == "pull_request"]
    assert [r["success"] for r in failed] == [0] and failed[0]["metadata"]["via"] == "ui"


def test_issues_sync_button_fills_the_cache_as_the_persons_action(
    repo: Path, quiet_env: dict[str, str]
) -> None:
    with GitHubStandIn(expected_token="tok") as gh:
        gh.add_issue(5, "Make the widget <spin>")
        env = {
            **quiet_env,
            "CODEX_MCP_GITHUB_API_URL": gh.base_url,
            "CODEX_MCP_GITHUB_REPO": "octo/flux",
            "GITHUB_TOKEN": "tok",
        }
        with running_dashboard(repo, env) as board:
            client = board.client()
            page = client.get("/issues").text
            assert 'action="/api/issues/sync"' in page and ">Sync</button>" in page
            synced = client.post("/api/issues/sync", data={})
            assert synced.status_code == 303 and synced.headers["location"] == "/issues"
            assert "#5 Make the widget &lt;spin&gt;" in client.get("/issues").text
    rows = person_events(repo)
    assert [(r["tool_name"], r["success"], r["metadata"]["via"]) for r in rows] == [("issues_sync", 1, "ui")]


def test_read_only_refuses_every_action_on_the_server(
    repo: Path, quiet_env: dict[str, str], tmux_socket: str
) -> None:
    done = run_cli("start", "--prompt", "x", "--issue", "3", cwd=repo, env=quiet_env)
    assert done.returncode == 0, done.stderr
    before = query(repo, "SELECT id, status, pr_number FROM instances ORDER BY id")
    edges_before = query(repo, "SELECT * FROM instance_relationships")
    with running_dashboard(repo, quiet_env, "--read-only") as board:
        client = board.client()
        page = client.get("/instances/work-3-a1").text
        for name in (
            "Kill",
            "Review",
            "Fork",
            "Create pull request",
            "Merge",
            "Send feedback",
            "Open in editor",
        ):
            assert f">{name}</button>" not in page
        assert ">Sync</button>" not in client.get("/issues").text
        for action in ("kill", "resume", "review", "fork", "pull-request", "merge", "feedback", "open"):
            answer = client.post(f"/api/instances/work-3-a1/{action}", json={"title": "t", "feedback": "f"})
            assert answer.status_code == 403 and "--read-only" in answer.json()["error"], action
        assert client.post("/api/instances", json={"prompt": "x"}).status_code == 403
        assert client.post("/api/issues/sync", json={}).status_code == 403
    assert query(repo, "SELECT id, status, pr_number FROM instances ORDER BY id") == before
    assert query(repo, "SELECT * FROM instance_relationships") == edges_before
    assert [r for r in person_events(repo) if r["metadata"].get("via") == "ui"] == []


def test_a_kept_demo_shows_its_instances_graph_feedback_and_tool_calls(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    done = run_cli("demo", "--keep", "--json", cwd=tmp_path, env={**cli_env, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    repo = Path(json.loads(done.stdout)["repository"])
    with running_dashboard(repo, cli_env) as board:
        client = board.client()
        listing = client.get("/?view=all").text
        assert '<a href="/instances/work-1-a1">work-1-a1</a>' in listing
        assert '<a href="/instances/review-1-a1">review-1-a1</a>' in listing
        assert "review round 1 of 3" in listing and "#1 Greet the user" in listing
        work = client.get("/instances/work-1-a1").text
        assert "<td>spawn_review_instance</td>" in work
        assert 'href="/instances/review-1-a1">review-1-a1</a> (review, terminated)' in work
        thread = work[work.index('id="feedback"') :]
        assert "Review feedback from review-1-a1" in thread and FEEDBACK in thread
        review = client.get("/instances/review-1-a1").text
        assert "<td>send_feedback</td>" in review and "<td>terminate_instance</td>" in review

        # The demo stopped its tmux server: the dashboard's first reconcile says the work agent is gone.
        def gone() -> bool:
            return bool(client.get("/api/instances/work-1-a1").json()["instance"]["status"] == "terminated")

        anyio.run(wait_for, gone)


def test_diff_is_the_clis_and_merge_lands_committed_work(
    dashboard: Dashboard, repo: Path, quiet_env: dict[str, str]
) -> None:
    client = dashboard.client()
    made = start(client)
    worktree = Path(made["worktree_path"])
    (worktree / "notes.txt").write_text("an uncommitted note\n", encoding="utf-8")
    answer = client.get(f"/api/instances/{made['id']}/diff")
    assert answer.status_code == 200, answer.text
    done = run_cli("diff", made["id"], "--json", cwd=repo, env=quiet_env)
    assert done.returncode == 0, done.stderr
    assert answer.json() == json.loads(done.stdout)
    assert [f["path"] for f in answer.json()["files"]] == ["notes.txt"]
    assert answer.json()["uncommitted"] == ["notes.txt"]

    # Uncommitted work is refused, in words, with nothing changed.
    refused = client.post(f"/api/instances/{made['id']}/merge", json={})
    assert refused.status_code == 409 and "uncommitted work" in refused.json()["error"]
    git(worktree, "add", "notes.txt")
    git(worktree, "commit", "-q", "-m", "A note")
    page = client.get(f"/instances/{made['id']}?fragment=merge").text
    assert "Ready: 1 commit(s) of " in page
    merged = client.post(f"/api/instances/{made['id']}/merge", json={"strategy": "squash"})
    assert merged.status_code == 200, merged.text
    assert merged.json()["outcome"] == "merged" and merged.json()["target"] == "main"
    assert (repo / "notes.txt").read_text(encoding="utf-8") == "an uncommitted note\n"
    row = query(repo, "SELECT merged_into, merged_commit FROM instances WHERE id = ?", made["id"])[0]
    assert row == {"merged_into": "main", "merged_commit": git(repo, "rev-parse", "main")}
    assert "merged into <code>main</code>" in client.get("/").text
    assert 'id="merged">into <code>main</code>' in client.get(f"/instances/{made['id']}").text
    assert [(r["tool_name"], r["success"]) for r in person_events(repo) if r["metadata"]["via"] == "ui"] == [
        ("start", 1),
        ("merge", 0),
        ("merge", 1),
    ]


def test_merge_preview_gives_every_refusal_in_the_order_a_person_fixes_them(
    dashboard: Dashboard, repo: Path
) -> None:
    """The instance's uncommitted work, then the dirty target, then the conflicts: all three in words,
    from checks run at once, and nothing changed by looking."""
    client = dashboard.client()
    made = start(client)
    worktree = Path(made["worktree_path"])
    (worktree / "shared.txt").write_text("the agent's version\n", encoding="utf-8")
    git(worktree, "add", "shared.txt")
    git(worktree, "commit", "-q", "-m", "The agent's shared.txt")
    (worktree / "draft.txt").write_text("not committed\n", encoding="utf-8")
    (repo / "shared.txt").write_text("the person's version\n", encoding="utf-8")
    git(repo, "add", "shared.txt")
    git(repo, "commit", "-q", "-m", "The person's shared.txt")
    (repo / "notes.txt").write_text("the person's notes\n", encoding="utf-8")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "The person's notes")
    (repo / "notes.txt").write_text("the person's notes, changed and not committed\n", encoding="utf-8")
    (repo / "scratch.txt").write_text("an untracked file: no reason to refuse\n", encoding="utf-8")
    main_before, branch_before = git(repo, "rev-parse", "main"), git(repo, "rev-parse", made["branch_name"])

    page = client.get(f"/instances/{made['id']}?fragment=merge")
    assert page.status_code == 200, page.text
    text = page.text
    reasons = [
        text.find(f"{made['id']} has uncommitted work in 1 path(s) (draft.txt)"),
        text.find("main is checked out in"),
        text.find("notes.txt"),
        text.find(f"{made['branch_name']} conflicts with main in 1 file(s): shared.txt"),
    ]
    assert -1 not in reasons and reasons == sorted(reasons), text
    assert "scratch.txt" not in text
    assert "Merging now would be refused" in text and "Ready:" not in text
    assert (git(repo, "rev-parse", "main"), git(repo, "rev-parse", made["branch_name"])) == (
        main_before,
        branch_before,
    )
    assert git(repo, "status", "--porcelain", strip=False) == " M notes.txt\n?? scratch.txt\n"  # unchanged
    assert (worktree / "draft.txt").exists()


def test_open_in_editor_starts_editor_command_without_a_shell(
    dashboard: Dashboard, repo: Path, quiet_env: dict[str, str], tmp_path: Path
) -> None:
    client = dashboard.client()
    made = start(client)
    opened = tmp_path / "opened.txt"
    fake = tmp_path / "fake-editor"
    fake.write_text(
        f"#!{sys.executable}\nimport sys, pathlib\npathlib.Path({str(opened)!r}).write_text(repr(sys.argv[1:]))\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)
    done = run_cli(
        "config", "set", "editor.command", f"{fake} --new-window {{path}}", cwd=repo, env=quiet_env
    )
    assert done.returncode == 0, done.stderr
    assert ">Open in editor</button>" in client.get(f"/instances/{made['id']}").text
    answer = client.post(f"/api/instances/{made['id']}/open", json={})
    assert answer.status_code == 200, answer.text
    assert answer.json()["command"] == [str(fake), "--new-window", made["worktree_path"]]
    anyio.run(wait_for, opened.exists)
    assert opened.read_text(encoding="utf-8") == repr(["--new-window", made["worktree_path"]])

    # A terminal editor has no terminal here: refused, in words, nothing started.
    vim = tmp_path / "vim"
    vim.write_bytes(fake.read_bytes())
    vim.chmod(0o755)
    done = run_cli("config", "set", "editor.command", f"{vim} {{path}}", cwd=repo, env=quiet_env)
    assert done.returncode == 0, done.stderr
    refused = client.post(f"/api/instances/{made['id']}/open", data={})
    assert refused.status_code == 503 and "codex-mcp open " + made["id"] in refused.text
    opens = [(r["success"], r["metadata"]["via"]) for r in person_events(repo) if r["tool_name"] == "open"]
    assert opens == [(1, "ui"), (0, "ui")]
