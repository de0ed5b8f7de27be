"""The ``codex-mcp`` command.

Every command has help; ``--json`` output is keyed by the database's column names and stable for
scripts; errors are one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar, cast

import anyio
import click

from codex_mcp import __version__
from codex_mcp.errors import CodexError
from codex_mcp.ids import InstanceType
from codex_mcp.settings import Settings

T = TypeVar("T")
log = logging.getLogger("codex_mcp")


def _fail(ctx: click.Context, message: str, code: int) -> NoReturn:
    click.echo(f"codex-mcp: error: {' '.join(message.split())}", err=True)
    ctx.exit(code)


class Group(click.Group):
    """Turns our errors into one clean line and an exit code; never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CodexError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            _fail(
                ctx,
                f"internal error: {type(exc).__name__}: {exc} (set CODEX_MCP_LOG_LEVEL=DEBUG for the traceback)",
                70,
            )


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(fn)


def _settings(ctx: click.Context, **flags: Any) -> Settings:
    root = ctx.find_root()
    return Settings.load(db=root.params.get("db"), log_level=root.params.get("log_level"), **flags)


def _with_instance(
    ctx: click.Context, instance_id: str, act: Callable[[Any, Any], Awaitable[T]], *, reconcile: bool = True
) -> T:
    """Open the app, converge with tmux (unless told not to), load ``instance_id`` and ``act`` on it."""
    from codex_mcp.app import open_app
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.store import instances

    validate_instance_id(instance_id)

    async def main() -> T:
        async with open_app(_settings(ctx)) as app:
            if reconcile:
                await app.lifecycle.reconcile_quietly()
            return await act(app, await instances.require(app.db, instance_id))

    return _run(main)


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False))


