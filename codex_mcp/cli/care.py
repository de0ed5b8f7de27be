"""A person looking after the agents: ``open`` (the editor), ``feedback`` (a review), ``clean``.

Each is a person's action, recorded like a tool call (one ``mcp_events`` row under the person's
identity, refusals included) through :func:`codex_mcp.recording.run_person_action`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast, get_args

import click

from codex_mcp.cli.output import emit, output_options
from codex_mcp.cli.running import in_app
from codex_mcp.ids import FeedbackType, Priority

if TYPE_CHECKING:
    import subprocess

    from pydantic import BaseModel

    from codex_mcp.app import App
    from codex_mcp.outcomes import CleanItem, CleanReport, OpenResult, SendFeedbackResult
    from codex_mcp.recording import ToolCall

T = TypeVar("T", bound="BaseModel")


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "unknown"


def _as_person(
    ctx: click.Context, name: str, arguments: dict[str, Any], body: Callable[[App, ToolCall], Awaitable[T]]
) -> T:
    """Run ``body`` as the person's recorded action ``name`` (after converging with tmux)."""
    from codex_mcp.identity import person_caller
    from codex_mcp.recording import run_person_action

    async def act(app: App) -> T:
        person = await person_caller(app.settings, app.db)
        return await run_person_action(app, person, name, arguments, lambda call: body(app, call), via="cli")

    return in_app(ctx, act, reconcile=True)


# ----------------------------------------------------------------------------------------------- open


@click.command("open")
@click.argument("instance_id")
@click.option(
    "--wait",
    is_flag=True,
    help="Run the editor in this terminal and return when it exits (terminal editors such as vim always do).",
)
@output_options(json_help="Print what was started as JSON.")
@click.pass_context
def open_(ctx: click.Context, instance_id: str, wait: bool, as_json: bool) -> None:
    """Open an instance's worktree in your editor: editor.command, default `code {path}`, no shell.

    A terminal editor (vi, vim, nvim, nano, micro, hx, ...) runs in this terminal when there is one;
    any other editor is started detached and the command returns at once. Set yours with
    `codex-mcp config set editor.command "vim {path}"` ({path} is the worktree).
    """
    from pathlib import Path

    from codex_mcp import editor
    from codex_mcp.errors import StateError
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.outcomes import OpenResult
    from codex_mcp.store import instances

    started: list[subprocess.Popen[bytes]] = []

    async def body(app: App, call: ToolCall) -> OpenResult:
        validate_instance_id(instance_id)
        target = await instances.require(app.db, instance_id)
        path = Path(target.worktree_path)
        if not path.is_dir():
            raise StateError(
                f"the worktree of {target.id} ({path}) is gone (removed by clean or the cleanup policy); "
                f"its branch {target.branch_name} may still exist: git worktree add PATH {target.branch_name}"
            )
        template = await app.lifecycle.workspace.user_config.get(editor.KEY) or editor.DEFAULT_COMMAND
        launch = editor.plan(template, path, wait=wait, interactive=editor.interactive())
        process = editor.start(launch, path)
        started.append(process)
        return OpenResult(
            instance_id=target.id,
            worktree_path=str(path),
            command=launch.argv,
            foreground=launch.foreground,
            pid=process.pid,
        )

    result = _as_person(ctx, "open", {"instance_id": instance_id, "wait": wait}, body)
    status = started[0].wait() if result.foreground else 0
    emit(result, as_json, _print_opened)
    if status:
        ctx.exit(status)


def _print_opened(result: OpenResult) -> None:
    how = "ran" if result.foreground else "started"
    click.echo(f"{how} {result.command[0]} on {result.worktree_path} ({result.instance_id})")


# ------------------------------------------------------------------------------------------- feedback


