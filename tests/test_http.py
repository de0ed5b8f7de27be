"""One server for many agents: the real `codex-mcp serve --transport http|sse` in a subprocess.

Identity comes from each request's bearer token (issued at spawn, stored hashed); Host and Origin are
checked first; bad requests execute nothing and record nothing as a success. Clients: the MCP SDK's
own (streamable HTTP and SSE, with an Authorization header) and raw HTTP for what no client sends.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from http_server import RunningServer, free_port, serve
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from support import (
    event_rows,
    new_instance,
    ok,
    read_standin_log,
    run_cli,
    standin_command,
    text_of,
    tmux_sessions,
    wait_for,
)

from codex_mcp import tokens
from codex_mcp.app import open_app
from codex_mcp.errors import PermissionDenied
from codex_mcp.http import HostCheck, request_caller
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.instances import NewInstance
from codex_mcp.store.relationships import Relationship

pytestmark = pytest.mark.slow

PROTOCOL = "2025-11-25"
ACCEPT = "application/json, text/event-stream"
MAX_BODY = 4 * 1024 * 1024


# --------------------------------------------------------------------------------------------- helpers


@asynccontextmanager
async def http_client(url: str, token: str) -> AsyncIterator[Client]:
    """The SDK's client over streamable HTTP, sending ``Authorization: Bearer <token>``."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http), cache=None) as client,
    ):
        yield client


@asynccontextmanager
async def sse_session(url: str, token: str) -> AsyncIterator[Client]:
    async with Client(sse_client(url, headers={"Authorization": f"Bearer {token}"}), cache=None) as client:
        yield client


def server_env(cli_env: dict[str, str], **extra: str) -> dict[str, str]:
    return {**cli_env, "CODEX_MCP_LOG_LEVEL": "INFO", **extra}


async def successes(db: Database) -> list[tuple[str, str]]:
    return [(r["instance_id"], r["tool_name"]) for r in await event_rows(db, "success = 1")]


async def statuses(db: Database) -> dict[str, str]:
    return {r["id"]: r["status"] for r in await db.fetchall("SELECT id, status FROM instances")}


class Raw:
    """Hand-made HTTP requests (the handshake of a 2025-11-25 client, then whatever a test sends)."""

    def __init__(self, server: RunningServer, token: str | None) -> None:
        self.server = server
        self.token = token
        self.session_id: str | None = None
        self.http = httpx.AsyncClient(timeout=30)

    async def __aenter__(self) -> Raw:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.session_id is not None:
            headers["Mcp-Session-Id"] = self.session_id
            headers["Mcp-Protocol-Version"] = PROTOCOL
        headers.update(extra)
        return headers

    async def post(
        self, payload: Any = None, *, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = content if content is not None else json.dumps(payload).encode()
        return await self.http.post(self.server.url, content=body, headers=headers or self.headers())

    async def initialize(self) -> None:
        response = await self.post(initialize_request())
        assert response.status_code == 200, response.text
        self.session_id = response.headers.get("mcp-session-id")
        assert self.session_id, response.headers
        done = await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert done.status_code == 202, done.text

    async def call(self, name: str, arguments: Any, request_id: int = 7) -> dict[str, Any]:
        """A tools/call; the JSON-RPC message that answers it."""
        response = await self.post(
            {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": name, "arguments": arguments},
            }
        )
        assert response.status_code == 200, response.text
        return message_of(response)


def initialize_request(request_id: int = 1) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"},
        },
    }


def message_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON-RPC message of a response, whether sent as JSON or as one SSE event."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
        assert data, response.text
        return dict(json.loads(data[-1]))
    return dict(response.json())


def agent_instance(
    instance_id: str, worktree: Path, token: str | None, socket: str, **extra: Any
) -> NewInstance:
    worktree.mkdir(parents=True, exist_ok=True)
    return new_instance(
        instance_id,
        worktree,
        tmux_session=instance_id,  # never started: feedback for it is queued, not pasted
        tmux_socket=socket,
        token_hash=tokens.hash_token(token) if token else None,
        **extra,
    )


