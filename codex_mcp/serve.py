"""The composition root of ``codex-mcp serve``: the app, its MCP server and a transport, put together.

Only here is it known which transport runs, and so how a tool call's caller is found:

- stdio: one agent per server; its identity is resolved once at start (``identity.resolve_caller``)
  and every call acts for it.
- HTTP / SSE: many agents; the Guard (``codex_mcp/http.py``) checks Host, Origin and the bearer
  token of each request and puts its caller in the request; ``http.request_caller`` reads it back,
  refusing the read-only operator token any call that would change something.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import anyio
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel

from codex_mcp.app import App, open_app
from codex_mcp.background import running_beside
from codex_mcp.identity import resolve_caller
from codex_mcp.published_tools import LazyToolServer
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.wire import stdio_transport

log = logging.getLogger(__name__)

# How long a stop waits for open streams: agents keep them open, so not forever.
GRACEFUL_SHUTDOWN_SECONDS = 3
# The background reconcile's first pass, after start-up.
FIRST_RECONCILE_DELAY = 2.0
# A stdio server builds what its tools' first calls need this long after it starts serving: after the
# client's handshake and tools/list (answered in milliseconds), before an agent's first call.
WARM_UP_DELAY = 0.1


async def serve_stdio(settings: Settings) -> None:
    """Serve the one agent this process was started for, over stdin/stdout."""
    async with open_app(settings) as opened:
        caller = await resolve_caller(settings, opened.db)
        app = replace(opened, caller=caller)
        # Checkpoints stay off the path of the calls (store/checkpoints.py).
        await app.db.checkpoint_in_background()
        # Its event rows wait their turn behind the other servers' (store/append_queue.py).
        app.db.queue_appends()
        log.info("serving %s (%s) over stdio; database %s", caller.id, caller.source, app.db.path)
        server = build_server(app)
        lowlevel = server._lowlevel_server
        # The SDK's stdio transport, with stdin normalised first (lone surrogates: see wire.py).
        async with reconciling(app), warmed_up(server), stdio_transport() as (read, write):
            await lowlevel.run(read, write, lowlevel.create_initialization_options())


@asynccontextmanager
async def warmed_up(server: MCPServer[App]) -> AsyncIterator[None]:
    """Build, while the agent has not called a tool yet, what a first call would otherwise build.

    A server starts without its tools (published_tools.py): an agent's client lists them at once, but
    calls one seconds later. In that pause the server builds everything a call needs, so that no call
    pays for it: 32 servers whose agents' first calls arrive together would each build a tool and its
    models at that moment, on two cores (figure 6). In three steps:

    1. the tool modules, the published models and the lifecycle facade are imported in a worker thread
       (the loop keeps answering);
    2. each tool is registered on the loop, one per turn of it (0.3-2 ms each: a call arriving
       meanwhile waits for one at most);
    3. the store's and the published models build their validators (``defer_build``), a few per turn.
    """
    async with running_beside(partial(_warm_up, server)):
        yield


async def _warm_up(server: MCPServer[App]) -> None:
    # Nothing here may stop the server: what the warm-up could not build, the first call builds (and
    # reports, should it fail again).
    await anyio.sleep(WARM_UP_DELAY)
    try:
        await anyio.to_thread.run_sync(_load_modules)
    except Exception:
        log.exception("the warm-up could not import the tools; each is built at its first call")
        return
    if isinstance(server, LazyToolServer):
        for name in server.unregistered():
            try:
                server.register_tool(name)
            except Exception:
                log.exception("the warm-up could not build the tool %s; its first call will try again", name)
            await anyio.sleep(0)
    for n, model in enumerate(_deferred_models(), 1):
        try:
            model.model_rebuild()
        except Exception:
            log.exception("the warm-up could not build the model %s; its first use will", model.__name__)
        if n % 4 == 0:
            await anyio.sleep(0)


def _load_modules() -> None:
    import codex_mcp.lifecycle
    import codex_mcp.outcomes
    import codex_mcp.tools.spec  # noqa: F401
    from codex_mcp.tools import MODULES

    for module in dict.fromkeys(MODULES.values()):
        importlib.import_module(module)


def _deferred_models() -> list[type[BaseModel]]:
    """The store's row models and the published models whose validators are not built yet."""
    from codex_mcp.outcomes import Outcome
    from codex_mcp.store.rows import Row

    found: list[type[BaseModel]] = []
    pending: list[type[BaseModel]] = [Row, Outcome]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if not sub.__pydantic_complete__:
                found.append(sub)
    return found


