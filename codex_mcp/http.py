"""One MCP server for many agents: streamable HTTP (``/mcp``) or SSE (``/sse``), safe by default.

- Binds 127.0.0.1 unless told otherwise; a non-loopback address is refused unless forced.
- Host and Origin are checked before anything else (a foreign Host gets 421, a foreign Origin 403):
  a web page cannot reach the server through DNS rebinding. :class:`HostCheck` is that rule, in one
  place, for every route served on the address (the SDK's own copy of the check is turned off).
- Every request carries a bearer token. An agent's token (issued at spawn, stored as a hash) makes
  the request act for that instance; a terminated instance's token stops working. Without a valid
  token: 401, and no tool runs.
- Off by default, ``--operator-token`` prints a read-only token for a person (the MCP Inspector, the
  conformance suite): it may call read tools only (no action; ``logging/setLevel`` leaves the level alone), acting as the
  adhoc instance of the folder where the server was started. Starting writes nothing for it: that
  instance is looked up, and registered only when the operator's first call is recorded (an event
  row names an instance).

This module holds what is HTTP's own (the checks, reading the caller from a request, binding);
``codex_mcp/serve.py`` puts the app, the MCP server and these together.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

import anyio

from codex_mcp.errors import ConfigError, PermissionDenied
from codex_mcp.identity import Caller, find_caller, resolve_caller
from codex_mcp.settings import Settings
from codex_mcp.store import Database
from codex_mcp.store import instances as instances_store
from codex_mcp.tokens import hash_token
from codex_mcp.wire import normalise_body

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


@dataclass(frozen=True)
class HostCheck:
    """The DNS-rebinding defence for one listening address: which Host and Origin headers it answers.

    The one place Host and Origin are checked, for the MCP endpoint (through :class:`Guard`) and any
    other route served on the same address.
    """

    hosts: frozenset[str]
    origins: frozenset[str]

    @classmethod
    def serving(cls, host: str, port: int) -> HostCheck:
        """Our own names for ``host:port`` (all loopback spellings when ``host`` is loopback)."""
        return cls(frozenset(allowed_hosts(host, port)), frozenset(allowed_origins(host, port)))

    def refusal(self, headers: Mapping[str, str]) -> tuple[int, str] | None:
        """``(status, message)`` when a request must be refused, else None. ``headers``: lower-case names.

        A foreign Host is 421 (the request reached the wrong server); a foreign Origin is 403 (a web page
        of another site). A request without Origin (not from a browser) is fine.
        """
        host = headers.get("host", "")
        if host not in self.hosts:
            return 421, f"Host {host!r} is not served here (DNS rebinding protection)"
        origin = headers.get("origin")
        if origin is not None and origin not in self.origins:
            return 403, f"Origin {origin!r} may not use this server"
        return None


def request_headers(scope: Scope) -> dict[str, str]:
    """An ASGI request's headers by lower-case name."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


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


class Operator:
    """The read-only operator token of one run, and the instance its calls are recorded under.

    That instance is the one a server started in this folder acts for (:func:`find_caller`); when
    there is none yet, it is registered on the operator's first recorded call, never at start.
    """

    def __init__(self, token: str, settings: Settings, db: Database, found: Caller | None) -> None:
        self.token = token
        self._settings = settings
        self._db = db
        self._caller = found
        self._lock = anyio.Lock()

    @classmethod
    async def create(cls, settings: Settings, db: Database) -> Operator:
        return cls(secrets.token_urlsafe(24), settings, db, await find_caller(settings, db))

    def matches(self, token: str) -> bool:
        # Bytes, not str: compare_digest raises on a str with non-ASCII characters (headers arrive as
        # latin-1 text), which turned a wrong token into a 500.
        return secrets.compare_digest(token.encode("latin-1"), self.token.encode("latin-1"))

    async def caller(self) -> Caller:
        if self._caller is None:
            async with self._lock:
                if self._caller is None:
                    self._caller = await resolve_caller(self._settings, self._db)
        return self._caller