async def seed(db: Database, repo: Path, socket: str) -> dict[str, str]:
    """work-7-a1 (W) with its reviewer review-7-a1 (R), and an unrelated work-8-a1 (X): their tokens."""
    issued = {name: tokens.new_token()[0] for name in ("W", "R", "X")}
    root = repo / "worktrees"
    async with db.write() as tx:
        await instances_store.insert(
            tx, agent_instance("work-7-a1", root / "work-7-a1", issued["W"], socket, issue_number=7)
        )
        await instances_store.insert(
            tx, agent_instance("review-7-a1", root / "review-7-a1", issued["R"], socket, issue_number=7)
        )
        await instances_store.insert(
            tx, agent_instance("work-8-a1", root / "work-8-a1", issued["X"], socket, issue_number=8)
        )
        await relationships_store.add(
            tx,
            Relationship(
                parent_instance="work-7-a1", child_instance="review-7-a1", relationship_type="spawned_review"
            ),
        )
    return issued


W, R, X = "work-7-a1", "review-7-a1", "work-8-a1"


@pytest.fixture
def agents_server(repo: Path, cli_env: dict[str, str]) -> Callable[..., Any]:
    def start(**kwargs: Any) -> Any:
        return serve(repo, server_env(cli_env), **kwargs)

    return start


# ------------------------------------------------------------------------------------- agent tokens


