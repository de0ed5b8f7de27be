"""``issues sync|ls``: the local cache of the repository's GitHub issues."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from codex_mcp.cli.output import Column, emit, emit_rows, output_options
from codex_mcp.cli.person import person_action
from codex_mcp.cli.running import in_app

if TYPE_CHECKING:
    from codex_mcp.app import App
    from codex_mcp.outcomes import SyncResult
    from codex_mcp.recording import ToolCall

log = logging.getLogger(__name__)

ISSUE_COLUMNS = [
    Column("#", lambda r: r.number),
    Column("state", lambda r: r.state),
    Column("title", lambda r: r.title, kind="clip", min_width=30),
    Column("labels", lambda r: ", ".join(r.labels), kind="clip", drop=2),
    Column("assignee", lambda r: r.assignee, kind="clip", drop=1),
    Column("updated (UTC)", lambda r: r.updated_at),
]


@click.group()
def issues() -> None:
    """The local cache of the repository's GitHub issues."""


def _print_synced(result: Any) -> None:
    click.echo(
        f"{result.repository}: {result.fetched} issue(s) received, {result.changed} new or changed, "
        f"{result.unchanged} unchanged; {result.pages} page(s), {result.not_modified_pages} not modified"
        + (
            f"; {result.pull_requests_updated} pull request state(s) updated"
            if result.pull_requests_updated
            else ""
        )
    )


@issues.command("sync")
@output_options()
@click.pass_context
def issues_sync(ctx: click.Context, as_json: bool) -> None:
    """Fetch new and updated issues from GitHub (incremental; unchanged pages cost only 304s), and
    refresh the state of running instances' pull requests (open, closed, merged)."""
    from codex_mcp.errors import CodexError
    from codex_mcp.issue_cache import sync
    from codex_mcp.pulls import refresh_pull_request_states

    async def fetch(app: App, call: ToolCall) -> SyncResult:
        result = await sync(app.settings, app.db)
        try:
            # The listing already updated the pull requests it saw change; this asks for each one.
            refreshed = await refresh_pull_request_states(app.settings, app.db)
        except CodexError as exc:  # the issues are synced; the states wait for the next sync or poll
            log.warning("pull request states not refreshed: %s", exc)
            return result
        return result.model_copy(update={"pull_requests_updated": result.pull_requests_updated + refreshed})

    emit(person_action(ctx, "issues sync", {}, fetch), as_json, _print_synced)


@issues.command("ls")
@click.option(
    "--state",
    type=click.Choice(["open", "closed", "all"]),
    default="open",
    show_default=True,
    help="Which issues.",
)
@click.option("--label", default=None, help="Only issues with this label.")
@click.option("--assignee", default=None, help="Only issues assigned to this login.")
@click.option("--text", default=None, help="Only issues whose title or body contains this text.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="At most this many."
)
@output_options(json_help="Print JSON (objects keyed by column name).")
@click.pass_context
def issues_ls(
    ctx: click.Context,
    state: str,
    label: str | None,
    assignee: str | None,
    text: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List cached issues, most recently updated first (run `codex-mcp issues sync` to refresh)."""
    from codex_mcp.store import issues as store

    rows = in_app(
        ctx,
        lambda app: store.search(
            app.db,
            state=None if state == "all" else state,
            label=label,
            assignee=assignee,
            text=text,
            limit=limit,
        ),
    )
    emit_rows(
        rows,
        as_json,
        ISSUE_COLUMNS,
        empty="No cached issues match (run `codex-mcp issues sync` to fetch them).",
    )


COMMANDS: list[click.Command] = [issues]
