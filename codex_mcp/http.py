"""One MCP server for many agents: streamable HTTP (``/mcp``) or SSE (``/sse``), safe by default.

- Binds 127.0.0.1 unless told otherwise; a non-loopback address is refused unless forced.
- Host and Origin are checked before anything else (a foreign Host gets 421, a foreign Origin 403):
  a web page cannot reach the server through DNS rebinding.
- Every request carries a bearer token. An agent's token (issued at spawn, stored as a hash) makes
  the request act for that instance; a terminated instance's token stops working. Without a valid
  token: 401, and no tool runs.
- Off by default, ``--operator-token`` prints a read-only token for a person (the MCP Inspector, the
  conformance suite): it may call read tools only, acting as the adhoc instance of the folder where
  the server was started.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any

from codex_mcp.errors import ConfigError
from codex_mcp.identity import Caller, resolve_caller
from codex_mcp.settings import Settings
from codex_mcp.store import instances as instances_store
from codex_mcp.tokens import hash_token

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CALLER_KEY = "codex.caller"
OPERATOR_KEY = "codex.operator"
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> set[str]:
    names = {host, "127.0.0.1", "localhost", "[::1]"} if is_loopback(host) else {host}
    return {f"{name}:{port}" for name in names} | ({host} if port in (80, 443) else set())


def allowed_origins(host: str, port: int) -> set[str]:
    return {f"http://{h}" for h in allowed_hosts(host, port)}


async def _respond(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                        *(headers or [])],
        }
    )  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Guard:
    """ASGI middleware: Host, Origin, then the bearer token, before any MCP handling."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        hosts: set[str],
        origins: set[str],
        resolve: Callable[[str], Awaitable[Caller | None]],
        operator: tuple[str, Caller] | None,
    ) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins
        self.resolve = resolve
        self.operator = operator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host", "")
        if host not in self.hosts:
            await _respond(send, 421, f"Host {host!r} is not served here (DNS rebinding protection)")
            return
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            await _respond(send, 403, f"Origin {origin!r} may not use this server")
            return
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        caller: Caller | None = None
        operator = False
        if token and self.operator is not None and secrets.compare_digest(token, self.operator[0]):
            caller, operator = self.operator[1], True
        elif token:
            caller = await self.resolve(token)
        if caller is None:
            reason = "missing bearer token" if not token else "unknown or revoked token"
            await _respond(
                send, 401, f"{reason}: send `Authorization: Bearer <token>` (each agent's MCP config has its own)",
                [(b"www-authenticate", b'Bearer realm="codex-mcp"')],
            )  # fmt: skip
            return
        scope[CALLER_KEY] = caller
        scope[OPERATOR_KEY] = operator
        await self.app(scope, receive, send)


def caller_from_request(ctx: Any, *, read_only: bool) -> Caller | None:
    """The caller the Guard attached to this HTTP request (None outside HTTP)."""
    # A tool's Context holds the request in its request_context; the ServerRequestContext that server
    # middleware gets (record_rejected_calls) holds it directly.
    request = getattr(ctx, "request", None)
    if request is None:
        try:
            request = ctx.request_context.request
        except Exception:
            return None
    scope = getattr(request, "scope", None)
    if not isinstance(scope, MutableMapping) or CALLER_KEY not in scope:
        return None
    if scope.get(OPERATOR_KEY) and not read_only:
        from codex_mcp.errors import PermissionDenied

        raise PermissionDenied(
            "the operator token is read-only: it may call query_instances, get_instance, list_events, "
            "list_issues and get_issue; act through an instance's own token to change anything"
        )
    caller = scope[CALLER_KEY]
    return caller if isinstance(caller, Caller) else None


def bind(host: str, port: int, *, allow_remote: bool) -> socket.socket:
    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"refusing to listen on {host}: only loopback addresses are safe by default; pass --allow-remote "
            "if you really mean to expose the server (every request still needs a token)"
        )
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port / CODEX_MCP_PORT"
        ) from exc
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_http(
    settings: Settings,
    *,
    transport: str,
    host: str = "127.0.0.1",
    allow_remote: bool = False,
    operator_token: bool = False,
    ready: Callable[[str], None] | None = None,
) -> None:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    from codex_mcp.app import open_app
    from codex_mcp.server import build_server

    sock = bind(host, settings.port, allow_remote=allow_remote)
    port = sock.getsockname()[1]
    path = "/sse" if transport == "sse" else "/mcp"
    url = f"http://{host if ':' not in host else '[' + host.strip('[]') + ']'}:{port}{path}"
    if not settings.server_url and transport == "http":
        # Agents spawned through this server connect back to it (with their own tokens).
        settings = replace(settings, server_url=url)
    async with open_app(settings) as app:
        app.http = True
        operator: tuple[str, Caller] | None = None
        if operator_token:
            operator = (secrets.token_urlsafe(24), await resolve_caller(settings, app.db))

        async def resolve(token: str) -> Caller | None:
            row = await instances_store.find_running_by_token_hash(app.db, hash_token(token))
            return Caller(row, "explicit") if row else None

        server = build_server(app)
        hosts = allowed_hosts(host, port)
        security = TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=sorted(hosts),
            allowed_origins=sorted(allowed_origins(host, port)),
        )
        if transport == "sse":
            inner = server.sse_app(transport_security=security, host=host)
        else:
            inner = server.streamable_http_app(transport_security=security, host=host)
        guarded = Guard(
            inner, hosts=hosts, origins=allowed_origins(host, port), resolve=resolve, operator=operator
        )
        # Agents keep streams open: do not wait for them forever when asked to stop.
        config = uvicorn.Config(
            guarded, log_level="warning", lifespan="on", access_log=False, timeout_graceful_shutdown=3
        )
        uv = uvicorn.Server(config)
        print(f"codex-mcp: serving {transport} at {url}", file=sys.stderr, flush=True)
        if operator is not None:
            print(
                f"codex-mcp: read-only operator token (this run only): {operator[0]}",
                file=sys.stderr,
                flush=True,
            )
        if ready is not None:
            ready(url)
        await uv.serve(sockets=[sock])
