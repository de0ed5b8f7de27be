"""Who may talk to the dashboard: one ASGI guard in front of every route and WebSocket.

A terminal that types into an agent's shell is remote code execution, so every request passes, in
order:

- **Host** must name this server (DNS rebinding: a foreign name that resolves to 127.0.0.1) -> 421;
- **Origin**, when sent, must be this server's own; state changes (POST) and WebSocket handshakes
  must send it -> 403 (a page elsewhere cannot drive us, with or without the cookie);
- the **session cookie** (HttpOnly, SameSite=Strict), got once by ``/login?token=...`` with the
  one-time token printed at start -> 401 without it.

Comparisons of secrets are constant-time. The token is spent on first use and then redirected away,
so no secret stays in the address bar, the history or a page.
"""

from __future__ import annotations

import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass
class Access:
    """The secrets and names one server accepts."""

    host: str
    port: int
    # Sent by the browser once, in the printed URL; None when spent.
    login_token: str | None = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: two dashboards on one machine must not overwrite each other's.
        return f"codex_mcp_{self.port}"

    @property
    def hosts(self) -> frozenset[str]:
        names = set(LOOPBACK) if self.host in LOOPBACK else {self.host}
        return frozenset(f"[{n}]:{self.port}" if ":" in n else f"{n}:{self.port}" for n in names)

    def login_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/login?token={self.login_token}"

    def spend(self, token: str) -> bool:
        """True once, for the right token; the token is void afterwards."""
        if self.login_token is None or not hmac.compare_digest(token.encode(), self.login_token.encode()):
            return False
        self.login_token = None
        return True

    def cookie(self) -> str:
        return f"{self.cookie_name}={self.session}; HttpOnly; SameSite=Strict; Path=/"

    def has_session(self, cookie_header: str) -> bool:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(cookie_header)
        except Exception:
            return False
        morsel = jar.get(self.cookie_name)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(), self.session.encode())


class Guard:
    """ASGI middleware enforcing :class:`Access` on HTTP requests and WebSocket handshakes."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        websocket = scope["type"] == "websocket"
        method = "GET" if websocket else scope["method"]
        if host not in self.access.hosts:
            await _refuse(scope, send, 421, f"unknown Host {host!r}: open the address codex-mcp ui printed")
            return
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            await _refuse(scope, send, 403, "cross-origin request refused")
            return
        if origin is None and (websocket or method not in SAFE_METHODS):
            await _refuse(scope, send, 403, "an Origin header is required for this request")
            return
        if scope["path"] == "/login" and not websocket:
            await self._login(scope, send)
            return
        public = scope["path"].startswith("/static/")  # the vendored files hold no secret
        if not public and not self.access.has_session(headers.get("cookie", "")):
            await _refuse(scope, send, 401, "not logged in: open the address codex-mcp ui printed")
            return
        if websocket:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            # The server's own time until the answer starts (what the benchmarks read; browsers show it).
            if message["type"] == "http.response.start":
                spent = (time.perf_counter() - started) * 1000
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"server-timing", f"app;dur={spent:.2f}".encode()),
                    ],
                }
            await send(message)

        await self.app(scope, receive, timed)

    async def _login(self, scope: Scope, send: Send) -> None:
        token = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
        if not self.access.spend(token):
            await _refuse(
                scope,
                send,
                403,
                "this login link is wrong or was already used; restart codex-mcp ui for a new one",
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", b"/"),
                    (b"set-cookie", self.access.cookie().encode("latin-1")),
                    (b"cache-control", b"no-store"),
                    (b"referrer-policy", b"no-referrer"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Scope, send: Send, status: int, message: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the handshake with 403.
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    wants_html = scope["path"] in ("/", "/login") or not scope["path"].startswith("/api/")
    if wants_html:
        body = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>codex-mcp</title></head>"
            f"<body><main><h1>codex-mcp dashboard</h1><p>{_escape(message)}</p></main></body></html>"
        ).encode()
        kind = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"error": message}).encode()
        kind = b"application/json"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
