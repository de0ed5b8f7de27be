"""The web dashboard, ``codex-mcp ui``: Starlette + uvicorn on loopback, one login link per start.

Modules: ``auth`` (Host/Origin/cookie guard), ``app`` (routes and pages), ``stream`` (database
changes as Server-Sent Events), ``terminal`` (a pty running ``tmux attach`` per viewer), ``views``
(what the list shows). Templates and vendored static files (``static/VENDORED.md``) ship in the
package; nothing is fetched at run time.
"""

from __future__ import annotations

import socket
import sys
import webbrowser
from typing import TextIO

from codex_mcp.errors import ConfigError, InputError
from codex_mcp.settings import Settings
from codex_mcp.ui.auth import LOOPBACK, Access, Guard

__all__ = ["Access", "bind", "serve"]


def bind(host: str, port: int, *, allow_remote: bool) -> socket.socket:
    """A listening socket (port 0: a free one), refusing a non-loopback address without ``allow_remote``."""
    if host not in LOOPBACK and not allow_remote:
        raise InputError(
            f"--host {host} would let other machines reach a dashboard that can type into your agents' "
            "terminals; keep the default 127.0.0.1, or add --allow-remote if you mean it"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port, or 0"
        ) from exc
    sock.listen(128)
    return sock


def serve(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    read_only: bool = False,
    open_browser: bool = False,
    allow_remote: bool = False,
    out: TextIO | None = None,
) -> None:
    """Run the dashboard until interrupted; the first line on ``out`` (stdout) is the login URL."""
    try:
        import uvicorn
        import websockets  # noqa: F401 - uvicorn's WebSocket protocol for the terminal
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise ConfigError(f"the dashboard needs {exc.name}; reinstall codex-mcp") from exc
    from codex_mcp.connlimits import ConnectionLimits
    from codex_mcp.ui.app import build_app

    settings.require_db_path()
    sock = bind(host, port, allow_remote=allow_remote)
    access = Access(host=host, port=sock.getsockname()[1])
    app = Guard(build_app(settings, read_only=read_only), access)
    config = uvicorn.Config(
        app,
        ws="websockets-sansio",
        # The only WebSocket is the terminal, whose messages are mostly a few bytes of echo: compressing
        # them costs zlib work on both ends and a zlib context per viewer (figure 11c: 45 KiB of the
        # server's memory per terminal with it, 8 KiB without) and saves bytes nobody waits for.
        ws_per_message_deflate=False,
        log_level="warning",
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=2,
        # A slow or flooding client cannot starve the page: header time, idle time, connection count
        # and accept bursts are bounded as for `serve` (connlimits.py). Terminals (WebSocket) and the
        # live stream (a request in progress) are never evicted for a newcomer.
        **ConnectionLimits().uvicorn_options(),
    )
    server = uvicorn.Server(config)
    stream = out or sys.stdout
    stream.write(access.login_url() + "\n")
    stream.flush()
    if open_browser:
        webbrowser.open(access.login_url())
    server.run(sockets=[sock])
