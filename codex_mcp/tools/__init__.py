"""The MCP tools, one module per area; each module lists its tools in ``TOOLS``."""

from __future__ import annotations

from typing import Any

from codex_mcp.tools import events, github, instances, lifecycle
from codex_mcp.tools.spec import ToolSpec, register


def all_tools() -> list[ToolSpec]:
    return [*instances.TOOLS, *events.TOOLS, *lifecycle.TOOLS, *github.TOOLS]


def register_all(server: Any) -> None:
    register(server, *all_tools())