@click.command()
@click.argument("instance_id")
@click.argument("text", required=False)
@click.option(
    "--file",
    "file_",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Read the feedback from this file ('-' reads standard input) instead of TEXT.",
)
@click.option(
    "--type",
    "feedback_type",
    type=click.Choice(get_args(FeedbackType)),
    default="needs_work",
    show_default=True,
    help="needs_work, suggestions, clarification or approved.",
)
@click.option(
    "--priority",
    type=click.Choice(get_args(Priority)),
    default="medium",
    show_default=True,
    help="low, medium or high.",
)
@output_options(json_help="Print the delivery (feedback_id, delivery_status, target_instance_id) as JSON.")
@click.pass_context
def feedback(
    ctx: click.Context,
    instance_id: str,
    text: str | None,
    file_: IO[str] | None,
    feedback_type: str,
    priority: str,
    as_json: bool,
) -> None:
    """Send your review to a running work (or adhoc) instance: a file under .codex/feedback/ in its
    worktree, and a notice typed into its agent's terminal, as a reviewer's send_feedback does."""
    from codex_mcp.errors import InputError

    if text is not None and file_ is not None:
        raise InputError("give the feedback as TEXT or with --file, not both")
    if text is None and file_ is None:
        raise InputError("no feedback given; pass TEXT, or --file PATH (--file - reads standard input)")
    body_text = file_.read() if file_ is not None else cast(str, text)

    async def body(app: App, call: ToolCall) -> SendFeedbackResult:
        from codex_mcp.identity import require_agent
        from codex_mcp.ids import validate_instance_id

        validate_instance_id(instance_id)
        await require_agent(app.settings, app.db, instance_id)
        sent = await app.lifecycle.person_feedback(
            instance_id, _login(), body_text, cast(FeedbackType, feedback_type), cast(Priority, priority)
        )
        call.notes["feedback_file"] = str(sent.file)
        return sent.result

    arguments = {
        "instance_id": instance_id,
        "feedback": body_text,
        "feedback_type": feedback_type,
        "priority": priority,
    }
    result = _as_person(ctx, "feedback", arguments, body)
    emit(result, as_json, _print_feedback)


def _print_feedback(result: SendFeedbackResult) -> None:
    how = (
        "delivered (announced in its agent's terminal)"
        if result.delivery_status == "delivered"
        else "queued (its agent's session did not answer; the file waits in .codex/feedback/)"
    )
    click.echo(f"feedback {result.feedback_id} to {result.target_instance_id}: {how}")


# ---------------------------------------------------------------------------------------------- clean


@click.command()
@click.option(
    "--merged", is_flag=True, help="Only terminated instances whose branch is merged into its base."
)
@click.option("--terminated", is_flag=True, help="Every terminated instance (what clean takes by default).")
@click.option("--dry-run", is_flag=True, help="Change nothing: list what would go and why the rest stays.")
@output_options(json_help="Print the report (items and counts) as JSON.")
@click.pass_context
def clean(ctx: click.Context, merged: bool, terminated: bool, dry_run: bool, as_json: bool) -> None:
    """Remove the worktrees and branches of terminated instances, and orphans no instance owns.

    Without --merged, every terminated instance is taken (as --terminated); --merged takes only those
    whose branch is merged into its base. Whatever the scope, nothing of a running instance is touched,
    a worktree with uncommitted changes stays, and a branch stays unless every commit on it is merged
    or pushed. Orphans (folders under the worktrees root and codex/* branches that no instance owns, as
    a killed server leaves them) follow the same rules.
    """

    async def body(app: App, call: ToolCall) -> CleanReport:
        return await app.lifecycle.clean(merged_only=merged and not terminated, dry_run=dry_run)

    arguments = {"merged": merged, "terminated": terminated, "dry_run": dry_run}
    emit(_as_person(ctx, "clean", arguments, body), as_json, _print_clean)


_WORKTREE_WORDS = {
    "removed": "removed worktree",
    "would_remove": "would remove worktree",
    "kept": "keeps worktree",
}
_BRANCH_WORDS = {"deleted": "deleted branch", "would_delete": "would delete branch", "kept": "keeps branch"}


def _headline(item: CleanItem) -> str:
    if item.kind == "instance":
        name = f"{item.instance_id}:"
    elif item.kind == "orphan_worktree":
        name = "orphan worktree:"
    else:
        name = "orphan branch:"
    parts: list[str] = []
    if item.worktree in _WORKTREE_WORDS:
        parts.append(f"{_WORKTREE_WORDS[item.worktree]} {item.worktree_path}")
    elif item.worktree == "gone" and item.kind == "instance":
        parts.append("worktree already gone")
    if item.branch in _BRANCH_WORDS:
        parts.append(f"{_BRANCH_WORDS[item.branch]} {item.branch_name}")
    elif item.branch == "gone" and item.kind == "instance":
        parts.append("branch already gone")
    return f"{name} {'; '.join(parts)}"


def _print_clean(report: CleanReport) -> None:
    if report.dry_run:
        click.echo("dry run: nothing was changed")
    for item in report.items:
        click.echo(_headline(item))
        for reason in item.kept_because:
            click.echo(f"  kept: {reason}")
    if not report.items:
        click.echo("Nothing to clean.")
    would = "would be " if report.dry_run else ""
    click.echo(
        f"{report.worktrees_removed} worktree(s) {would}removed, {report.branches_deleted} branch(es) "
        f"{would}deleted, {report.kept} kept; {report.running_untouched} running instance(s) untouched"
    )


COMMANDS: list[click.Command] = [open_, feedback, clean]