def _table(title: str | None, columns: Sequence[str], rows: list[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    Console().print(table)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codex-mcp")
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file to use (default: CODEX_MCP_DB, else <git common dir>/codex-mcp/codex.db).",
)
@click.option(
    "--log-level",
    default=None,
    metavar="LEVEL",
    help="DEBUG, INFO, WARNING, ERROR or CRITICAL (default: CODEX_MCP_LOG_LEVEL, else INFO).",
)
@click.pass_context
def cli(ctx: click.Context, db: Path | None, log_level: str | None) -> None:
    """Coordinate several coding agents on one repository: worktrees, tmux sessions, MCP tools.

    Every MCP tool call is recorded in a SQLite file shared by all worktrees of the repository.
    """
    from codex_mcp.logs import configure_logging

    # Validates every variable once, up front: a bad value is a clear error before anything runs.
    settings = Settings.load(db=db, log_level=log_level)
    explicit = log_level is not None or bool(os.environ.get("CODEX_MCP_LOG_LEVEL", "").strip())
    # Commands print their own results; only warnings are worth showing unless asked for more.
    configure_logging(settings.log_level if explicit else "WARNING")


# ---------------------------------------------------------------------------------------------- serve


@cli.command()
@click.option(
    "--instance",
    default=None,
    metavar="ID",
    help="stdio: serve this instance (default: CODEX_MCP_INSTANCE, else the worktree you are in, "
    "else an adhoc instance registered for this folder).",
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http", "sse"]),
    default=None,
    help="stdio (one server per agent, the default), http (streamable HTTP at /mcp) or sse (/sse): "
    "one server for many agents, each with its own token.",
)
@click.option(
    "--port", type=int, default=None, help="HTTP port (default: CODEX_MCP_PORT, else 3001; 0: any free)."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (HTTP/SSE).")
@click.option(
    "--allow-remote", is_flag=True, help="Allow a non-loopback --host (every request still needs a token)."
)
@click.option(
    "--operator-token",
    is_flag=True,
    help="HTTP/SSE: print a read-only token for a person (MCP Inspector, conformance suite); off by default.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    instance: str | None,
    transport: str | None,
    port: int | None,
    host: str,
    allow_remote: bool,
    operator_token: bool,
) -> None:
    """Run the MCP server: over stdio (what Claude Code starts for each agent) or HTTP/SSE.

    stdout carries only the MCP protocol in stdio mode; logs always go to stderr.
    """
    settings = _settings(ctx, instance=instance, transport=transport, port=port)
    from codex_mcp.logs import configure_logging

    configure_logging(settings.log_level)
    if settings.transport == "stdio":
        from codex_mcp.serve import serve_stdio

        _run(lambda: serve_stdio(settings))
        return
    from codex_mcp.serve import serve_http

    _run(
        lambda: serve_http(
            settings,
            transport=settings.transport,
            host=host,
            allow_remote=allow_remote,
            operator_token=operator_token,
        )
    )


# ------------------------------------------------------------------------------------------ instances


def _pr_label(instance: Any) -> str:
    if not instance.pr_number:
        return ""
    state = f" ({instance.pr_state})" if instance.pr_state else ""
    return f"#{instance.pr_number}{state}"


@cli.command("ls")
@click.option("--all", "show_all", is_flag=True, help="Include terminated instances.")
@click.option("--issue", type=click.IntRange(min=1), default=None, help="Only instances of this issue.")
@click.option(
    "--type",
    "type_",
    type=click.Choice(["work", "review", "adhoc"]),
    default=None,
    help="Only instances of this type.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (objects keyed by column name).")
@click.pass_context
def ls_command(
    ctx: click.Context, show_all: bool, issue: int | None, type_: str | None, as_json: bool
) -> None:
    """List instances (running ones unless --all), newest first, with their issue titles."""
    from codex_mcp.app import open_app
    from codex_mcp.store import instances as store

    async def main() -> list[Any]:
        async with open_app(_settings(ctx)) as app:
            await app.lifecycle.reconcile_quietly()
            return await store.list_dashboard(
                app.db,
                status=None if show_all else "running",
                type=cast(InstanceType | None, type_),
                issue_number=issue,
            )

    rows = _run(main)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        click.echo(
            "No instances." if show_all else "No running instances (use --all to include terminated ones)."
        )
        return
    _table(
        None,
        ["id", "type", "status", "issue", "branch", "tmux session", "pull request", "created (UTC)"],
        [
            [
                r.id,
                r.type,
                r.status,
                f"#{r.issue_number} {r.issue_title or ''}".strip() if r.issue_number else "",
                r.branch_name,
                r.tmux_session,
                _pr_label(r),
                r.created_at,
            ]
            for r in rows
        ],
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


@cli.command()
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Show one instance: its row, parents, children and recent tool calls."""
    from codex_mcp.app import open_app
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.store import events, instances, relationships

    validate_instance_id(instance_id)

    async def main() -> dict[str, Any]:
        async with open_app(_settings(ctx)) as app:
            await app.lifecycle.reconcile_quietly()
            inst = await instances.require(app.db, instance_id)
            root, edges = await relationships.tree_of(app.db, instance_id)
            return {
                "tree": {"root": root, "edges": [e.model_dump(mode="json") for e in edges]},
                "instance": inst.model_dump(mode="json"),
                "parents": [
                    p.model_dump(mode="json") for p in await relationships.parents_of(app.db, instance_id)
                ],
                "children": [
                    c.model_dump(mode="json") for c in await relationships.children_of(app.db, instance_id)
                ],
                "events": [
                    e.model_dump(mode="json")
                    for e in await events.list_recent(app.db, instance_id=instance_id, limit=20)
                ],
            }

    data = _run(main)
    if as_json:
        _print_json(data)
        return
    inst = data["instance"]
    for key, value in inst.items():
        if value is not None and key != "prompt":
            click.echo(f"{key:>14}: {value}")
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
        for line in _tree_lines(data["tree"]["root"], data["tree"]["edges"], instance_id):
            click.echo("  " + line)
    if data["events"]:
        _table(
            "recent tool calls",
            ["time (UTC)", "tool", "ok", "error"],
            [
                [e["timestamp"], e["tool_name"], "yes" if e["success"] else "no", e["error_message"]]
                for e in data["events"]
            ],
        )


@cli.command()
@click.option(
    "--since", default="1d", show_default=True, help="Duration back from now (30m, 2h, 1d, 1w) or ISO time."
)
@click.option("--instance", "instance_id", default=None, metavar="ID", help="Only calls by this instance.")
@click.option("--tool", "tool_name", default=None, help="Only calls of this tool.")
@click.option("--failed", is_flag=True, help="Only failed calls.")
@click.option(
    "--limit", type=click.IntRange(1, 100_000), default=100, show_default=True, help="At most this many."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
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
    from codex_mcp.app import open_app
    from codex_mcp.ids import validate_instance_id
    from codex_mcp.store import events as store
    from codex_mcp.timeutil import parse_since

    cutoff = parse_since(since)
    if instance_id is not None:
        validate_instance_id(instance_id)

    async def main() -> list[Any]:
        async with open_app(_settings(ctx)) as app:
            return await store.list_recent(
                app.db,
                since=cutoff,
                instance_id=instance_id,
                tool_name=tool_name,
                success=False if failed else None,
                limit=limit,
            )

    rows = _run(main)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        click.echo(f"No tool calls since {cutoff} UTC.")
        return
    _table(
        None,
        ["time (UTC)", "instance", "tool", "ok", "ms", "error"],
        [
            [
                r.timestamp,
                r.instance_id,
                r.tool_name,
                "yes" if r.success else "no",
                (r.metadata or {}).get("duration_ms"),
                r.error_message,
            ]
            for r in rows
        ],
    )


# --------------------------------------------------------------------------------------------- config


@cli.group()
def config() -> None:
    """Read and change persistent settings (user_config); --secret values are stored encrypted."""


def _user_config_call(ctx: click.Context, fn: Callable[[Any], Awaitable[T]]) -> T:
    from codex_mcp.app import open_app
    from codex_mcp.userconfig import UserConfig

    settings = _settings(ctx)

    async def main() -> T:
        async with open_app(settings) as app:
            return await fn(UserConfig(app.db, settings.secret_key_file))

    return _run(main)


@config.command("get")
@click.argument("key")
@click.option("--reveal", is_flag=True, help="Print a secret's decrypted value instead of a mask.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def config_get(ctx: click.Context, key: str, reveal: bool, as_json: bool) -> None:
    """Print the value of KEY (a built-in default when it was never set)."""

    async def main(uc: Any) -> tuple[Any, str | None]:
        entry = await uc.entry(key)
        value = await uc.get(key) if (reveal or not entry.is_encrypted) else entry.value
        return entry, value

    entry, value = _user_config_call(ctx, main)
    if as_json:
        _print_json({**entry.model_dump(mode="json"), "value": value})
    else:
        click.echo(value)


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--secret", is_flag=True, help="Encrypt the value (the key file never enters the database).")
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str, secret: bool) -> None:
    """Set KEY to VALUE."""
    entry = _user_config_call(ctx, lambda uc: uc.set(key, value, secret=secret))
    click.echo(f"{entry.key} = {entry.value}" + (" (encrypted)" if entry.is_encrypted else ""))


@config.command("unset")
@click.argument("key")
@click.pass_context
def config_unset(ctx: click.Context, key: str) -> None:
    """Remove KEY (its built-in default, if any, applies again)."""
    removed = _user_config_call(ctx, lambda uc: uc.unset(key))
    click.echo(f"{key} removed" if removed else f"{key} was not set")


@config.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def config_ls(ctx: click.Context, as_json: bool) -> None:
    """List every setting and default; secrets are masked."""
    entries = _user_config_call(ctx, lambda uc: uc.entries())
    if as_json:
        _print_json([e.model_dump(mode="json") for e in entries])
        return
    _table(
        None,
        ["key", "value", "source", "updated (UTC)"],
        [
            [e.key, e.value, e.source + (", encrypted" if e.is_encrypted else ""), e.updated_at]
            for e in entries
        ],
    )


# ------------------------------------------------------------------------------------------------- db


@cli.group()
def db() -> None:
    """The database file: schema version and migrations."""


@db.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Show the database path, its schema version and the migrations not yet applied (changes nothing)."""
    from codex_mcp.store import migrations
    from codex_mcp.store.db import check_creatable, connect

    settings = _settings(ctx)
    path = settings.require_db_path()

    async def main() -> migrations.MigrationStatus:
        if not path.exists():
            # Reporting must not create anything: a missing file is simply at version 0.
            check_creatable(path)
            known = migrations.load_migrations()
            return migrations.MigrationStatus(0, known[-1].version, [m.name for m in known])
        conn = await connect(path)
        try:
            return await migrations.status(conn, path)
        finally:
            await conn.close()

    state = _run(main)
    exists = path.exists()
    data = {
        "path": str(path),
        "exists": exists,
        "version": state.version,
        "latest": state.latest,
        "pending": state.pending,
    }
    if as_json:
        _print_json(data)
        return
    click.echo(f"database: {path}" + ("" if exists else " (not created yet: it is created on first use)"))
    click.echo(f"schema version: {state.version} (this codex-mcp knows up to {state.latest})")
    if state.newer_than_code:
        click.echo("the database is newer than this codex-mcp: upgrade codex-mcp to use it")
    elif state.pending:
        click.echo("pending: " + ", ".join(state.pending) + " (run `codex-mcp db migrate`)")
    else:
        click.echo("up to date")


@db.command("migrate")
@click.pass_context
def db_migrate(ctx: click.Context) -> None:
    """Apply pending migrations (this also happens automatically on first use)."""
    from codex_mcp.store import migrations
    from codex_mcp.store.db import connect

    settings = _settings(ctx)
    path = settings.require_db_path()

    async def main() -> tuple[list[str], int]:
        conn = await connect(path)
        try:
            applied = await migrations.migrate(conn, path)
            return applied, (await migrations.status(conn, path)).version
        finally:
            await conn.close()

    applied, version = _run(main)
    if applied:
        click.echo(f"applied {', '.join(applied)}; {path} is at schema version {version}")
    else:
        click.echo(f"{path} is up to date (schema version {version})")


# --------------------------------------------------------------------------------------------- issues


@cli.group()
def issues() -> None:
    """The local cache of the repository's GitHub issues."""


@issues.command("sync")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def issues_sync(ctx: click.Context, as_json: bool) -> None:
    """Fetch new and updated issues from GitHub (incremental; unchanged pages cost only 304s)."""
    from codex_mcp.app import open_app
    from codex_mcp.issue_cache import sync

    async def main() -> Any:
        async with open_app(_settings(ctx)) as app:
            return await sync(app.settings, app.db)

    result = _run(main)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    click.echo(
        f"{result.repository}: {result.fetched} issue(s) received, {result.changed} new or changed, "
        f"{result.unchanged} unchanged; {result.pages} page(s), {result.not_modified_pages} not modified"
        + (
            f"; {result.pull_requests_updated} pull request state(s) updated"
            if result.pull_requests_updated
            else ""
        )
    )


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
@click.option("--json", "as_json", is_flag=True, help="Print JSON (objects keyed by column name).")
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
    from codex_mcp.app import open_app
    from codex_mcp.store import issues as store

    async def main() -> list[Any]:
        async with open_app(_settings(ctx)) as app:
            return await store.search(
                app.db,
                state=None if state == "all" else state,
                label=label,
                assignee=assignee,
                text=text,
                limit=limit,
            )

    rows = _run(main)
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    if not rows:
        click.echo("No cached issues match (run `codex-mcp issues sync` to fetch them).")
        return
    _table(
        None,
        ["#", "state", "title", "labels", "assignee", "updated (UTC)"],
        [[r.number, r.state, r.title, ", ".join(r.labels), r.assignee, r.updated_at] for r in rows],
    )


# ------------------------------------------------------------------------------------------ lifecycle


def _instance_summary(instance: Any) -> str:
    socket = f" -L {instance.tmux_socket}" if instance.tmux_socket else ""
    return (
        f"{instance.id}: tmux session {instance.tmux_session}{socket}, worktree {instance.worktree_path}, "
        f"branch {instance.branch_name}"
    )


@cli.command()
@click.option("--issue", type=click.IntRange(min=1), default=None, help="GitHub issue to work on.")
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
@click.option("--json", "as_json", is_flag=True, help="Print the new instance as JSON.")
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
    from codex_mcp.app import open_app
    from codex_mcp.errors import InputError

    if prompt is not None and prompt_file is not None:
        raise InputError("give --prompt or --prompt-file, not both")
    text = prompt_file.read_text(encoding="utf-8") if prompt_file is not None else prompt
    kind = cast(InstanceType, type_ or ("work" if issue is not None else "adhoc"))

    async def main() -> Any:
        async with open_app(_settings(ctx)) as app:
            lifecycle = app.lifecycle
            prepared = await lifecycle.prepare_work(issue_number=issue, base=base, prompt=text, type=kind)
            return await lifecycle.commit(prepared)

    instance = _run(main)
    if as_json:
        _print_json(instance.model_dump(mode="json"))
        return
    click.echo("started " + _instance_summary(instance))
    click.echo(f"attach with: codex-mcp attach {instance.id}")


@cli.command()
@click.argument("instance_id")
@click.pass_context
def attach(ctx: click.Context, instance_id: str) -> None:
    """Attach this terminal to an instance's tmux session (detach again with C-b d)."""
    from codex_mcp.errors import StateError
    from codex_mcp.tmux import Tmux

    async def load(app: Any, instance: Any) -> Any:
        return instance

    instance = _with_instance(ctx, instance_id, load)
    if instance.status != "running":
        raise StateError(f"{instance.id} is terminated; `codex-mcp resume {instance.id}` restarts its agent")
    argv = Tmux(instance.tmux_socket).argv("attach-session", "-t", f"={instance.tmux_session}")
    # Run from inside tmux, `tmux attach` refuses ("sessions should be nested with care, unset $TMUX
    # to force"): attaching is what was asked for, so attach as a nested client.
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    os.execvpe(argv[0], argv, env)  # noqa: S606 - argv, no shell


@cli.command()
@click.argument("instance_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def kill(ctx: click.Context, instance_id: str, as_json: bool) -> None:
    """Terminate an instance: kill its tmux session and apply the cleanup policy."""
    from codex_mcp.store import instances

    async def terminate(app: Any, target: Any) -> Any:
        outcome, _ = await app.lifecycle.terminate(target)
        async with app.db.write() as tx:
            await instances.mark_terminated(tx, target.id)
        return outcome

    outcome = _with_instance(ctx, instance_id, terminate, reconcile=False)
    if as_json:
        _print_json(outcome.model_dump(mode="json"))
        return
    click.echo(f"{outcome.instance_id} terminated (session {outcome.session.replace('_', ' ')})")
    click.echo(f"worktree {outcome.cleanup.worktree}, branch {outcome.cleanup.branch}")
    for reason in outcome.cleanup.kept_because:
        click.echo(f"  kept: {reason}")


@cli.command()
@click.argument("instance_id")
@click.pass_context
def resume(ctx: click.Context, instance_id: str) -> None:
    """Restart a dead instance's agent in its worktree, continuing its conversation."""

    async def restart(app: Any, target: Any) -> Any:
        return await app.lifecycle.resume(target)

    instance = _with_instance(ctx, instance_id, restart)
    click.echo("resumed " + _instance_summary(instance))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def reconcile(ctx: click.Context, as_json: bool) -> None:
    """Mark instances whose agent or tmux session died as terminated, and list orphans."""
    from codex_mcp.app import open_app

    async def main() -> Any:
        async with open_app(_settings(ctx)) as app:
            return await app.lifecycle.reconcile(find_orphans=True)

    report = _run(main)
    if as_json:
        _print_json(report.model_dump(mode="json"))
        return
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


# -------------------------------------------------------------------------------------------- install


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="Port (0: a free one)."
)
@click.option("--read-only", is_flag=True, help="Show instances and terminals, change nothing.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in the web browser.")
@click.option("--allow-remote", is_flag=True, help="Allow --host to be an address other machines reach.")
@click.pass_context
def ui(
    ctx: click.Context, host: str, port: int, read_only: bool, open_browser: bool, allow_remote: bool
) -> None:
    """Serve the web dashboard; the first line printed is the one-time login address to open."""
    from codex_mcp.ui import serve as serve_ui

    serve_ui(
        _settings(ctx),
        host=host,
        port=port,
        read_only=read_only,
        open_browser=open_browser,
        allow_remote=allow_remote,
    )


@cli.command()
@click.option(
    "--scope",
    type=click.Choice(["project", "user"]),
    default="project",
    show_default=True,
    help="project: this repository's .mcp.json; user: your Claude Code configuration.",
)
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http"]),
    default="stdio",
    show_default=True,
    help="stdio: Claude Code starts `codex-mcp serve`; http: use the shared server.",
)
@click.pass_context
def install(ctx: click.Context, scope: str, transport: str) -> None:
    """Register the codex MCP server with Claude Code (idempotent; prints what it changed)."""
    from codex_mcp.install import install as do_install

    for line in do_install(_settings(ctx), scope=scope, transport=transport):  # type: ignore[arg-type]
        click.echo(line)


# ----------------------------------------------------------------------------------------------- demo


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the throwaway repository for inspection.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def demo(keep: bool, as_json: bool) -> None:
    """Show the review loop end to end on a throwaway repository (no Claude Code, no network).

    A work agent asks for a review, a reviewer works on a snapshot of its work and sends feedback;
    the agents are scripted stand-ins (real MCP clients) in real tmux sessions on a private socket.
    """
    from codex_mcp.demo import print_demo, run_demo

    result = _run(lambda: run_demo(keep=keep))
    if as_json:
        _print_json(result)
    else:
        print_demo(result)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="codex-mcp")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
