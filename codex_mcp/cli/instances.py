"""What there is: ``ls`` (instances), ``show`` (one of them), ``events`` (recorded tool calls)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, cast

import click

from codex_mcp.cli.output import Column, emit, emit_rows, output_options, print_table
from codex_mcp.cli.running import in_app
from codex_mcp.ids import MAX_ISSUE_NUMBER, InstanceType

if TYPE_CHECKING:
    from codex_mcp.app import App


def _issue_label(instance: Any) -> str:
    return f"#{instance.issue_number} {instance.issue_title or ''}".strip() if instance.issue_number else ""


def _pr_label(instance: Any) -> str:
    if not instance.pr_number:
        return ""
    state = f" ({instance.pr_state})" if instance.pr_state else ""
    return f"#{instance.pr_number}{state}"


def _activity_label(instance: Any) -> str:
    from codex_mcp.attention import activity_label

    return activity_label(instance)


# The id already says the type (work-, review-, adhoc-) and names the session (codex-<id>): in a narrow
# terminal those columns go first, then the branch and the pull request, which `show` has too. Activity
# (which agent needs a person) goes last of all: it is what a person scans the list for.
INSTANCE_COLUMNS = [
    Column("id", lambda r: r.id),
    Column("type", lambda r: r.type, drop=2),
    Column("status", lambda r: r.status + (", merged" if r.merged_into else ""), drop=5),
    Column("activity", _activity_label, drop=6),
    Column("issue", _issue_label, kind="clip"),
    Column("branch", lambda r: r.branch_name, kind="clip", drop=3),
    Column("tmux session", lambda r: r.tmux_session, drop=1),
    Column("pull request", _pr_label, drop=4),
    Column("created (UTC)", lambda r: r.created_at),
]

# Whole tool names (the longest is spawn_review_instance) when there is room; an error reads well at 16.
# In a narrow terminal the ok column goes (the error says it), and before it the duration.
_TOOL_NAME = 21


def event_columns(you: Collection[str] = ()) -> list[Column]:
    """The events table; the person's own identity (ids in ``you``) shows as "you (adhoc-a1)"."""
    return [
        Column("time (UTC)", lambda r: r.timestamp),
        Column("instance", lambda r: f"you ({r.instance_id})" if r.instance_id in you else r.instance_id),
        Column("tool", lambda r: r.tool_name, kind="clip", min_width=_TOOL_NAME),
        Column("ok", lambda r: "yes" if r.success else "no", drop=2),
        Column("ms", lambda r: (r.metadata or {}).get("duration_ms"), drop=1),
        Column("error", lambda r: r.error_message, kind="wrap", min_width=16),
    ]


EVENT_COLUMNS = event_columns()

# show --json carries events as dicts: the same table, read by key.
INSTANCE_EVENT_COLUMNS = [
    Column("time (UTC)", lambda e: e["timestamp"]),
    Column("tool", lambda e: e["tool_name"], kind="clip", min_width=_TOOL_NAME),
    Column("ok", lambda e: "yes" if e["success"] else "no"),
    Column("error", lambda e: e["error_message"], kind="wrap", min_width=16),
]


@click.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include terminated instances.")
@click.option(
    "--issue", type=click.IntRange(1, MAX_ISSUE_NUMBER), default=None, help="Only instances of this issue."
)
@click.option(
    "--type",
    "type_",
    type=click.Choice(["work", "review", "adhoc"]),
    default=None,
    help="Only instances of this type.",
)
@click.option(
    "--sort",
    type=click.Choice(["attention", "newest"]),
    default="attention",
    show_default=True,
    help="attention: agents waiting for you first, then idle, working, unknown (longest in that state "
    "first), terminated last; newest: by creation time.",
)
@output_options(json_help="Print JSON (objects keyed by column name).")
@click.pass_context
def ls_command(
    ctx: click.Context, show_all: bool, issue: int | None, type_: str | None, sort: str, as_json: bool
) -> None:
    """List instances (running ones unless --all), what needs you first, with activity and issue titles.

    Activity is working, waiting (needs you: a permission prompt, a question), idle (its turn ended) or
    — (unknown: only Claude Code agents report it), with how long it has been so.
    """
    from codex_mcp.attention import needs_attention_first
    from codex_mcp.identity import person_root
    from codex_mcp.store import instances as store

    # The person's own identity (the main checkout's adhoc instance) is not an agent: not listed here.
    rows = in_app(
        ctx,
        lambda app: store.list_dashboard(
            app.db,
            status=None if show_all else "running",
            type=cast(InstanceType | None, type_),
            issue_number=issue,
            person_root=person_root(app.settings),
        ),
        reconcile=True,
    )
    if sort == "attention":
        rows = needs_attention_first(rows)
    emit_rows(
        rows,
        as_json,
        INSTANCE_COLUMNS,
        empty="No instances." if show_all else "No running instances (use --all to include terminated ones).",
    )


def _tree_lines(root: str, edges: list[dict[str, Any]], highlight: str) -> list[str]:
    children: dict[str, list[dict[str, Any]]] = {}
    for edge in edges:
        children.setdefault(edge["parent_instance"], []).append(edge)
    lines = [root + ("  <-" if root == highlight else "")]

    def walk(node: str, indent: str) -> None:
        kids = children.get(node, [])
        for index, edge in enumerate(kids):
            last = index == len(kids) - 1
            child = edge["child_instance"]
            mark = "  <-" if child == highlight else ""
            label = f"{child} ({edge['relationship_type']}, {edge['child_status']}){mark}"
            lines.append(indent + ("└─ " if last else "├─ ") + label)
            walk(child, indent + ("   " if last else "│  "))

    walk(root, "")
    return lines