class Guard:
    """ASGI middleware: Host, Origin, then the bearer token, before any MCP handling."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        check: HostCheck,
        resolve: Callable[[str], Awaitable[Caller | None]],
        operator: Operator | None,
    ) -> None:
        self.app = app
        self.check = check
        self.resolve = resolve
        self.operator = operator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = request_headers(scope)
        if (refused := self.check.refusal(headers)) is not None:
            await _respond(send, *refused)
            return
        auth = headers.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        caller: Caller | None = None
        operator: Operator | None = None
        if token and self.operator is not None and self.operator.matches(token):
            operator = self.operator
        elif token:
            caller = await self.resolve(token)
        if caller is None and operator is None:
            reason = "missing bearer token" if not token else "unknown or revoked token"
            await _respond(
                send, 401, f"{reason}: send `Authorization: Bearer <token>` (each agent's MCP config has its own)",
                [(b"www-authenticate", b'Bearer realm="codex-mcp"')],
            )  # fmt: skip
            return
        scope[CALLER_KEY] = caller
        scope[OPERATOR_KEY] = operator
        if scope.get("method") == "POST":
            receive = await _normalised(scope, receive)
        await self.app(scope, receive, send)


# A body larger than this is passed on as it came (the SDK refuses what is too large on its own).
NORMALISE_MAX_BYTES = 4 * 1024 * 1024


async def _normalised(scope: Scope, receive: Receive) -> Receive:
    """The request's body read whole and passed through :func:`codex_mcp.wire.normalise_body`.

    A JSON-RPC message whose strings hold a lone surrogate would otherwise be refused by the SDK's
    parser before any tool or recording runs (see wire.py).
    """
    held: list[MutableMapping[str, Any]] = []
    body = bytearray()
    complete = False
    while len(body) <= NORMALISE_MAX_BYTES:
        message = await receive()
        held.append(message)
        if message.get("type") != "http.request":
            break
        body.extend(message.get("body", b""))
        if not message.get("more_body", False):
            complete = True
            break
    if complete:
        fixed = normalise_body(bytes(body))
        held = [{"type": "http.request", "body": fixed, "more_body": False}]
        if len(fixed) != len(body):
            scope["headers"] = [
                (k, str(len(fixed)).encode() if k.lower() == b"content-length" else v)
                for k, v in scope.get("headers", [])
            ]

    async def replay() -> MutableMapping[str, Any]:
        return held.pop(0) if held else await receive()

    return replay


def token_resolver(db: Database) -> Callable[[str], Awaitable[Caller | None]]:
    """The running instance an agent's bearer token was issued to (None: unknown or revoked)."""

    async def resolve(token: str) -> Caller | None:
        row = await instances_store.find_running_by_token_hash(db, hash_token(token))
        return Caller(row, "explicit") if row else None

    return resolve


OPERATOR_READ_ONLY = (
    "the operator token is read-only: it may call query_instances, get_instance, list_events, "
    "list_issues and get_issue; act through an instance's own token to change anything"
)


async def request_caller(ctx: Any, *, read_only: bool) -> Caller:
    """The caller the Guard attached to this tool call's HTTP request (a :class:`CallerResolver`).

    The operator's caller may only read: asked to act (``read_only=False``), it is refused.
    """
    scope = _scope_of(ctx)
    operator = scope.get(OPERATOR_KEY) if scope is not None else None
    if isinstance(operator, Operator):
        caller = await operator.caller()
        if not read_only:
            raise PermissionDenied(OPERATOR_READ_ONLY)
        return caller
    agent = scope.get(CALLER_KEY) if scope is not None else None
    if not isinstance(agent, Caller):
        raise PermissionDenied("this request carries no agent token; send `Authorization: Bearer <token>`")
    return agent


def _scope_of(ctx: Any) -> Scope | None:
    # A tool's Context holds the request in its request_context; the ServerRequestContext that server
    # middleware gets (record_rejected_calls) holds it directly.
    request = getattr(ctx, "request", None)
    if request is None:
        try:
            request = ctx.request_context.request
        except Exception:
            return None
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, MutableMapping) else None


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
