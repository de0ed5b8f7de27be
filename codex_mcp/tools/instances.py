"""Read tools over instances: ``query_instances`` and ``get_instance``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from codex_mcp.ids import MAX_ISSUE_NUMBER, InstanceType, validate_instance_id
from codex_mcp.outcomes import RECENT_EVENTS, GetInstanceResult, QueryInstancesResult, RelatedSummary
from codex_mcp.recording import ToolCall
from codex_mcp.store import events as events_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.relationships import RelatedInstance
from codex_mcp.tools.spec import READ_ONLY, tool


def _summary(related: RelatedInstance) -> RelatedSummary:
    return RelatedSummary.model_validate(related.model_dump(exclude={"prompt"}))


@tool(title="Query instances", annotations=READ_ONLY)
async def query_instances(
    call: ToolCall,
    status: Annotated[
        Literal["running", "terminated", "all"],
        Field(description="Only instances in this state; 'all' for every state. Default: running"),
    ] = "running",
    type: Annotated[
        InstanceType | None,
        Field(
            description="Only this kind: work (implements an issue), review (reviews a work instance), adhoc"
        ),
    ] = None,
    issue_number: Annotated[
        int | None,
        Field(description="Only instances working on this GitHub issue number", ge=1, le=MAX_ISSUE_NUMBER),
    ] = None,
    # 20 by default: more than a person runs at once, and an answer a model reads (and a server
    # serializes: 100 rows cost a read most of its time) stays small; `truncated` says when there is more.
    limit: Annotated[
        int, Field(description="At most this many rows (1-1000). Default: 20", ge=1, le=1000)
    ] = 20,
) -> QueryInstancesResult:
    """List the agent instances working on this repository, with the title of the issue each works on.

    Use it to see who else is working (and on what) before you start something, or to find an
    instance id to pass to get_instance. By default only running instances are listed, newest first.
    Each row has the instance's id, type, status, worktree path, branch, tmux session, issue and pull
    request numbers, the pull request's state (open, closed, merged), and the agent's activity as its
    hooks report it: working, waiting (it needs a person: a permission prompt, a question; the
    message is in activity_detail), idle (its turn ended), or null (not reported: only Claude Code
    agents report it), with activity_at saying since when (UTC). Call get_instance with an id for its
    prompt, its parents/children and its recent tool calls.
    """

    async def listed() -> list[instances_store.InstanceSummary]:
        return await instances_store.list_dashboard_summaries(
            call.app.db,
            status=None if status == "all" else status,
            type=type,
            issue_number=issue_number,
            limit=limit + 1,
        )

    rows = await listed()
    # A row shown as running has a live agent: its pid is checked (tmux only when one is gone).
    if await call.app.lifecycle.confirm_running(rows):
        rows = await listed()
    # Rows are listed without their prompts (get_instance has them): answers stay small.
    shown = rows[:limit]
    return QueryInstancesResult(
        instances=shown, count=len(shown), truncated=len(rows) > limit, caller_instance_id=call.caller.id
    )


@tool(title="Get instance", annotations=READ_ONLY)
async def get_instance(
    call: ToolCall,
    instance_id: Annotated[
        str,
        Field(
            description="Id of the instance, e.g. 'work-123-a1' (query_instances lists them)",
            min_length=1,
            max_length=64,
        ),
    ],
) -> GetInstanceResult:
    """Show one instance in full: its row (prompt included; activity, activity_at and activity_detail
    say whether its agent works, waits for a person or is idle, since when, and why), the instances it
    came from (parents, with the relationship: spawned_review or created_fork), the instances it
    spawned or forked (children), and its most recent tool calls.

    Use it to follow a review back to the work it reviews, or to see what a reviewer or fork has done.
    Ids come from query_instances; an unknown id is an error that says so.
    """
    validate_instance_id(instance_id)
    db = call.app.db
    instance = await instances_store.require(db, instance_id)
    parents = await relationships_store.parents_of(db, instance_id)
    children = await relationships_store.children_of(db, instance_id)
    # Every status shown is checked against its agent's pid (tmux only when one is gone).
    if await call.app.lifecycle.confirm_running([instance, *parents, *children]):
        instance = await instances_store.require(db, instance_id)
        parents = await relationships_store.parents_of(db, instance_id)
        children = await relationships_store.children_of(db, instance_id)
    recent = await events_store.list_recent(db, instance_id=instance_id, limit=RECENT_EVENTS)
    return GetInstanceResult(
        instance=instance,
        parents=[_summary(p) for p in parents],
        children=[_summary(c) for c in children],
        recent_events=recent,
    )


TOOLS = [query_instances, get_instance]
