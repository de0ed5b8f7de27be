"""A slow client cannot starve the agents: header time and connection count are bounded (issue 11, item 13)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import uvicorn
from http_server import serve
from support import ok
from test_http import http_client, seed, server_env
from ui_server import running_dashboard

from codex_mcp.connlimits import ConnectionLimits
from codex_mcp.store import Database


async def half_open(port: int, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """``count`` connections that start a request and never finish its head (a slow-loris), opened
    all at once: the server sees them as one flood, in accept bursts, before it can evict any."""

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
        await writer.drain()
        return reader, writer

    opened = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    return [pair for pair in opened if not isinstance(pair, BaseException)]


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            return await reader.read() == b""
    except (TimeoutError, ConnectionError):
        return False


async def test_an_agent_is_served_while_a_slow_loris_holds_more_connections_than_descriptors(
    repo: Path, db: Database, tmux_socket: str, cli_env: dict[str, str]
) -> None:
    issued = await seed(db, repo, tmux_socket)
    # 256 descriptors in all, as a small `ulimit -n` gives: without bounds, 300 half-open connections
    # exhaust them and accept() fails for every agent after them.
    with serve(repo, server_env(cli_env), descriptor_limit=256) as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        attack = await half_open(port, 300)
        try:
            async with http_client(server.url, issued["W"]) as client:
                found = ok(await client.call_tool("query_instances", {}))
            assert found["caller_instance_id"] == "work-7-a1"
            # Slow connections are closed (the oldest first, to make room; the rest by the header
            # timeout): the server does not keep them.
            closed = await asyncio.gather(*(closed_by_server(reader, within=20) for reader, _ in attack[:50]))
            assert any(closed), "no slow connection was ever closed by the server"
        finally:
            for _, writer in attack:
                writer.close()
    assert "Too many open files" not in server.stderr and "Traceback" not in server.stderr


async def test_a_flood_that_arrives_while_the_server_is_busy_never_exhausts_its_descriptors(
    repo: Path, db: Database, tmux_socket: str, cli_env: dict[str, str]
) -> None:
    """A server too busy to accept (stopped here, as a loaded machine starves it) finds the whole flood
    queued at once: it accepts in bounded bursts and evicts as it goes, never reaching EMFILE, and stops
    without asyncio's accept-retry tracebacks (CI saw both when the accept burst was the full queue)."""
    issued = await seed(db, repo, tmux_socket)
    with serve(repo, server_env(cli_env), descriptor_limit=256) as server:
        port = int(server.url.rsplit(":", 1)[1].split("/")[0])
        async with http_client(server.url, issued["W"]) as client:  # serving (its listen queue is set)
            ok(await client.call_tool("query_instances", {}))
        os.kill(server.process.pid, signal.SIGSTOP)
        try:
            # As many as the kernel queues for a stopped server (its listen backlog) arrive at once;
            # the rest keep retrying and arrive while the server works through the first.
            pending = [asyncio.ensure_future(half_open(port, 1)) for _ in range(300)]
            first, pending_set = await asyncio.wait(pending, timeout=2)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        later, unanswered = await asyncio.wait(pending_set, timeout=5) if pending_set else (set(), set())
        attack = [pair for task in first | later if task.exception() is None for pair in task.result()]
        try:
            assert first, "no connection reached the stopped server's queue: no flood to test"
            async with http_client(server.url, issued["W"]) as client:
                found = ok(await client.call_tool("query_instances", {}))
            assert found["caller_instance_id"] == "work-7-a1"
        finally:
            for task in unanswered:
                task.cancel()
            for _, writer in attack:
                writer.close()
    assert "Too many open files" not in server.stderr and "Traceback" not in server.stderr, server.stderr


async def test_the_dashboard_serves_a_person_while_a_slow_loris_holds_its_connections(
    repo: Path, cli_env: dict[str, str]
) -> None:
    with running_dashboard(repo, cli_env, descriptor_limit=256) as dashboard:
        attack = await half_open(dashboard.port, 300)
        try:
            person = dashboard.client()
            page = person.get("/")
            person.close()
            assert page.status_code == 200 and "Instances" in page.text
            closed = await asyncio.gather(*(closed_by_server(reader, within=20) for reader, _ in attack[:50]))
            assert any(closed), "no slow connection was ever closed by the dashboard"
        finally:
            for _, writer in attack:
                writer.close()
    log = dashboard.stderr.read_text()
    assert "Too many open files" not in log and "Traceback" not in log, log


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


@asynccontextmanager
async def uvicorn_with(limits: ConnectionLimits) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    config = uvicorn.Config(hello, log_level="warning", lifespan="off", **limits.uvicorn_options())
    server = uvicorn.Server(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: server.serve(sockets=[sock]))
        while not server.started:
            await anyio.sleep(0.01)
        try:
            yield sock.getsockname()[1]
        finally:
            server.should_exit = True


async def test_a_request_head_that_takes_too_long_is_closed_and_others_are_served() -> None:
    async with uvicorn_with(ConnectionLimits(header_timeout=0.5)) as port:
        [(slow_reader, slow_writer)] = await half_open(port, 1)
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(f"http://127.0.0.1:{port}/")).text == "hello"
        assert await closed_by_server(slow_reader, within=5)
        slow_writer.close()
        # A client that sends its head in time, even in pieces, is answered.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n")
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.write(b"Host: x\r\n\r\n")
        await writer.drain()
        assert b"hello" in await reader.read(4096)
        writer.close()
