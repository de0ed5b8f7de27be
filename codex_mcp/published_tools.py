"""The tool listing clients see, shipped with the package: a server answers ``tools/list`` before it
has built a single tool.

Building the eleven tools -- importing their modules and result models, then the SDK deriving an
argument model and the input and output JSON schemas of each -- is about a tenth of a stdio server's
cold start (benchmarks, figure 1). An agent's client asks for the listing as soon as the server is up,
but calls a tool later, if at all, and mostly the same one or two. So :class:`LazyToolServer` answers
``tools/list`` from ``published_tools.json`` and registers each tool at the first request that needs
it: a call of that tool, or a look-up of its input schema (the SDK checks arguments with it before the
call). Only that tool is built, from the one module that defines it: when 32 servers start at once
(figure 6), each first call built all eleven, on two cores, and took up to 2.5 s. A stdio server then
builds the others in the pause before its agent's first call (``serve.py`` ``warmed_up``), one per
turn of its loop.

Registering a tool takes its output schema from the file too (``tools/spec.py`` ``register``): the SDK
deriving it was two thirds of building a tool. The file is exactly what the tools list when the SDK
derives every schema: ``tests/test_server.py`` fails when the two differ, and rewrites the file when
run with ``CODEX_MCP_UPDATE_SNAPSHOTS=1``. Should it be missing or unreadable, the tools are built the
SDK's way for the first listing instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp_types import Tool as MCPTool

log = logging.getLogger(__name__)

PUBLISHED = Path(__file__).with_name("published_tools.json")

# The published listing by tool name, in listing order (read once per process).
_cache: dict[str, MCPTool] | None = None


def published_entries() -> dict[str, MCPTool] | None:
    """The published listing by tool name, in listing order; None when the file cannot be used."""
    global _cache
    if _cache is None:
        try:
            entries = json.loads(PUBLISHED.read_text(encoding="utf-8"))
            _cache = {tool.name: tool for tool in (MCPTool.model_validate(entry) for entry in entries)}
        except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
            log.warning("cannot read %s (%s); the tools are built for the first listing", PUBLISHED, exc)
            return None
    return _cache


def published_listing() -> list[MCPTool] | None:
    """The published ``tools/list``; None when the file cannot be used."""
    entries = published_entries()
    return None if entries is None else list(entries.values())


def render(tools: list[MCPTool]) -> str:
    """The file's text for a listing (what the test compares and writes)."""
    entries = [tool.model_dump(mode="json", by_alias=True, exclude_none=True) for tool in tools]
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


class LazyToolServer(MCPServer[Any]):
    """An MCPServer whose tools are registered one by one (by ``register(server, name)``), each at the
    first request that needs it; until all are, ``tools/list`` is answered from the published listing.

    ``tools`` names every tool, in listing order. A name that is not among them registers nothing: the
    SDK answers it as it answers any unknown tool.
    """

    def __init__(
        self, *args: Any, tools: Sequence[str], register: Callable[[MCPServer[Any], str], None], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._order = {name: n for n, name in enumerate(tools)}
        self._register = register
        self._unregistered = set(tools)

    def register_tool(self, name: str) -> None:
        """Register the tool ``name`` now, unless it is registered already or is no tool.

        Synchronous on purpose: with no await between the check and the registration, two requests
        for the same tool arriving together cannot both register it.
        """
        if name in self._unregistered:
            self._register(self, name)
            self._unregistered.discard(name)

    def unregistered(self) -> list[str]:
        """The tools not registered yet, in listing order."""
        return sorted(self._unregistered, key=self._order.__getitem__)

    def register_tools(self) -> None:
        """Register every tool not registered yet."""
        for name in self.unregistered():
            self.register_tool(name)

    async def registered_listing(self) -> list[MCPTool]:
        """What the registered tools list (registering them all first), in listing order."""
        self.register_tools()
        listing = await super().list_tools()
        return sorted(listing, key=lambda tool: self._order.get(tool.name, len(self._order)))

    async def list_tools(self) -> list[MCPTool]:
        if self._unregistered:
            published = published_listing()
            if published is not None:
                return list(published)
        return await self.registered_listing()

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        self.register_tool(name)
        return super()._tool_input_schema(name)

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        self.register_tool(name)
        return await super().call_tool(name, arguments, context)
