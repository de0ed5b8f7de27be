"""What an instance changed and landing it: ``diff`` and ``merge``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

import click

from codex_mcp.cli.output import emit, output_options
from codex_mcp.cli.running import with_instance

if TYPE_CHECKING:
    from codex_mcp.app import App
    from codex_mcp.outcomes import InstanceDiff, MergeResult, MergeStrategy
    from codex_mcp.store.instances import Instance


def _colour(line: str) -> str:
    if line.startswith(("+++", "---", "diff --git", "index ")):
        return click.style(line, bold=True)
    if line.startswith("+"):
        return click.style(line, fg="green")
    if line.startswith("-"):
        return click.style(line, fg="red")
    if line.startswith("@@"):
        return click.style(line, fg="cyan")
    return line


def _print_diff(diff: InstanceDiff, stat_only: bool) -> None:
    head = (
        f"{diff.instance_id}: {len(diff.files)} file(s) changed against {diff.base}, "
        f"+{diff.additions} -{diff.deletions}; {len(diff.commits)} commit(s)"
        + (f", {len(diff.uncommitted)} uncommitted path(s)" if diff.uncommitted else "")
    )
    click.echo(head)
    if not diff.files:
        return
    if stat_only:
        click.echo(diff.stat)
        return
    tty = sys.stdout.isatty()
    for change in diff.files:
        if change.binary:
            click.echo(f"Binary file {change.path} ({change.change_type})")
            continue
        for line in change.patch.splitlines():
            click.echo(_colour(line) if tty else line)


@click.command()
@click.argument("instance_id")
@click.option("--stat", "stat_only", is_flag=True, help="Only the summary of changed files.")
@output_options(
    json_help="Print JSON: per file path, old_path, change_type, additions, deletions, binary, patch."
)
@click.pass_context
def diff(ctx: click.Context, instance_id: str, stat_only: bool, as_json: bool) -> None:
    """Show an instance's work against its base: commits plus uncommitted and untracked changes.

    Nothing in the instance's worktree, index or stash is touched.
    """

    async def read(app: App, instance: Instance) -> Any:
        return await app.lifecycle.diff(instance)

    emit(with_instance(ctx, instance_id, read, reconcile=False), as_json, lambda d: _print_diff(d, stat_only))


def _print_merged(result: MergeResult) -> None:
    if result.outcome == "sent_to_agent":
        click.echo(
            f"{result.instance_id}: conflicts with {result.target} in {len(result.conflicts)} file(s) "
            f"({', '.join(result.conflicts)}); sent to the agent as feedback {result.feedback_id}; nothing "
            "else changed"
        )
    elif result.outcome == "up_to_date":
        click.echo(f"{result.instance_id}: {result.target} already holds its work; nothing to merge")
    else:
        where = f", worktree {result.updated_worktree} updated" if result.updated_worktree else ""
        click.echo(
            f"merged {result.instance_id} into {result.target} ({result.strategy}, {result.commits} commit(s)): "
            f"{result.old_commit[:12]} -> {result.new_commit[:12]}{where}"
        )


@click.command()
@click.argument("instance_id")
@click.option(
    "--into", "into", default=None, metavar="BRANCH", help="Target branch (default: the instance's base)."
)
@click.option(
    "--strategy",
    type=click.Choice(["merge", "squash", "rebase"]),
    default="merge",
    show_default=True,
    help="merge (fast-forward when possible), squash (one commit) or rebase (replayed, then fast-forward).",
)
@click.option(
    "--to-agent", is_flag=True, help="On conflicts, send the list to the agent as feedback instead."
)
@output_options()
@click.pass_context
def merge(
    ctx: click.Context, instance_id: str, into: str | None, strategy: str, to_agent: bool, as_json: bool
) -> None:
    """Land an instance's committed work on its base branch (or --into BRANCH).

    Checks for conflicts first without touching any working tree, and refuses -- changing nothing --
    when the instance has uncommitted work, the target is checked out with uncommitted changes, or the
    branches conflict (listed by file). Works whether the target is checked out in the main worktree,
    in another worktree, or nowhere. Recorded like a tool call.
    """
    from codex_mcp.identity import person_caller, require_agent
    from codex_mcp.lifecycle.merge import landed, merged_write
    from codex_mcp.recording import ToolCall, run_person_action

    async def act(app: App, instance: Instance) -> Any:
        person = await person_caller(app.settings, app.db)
        instance = await require_agent(app.settings, app.db, instance.id)
        arguments = {"instance_id": instance.id, "into": into, "strategy": strategy, "to_agent": to_agent}

        async def body(call: ToolCall) -> MergeResult:
            result = await app.lifecycle.merge(
                instance,
                into=into,
                strategy=cast("MergeStrategy", strategy),
                to_agent=to_agent,
                sender=f"a person ({person.id})",
            )
            if (write := merged_write(instance.id, result)) is not None:
                call.stage(write, done=landed(result))
            return result

        return await run_person_action(app, person, "merge", arguments, body, via="cli")

    emit(with_instance(ctx, instance_id, act, reconcile=False), as_json, _print_merged)


COMMANDS: list[click.Command] = [diff, merge]
