"""Read tool over the call log: ``list_events``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from codex_mcp.ids import validate_instance_id
from codex_mcp.outcomes import ListEventsResult
from codex_mcp.recording import ToolCall
from codex_mcp.store import events as events_store
from codex_mcp.timeutil import parse_since
from codex_mcp.tools.spec import READ_ONLY, tool


@tool(title="List tool-call events", annotations=READ_ONLY)
async def list_events(
    call: ToolCall,
    instance_id: Annotated[
        str | None, Field(description="Only calls made by this instance, e.g. 'review-123-a1'", max_length=64)
    ] = None,
    tool_name: Annotated[
        str | None, Field(description="Only calls of this tool, e.g. 'spawn_review_instance'", max_length=64)
    ] = None,
    success: Annotated[
        bool | None, Field(description="true: only successful calls; false: only failed calls")
    ] = None,
    since: Annotated[
        str | None,
        Field(
            description="Only calls newer than this: a duration back from now (30m, 2h, 1d, 1w) or an "
            "ISO time (2026-11-26T10:00:00Z). Default: 1d",
            max_length=40,
        ),
    ] = "1d",
    limit: Annotated[
        int, Field(description="At most this many events (1-1000). Default: 20", ge=1, le=1000)
    ] = 20,
) -> ListEventsResult:
    """List recent calls of codex-mcp tools by any instance: who called what, when, and whether it worked.

    Use it to check whether a review was spawned, feedback sent or a pull request opened, or to find
    out why a call failed (error_message). Each event has the calling instance and its type, the tool,
    success, the error, and metadata with the duration and a redacted summary of the arguments and
    result. Newest first; by default the last day, at most 20 (truncated says there are more: raise limit
    or narrow the filters).
    """
    if instance_id is not None:
        validate_instance_id(instance_id)
    # Events carry no instance status: nothing to reconcile before answering.
    rows = await events_store.list_recent(
        call.app.db,
        since=parse_since(since) if since else None,
        instance_id=instance_id,
        tool_name=tool_name,
        success=success,
        limit=limit + 1,
    )
    shown = rows[:limit]
    return ListEventsResult(events=shown, count=len(shown), truncated=len(rows) > limit)


TOOLS = [list_events]