async def test_each_token_acts_for_its_own_instance_only(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    with agents_server() as server:
        assert server.url.endswith("/mcp") and server.url.startswith("http://127.0.0.1:")
        assert server.operator_token is None and "operator token" not in server.stderr  # off by default

        async with http_client(server.url, issued["W"]) as client:
            found = ok(await client.call_tool("query_instances", {}))
            assert found["caller_instance_id"] == W
            assert {i["id"] for i in found["instances"]} == {W, R, X}
            # Queries are open to all: reading another instance is fine.
            assert ok(await client.call_tool("get_instance", {"instance_id": X}))["instance"]["id"] == X
            ok(await client.call_tool("list_events", {}))
            # Acting on it is not: X is not W's descendant.
            refused = await client.call_tool("terminate_instance", {"instance_id": X})
            assert refused.is_error and "may terminate itself" in text_of(refused), text_of(refused)
            # A work instance sends no feedback (that is its reviewer's right, not its own).
            refused = await client.call_tool("send_feedback", {"feedback": "x", "feedback_type": "approved"})
            assert refused.is_error and "only review instances" in text_of(refused), text_of(refused)

        async with http_client(server.url, issued["X"]) as client:
            assert ok(await client.call_tool("query_instances", {}))["caller_instance_id"] == X
            refused = await client.call_tool("terminate_instance", {"instance_id": W})
            assert refused.is_error, text_of(refused)

        async with http_client(server.url, issued["R"]) as client:
            assert ok(await client.call_tool("query_instances", {}))["caller_instance_id"] == R
            # The reviewer reaches the work it reviews, and only through send_feedback.
            sent = ok(
                await client.call_tool(
                    "send_feedback", {"feedback": "looks good", "feedback_type": "approved"}
                )
            )
            assert sent["target_instance_id"] == W
            assert sent["delivery_status"] == "queued"  # W's tmux session does not exist
            refused = await client.call_tool("terminate_instance", {"instance_id": W})
            assert refused.is_error, text_of(refused)
            refused = await client.call_tool("spawn_review_instance", {})
            assert refused.is_error and "only work instances" in text_of(refused), text_of(refused)

        feedback = list((repo / "worktrees" / W / ".codex" / "feedback").glob("*.md"))
        assert len(feedback) == 1 and "looks good" in feedback[0].read_text()
        assert await statuses(db) == {W: "running", R: "running", X: "running"}

        # Every call is recorded under the instance whose token made it; refusals are failed rows.
        rows = await event_rows(db)
        assert {(r["instance_id"], r["tool_name"], r["success"]) for r in rows} >= {
            (W, "query_instances", 1),
            (W, "get_instance", 1),
            (W, "list_events", 1),
            (W, "terminate_instance", 0),
            (W, "send_feedback", 0),
            (X, "terminate_instance", 0),
            (R, "send_feedback", 1),
            (R, "terminate_instance", 0),
            (R, "spawn_review_instance", 0),
        }
        assert not [
            r
            for r in rows
            if r["success"] and r["tool_name"] in ("terminate_instance", "spawn_review_instance")
        ]
        assert all(r["instance_id"] in (W, R, X) for r in rows)  # nothing acted as anyone else

        # A terminated instance's token stops working at once; the others carry on.
        async with db.write() as tx:
            assert await instances_store.mark_terminated(tx, W)
        async with Raw(server, issued["W"]) as raw:
            response = await raw.post(initialize_request())
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
        async with http_client(server.url, issued["R"]) as client:
            assert ok(await client.call_tool("query_instances", {}))["caller_instance_id"] == R
        before = len(await event_rows(db))
        with pytest.raises(BaseException):  # noqa: B017 - the SDK wraps the 401 in task-group errors
            async with http_client(server.url, issued["W"]) as client:
                await client.call_tool("query_instances", {})
        assert len(await event_rows(db)) == before


async def test_missing_or_unknown_tokens_get_401(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    stored_hash = tokens.hash_token(issued["W"])
    with agents_server() as server:
        for token in (None, "cmcp_not-a-token", stored_hash, issued["W"] + "x", issued["W"][:-1]):
            async with Raw(server, token) as raw:
                response = await raw.post(initialize_request())
                assert response.status_code == 401, (token, response.text)
                assert response.headers["www-authenticate"].startswith("Bearer"), response.headers
                assert "token" in response.json()["error"]
        async with Raw(server, None) as raw:
            for headers in (
                {"Authorization": "Bearer"},
                {"Authorization": f"Basic {issued['W']}"},
                {"Authorization": issued["W"]},  # no scheme
                {"X-Api-Key": issued["W"]},
            ):
                response = await raw.post(initialize_request(), headers=raw.headers(**headers))
                assert response.status_code == 401, (headers, response.text)
            # Every method of the endpoint, not only POST.
            for method in ("GET", "DELETE"):
                response = await raw.http.request(method, server.url, headers={"Accept": ACCEPT})
                assert response.status_code == 401, (method, response.text)
        # A session opened with a good token is no pass for a request without one.
        async with Raw(server, issued["W"]) as raw:
            await raw.initialize()
            raw.token = None
            response = await raw.post(
                {
                    "jsonrpc": "2.0",
                    "id": 2,
                    "method": "tools/call",
                    "params": {"name": "query_instances", "arguments": {}},
                }
            )
            assert response.status_code == 401, response.text
            # ... nor for another instance's call: the session is W's, the token decides who acts.
            raw.token = issued["R"]
            answer = await raw.call("query_instances", {})
            assert answer["result"]["structuredContent"]["caller_instance_id"] == R
    assert [(r["instance_id"], r["tool_name"]) for r in await event_rows(db)] == [(R, "query_instances")]


async def test_foreign_host_and_origin_are_refused_before_anything_else(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    with agents_server() as server:
        port = server.port
        async with Raw(server, issued["W"]) as raw:
            for host in (
                "evil.example.com",
                f"evil.example.com:{port}",
                f"127.0.0.1:{port + 1}",
                "127.0.0.1",
            ):
                response = await raw.post(initialize_request(), headers=raw.headers(Host=host))
                assert response.status_code == 421, (host, response.text)
            for origin in (
                "http://evil.example.com",
                f"http://evil.example.com:{port}",
                "null",
                f"https://127.0.0.1:{port}",
            ):
                response = await raw.post(initialize_request(), headers=raw.headers(Origin=origin))
                assert response.status_code == 403, (origin, response.text)
            # Before the token: a rebinding page learns nothing, even without one.
            raw.token = None
            response = await raw.post(initialize_request(), headers=raw.headers(Host="evil.example.com"))
            assert response.status_code == 421
            response = await raw.post(
                initialize_request(), headers=raw.headers(Origin="http://evil.example.com")
            )
            assert response.status_code == 403
            # The server's own names are served.
            raw.token = issued["W"]
            for origin in (server.origin, f"http://localhost:{port}"):
                response = await raw.post(initialize_request(), headers=raw.headers(Origin=origin))
                assert response.status_code == 200, (origin, response.text)
            response = await raw.post(initialize_request(), headers=raw.headers(Host=f"localhost:{port}"))
            assert response.status_code == 200, response.text
    assert await event_rows(db) == []


def test_host_check_answers_the_servers_own_names_only() -> None:
    # The one Host/Origin rule (the Guard's, reusable by any route on the address), on its own.
    local = HostCheck.serving("127.0.0.1", 8123)
    for host in ("127.0.0.1:8123", "localhost:8123", "[::1]:8123"):
        assert local.refusal({"host": host}) is None, host
        assert local.refusal({"host": host, "origin": f"http://{host}"}) is None, host
    for host in ("", "evil.example.com:8123", "127.0.0.1", "127.0.0.1:8124"):
        refused = local.refusal({"host": host})
        assert refused is not None and refused[0] == 421, host
    for origin in ("null", "https://127.0.0.1:8123", "http://evil.example.com"):
        refused = local.refusal({"host": "127.0.0.1:8123", "origin": origin})
        assert refused is not None and refused[0] == 403 and origin in refused[1], origin
    remote = HostCheck.serving("10.0.0.5", 80)
    assert remote.refusal({"host": "10.0.0.5"}) is None
    assert remote.refusal({"host": "10.0.0.5:80", "origin": "http://10.0.0.5:80"}) is None
    refused = remote.refusal({"host": "localhost:80"})
    assert refused is not None and refused[0] == 421


async def test_a_call_without_the_guards_caller_is_refused() -> None:
    # Outside an HTTP request the Guard has put a caller in, the HTTP rule finds nobody to act for.
    with pytest.raises(PermissionDenied, match="Authorization: Bearer"):
        await request_caller(object(), read_only=True)


async def test_bad_requests_execute_nothing_and_record_no_success(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    feedback_folder = repo / "worktrees" / W / ".codex" / "feedback"
    with agents_server() as server:
        async with Raw(server, issued["R"]) as raw:
            await raw.initialize()

            # Oversized body: refused by the transport before it is parsed.
            huge = {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {
                    "name": "send_feedback",
                    "arguments": {"feedback": "x" * (MAX_BODY + 1), "feedback_type": "approved"},
                },
            }
            response = await raw.post(huge)
            assert response.status_code == 413, response.text
            # ... also when it comes in chunks, without a Content-Length to refuse up front.
            data = json.dumps(huge).encode()

            async def chunks() -> AsyncIterator[bytes]:
                for start in range(0, len(data), 256 * 1024):
                    yield data[start : start + 256 * 1024]

            response = await raw.http.post(server.url, content=chunks(), headers=raw.headers())
            assert response.status_code == 413, response.text

            # Not JSON at all: a JSON-RPC parse error.
            response = await raw.post(content=b'{"jsonrpc": "2.0", "id": 4, "method": "tools/call", ')
            assert 400 <= response.status_code < 500
            assert message_of(response)["error"]["code"] == -32700
            # JSON, but not JSON-RPC.
            payload: object
            for payload in (
                {"foo": 1},
                {"jsonrpc": "1.0", "id": 5, "method": "tools/call"},
                {"jsonrpc": "2.0", "id": 6, "method": 42},
                [],
                "tools/call",
            ):
                response = await raw.post(payload)
                assert 400 <= response.status_code < 500, (payload, response.text)
                assert message_of(response)["error"]["code"] in (-32600, -32602), response.text
            # Not JSON by its content type.
            response = await raw.post(
                {"jsonrpc": "2.0", "id": 7, "method": "ping"},
                headers=raw.headers(**{"Content-Type": "text/plain"}),
            )
            assert 400 <= response.status_code < 500, response.text

            # Well-formed, but wrong: tool errors, nothing run.
            answer = await raw.call("no_such_tool", {})
            assert answer["result"]["isError"] is True, answer
            assert "no_such_tool" in json.dumps(answer["result"]["content"])
            for arguments in (
                {"feedback": 123, "feedback_type": "approved"},
                {"feedback": "fine", "feedback_type": "excellent"},
                {"feedback": "fine", "feedback_type": "approved", "priority": ["high"]},
                {"feedback_type": "approved"},
                ["fine", "approved"],
            ):
                answer = await raw.call("send_feedback", arguments)
                assert answer.get("result", {}).get("isError") is True or "error" in answer, (
                    arguments,
                    answer,
                )
            answer = await raw.call("terminate_instance", {"instance_id": {"id": X}})
            assert answer.get("result", {}).get("isError") is True or "error" in answer, answer
            answer = await raw.call("get_instance", {"instance_id": 7})
            assert answer["result"]["isError"] is True, answer
    assert not feedback_folder.exists() or not list(feedback_folder.iterdir())
    assert await statuses(db) == {W: "running", R: "running", X: "running"}
    assert await successes(db) == []
    # What reached the server as a tools/call is recorded, as a failure, under the token's instance.
    failed = [(r["instance_id"], r["tool_name"]) for r in await event_rows(db, "success = 0")]
    assert (R, "no_such_tool") in failed and (R, "send_feedback") in failed, failed
    assert {i for i, _ in failed} == {R}


# ------------------------------------------------------------------------------------ operator token


async def test_operator_token_reads_but_never_acts(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    with agents_server(operator_token=True) as server:
        assert server.operator_token
        assert server.operator_token not in issued.values()
        # Starting with the operator token wrote nothing: no instance was registered for it.
        assert await db.fetchall("SELECT id FROM instances WHERE type = 'adhoc'") == []
        async with Raw(server, server.operator_token) as raw:
            await raw.initialize()
            # logging/setLevel would change the whole server's logging: refused for the read-only
            # operator and recorded, the level left as it is; answered without effect (the MCP
            # Inspector sets a level on every connect and gives up when that fails).
            response = await raw.post(
                {"jsonrpc": "2.0", "id": 3, "method": "logging/setLevel", "params": {"level": "debug"}}
            )
            assert response.status_code == 200, response.text
            answer = message_of(response)
            assert answer.get("result") == {} and "error" not in answer, answer
        # A row names the instance that called: the operator's first recorded call registered it.
        adhoc = await db.fetchone("SELECT id, worktree_path FROM instances WHERE type = 'adhoc'")
        assert adhoc is not None and Path(adhoc["worktree_path"]) == repo
        async with http_client(server.url, server.operator_token) as client:
            found = ok(await client.call_tool("query_instances", {}))
            assert found["caller_instance_id"] == adhoc["id"]
            assert ok(await client.call_tool("get_instance", {"instance_id": W}))["instance"]["id"] == W
            ok(await client.call_tool("list_events", {}))
            ok(await client.call_tool("list_issues", {}))
            for name, arguments in (
                ("terminate_instance", {"instance_id": W}),
                ("terminate_instance", {}),
                ("send_feedback", {"feedback": "x", "feedback_type": "approved"}),
                ("fork_instance", {}),
                ("spawn_review_instance", {}),
                ("sync_issues", {}),
                ("create_pull_request", {"title": "t", "description": "d"}),
            ):
                refused = await client.call_tool(name, arguments)
                assert refused.is_error and "read-only" in text_of(refused), (name, text_of(refused))
    assert await statuses(db) == {W: "running", R: "running", X: "running", adhoc["id"]: "running"}
    rows = await event_rows(db)
    assert {(r["tool_name"], r["success"]) for r in rows if r["success"]} == {
        ("query_instances", 1),
        ("get_instance", 1),
        ("list_events", 1),
        ("list_issues", 1),
    }
    assert {r["instance_id"] for r in rows} == {adhoc["id"]}
    # A refusal is a failed row too (DESIGN: "A refusal is a tool error and a failed mcp_events row").
    refused_rows = [r for r in rows if not r["success"]]
    assert {r["tool_name"] for r in refused_rows} == {
        "logging/setLevel",
        "terminate_instance",
        "send_feedback",
        "fork_instance",
        "spawn_review_instance",
        "sync_issues",
        "create_pull_request",
    }
    assert all("read-only" in r["error_message"] for r in refused_rows)
    (set_level,) = [r for r in refused_rows if r["tool_name"] == "logging/setLevel"]
    assert "log level was left unchanged" in set_level["error_message"]
    assert " DEBUG " not in server.stderr  # the server kept logging at INFO


async def test_a_non_ascii_bearer_token_is_refused_like_any_wrong_token(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    await seed(db, repo, tmux_socket)
    with agents_server(operator_token=True) as server:
        async with httpx.AsyncClient(timeout=10) as http:
            for token in (
                "t\u00e9st-\u00fc",
                "\u043f\u0440\u0438\u0432\u0435\u0442",
                server.operator_token + "\u00e9",
            ):
                response = await http.post(
                    server.url,
                    content=json.dumps(initialize_request()).encode(),
                    headers=[
                        (b"Accept", ACCEPT.encode()),
                        (b"Content-Type", b"application/json"),
                        (b"Authorization", b"Bearer " + token.encode("utf-8")),
                    ],
                )
                assert response.status_code == 401, (token, response.status_code, response.text)
                assert "unknown or revoked token" in response.json()["error"]
    assert "Traceback" not in server.stderr


# ------------------------------------------------------------------------------- lone surrogates


def raw_call(name: str, arguments_json: str, request_id: int) -> bytes:
    """A tools/call written by hand: ``arguments_json`` goes on the wire exactly as given."""
    return (
        f'{{"jsonrpc":"2.0","id":{request_id},"method":"tools/call",'
        f'"params":{{"name":"{name}","arguments":{arguments_json}}}}}'
    ).encode()


async def test_a_call_whose_arguments_hold_a_lone_surrogate_still_leaves_its_row(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    """The SDK's parser refuses "\ud800" (-32700, before any tool runs); the Guard hands it U+FFFD."""
    issued = await seed(db, repo, tmux_socket)
    with agents_server() as server:
        async with Raw(server, issued["W"]) as raw:
            await raw.initialize()
            response = await raw.post(content=raw_call("list_issues", '{"text":"bug\\ud800fix"}', 11))
            assert response.status_code == 200, response.text
            answer = message_of(response)
            assert "error" not in answer and answer["result"]["isError"] is False, answer
            response = await raw.post(
                content=raw_call("get_instance", '{"instance_id":"work-\\udc00-a1"}', 12)
            )
            assert response.status_code == 200, response.text
            refused = message_of(response)
            assert refused["result"]["isError"] is True, refused
            # Not JSON at all is still the SDK's parse error, and the server carries on.
            broken = await raw.post(
                content=b'{"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"x":"\\ud800'
            )
            assert broken.status_code == 400, broken.text
            assert (await raw.call("query_instances", {}, request_id=14))["result"]["isError"] is False
    rows = {r["tool_name"]: r for r in await event_rows(db)}
    assert rows["list_issues"]["success"] == 1 and rows["list_issues"]["instance_id"] == W
    assert json.loads(rows["list_issues"]["metadata"])["args"]["text"] == "bug\ufffdfix"
    assert rows["get_instance"]["success"] == 0
    assert "Traceback" not in server.stderr


# ------------------------------------------------------------------------------------ binding and SSE


def test_non_loopback_host_is_refused_without_allow_remote(repo: Path, cli_env: dict[str, str]) -> None:
    for host in ("0.0.0.0", "::"):
        done = run_cli("serve", "--transport", "http", "--host", host, "--port", "0", cwd=repo, env=cli_env)
        assert done.returncode != 0, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert "--allow-remote" in lines[0] and host in lines[0], lines[0]
        assert "Traceback" not in done.stderr


async def test_sse_transport_serves_sse_with_tokens(
    repo: Path, db: Database, tmux_socket: str, agents_server: Callable[..., Any]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    with agents_server(transport="sse") as server:
        assert server.url.endswith("/sse")
        async with sse_session(server.url, issued["R"]) as client:
            assert ok(await client.call_tool("query_instances", {}))["caller_instance_id"] == R
            sent = ok(
                await client.call_tool(
                    "send_feedback", {"feedback": "over sse", "feedback_type": "suggestions"}
                )
            )
            assert sent["target_instance_id"] == W
            refused = await client.call_tool("terminate_instance", {"instance_id": X})
            assert refused.is_error
        async with httpx.AsyncClient(timeout=10) as http:
            for headers in ({}, {"Authorization": "Bearer cmcp_unknown"}):
                response = await http.get(server.url, headers={"Accept": "text/event-stream", **headers})
                assert response.status_code == 401, response.text
            response = await http.get(
                server.url,
                headers={
                    "Accept": "text/event-stream",
                    "Authorization": f"Bearer {issued['R']}",
                    "Host": "evil.example.com",
                },
            )
            assert response.status_code == 421
            # The message endpoint is guarded like the stream.
            response = await http.post(server.origin + "/messages/?session_id=0", json=initialize_request())
            assert response.status_code == 401
    assert {(r["instance_id"], r["tool_name"], r["success"]) for r in await event_rows(db)} == {
        (R, "query_instances", 1),
        (R, "send_feedback", 1),
        (R, "terminate_instance", 0),
    }


# ---------------------------------------------------------------------------- spawned agents over HTTP


def read_config(worktree: Path) -> dict[str, Any]:
    path = worktree / ".codex" / "mcp.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    return dict(json.loads(path.read_text())["mcpServers"]["codex"])


async def test_spawned_agents_use_the_shared_server_with_their_own_tokens(
    repo: Path,
    db: Database,
    cli_env: dict[str, str],
    tmux_socket: str,
    write_script: Callable[[dict[str, Any]], Path],
    lifecycle_settings: Callable[..., Settings],
) -> None:
    script = {
        "work": [
            {"call": "query_instances", "args": {}},
            {"call": "spawn_review_instance", "args": {}},
            {"wait_feedback": 30},
        ],
        "review": [
            {"call": "send_feedback", "args": {"feedback": "ship it", "feedback_type": "approved"}},
            {"call": "terminate_instance"},
        ],
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    # The server spawns the reviewer itself: it needs the same tmux socket, agent command and URL.
    env = server_env(
        cli_env,
        CODEX_MCP_TMUX_SOCKET=tmux_socket,
        CODEX_MCP_AGENT_COMMAND=standin_command(write_script(script)),
        CODEX_MCP_SERVER_URL=url,
    )
    settings = lifecycle_settings(script, CODEX_MCP_SERVER_URL=url)
    with serve(repo, env, port=port) as server:
        assert server.url == url
        async with open_app(settings) as app:
            work = await app.lifecycle.commit(
                await app.lifecycle.prepare_work(issue_number=5, base=None, prompt="go")
            )
        worktree = Path(work.worktree_path)

        config = read_config(worktree)
        assert config["type"] == "http" and config["url"] == url and "command" not in config
        authorization = config["headers"]["Authorization"]
        assert authorization.startswith("Bearer cmcp_")
        work_token = authorization.removeprefix("Bearer ")
        row = await db.fetchone("SELECT token_hash FROM instances WHERE id = ?", (work.id,))
        assert row is not None and row["token_hash"] == tokens.hash_token(work_token)

        # The stand-in agent talks to the shared server with its token, as itself.
        async def logged_call(wt: Path, tool: str) -> dict[str, Any] | None:
            return next(
                (e for e in read_standin_log(wt) if e.get("event") == "call" and e["tool"] == tool), None
            )

        first = await wait_for(lambda: logged_call(worktree, "query_instances"))
        assert not first["is_error"] and first["result"]["caller_instance_id"] == work.id, first
        spawned = await wait_for(lambda: logged_call(worktree, "spawn_review_instance"))
        assert not spawned["is_error"], spawned
        review_id = spawned["result"]["review_instance_id"]
        review_worktree = Path(spawned["result"]["worktree_path"])
        review_config = read_config(review_worktree)
        assert review_config["type"] == "http" and review_config["url"] == url
        review_token = review_config["headers"]["Authorization"].removeprefix("Bearer ")
        assert review_token != work_token
        row = await db.fetchone("SELECT token_hash FROM instances WHERE id = ?", (review_id,))
        assert row is not None and row["token_hash"] == tokens.hash_token(review_token)

        # The reviewer's feedback reaches the work through the same server.
        files = await wait_for(lambda: list((worktree / ".codex" / "feedback").glob("*.md")))
        assert "ship it" in files[0].read_text()

        async def review_terminated() -> bool:
            found = await instances_store.get(db, review_id)
            return found is not None and found.status == "terminated"

        await wait_for(review_terminated)
        await wait_for(lambda: review_id not in tmux_sessions(tmux_socket))
        rows = {(r["instance_id"], r["tool_name"], r["success"]) for r in await event_rows(db)}
        assert rows >= {
            (work.id, "query_instances", 1),
            (work.id, "spawn_review_instance", 1),
            (review_id, "send_feedback", 1),
            (review_id, "terminate_instance", 1),
        }

        # The work agent's token works from anywhere; the terminated reviewer's no longer does.
        async with http_client(url, work_token) as client:
            assert ok(await client.call_tool("query_instances", {}))["caller_instance_id"] == work.id
        async with Raw(server, review_token) as raw:
            assert (await raw.post(initialize_request())).status_code == 401

        # No agent runs its own server: only the shared one serves them.
        ours = {work.id, review_id}
        assert not [p for p in _processes() if "serve" in p and ours & set(p)]
    # Tokens live only in the agents' 0600 configs, never in the database.
    for name in os.listdir(db.path.parent):
        data = (db.path.parent / name).read_bytes()
        assert work_token.encode() not in data and review_token.encode() not in data, name


def _processes() -> list[list[str]]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"codex_mcp" in b" ".join(argv) or any(a.endswith(b"codex-mcp") for a in argv):
                found.append([a.decode(errors="replace") for a in argv if a])
    return found
