"""The live stream: database changes turned into Server-Sent Events.

Agents write the database from their own processes, so the dashboard learns about changes by
looking. One poller per server (not per viewer) asks SQLite every ``interval`` seconds for
``PRAGMA data_version`` -- a counter only commits of *other* connections move, answered without
reading a table -- and only when it moved, or when this process wrote (``nudge``), compares the
instances' marks and the newest event id. An idle dashboard therefore costs one pragma per tick.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectSendStream
from pydantic import ValidationError

from codex_mcp.store import Database
from codex_mcp.store import dashboard as store
from codex_mcp.store import instances as instances_store

log = logging.getLogger(__name__)

Message = tuple[str, dict[str, Any]]


class Hub:
    """Polls the database and fans each change out to every open stream."""

    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.25,
        reconcile: Callable[[], Awaitable[None]] | None = None,
        reconcile_every: float = 5.0,
    ) -> None:
        self.db = db
        self.interval = interval
        self._reconcile = reconcile
        self._reconcile_every = reconcile_every
        self._subscribers: set[MemoryObjectSendStream[Message]] = set()
        self._nudged = anyio.Event()
        self._version = -1
        self._marks: dict[str, tuple[Any, ...]] = {}
        self._last_event = 0
        self._activity = False

    def nudge(self) -> None:
        """This process wrote: look now (data_version ignores our own connection's commits)."""
        self._nudged.set()

    async def prime(self) -> None:
        self._activity = await store.has_activity(self.db)
        self._version = await store.data_version(self.db)
        self._marks = await store.instance_marks(self.db, activity=self._activity)
        self._last_event = await store.last_event_id(self.db)

    async def run(self) -> None:
        """The poll loop (run in the server's task group until shutdown)."""
        await self.prime()
        # Reconcile first: a dashboard opened on an old database (a kept demo, after a reboot) shows
        # dead agents as terminated at once, not after the first interval.
        next_reconcile = anyio.current_time()
        while True:
            with anyio.move_on_after(self.interval):
                await self._nudged.wait()
            nudged = self._nudged.is_set()
            self._nudged = anyio.Event()
            try:
                if self._reconcile is not None and anyio.current_time() >= next_reconcile:
                    next_reconcile = anyio.current_time() + self._reconcile_every
                    await self._reconcile()
                    await self.check(force=True)
                elif self._subscribers:  # nobody watching: nothing to tell, the next viewer fetches pages
                    await self.check(force=nudged)
            except Exception:
                log.exception("dashboard stream: polling the database failed; retrying")

    async def check(self, *, force: bool = False) -> list[Message]:
        """Look for changes once; publish and return them."""
        version = await store.data_version(self.db)
        if version == self._version and not force:
            return []
        self._version = version
        # A migration may add the activity columns while we run.
        self._activity = await store.has_activity(self.db)
        messages: list[Message] = []
        marks = await store.instance_marks(self.db, activity=self._activity)
        changed = [i for i, mark in marks.items() if self._marks.get(i) != mark]
        self._marks = marks
        for instance_id in changed:
            try:
                row = await instances_store.get(self.db, instance_id)
            except ValidationError as exc:
                # A row another program wrote with a value outside the schema: tell the log, and keep
                # every other change flowing (one bad row must not stall the page).
                log.error("dashboard stream: instance %s cannot be shown: %s", instance_id, exc)
                continue
            if row is not None:
                data = row.model_dump(mode="json", exclude={"prompt"})
                messages.append(("instance", data))
        for event in await store.events_after(self.db, self._last_event):
            self._last_event = event.id
            messages.append(("event", event.model_dump(mode="json")))
        if changed and (self._activity or messages):
            messages.append(("attention", {"waiting": await store.waiting_count(self.db)}))
        for message in messages:
            self.publish(message)
        return messages

    def publish(self, message: Message) -> None:
        for stream in list(self._subscribers):
            try:
                stream.send_nowait(message)
            except anyio.WouldBlock:
                log.warning("dashboard stream: a slow viewer missed an update")
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._subscribers.discard(stream)

    async def subscribe(self) -> AsyncIterator[bytes]:
        """Server-Sent Events for one viewer, with a comment line now and then to keep proxies open."""
        send, receive = anyio.create_memory_object_stream[Message](256)
        self._subscribers.add(send)
        try:
            yield b": connected\n\n"
            while True:
                with anyio.move_on_after(15) as scope:
                    kind, data = await receive.receive()
                if scope.cancelled_caught:
                    yield b": keep-alive\n\n"
                    continue
                yield f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
        finally:
            self._subscribers.discard(send)
            send.close()
            receive.close()

    @property
    def viewers(self) -> int:
        return len(self._subscribers)


__all__ = ["Hub", "Message"]