@asynccontextmanager
async def reconciling(app: App) -> AsyncIterator[None]:
    """Keep the instances table converged with tmux in the background while the block runs.

    Reads only check the pids of the rows they answer with; this loop (lifecycle/reconcile.py,
    ``keep_reconciled``) is what bounds how stale a `running` can be in a server that lives for hours.
    """
    async with running_beside(partial(_reconcile_in_background, app)):
        yield


async def _reconcile_in_background(app: App) -> None:
    # The lifecycle package is imported only after a first pause: a server's start-up is timed and an
    # agent waits for it, while nothing needs converging in the first seconds.
    await anyio.sleep(FIRST_RECONCILE_DELAY)
    await app.lifecycle.keep_reconciled()


async def serve_http(
    settings: Settings,
    *,
    transport: str,
    host: str = "127.0.0.1",
    allow_remote: bool = False,
    operator_token: bool = False,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve many agents over streamable HTTP (``/mcp``) or SSE (``/sse``) until stopped."""
    # Here, not at the top: a stdio server (one per agent, started cold) never needs them.
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from codex_mcp.connlimits import ConnectionLimits
    from codex_mcp.http import Guard, HostCheck, Operator, bind, request_caller, token_resolver
    from codex_mcp.pulls import polling_pull_requests

    sock = bind(host, settings.port, allow_remote=allow_remote)
    port = sock.getsockname()[1]
    path = "/sse" if transport == "sse" else "/mcp"
    url = f"http://{host if ':' not in host else '[' + host.strip('[]') + ']'}:{port}{path}"
    if not settings.server_url and transport == "http":
        # Agents spawned through this server connect back to it (with their own tokens).
        settings = replace(settings, server_url=url)
    async with open_app(settings) as opened:
        app = replace(opened, resolve=request_caller)
        await app.db.checkpoint_in_background()
        # A read-only operator changes nothing: starting registers no instance for it (see Operator).
        operator = await Operator.create(settings, app.db) if operator_token else None
        server = build_server(app)
        # Host and Origin are checked once, by the Guard in front of everything (its refusals say what
        # was wrong, and other routes on this address reuse the same HostCheck). The SDK's copy of the
        # check is turned off so the rule cannot drift in two places; the SDK still checks the body's
        # Content-Type and size.
        sdk_check_off = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        if transport == "sse":
            inner = server.sse_app(transport_security=sdk_check_off, host=host)
        else:
            inner = server.streamable_http_app(transport_security=sdk_check_off, host=host)
        guarded = Guard(
            inner, check=HostCheck.serving(host, port), resolve=token_resolver(app.db), operator=operator
        )
        config = uvicorn.Config(
            guarded,
            log_level="warning",
            lifespan="on",
            access_log=False,
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            # Header time, idle time and the number of connections are bounded: see connlimits.py.
            **ConnectionLimits().uvicorn_options(),
        )
        uv = uvicorn.Server(config)
        print(f"codex-mcp: serving {transport} at {url}", file=sys.stderr, flush=True)
        if operator is not None:
            print(
                f"codex-mcp: read-only operator token (this run only): {operator.token}",
                file=sys.stderr,
                flush=True,
            )
        if ready is not None:
            ready(url)
        # A long-running process follows the pull requests of running instances (merged, closed).
        async with polling_pull_requests(settings, app.db), reconciling(app):
            await uv.serve(sockets=[sock])
