"""GitHub tools: open the pull request, and the issue cache (sync, list, get)."""

from __future__ import annotations

from typing import Annotated, Literal

from mcp_types import ToolAnnotations
from pydantic import Field

from codex_mcp.errors import NotFoundError
from codex_mcp.ids import MAX_ISSUE_NUMBER
from codex_mcp.outcomes import CreatePullRequestResult, ListIssuesResult, SyncResult
from codex_mcp.recording import ToolCall
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store.issues import Issue
from codex_mcp.tools.spec import READ_ONLY, tool

# Pushing and opening a pull request reach GitHub (open world); it is idempotent: a second call
# returns the pull request already open for the branch.
PUBLISH = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
# Syncing reads GitHub and refreshes the local cache only.
SYNC = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)


@tool(title="Create the pull request", annotations=PUBLISH)
async def create_pull_request(
    call: ToolCall,
    title: Annotated[str, Field(description="Title of the pull request", min_length=1, max_length=1000)],
    description: Annotated[
        str,
        Field(description="Body of the pull request in markdown: what changed and why", max_length=200_000),
    ],
    base_branch: Annotated[
        str | None,
        Field(
            description="Branch to merge into (default: the branch your instance started from)",
            max_length=250,
        ),
    ] = None,
    draft: Annotated[bool, Field(description="Open it as a draft")] = False,
) -> CreatePullRequestResult:
    """Open the pull request for your own branch: push it to origin, then create the pull request.

    Call it when your work is committed and reviewed. It refuses when your branch has no commits
    ahead of the base (commit first). Calling it again is safe: when a pull request for your branch is
    already open, that one is returned with already_existed=true (and your new commits are pushed).
    Returns the pull request's number and link.
    """
    from codex_mcp.pulls import open_pull_request  # the GitHub machinery loads when first used

    caller = await instances_store.require(call.app.db, call.caller.id)
    opened = await open_pull_request(
        call.app.settings,
        call.app.db,
        caller,
        title=title,
        description=description,
        base_branch=base_branch,
        draft=draft,
        progress=call.progress,
    )
    call.stage(opened.record, done=opened.done)
    call.notes["base_branch"] = opened.base_branch
    return opened.result


@tool(title="Sync GitHub issues", annotations=SYNC)
async def sync_issues(call: ToolCall) -> SyncResult:
    """Refresh the local cache of the repository's GitHub issues (open and closed).

    Incremental and cheap: only issues updated since the last sync are fetched, and an unchanged
    repository costs only 304 answers. Also refreshes the state (open, closed, merged) of pull
    requests opened by instances. Then use list_issues or get_issue.
    """
    from codex_mcp.issue_cache import sync

    return await sync(call.app.settings, call.app.db, progress=call.progress)


@tool(title="List cached issues", annotations=READ_ONLY)
async def list_issues(
    call: ToolCall,
    state: Annotated[
        Literal["open", "closed", "all"], Field(description="open (default), closed, or all")
    ] = "open",
    label: Annotated[
        str | None, Field(description="Only issues with this label (exact name)", max_length=100)
    ] = None,
    assignee: Annotated[
        str | None, Field(description="Only issues assigned to this login", max_length=100)
    ] = None,
    text: Annotated[
        str | None, Field(description="Only issues whose title or body contains this text", max_length=200)
    ] = None,
    limit: Annotated[int, Field(description="At most this many (1-500). Default: 50", ge=1, le=500)] = 50,
) -> ListIssuesResult:
    """List the repository's GitHub issues from the local cache, most recently updated first.

    Use it to find an issue to work on or to check what an issue asks. The cache is filled by
    sync_issues (call it first when the list looks stale). Call get_issue for one issue's full text.
    """
    rows = await issues_store.search(
        call.app.db,
        state=None if state == "all" else state,
        label=label,
        assignee=assignee,
        text=text,
        limit=limit + 1,
    )
    shown = rows[:limit]
    return ListIssuesResult(issues=shown, count=len(shown), truncated=len(rows) > limit)


@tool(title="Get a cached issue", annotations=READ_ONLY)
async def get_issue(
    call: ToolCall,
    number: Annotated[int, Field(description="Issue number, e.g. 42", ge=1, le=MAX_ISSUE_NUMBER)],
) -> Issue:
    """Show one GitHub issue from the local cache: title, body, state, labels, assignee, timestamps.

    An issue missing from the cache is an error: call sync_issues, then try again.
    """
    issue = await issues_store.get(call.app.db, number)
    if issue is None:
        raise NotFoundError(f"issue #{number} is not in the cache; call sync_issues, then get_issue again")
    return issue


TOOLS = [create_pull_request, sync_issues, list_issues, get_issue]
