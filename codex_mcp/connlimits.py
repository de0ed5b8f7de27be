"""Bounds on the connections an HTTP server of ours keeps: a slow client cannot starve the others.

uvicorn keeps a connection that never finishes its request head open forever, and accepts until the
process runs out of file descriptors; then every agent's call times out (a plain local process did it
with 1,100 half-open connections). Three bounds close that:

- **header time**: a request head (request line + headers) must arrive within ``header_timeout``
  seconds of its first byte (or of the connection), else the connection is closed;
- **idle time**: uvicorn's own keep-alive timeout closes idle connections between requests;
- **connection count**: at most ``max_connections`` at once. A new connection beyond that evicts the
  oldest connection still waiting for its head (a slow-loris is always such a one); when every
  connection is a real request in progress, the new one is closed instead.

The file-descriptor soft limit is raised to the hard limit, and the cap kept below it, so accepting
never fails for want of descriptors. asyncio accepts up to ``backlog`` sockets in one burst before any
protocol sees them (so before a connection can be evicted), and closes an evicted socket a loop turn
later: the accept burst is bounded too, and a few bursts' worth of descriptors stay free beside the cap.
Without that, a flood reached ``accept() -> EMFILE`` under load, and asyncio's retry timer then raised
"Invalid file descriptor" tracebacks when the server stopped.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADER_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 5
# Descriptors kept free for the database, git, tmux and the log beside the connections.
RESERVED_DESCRIPTORS = 128
MAX_CONNECTIONS = 1000
# Sockets accepted in one burst (the listen backlog); bursts in flight before eviction catches up.
MAX_ACCEPT_BURST = 128
BURSTS_IN_FLIGHT = 4


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout: float = HEADER_TIMEOUT_SECONDS
    idle_timeout: int = IDLE_TIMEOUT_SECONDS
    max_connections: int = MAX_CONNECTIONS
    backlog: int = MAX_ACCEPT_BURST

    def within_descriptors(self) -> ConnectionLimits:
        """These limits with the connection cap below the process's descriptor limit (raised first)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError) as exc:
                log.debug("could not raise the descriptor limit: %s", exc)
        spare = max(0, soft - RESERVED_DESCRIPTORS)
        backlog = max(8, min(self.backlog, spare // 16))
        cap = max(16, min(self.max_connections, spare - BURSTS_IN_FLIGHT * backlog))
        return ConnectionLimits(self.header_timeout, self.idle_timeout, cap, backlog)

    def protocol(self) -> type[H11Protocol]:
        """The uvicorn HTTP protocol class enforcing these limits (``uvicorn.Config(http=...)``)."""
        limits = self

        class BoundedH11Protocol(_Bounded):
            _limits = limits

        return BoundedH11Protocol

    def uvicorn_options(self) -> dict[str, Any]:
        bounded = self.within_descriptors()
        return {
            "http": bounded.protocol(),
            "timeout_keep_alive": bounded.idle_timeout,
            "backlog": bounded.backlog,
            "h11_max_incomplete_event_size": 64 * 1024,
        }


class _Bounded(H11Protocol):
    _limits: ConnectionLimits = ConnectionLimits()
    _head_timer: asyncio.TimerHandle | None = None
    _waiting_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        if len(self.connections) > self._limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._await_head()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._head_arrived()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        self._waiting_since = time.monotonic()
        self._head_timer = self.loop.call_later(self._limits.header_timeout, self._head_too_slow)

    def _head_arrived(self) -> None:
        self._waiting_since = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info("closing a connection whose request head took over %.0f s", self._limits.header_timeout)
            self.transport.close()

    def _make_room(self) -> None:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, _Bounded) and c is not self and c._waiting_since is not None
            and not c.transport.is_closing()
        ]  # fmt: skip
        if waiting:
            oldest = min(waiting, key=lambda c: c._waiting_since or 0.0)
            oldest.transport.close()
        else:
            log.warning("too many connections (%d): refusing a new one", len(self.connections))
            self.transport.close()
