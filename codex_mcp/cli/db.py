"""``db status|migrate``: the database file, its schema version and migrations."""

from __future__ import annotations

from typing import Any

import click

from codex_mcp.cli.output import emit, output_options
from codex_mcp.cli.running import run, settings_of


@click.group()
def db() -> None:
    """The database file: schema version and migrations."""


@db.command("status")
@output_options()
@click.pass_context
def db_status(ctx: click.Context, as_json: bool) -> None:
    """Show the database path, its schema version and the migrations not yet applied (changes nothing)."""
    from codex_mcp.store import migrations
    from codex_mcp.store.db import check_creatable, connect

    path = settings_of(ctx).require_db_path()

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

    state = run(main)
    exists = path.exists()

    def text(_: Any) -> None:
        click.echo(f"database: {path}" + ("" if exists else " (not created yet: it is created on first use)"))
        click.echo(f"schema version: {state.version} (this codex-mcp knows up to {state.latest})")
        if state.newer_than_code:
            click.echo("the database is newer than this codex-mcp: upgrade codex-mcp to use it")
        elif state.pending:
            click.echo("pending: " + ", ".join(state.pending) + " (run `codex-mcp db migrate`)")
        else:
            click.echo("up to date")

    data = {
        "path": str(path),
        "exists": exists,
        "version": state.version,
        "latest": state.latest,
        "pending": state.pending,
    }
    emit(data, as_json, text)


@db.command("migrate")
@click.pass_context
def db_migrate(ctx: click.Context) -> None:
    """Apply pending migrations (this also happens automatically on first use)."""
    from codex_mcp.store import migrations
    from codex_mcp.store.db import connect

    path = settings_of(ctx).require_db_path()

    async def main() -> tuple[list[str], int]:
        conn = await connect(path)
        try:
            applied = await migrations.migrate(conn, path)
            return applied, (await migrations.status(conn, path)).version
        finally:
            await conn.close()

    applied, version = run(main)
    if applied:
        click.echo(f"applied {', '.join(applied)}; {path} is at schema version {version}")
    else:
        click.echo(f"{path} is up to date (schema version {version})")


COMMANDS: list[click.Command] = [db]
