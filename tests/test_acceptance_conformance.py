"""Acceptance with the MCP conformance suite (`@modelcontextprotocol/conformance server --url ...`).

Every active server scenario runs against the real `codex-mcp serve --transport http`. Scenarios
that can only pass on a server offering the suite's own test tools, resources or prompts (named
`test_simple_text`, `test://static-text`, `test_simple_prompt`, ...) sit in
``tests/conformance_baseline.json`` with their reasons. The run fails when a scenario outside the
baseline fails, and when a baselined scenario passes (the baseline is stale: update the file).

The suite's client cannot send an `Authorization` header (its `server` command has no header option
and builds its transport without request options), while our server answers 401 to any request
without a token. So the suite talks to a small local reverse proxy that adds the server's read-only
operator token -- the documented way for a person's tools -- to each request and forwards everything
else byte for byte: a foreign Host or Origin (the DNS-rebinding scenario) reaches the server as
sent; only the proxy's own address is mapped to the server's, as a reverse proxy in front of the
server would.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest
import uvicorn
from http_server import serve
from npm_tools import NpmTools

pytestmark = pytest.mark.slow

BASELINE = Path(__file__).parent / "conformance_baseline.json"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


# ------------------------------------------------------------------------------------------ the proxy


class AuthProxy:
    """ASGI app: forward every request to ``upstream`` (an origin) with ``Authorization: Bearer token``."""

    def __init__(self, upstream: str, token: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.upstream_host = urlsplit(upstream).netloc
        self.token = token
        self.own_host = ""  # set once the proxy's port is known

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers: list[tuple[str, str]] = []
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            if name in HOP_BY_HOP:
                continue
            if name == "host" and value == self.own_host:
                value = self.upstream_host
            elif name == "origin" and value == f"http://{self.own_host}":
                value = f"http://{self.upstream_host}"
            headers.append((name, value))
        if not any(name == "authorization" for name, _ in headers):
            headers.append(("authorization", f"Bearer {self.token}"))
        query = scope.get("query_string", b"").decode("latin-1")
        url = self.upstream + scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")

        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client,
            anyio.create_task_group() as tg,
        ):

            async def watch_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                tg.cancel_scope.cancel()  # the suite closed its stream: close ours upstream

            tg.start_soon(watch_disconnect)
            request = client.build_request(scope["method"], url, headers=headers, content=body)
            response = await client.send(request, stream=True)
            try:
                await send(
                    {
                        "type": "http.response.start",
                        "status": response.status_code,
                        "headers": [
                            (k.encode("latin-1"), v.encode("latin-1"))
                            for k, v in response.headers.multi_items()
                            if k.lower() not in HOP_BY_HOP
                        ],
                    }
                )
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                await response.aclose()
                tg.cancel_scope.cancel()


@contextmanager
def auth_proxy(upstream: str, token: str) -> Iterator[str]:
    """Run :class:`AuthProxy` on a free loopback port (in a thread); yield its origin."""
    app = AuthProxy(upstream, token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app.own_host = f"127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", server_header=False, date_header=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise AssertionError("the proxy did not start")
            threading.Event().wait(0.01)
        yield f"http://{app.own_host}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


# ------------------------------------------------------------------------------------------ the suite

# Protocol behaviour the product must have whatever the suite's fixtures: never baselined.
PROTOCOL_SCENARIOS = {
    "server-initialize",
    "ping",
    "tools-list",
    "logging-set-level",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
}
RESULT_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")


def list_scenarios(npm_tools: NpmTools, env: dict[str, str]) -> list[str]:
    done = subprocess.run(
        [npm_tools.exe("conformance"), "list", "--server"],
        env=npm_tools.env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    names = re.findall(r"^\s+- (\S+)", done.stdout, flags=re.MULTILINE)
    assert names, done.stdout
    return names


def read_results(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """scenario -> its checks, from the suite's ``-o`` folder (one ``checks.json`` per scenario)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for child in sorted(folder.iterdir()):
        m = RESULT_DIR.match(child.name)
        if m is not None and (child / "checks.json").is_file():
            results[m["scenario"]] = json.loads((child / "checks.json").read_text())
    return results


def failures(checks: list[dict[str, Any]]) -> list[str]:
    return [
        f"{c['id']}: {c.get('errorMessage') or c.get('description')}"
        for c in checks
        if c["status"] == "FAILURE"
    ]


def test_every_conformance_scenario(
    npm_tools: NpmTools, repo: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    baseline: dict[str, str] = json.loads(BASELINE.read_text())
    assert all(isinstance(reason, str) and reason.strip() for reason in baseline.values()), (
        "every entry needs a reason"
    )
    assert not PROTOCOL_SCENARIOS & set(baseline), "protocol scenarios must pass, not be baselined"
    scenarios = list_scenarios(npm_tools, cli_env)
    out = tmp_path / "conformance"
    with serve(repo, cli_env, operator_token=True) as server:
        assert server.operator_token is not None
        with auth_proxy(server.origin, server.operator_token) as origin:
            done = subprocess.run(
                [
                    npm_tools.exe("conformance"),
                    "server",
                    "--url",
                    f"{origin}/mcp",
                    "--suite",
                    "all",
                    "-o",
                    str(out),
                ],
                cwd=tmp_path,
                env=npm_tools.env(cli_env),
                capture_output=True,
                text=True,
                timeout=240,
            )
    log = f"conformance exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}"
    assert out.is_dir(), log
    results = read_results(out)

    missing = sorted(set(scenarios) - set(results))
    assert not missing, f"scenarios without results: {missing}\n{log}"
    failed = {name: failures(checks) for name, checks in results.items() if failures(checks)}
    new_failures = {name: why for name, why in failed.items() if name not in baseline}
    stale = sorted(name for name in baseline if name not in failed)
    problems = []
    if new_failures:
        problems.append(
            "conformance scenarios failing that are not in tests/conformance_baseline.json (fix the server; "
            "only scenarios that need the suite's own test tools/resources/prompts belong in the baseline):\n"
            + "\n".join(f"  {name}: {'; '.join(why)}" for name, why in sorted(new_failures.items()))
        )
    if stale:
        problems.append(
            "stale entries in tests/conformance_baseline.json (these scenarios pass now, or no longer exist): "
            f"{stale}; remove them from the file"
        )
    assert not problems, "\n\n".join(problems)

    # The DNS-rebinding verdict is the server's own (the proxy forwards a foreign Host untouched).
    rebinding = {c["id"]: c for c in results["dns-rebinding-protection"]}
    assert rebinding["localhost-host-rebinding-rejected"]["details"]["statusCode"] == 421
    assert rebinding["localhost-host-valid-accepted"]["details"]["statusCode"] == 200
