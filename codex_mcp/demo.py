"""``codex-mcp demo``: the main job end to end, on this repository's default database.

Starts ``codex-mcp serve`` as a real stdio subprocess (exactly what Claude Code does for an agent),
connects the MCP SDK's client to it, calls the read tools, and prints what the server answered and
what it recorded.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import Any

import click

from codex_mcp.settings import Settings


def _server_command() -> list[str]:
    exe = shutil.which("codex-mcp", path=os.path.dirname(sys.executable)) or shutil.which("codex-mcp")
    return [exe, "serve"] if exe else [sys.executable, "-m", "codex_mcp", "serve"]


async def run_demo(settings: Settings) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    db_path = settings.require_db_path()
    command = _server_command()
    env = {k: v for k, v in os.environ.items() if k != "CODEX_MCP_INSTANCE"}
    env["CODEX_MCP_DB"] = str(db_path)
    env.setdefault("CODEX_MCP_LOG_LEVEL", "WARNING")  # the demo prints its own story
    params = StdioServerParameters(command=command[0], args=command[1:], cwd=str(settings.cwd), env=env)
    async with Client(params) as client:
        tools = await client.list_tools()
        listed = await client.call_tool("query_instances", {"status": "all", "limit": 10})
        me = str((listed.structured_content or {}).get("caller_instance_id"))
        detail = await client.call_tool("get_instance", {"instance_id": me})
        missing = await client.call_tool("get_instance", {"instance_id": "work-999999-a1"})
        recent = await client.call_tool("list_events", {"instance_id": me, "since": "1h", "limit": 5})
    return {
        "command": command,
        "database": str(db_path),
        "tools": [t.name for t in tools.tools],
        "caller": me,
        "instances": (listed.structured_content or {}).get("instances", []),
        "instance": (detail.structured_content or {}).get("instance", {}),
        "error_example": missing.content[0].text if missing.content else "",  # type: ignore[union-attr]
        "events": (recent.structured_content or {}).get("events", []),
    }


def print_demo(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]codex-mcp[/bold] started [cyan]{' '.join(result['command'])}[/cyan] over stdio")
    console.print(f"database: {result['database']}")
    console.print(f"tools: {', '.join(result['tools'])}")
    console.print(
        f"this folder is served as instance [bold]{result['caller']}[/bold] "
        f"(branch {result['instance'].get('branch_name')})"
    )
    table = Table(title="query_instances(status='all')", header_style="bold")
    for column in ("id", "type", "status", "branch", "worktree"):
        table.add_column(column, overflow="fold")
    for row in result["instances"]:
        table.add_row(row["id"], row["type"], row["status"], row["branch_name"], row["worktree_path"])
    console.print(table)
    console.print(f"an unknown id gives an actionable error: [yellow]{result['error_example']}[/yellow]")
    events = Table(title=f"recorded calls of {result['caller']} (list_events)", header_style="bold")
    for column in ("time (UTC)", "tool", "ok", "ms"):
        events.add_column(column)
    for e in result["events"]:
        events.add_row(
            e["timestamp"],
            e["tool_name"],
            "yes" if e["success"] else "no",
            str((e.get("metadata") or {}).get("duration_ms", "")),
        )
    console.print(events)
    exe = result["command"][0] if result["command"][0].endswith("codex-mcp") else "codex-mcp"
    click.echo(f"\nRegister it with Claude Code:  claude mcp add codex -- {exe} serve")