async def _instance_view(app: App, instance_id: str) -> dict[str, Any]:
    from codex_mcp.store import events, instances, relationships

    inst = await instances.require(app.db, instance_id)
    root, edges = await relationships.tree_of(app.db, instance_id)
    return {
        "tree": {"root": root, "edges": [e.model_dump(mode="json") for e in edges]},
        "instance": inst.model_dump(mode="json"),
        "parents": [p.model_dump(mode="json") for p in await relationships.parents_of(app.db, instance_id)],
        "children": [c.model_dump(mode="json") for c in await relationships.children_of(app.db, instance_id)],
        "events": [
            e.model_dump(mode="json")
            for e in await events.list_recent(app.db, instance_id=instance_id, limit=20)
        ],
    }


_ACTIVITY_KEYS = ("activity", "activity_at", "activity_detail")


def _activity_lines(inst: dict[str, Any]) -> list[str]:
    """Activity, since when, and what goes with it (a waiting agent's message)."""
    from codex_mcp.attention import age

    if inst.get("activity") is None:
        if inst.get("status") != "running":
            return []
        return [f"{'activity':>14}: unknown (nothing reported; only Claude Code agents report activity)"]
    since = inst.get("activity_at")
    when = f" for {age(since)} (since {since} UTC)" if since else ""
    last = "" if inst.get("status") == "running" else " (last reported before it ended)"
    lines = [f"{'activity':>14}: {inst['activity']}{when}{last}"]
    if inst.get("activity_detail"):
        lines.append(f"{'detail':>14}: {inst['activity_detail']}")
    return lines


def _print_instance_view(data: dict[str, Any]) -> None:
    inst = data["instance"]
    for key, value in inst.items():
        if value is not None and key != "prompt" and key not in _ACTIVITY_KEYS:
            click.echo(f"{key:>14}: {value}")
    for line in _activity_lines(inst):
        click.echo(line)
    if inst.get("prompt"):
        click.echo(f"{'prompt':>14}: {inst['prompt'][:500]}{'…' if len(inst['prompt']) > 500 else ''}")
    for label, key in (("parents", "parents"), ("children", "children")):
        links = data[key]
        click.echo(
            f"{label:>14}: " + (", ".join(f"{r['id']} ({r['relationship_type']})" for r in links) or "none")
        )
    if inst.get("pr_number"):
        state = f" ({inst['pr_state']})" if inst.get("pr_state") else ""
        link = f" {inst['pr_url']}" if inst.get("pr_url") else ""
        click.echo(f"{'pull request':>14}: #{inst['pr_number']}{state}{link}")
    if data["tree"]["edges"]:
        click.echo("relationship tree:")
        for line in _tree_lines(data["tree"]["root"], data["tree"]["edges"], inst["id"]):
            click.echo("  " + line)
    if data["events"]:
        print_table(data["events"], INSTANCE_EVENT_COLUMNS, title="recent tool calls")


@click.command()
@click.argument("instance_id")
@output_options()
@click.pass_context
def show(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Show one instance: its row, parents, children and recent tool calls."""
    from codex_mcp.identity import person_root
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.store import instances

    validate_instance_id(instance_id)

    async def act(app: App) -> tuple[dict[str, Any], bool]:
        data = await _instance_view(app, instance_id)
        return data, instance_id in await instances.person_ids(app.db, person_root(app.settings))

    data, you = in_app(ctx, act, reconcile=True)

    def text(data: dict[str, Any]) -> None:
        if you:
            click.echo(
                f"{instance_id} is you: the identity your own actions (command line, dashboard) are recorded "
                "under, for the main checkout; no agent runs in it"
            )
        _print_instance_view(data)

    emit(data, as_json, text)


@click.command()
@click.option(
    "--since", default="1d", show_default=True, help="Duration back from now (30m, 2h, 1d, 1w) or ISO time."
)
@click.option("--instance", "instance_id", default=None, metavar="ID", help="Only calls by this instance.")
@click.option("--tool", "tool_name", default=None, help="Only calls of this tool.")
@click.option("--failed", is_flag=True, help="Only failed calls.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="At most this many."
)
@output_options()
@click.pass_context
def events(
    ctx: click.Context,
    since: str,
    instance_id: str | None,
    tool_name: str | None,
    failed: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List recorded MCP tool calls, newest first."""
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.store import events as store
    from codex_mcp.timeutil import parse_since

    cutoff = parse_since(since)
    if instance_id is not None:
        validate_instance_id(instance_id)
    from codex_mcp.identity import person_root
    from codex_mcp.store import instances

    async def act(app: App) -> tuple[list[Any], set[str]]:
        found = await store.list_recent(
            app.db,
            since=cutoff,
            instance_id=instance_id,
            tool_name=tool_name,
            success=False if failed else None,
            limit=limit,
        )
        return found, await instances.person_ids(app.db, person_root(app.settings))

    rows, you = in_app(ctx, act)
    emit_rows(rows, as_json, event_columns(you), empty=f"No tool calls since {cutoff} UTC.")


COMMANDS: list[click.Command] = [ls_command, show, events]
