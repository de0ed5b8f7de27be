"""Numbered SQL migrations: ``migrations/NNNN_name.sql``, applied in order.

Each file runs statement by statement inside one ``BEGIN IMMEDIATE`` transaction together with its
``schema_migrations`` row, so a failing migration leaves the database at the previous version, and
the error names the file and the statement. Several processes migrating one new file at once are
safe: the version is re-read inside each transaction. A database newer than this code is refused.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import anyio

from codex_mcp.errors import DatabaseError

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<slug>[a-z0-9_]+)\.sql$")


def sql_dir() -> Path:
    """Where ``schema.sql`` and ``migrations/`` are: inside the wheel, or the source checkout."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_sql"
    if (packaged / "migrations").is_dir():
        return packaged
    return here.parent


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"), self.name)


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    latest: int
    pending: list[str]
    # Versions the database has applied that this code does not know (a newer or another build's).
    unknown: tuple[int, ...] = ()

    @property
    def newer_than_code(self) -> bool:
        return self.version > self.latest or bool(self.unknown)


def load_migrations(directory: Path | None = None) -> list[Migration]:
    folder = directory or sql_dir() / "migrations"
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise DatabaseError(f"migration file {path} is not named NNNN_name.sql; rename it")
        found.append(Migration(int(m.group("version")), path))
    # Numbers give the order and must not repeat. A gap is allowed: branches developed side by side take
    # the numbers they will have once merged, and a database records each version it applied, so a
    # migration that arrives later with a lower number is still applied (see ``pending``).
    previous = 0
    for migration in found:
        if migration.version <= previous:
            raise DatabaseError(
                f"migrations in {folder} must be numbered 1, 2, 3, ... without repeats; {migration.name} "
                f"repeats number {migration.version}; renumber it"
            )
        previous = migration.version
    if found and found[0].version != 1:
        raise DatabaseError(
            f"migrations in {folder} must start at number 1; {found[0].name} is where number 1 was expected"
        )
    if not found:
        raise DatabaseError(f"no migrations found in {folder}; the installation is incomplete, reinstall it")
    return found


def split_statements(sql: str, source: str = "<sql>") -> list[str]:
    """Split a script into complete statements (``sqlite3.complete_statement`` knows triggers too)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            if _strip_comments(statement):
                statements.append(statement)
            buffer = ""
    if _strip_comments(buffer):
        raise DatabaseError(f"{source}: the last statement is not terminated with ';'")
    return statements


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in (raw.split("--", 1)[0].strip() for raw in sql.splitlines()) if line)


async def current_version(conn: aiosqlite.Connection, path: Path) -> int:
    return max(await applied_versions(conn, path), default=0)


async def applied_versions(conn: aiosqlite.Connection, path: Path) -> set[int]:
    tables = {
        str(row[0])
        for row in await conn.execute_fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    }
    if "schema_migrations" not in tables:
        if tables:
            raise DatabaseError(
                f"{path} holds tables ({', '.join(sorted(tables)[:5])}) but no schema_migrations: it is not "
                "a codex-mcp database; point CODEX_MCP_DB at another file"
            )
        return set()
    return {int(row[0]) for row in await conn.execute_fetchall("SELECT version FROM schema_migrations")}


async def status(
    conn: aiosqlite.Connection, path: Path, migrations: list[Migration] | None = None
) -> MigrationStatus:
    known = migrations if migrations is not None else load_migrations()
    applied = await applied_versions(conn, path)
    return MigrationStatus(
        version=max(applied, default=0),
        latest=known[-1].version,
        pending=[m.name for m in known if m.version not in applied],
        unknown=tuple(sorted(applied - {m.version for m in known})),
    )


def refuse_newer(state: MigrationStatus, path: Path) -> None:
    if state.newer_than_code:
        shown = state.unknown[-1] if state.unknown else state.version
        raise DatabaseError(
            f"{path} is at schema version {shown}, newer than this codex-mcp understands "
            f"(up to {state.latest}); upgrade codex-mcp (pip install -U codex-mcp) or use another "
            "database file via CODEX_MCP_DB"
        )


async def migrate(
    conn: aiosqlite.Connection, path: Path, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply every pending migration; the names of those this call applied."""
    known = migrations if migrations is not None else load_migrations()
    state = await status(conn, path, known)
    refuse_newer(state, path)
    done = await applied_versions(conn, path)
    applied: list[str] = []
    for migration in known:
        if migration.version in done:
            continue
        statements = migration.statements()
        try:
            await conn.execute("BEGIN IMMEDIATE")
            # Another process may have applied it while we waited for the write lock.
            if migration.version in await applied_versions(conn, path):
                await conn.execute("ROLLBACK")
                continue
            for number, statement in enumerate(statements, start=1):
                try:
                    await conn.execute(statement)
                except sqlite3.Error as exc:
                    first = " ".join(statement.split())[:160]
                    raise DatabaseError(
                        f"migration {migration.name} failed at statement {number} ({first}): {exc}; "
                        f"nothing of it was applied, the database stays at version {max(done, default=0)}"
                    ) from exc
            await conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (migration.version,))
            await conn.execute("COMMIT")
            done.add(migration.version)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
            raise
        applied.append(migration.name)
    return applied
