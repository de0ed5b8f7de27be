"""The dashboard's routes and terminal over real HTTP/WebSockets, with real instances on a private tmux.

JSON answers are compared with the CLI's `--json` output; the live stream must carry a change made
by another process; the terminal must carry the pane both ways without resizing the agent's window.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import websockets
from support import read_standin_log, run_cli, tmux_sessions, wait_for
from ui_server import Dashboard, running_dashboard

from codex_mcp.store import issues as issues_store
from codex_mcp.store import open_database
from codex_mcp.store.issues import Issue

STATIC = Path(__file__).resolve().parent.parent / "codex_mcp" / "ui" / "static"


@pytest.fixture
def ui_script() -> dict[str, Any]:
    return {"adhoc": [{"call": "query_instances"}], "work": [{"call": "spawn_review_instance"}]}


def window_size(socket: str, session: str) -> str:
    done = subprocess.run(
        [
            "tmux",
            "-L",
            socket,
            "display-message",
            "-p",
            "-t",
            f"={session}:",
            "#{window_width}x#{window_height}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def start(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    answer = client.post("/api/instances", json={"prompt": "look around", **fields})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_json_routes_match_the_cli(dashboard: Dashboard, repo: Path, ui_env: dict[str, str]) -> None:
    client = dashboard.client()
    made = start(client)
    # adhoc-a1 is the person's own identity (the main checkout), under which the start was recorded.
    assert made["id"] == "adhoc-a2" and made["status"] == "running"

    def cli_json(*args: str) -> Any:
        done = run_cli(*args, "--json", cwd=repo, env=ui_env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def wait_for_event() -> Any:
        return client.get("/api/events", params={"since": "1d", "instance_id": "adhoc-a2"}).json()

    anyio.run(wait_for, wait_for_event)
    assert client.get("/api/instances").json() == cli_json("ls", "--all")
    assert client.get("/api/instances/adhoc-a2").json() == cli_json("show", "adhoc-a2")
    events = client.get("/api/events", params={"since": "1d", "instance_id": "adhoc-a2"}).json()
    assert events == cli_json("events", "--since", "1d", "--instance", "adhoc-a2")
    assert [e["tool_name"] for e in events] == ["query_instances"]
    assert client.get("/api/issues").json() == []
    missing = client.get("/api/instances/work-9-a1")
    assert missing.status_code == 404 and "work-9-a1" in missing.json()["error"]


def test_kill_and_resume_by_post(dashboard: Dashboard, tmux_socket: str, repo: Path) -> None:
    client = dashboard.client()
    made = start(client)
    killed = client.post(f"/api/instances/{made['id']}/kill", json={})
    assert killed.status_code == 200, killed.text
    assert killed.json()["status"] == "terminated"
    assert made["tmux_session"] not in tmux_sessions(tmux_socket)
    assert client.get(f"/api/instances/{made['id']}").json()["instance"]["status"] == "terminated"
    again = client.post(f"/api/instances/{made['id']}/kill", json={})
    assert again.status_code == 409 and "already terminated" in again.json()["error"]
    resumed = client.post(f"/api/instances/{made['id']}/resume", json={})
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] == "running"
    assert made["tmux_session"] in tmux_sessions(tmux_socket)
    unknown = client.post(f"/api/instances/{made['id']}/explode", json={})
    assert unknown.status_code == 404 and "kill" in unknown.json()["error"]


async def sse_messages(board: Dashboard, cookie: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    async with (
        httpx.AsyncClient(
            base_url=board.base, cookies={f"codex_mcp_{board.port}": cookie}, timeout=60
        ) as client,
        client.stream("GET", "/api/stream") as stream,
    ):
        kind = ""
        async for line in stream.aiter_lines():
            if line == ": connected":  # the server subscribed this stream
                yield "connected", {}
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


async def watch_stream(
    dashboard: Dashboard, act: Callable[[], None], until: Callable[[str, dict[str, Any]], bool]
) -> list[tuple[str, dict[str, Any]]]:
    """Open the page's stream, run ``act`` (in a thread) once connected, and collect the messages up
    to the first one ``until`` accepts."""
    cookie = dashboard.client().cookies[f"codex_mcp_{dashboard.port}"]
    seen: list[tuple[str, dict[str, Any]]] = []
    connected = anyio.Event()

    async def listen() -> None:
        async with anyio.create_task_group() as tg:
            async for kind, data in sse_messages(dashboard, cookie):
                if kind == "connected":
                    connected.set()
                    continue
                seen.append((kind, data))
                if until(kind, data):
                    tg.cancel_scope.cancel()

    with anyio.fail_after(90):
        async with anyio.create_task_group() as tg:
            tg.start_soon(listen)
            await connected.wait()
            await anyio.to_thread.run_sync(act)
    return seen


async def test_the_stream_carries_a_change_made_by_another_process(
    dashboard: Dashboard, repo: Path, ui_env: dict[str, str]
) -> None:
    def start() -> None:
        done = run_cli("start", "--prompt", "from the command line", cwd=repo, env=ui_env)
        assert done.returncode == 0, done.stderr

    seen = await watch_stream(
        dashboard, start, lambda kind, data: kind == "event" and data["tool_name"] == "query_instances"
    )
    instances = [d for k, d in seen if k == "instance"]
    assert any(d["id"] == "adhoc-a2" and d["status"] == "running" for d in instances), seen
    assert all("prompt" not in d for d in instances)
    events = [d for k, d in seen if k == "event"]
    assert events[-1]["instance_id"] == "adhoc-a2" and events[-1]["success"] is True


async def test_a_row_the_page_cannot_show_does_not_stall_the_stream(
    dashboard: Dashboard, repo: Path, ui_env: dict[str, str]
) -> None:
    """Another program writes a value outside the schema into one row and, in the same commit, a good
    change into another: the good change still reaches the page (the bad row is logged and skipped)."""
    done = run_cli("start", "--prompt", "from the command line", cwd=repo, env=ui_env)
    assert done.returncode == 0, done.stderr

    def bad_and_good_in_one_commit() -> None:
        conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
        try:
            with conn:
                conn.execute("UPDATE instances SET pr_state = 'not-a-state' WHERE id = 'adhoc-a2'")
                conn.execute("UPDATE instances SET pr_number = 77 WHERE id = 'adhoc-a1'")
        finally:
            conn.close()

    seen = await watch_stream(
        dashboard,
        bad_and_good_in_one_commit,
        lambda kind, data: kind == "instance" and data["id"] == "adhoc-a1" and data["pr_number"] == 77,
    )
    assert [d["id"] for k, d in seen if k == "instance"] == ["adhoc-a1"]
    assert "adhoc-a2 cannot be shown" in dashboard.stderr.read_text()


PASTE = [f"pasted-{n:04d}-" + "x" * 100 for n in range(500)]  # 56 KiB: the pty takes a few KiB at a time


async def test_the_terminal_carries_the_pane_both_ways_without_resizing_it(
    dashboard: Dashboard, tmux_socket: str
) -> None:
    client = dashboard.client()
    made = await anyio.to_thread.run_sync(lambda: start(client))
    session, worktree = made["tmux_session"], Path(made["worktree_path"])
    await wait_for(lambda: read_standin_log(worktree))
    before = window_size(tmux_socket, session)
    width, height = map(int, before.split("x"))
    cookie = client.cookies[f"codex_mcp_{dashboard.port}"]
    options: Any = {
        "origin": dashboard.base,
        "additional_headers": {"cookie": f"codex_mcp_{dashboard.port}={cookie}"},
    }
    url = f"ws://{dashboard.host}/api/instances/{made['id']}/terminal"

    def inputs() -> list[Any]:
        return [e["text"] for e in read_standin_log(worktree) if e["event"] == "input"]

    async def read_until(ws: Any, text: str) -> str:
        screen = ""
        while text not in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen):
            message = await ws.recv()
            screen += message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        return screen

    with anyio.fail_after(120):
        async with websockets.connect(url, **options) as watcher:
            hello = json.loads(await watcher.recv())
            # The pty is the window plus tmux's status line: tmux keeps the window as it is.
            assert hello == {"cols": width, "rows": height + 1, "writable": False}
            await read_until(watcher, '"event": "start"')
            assert window_size(tmux_socket, session) == before
            await watcher.send(b"typed-while-watching\r")
            async with websockets.connect(url + "?mode=write", **options) as writer:
                # The client offered permessage-deflate; a terminal's few bytes of echo go uncompressed.
                assert writer.response is not None
                assert "sec-websocket-extensions" not in writer.response.headers
                assert json.loads(await writer.recv())["writable"] is True
                await writer.send(b"typed-after-take-over\r")
                await read_until(watcher, "typed-after-take-over")
                # A paste far larger than the pty's buffer arrives whole and in order.
                await writer.send("".join(line + "\r" for line in PASTE).encode())
                # Open until the agent has it all: closing a terminal ends its tmux client at once.
                await wait_for(lambda: PASTE[-1] in inputs(), timeout=50)
            assert window_size(tmux_socket, session) == before

    assert inputs() == ["typed-after-take-over", *PASTE]
    assert window_size(tmux_socket, session) == before

    # Each viewer's tmux client ends with its socket.
    def no_clients() -> bool:
        argv = ["tmux", "-L", tmux_socket, "list-clients"]
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip() == ""

    await wait_for(no_clients)


async def cache_issue(repo: Path) -> None:
    db = await open_database(repo / ".git" / "codex-mcp" / "codex.db")
    try:
        async with db.write() as tx:
            await issues_store.upsert_many(
                tx,
                [
                    Issue(
                        number=4, title="Make the widget <spin>", state="open", repo_owner="o", repo_name="r"
                    )
                ],
            )
    finally:
        await db.close()


def test_start_form_issue_page_and_review_graph(dashboard: Dashboard, repo: Path) -> None:
    client = dashboard.client()
    client.get("/")  # the server opened (and created) the database
    anyio.run(cache_issue, repo)
    form = client.get("/start").text
    assert '<option value="4">#4 Make the widget &lt;spin&gt;</option>' in form  # escaped, not markup
    started = client.post("/api/instances", data={"prompt": "spin it", "base": "main", "issue": "4"})
    assert started.status_code == 303 and started.headers["location"] == "/instances/work-4-a1"
    page = client.get("/instances/work-4-a1").text
    assert "<h1>work-4-a1</h1>" in page and 'aria-label="Terminal of work-4-a1"' in page
    # The work agent asks for a review: the list shows the review under its work, round 1 of the cap.
    ids = lambda: {i["id"] for i in client.get("/api/instances").json()} >= {"work-4-a1", "review-4-a1"}  # noqa: E731
    anyio.run(wait_for, ids)
    listing = client.get("/").text
    assert re.search(r'<a href="/instances/review-4-a1">review-4-a1</a>', listing)
    assert listing.index("work-4-a1</a>") < listing.index("review-4-a1</a>")
    assert "review round 1 of 3" in listing and "1 of 3 review rounds" in listing
    assert "#4 Make the widget &lt;spin&gt;" in listing
    issues = client.get("/issues").text
    assert '<a href="/instances/work-4-a1">work-4-a1</a> (running)' in issues
    bad = client.post("/api/instances", data={"issue": "four"})
    assert bad.status_code == 400 and "issue must be an issue number" in bad.text


def test_vendored_files_match_their_record() -> None:
    record = (STATIC / "VENDORED.md").read_text(encoding="utf-8")
    sums = dict(
        (name, digest) for digest, name in re.findall(r"^([0-9a-f]{64})  (\S+)$", record, flags=re.MULTILINE)
    )
    assert set(sums) == {"htmx.min.js", "xterm.js", "xterm.css"}
    for name, digest in sums.items():
        assert hashlib.sha256((STATIC / name).read_bytes()).hexdigest() == digest, name
    assert (STATIC / "LICENSE.htmx").is_file() and (STATIC / "LICENSE.xterm").is_file()


async def test_read_only_terminals_watch_but_never_type(
    repo: Path, ui_env: dict[str, str], tmux_socket: str
) -> None:
    done = await anyio.to_thread.run_sync(lambda: run_cli("start", "--prompt", "x", cwd=repo, env=ui_env))
    assert done.returncode == 0, done.stderr
    with running_dashboard(repo, ui_env, "--read-only") as board:
        client = board.client()
        page = client.get("/instances/adhoc-a2").text
        assert "Take over" not in page and ">Kill<" not in page
        cookie = client.cookies[f"codex_mcp_{board.port}"]
        options: Any = {
            "origin": board.base,
            "additional_headers": {"cookie": f"codex_mcp_{board.port}={cookie}"},
        }
        url = f"ws://{board.host}/api/instances/adhoc-a2/terminal"
        with anyio.fail_after(60):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(url + "?mode=write", **options):
                    pass
            assert refused.value.response.status_code == 403
            async with websockets.connect(url, **options) as watcher:
                assert json.loads(await watcher.recv())["writable"] is False
        killed = client.post("/api/instances/adhoc-a2/kill", json={})
        assert killed.status_code == 403
        row = client.get("/api/instances/adhoc-a2").json()["instance"]
        assert row["status"] == "running" and row["tmux_session"] in tmux_sessions(tmux_socket)
