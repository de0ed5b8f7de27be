"""The MCP tools, one module per area; each module lists its tools in ``TOOLS``.

A server builds each tool at its first use (``codex_mcp/published_tools.py``), so this package imports
no tool module by itself: :data:`MODULES` says, without importing anything, which module defines a
tool, and only that module is imported to build it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from codex_mcp.tools.spec import ToolSpec

# Every tool, in the order tools/list shows them, and the module that defines it.
# tests/test_server.py fails when a tool is added (to a module's TOOLS) without an entry here.
MODULES: dict[str, str] = {
    "query_instances": "codex_mcp.tools.instances",
    "get_instance": "codex_mcp.tools.instances",
    "list_events": "codex_mcp.tools.events",
    "spawn_review_instance": "codex_mcp.tools.lifecycle",
    "fork_instance": "codex_mcp.tools.lifecycle",
    "send_feedback": "codex_mcp.tools.lifecycle",
    "terminate_instance": "codex_mcp.tools.lifecycle",
    "create_pull_request": "codex_mcp.tools.github",
    "sync_issues": "codex_mcp.tools.github",
    "list_issues": "codex_mcp.tools.github",
    "get_issue": "codex_mcp.tools.github",
}


def all_tools() -> list[ToolSpec]:
    """Every tool of every module (importing all four)."""
    from codex_mcp.tools import events, github, instances, lifecycle

    return [*instances.TOOLS, *events.TOOLS, *lifecycle.TOOLS, *github.TOOLS]


def tool_spec(name: str) -> ToolSpec:
    """The tool ``name`` (a key of :data:`MODULES`), importing only the module that defines it."""
    specs: list[ToolSpec] = importlib.import_module(MODULES[name]).TOOLS
    for spec in specs:
        if spec.name == name:
            return spec
    raise LookupError(f"{MODULES[name]} defines no tool {name!r}; correct MODULES in {__name__}")


def register_one(server: Any, name: str) -> None:
    """Register the tool ``name`` (a key of :data:`MODULES`) on ``server``."""
    from codex_mcp.published_tools import published_entries
    from codex_mcp.tools.spec import register

    register(server, tool_spec(name), published=published_entries())
