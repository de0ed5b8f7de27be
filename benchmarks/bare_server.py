"""The baseline: a bare MCPServer with one trivial, unrecorded tool, served over stdio.

Started exactly like ``codex-mcp serve`` (this venv's Python, same working directory and
environment), so the difference between the two is what codex-mcp adds on top of the MCP SDK:
its imports, opening and migrating the database, resolving the caller, registering and recording
its tools.
"""

from __future__ import annotations

import anyio
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field


class Pong(BaseModel):
    ok: bool = Field(description="Always true")
    echo: str = Field(description="The text sent")


def build() -> MCPServer:
    server: MCPServer = MCPServer("bare", title="bare", version="0")

    @server.tool(title="Ping", structured_output=True)
    async def ping(text: str = "") -> Pong:
        """Answer at once (no database, no recording)."""
        return Pong(ok=True, echo=text)

    return server


def main() -> None:
    anyio.run(build().run_stdio_async)


if __name__ == "__main__":
    main()
