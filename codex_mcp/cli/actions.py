"""What changes instances: ``start``, ``attach``, ``kill``, ``resume``, ``reconcile``.

Each but ``attach`` (which only looks) is a person's action, recorded like a tool call (cli/person.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from codex_mcp.cli.output import emit, output_options
from codex_mcp.cli.person import person_action
from codex_mcp.cli.running import with_instance
from codex_mcp.ids import MAX_ISSUE_NUMBER, InstanceType

if TYPE_CHECKING:
    from codex_mcp.app import App
    from codex_mcp.recording import ToolCall
    from codex_mcp.store.instances import Instance


def _instance_summary(instance: Any) -> str:
    socket = f" -L {instance.tmux_socket}" if instance.tmux_socket else ""
    return (
        f"{instance.id}: tmux session {instance.tmux_session}{socket}, worktree {instance.worktree_path}, "
        f"branch {instance.branch_name}"
    )


def _print_started(instance: Any) -> None:
    click.echo("started " + _instance_summary(instance))
    click.echo(f"attach with: codex-mcp attach {instance.id}")


@click.command()
@click.option(
    "--issue", type=click.IntRange(1, MAX_ISSUE_NUMBER), default=None, help="GitHub issue to work on."
)
@click.option(
    "--base", default=None, metavar="BRANCH", help="Branch to start from (default: the current one)."
)
@click.option("--prompt", default=None, help="Instructions for the agent.")
@click.option(
    "--prompt-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Read the instructions from this file.",
)
@click.option(
    "--type",
    "type_",
    type=click.Choice(["work", "adhoc"]),
    default=None,
    help="work (needs --issue; the default with --issue) or adhoc (the default without).",
)
@output_options(json_help="Print the new instance as JSON.")
@click.pass_context
def start(
    ctx: click.Context,
    issue: int | None,
    base: str | None,
    prompt: str | None,
    prompt_file: Path | None,
    type_: str | None,
    as_json: bool,
) -> None:
    """Start an agent: a worktree on a new branch, a tmux session, the agent with our MCP server.

    The instance is work-N-aK with --issue N, else adhoc-aK. Attach to it with `codex-mcp attach ID`.
    """
    from codex_mcp.errors import InputError

    text, unreadable = prompt, None
    if prompt_file is not None:
        try:
            text = prompt_file.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            unreadable = InputError(
                f"--prompt-file {prompt_file} is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
                "save it as UTF-8 and start again"
            )
        except OSError as exc:
            unreadable = InputError(
                f"cannot read --prompt-file {prompt_file}: {exc.strerror}; check the file"
            )
    kind = cast(InstanceType, type_ or ("work" if issue is not None else "adhoc"))

    async def spawn(app: App, call: ToolCall) -> Instance:
        if prompt is not None and prompt_file is not None:
            raise InputError("give --prompt or --prompt-file, not both")
        if unreadable is not None:  # refused here, so the refusal is recorded like the others
            raise unreadable
        lifecycle = app.lifecycle
        prepared = await lifecycle.prepare_work(issue_number=issue, base=base, prompt=text, type=kind)
        started = await lifecycle.commit(prepared)
        call.notes["instance_id"] = started.id
        return started

    arguments = {"issue_number": issue, "base": base, "prompt": text, "type": kind}
    emit(person_action(ctx, "start", arguments, spawn), as_json, _print_started)


@click.command()
@click.argument("instance_id")
@click.pass_context
def attach(ctx: click.Context, instance_id: str) -> None:
    """Attach this terminal to an instance's tmux session (detach again with C-b d)."""
    from codex_mcp.errors import StateError
    from codex_mcp.tmux import Tmux

    async def load(app: App, instance: Instance) -> Instance:
        return instance

    instance = with_instance(ctx, instance_id, load)
    if instance.status != "running":
        raise StateError(f"{instance.id} is terminated; `codex-mcp resume {instance.id}` restarts its agent")
    argv = Tmux(instance.tmux_socket).argv("attach-session", "-t", f"={instance.tmux_session}")
    # Run from inside tmux, `tmux attach` refuses ("sessions should be nested with care, unset $TMUX
    # to force"): attaching is what was asked for, so attach as a nested client.
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    os.execvpe(argv[0], argv, env)  # noqa: S606 - argv, no shell


def _print_killed(outcome: Any) -> None:
    click.echo(f"{outcome.instance_id} terminated (session {outcome.session.replace('_', ' ')})")
    click.echo(f"worktree {outcome.cleanup.worktree}, branch {outcome.cleanup.branch}")
    for reason in outcome.cleanup.kept_because:
        click.echo(f"  kept: {reason}")


@click.command()
@click.argument("instance_id")
@output_options()
@click.pass_context
def kill(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Terminate an instance: kill its tmux session and apply the cleanup policy."""
    from codex_mcp.identity import require_agent
    from codex_mcp.ids import validate_instance_id

    async def terminate(app: App, call: ToolCall) -> Any:
        validate_instance_id(instance_id)
        target = await require_agent(app.settings, app.db, instance_id)
        # The row first, then the session and the cleanup: a failed write destroys nothing.
        return await app.lifecycle.terminate_now(target)

    outcome = person_action(ctx, "kill", {"instance_id": instance_id}, terminate)
    emit(outcome, as_json, _print_killed)


@click.command()
@click.argument("instance_id")
@click.pass_context
def resume(ctx: click.Context, instance_id: str) -> None:
    """Restart a dead instance's agent in its worktree, continuing its conversation."""

    from codex_mcp.identity import require_agent
    from codex_mcp.ids import validate_instance_id

    async def restart(app: App, call: ToolCall) -> Instance:
        validate_instance_id(instance_id)
        return await app.lifecycle.resume(await require_agent(app.settings, app.db, instance_id))

    instance = person_action(ctx, "resume", {"instance_id": instance_id}, restart, reconcile=True)
    click.echo("resumed " + _instance_summary(instance))


def _print_reconciled(report: Any) -> None:
    click.echo("terminated: " + (", ".join(report.terminated) or "none"))
    if report.unreachable_sockets:
        click.echo("tmux did not answer on: " + ", ".join(report.unreachable_sockets) + " (left as they are)")
    if report.orphan_sessions:
        click.echo(
            "tmux sessions named like instances, with no running instance: "
            + ", ".join(report.orphan_sessions)
        )
    if report.orphan_worktrees:
        click.echo("folders under the worktrees root with no running instance:")
        for path in report.orphan_worktrees:
            click.echo(f"  {path}")
    if report.orphan_branches:
        click.echo(
            "codex/* branches no instance owns (`codex-mcp clean --dry-run` says which can go): "
            + ", ".join(report.orphan_branches)
        )
    if report.missing_worktrees:
        click.echo(
            "running instances whose worktree is gone (kill them, or restore the folder): "
            + ", ".join(report.missing_worktrees)
        )


@click.command()
@output_options()
@click.pass_context
def reconcile(ctx: click.Context, as_json: bool) -> None:
    """Mark instances whose agent or tmux session died as terminated, and list orphans."""

    async def converge(app: App, call: ToolCall) -> Any:
        return await app.lifecycle.reconcile(find_orphans=True)

    emit(person_action(ctx, "reconcile", {}, converge), as_json, _print_reconciled)


COMMANDS: list[click.Command] = [start, attach, kill, resume, reconcile]
