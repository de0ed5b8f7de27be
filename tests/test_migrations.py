"""Migrations: the runner yields schema.sql's structure, fails atomically, refuses what is not ours.

Structure is compared through sqlite_master and pragmas, never through the DDL text (the only text
compared is each CHECK clause, whitespace-normalised).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from codex_mcp.errors import DatabaseError
from codex_mcp.store import open_database
from codex_mcp.store.db import connect
from codex_mcp.store.migrations import load_migrations, migrate, split_statements, sql_dir

SEED_DOC = Path("/work/shared/seed/database-schema.md")
SEED_TABLES = {"instances", "instance_relationships", "mcp_events", "github_issues", "user_config"}
SEED_INDEXES = {
    "idx_instances_type_status",
    "idx_instances_issue",
    "idx_instances_created",
    "idx_relationships_parent",
    "idx_relationships_child",
    "idx_mcp_events_instance",
    "idx_mcp_events_timestamp",
    "idx_github_issues_state",
    "idx_github_issues_updated",
}


# --- structure --------------------------------------------------------------------------------


def _check_clauses(create_sql: str) -> list[str]:
    """Every ``CHECK (...)`` clause of a CREATE TABLE, comments dropped and whitespace normalised."""
    text = "\n".join(line.split("--", 1)[0] for line in create_sql.splitlines())
    clauses: list[str] = []
    for match in re.finditer(r"\bCHECK\s*\(", text, flags=re.IGNORECASE):
        depth, start = 0, match.end() - 1
        for pos in range(start, len(text)):
            if text[pos] == "(":
                depth += 1
            elif text[pos] == ")":
                depth -= 1
                if depth == 0:
                    clauses.append(" ".join(text[start + 1 : pos].split()))
                    break
        else:  # pragma: no cover - unbalanced DDL would not have been accepted by SQLite
            raise AssertionError(f"unbalanced CHECK in {create_sql!r}")
    return sorted(clauses)


def structure(path: Path) -> dict[str, Any]:
    """Tables, columns, foreign keys, indexes, CHECKs, views and triggers of a database file."""
    conn = sqlite3.connect(path)
    try:
        tables = [
            (str(name), str(sql))
            for name, sql in conn.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "ORDER BY name"
            )
        ]
        result: dict[str, Any] = {"tables": [name for name, _ in tables]}
        for name, sql in tables:
            columns = [
                (r[1], r[2].upper(), r[3], r[4], r[5], r[6])  # name, type, notnull, dflt_value, pk, hidden
                for r in conn.execute(f"PRAGMA table_xinfo('{name}')")
            ]
            foreign_keys = sorted(
                (r[2], r[3], r[4], r[5], r[6], r[7])  # table, from, to, on_update, on_delete, match
                for r in conn.execute(f"PRAGMA foreign_key_list('{name}')")
            )
            indexes = []
            for r in conn.execute(f"PRAGMA index_list('{name}')"):
                index_name, unique, origin, partial = r[1], r[2], r[3], r[4]
                index_columns = [c[2] for c in conn.execute(f"PRAGMA index_info('{index_name}')")]
                indexes.append((index_name, unique, origin, partial, tuple(index_columns)))
            result[name] = {
                "columns": columns,
                "foreign_keys": foreign_keys,
                "indexes": sorted(indexes),
                "checks": _check_clauses(sql),
            }
        result["views_triggers"] = sorted(
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('view', 'trigger')"
            )
        )
        return result
    finally:
        conn.close()


def all_index_names(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()


def known_versions() -> list[int]:
    """Every version this code knows (numbers may have gaps: see test_a_lower_number_arriving_later_is_applied)."""
    return [m.version for m in load_migrations()]


def versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [int(r[0]) for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        conn.close()


def dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def run_script(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.executescript(sql)
        conn.commit()
    finally:
        conn.close()


def build_from_schema_sql(path: Path) -> None:
    """schema.sql (version 1) followed by every later migration, by hand, with plain sqlite3."""
    run_script(path, (sql_dir() / "schema.sql").read_text(encoding="utf-8"))
    for migration in load_migrations():
        if migration.version > 1:
            run_script(
                path,
                migration.path.read_text(encoding="utf-8")
                + f"\nINSERT INTO schema_migrations (version) VALUES ({migration.version});\n",
            )


# --- 1. migrations == schema.sql + later migrations == the seed -------------------------------


async def test_migrations_yield_schema_sql_plus_later_migrations(tmp_path: Path) -> None:
    migrated, reference = tmp_path / "migrated.db", tmp_path / "reference.db"
    db = await open_database(migrated)
    await db.close()
    build_from_schema_sql(reference)

    got, expected = structure(migrated), structure(reference)
    assert got == expected

    # Not vacuously equal: the seed's tables, columns, constraints and indexes are all there.
    assert set(got["tables"]) >= SEED_TABLES | {"schema_migrations"}  # later migrations may add tables
    assert all_index_names(migrated) >= SEED_INDEXES
    assert "idx_instances_worktree_path" in all_index_names(migrated)
    assert got["instances"]["checks"] == [
        "activity IN ('working', 'waiting', 'idle')",
        "status IN ('running', 'terminated')",
    ]
    assert got["instance_relationships"]["checks"] == [
        "relationship_type IN ('spawned_review', 'created_fork')"
    ]
    assert sorted(fk[:3] for fk in got["instance_relationships"]["foreign_keys"]) == [
        ("instances", "child_instance", "id"),
        ("instances", "parent_instance", "id"),
    ]
    assert [fk[:3] for fk in got["mcp_events"]["foreign_keys"]] == [("instances", "instance_id", "id")]
    instance_columns = {c[0]: c for c in got["instances"]["columns"]}
    assert instance_columns["created_at"][3] == "CURRENT_TIMESTAMP"
    assert instance_columns["agent_number"][3] == "1"
    assert instance_columns["worktree_path"][2] == 1  # NOT NULL
    assert instance_columns["id"][4] == 1  # primary key

    assert versions(migrated) == known_versions()
    assert versions(reference) == known_versions()


async def test_first_migration_alone_equals_schema_sql(tmp_path: Path) -> None:
    only_first, reference = tmp_path / "v1.db", tmp_path / "schema.db"
    db = await open_database(only_first, migration_files=load_migrations()[:1])
    await db.close()
    run_script(reference, (sql_dir() / "schema.sql").read_text(encoding="utf-8"))
    assert structure(only_first) == structure(reference)
    assert versions(only_first) == versions(reference) == [1]


def _seed_sql() -> str:
    text = SEED_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```sql\n(.*?)```", text, flags=re.DOTALL)
    return "\n".join(b for b in blocks if re.search(r"^\s*CREATE\s", b, flags=re.MULTILINE | re.IGNORECASE))


@pytest.mark.skipif(not SEED_DOC.is_file(), reason="the founding schema document is not available here")
async def test_schema_v1_equals_the_seed_document(tmp_path: Path) -> None:
    seed, v1 = tmp_path / "seed.db", tmp_path / "v1.db"
    run_script(seed, _seed_sql())
    db = await open_database(v1, migration_files=load_migrations()[:1])
    await db.close()
    seed_structure = structure(seed)
    assert set(seed_structure["tables"]) == SEED_TABLES | {"schema_migrations"}
    assert all_index_names(seed) >= SEED_INDEXES
    assert structure(v1) == seed_structure


# --- 2. a failing migration is rolled back as a whole -----------------------------------------


def _migrations_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "migrations"
    shutil.copytree(sql_dir() / "migrations", folder)
    return folder


async def test_failing_migration_names_file_and_statement_and_rolls_back(tmp_path: Path) -> None:
    folder = _migrations_copy(tmp_path)
    known = [m.version for m in load_migrations(folder)]
    last = known[-1]
    broken = f"{last + 1:04d}_broken.sql"
    (folder / broken).write_text(
        "-- a good statement, then a bad one\n"
        "CREATE TABLE good_one (x INTEGER);\n"
        "INSERT INTO user_config (key, value) VALUES ('from.broken', 'x');\n"
        "INSERT INTO no_such_table (x) VALUES (1);\n",
        encoding="utf-8",
    )
    path = tmp_path / "codex.db"
    with pytest.raises(DatabaseError) as caught:
        await open_database(path, migration_files=load_migrations(folder))
    message = str(caught.value)
    assert broken in message
    assert "statement 3" in message
    assert "INSERT INTO no_such_table" in message
    assert "no such table" in message
    assert f"version {last}" in message

    # Every real migration was committed; nothing of the broken one was.
    assert versions(path) == known
    conn = sqlite3.connect(path, timeout=0)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "good_one" not in tables
        assert conn.execute("SELECT COUNT(*) FROM user_config").fetchone() == (0,)
        # The failed run left no transaction or lock behind.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    finally:
        conn.close()

    # Once the migration is fixed it applies, on the same file.
    (folder / broken).write_text(
        "CREATE TABLE good_one (x INTEGER);\nINSERT INTO user_config (key, value) VALUES ('from.broken', 'x');\n",
        encoding="utf-8",
    )
    db = await open_database(path, migration_files=load_migrations(folder))
    await db.close()
    assert versions(path) == [*known, last + 1]
    assert "good_one" in structure(path)["tables"]


# --- 3./4. files that are not ours, or newer than us, are refused and left alone --------------


@pytest.mark.parametrize("migrate_flag", [True, False])
async def test_database_newer_than_code_is_refused_untouched(tmp_path: Path, migrate_flag: bool) -> None:
    path = tmp_path / "codex.db"
    db = await open_database(path)
    await db.close()
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_migrations (version) VALUES (99)")
    conn.execute("INSERT INTO user_config (key, value) VALUES ('k', 'v')")
    conn.commit()
    conn.close()
    before = dump(path)

    with pytest.raises(DatabaseError) as caught:
        await open_database(path, migrate=migrate_flag)
    message = str(caught.value)
    assert "99" in message
    assert "newer" in message
    assert "upgrade" in message

    assert dump(path) == before
    assert versions(path)[-1] == 99


async def test_foreign_database_without_schema_migrations_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other-app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.commit()
    conn.close()
    before = dump(path)

    for migrate_flag in (True, False):
        with pytest.raises(DatabaseError) as caught:
            await open_database(path, migrate=migrate_flag)
        message = str(caught.value)
        assert "notes" in message
        assert "no schema_migrations" in message
        assert "not a codex-mcp database" in message

    assert dump(path) == before  # no codex-mcp table was created, the data is intact
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL
    finally:
        conn.close()


@pytest.mark.parametrize("content", [os.urandom(8192), b"definitely not sqlite\n"], ids=["random", "text"])
async def test_non_sqlite_file_is_refused_and_left_byte_identical(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "codex.db"
    path.write_bytes(content)
    with pytest.raises(DatabaseError) as caught:
        await open_database(path)
    assert "not a usable SQLite database" in str(caught.value)
    assert str(path) in str(caught.value)
    assert path.read_bytes() == content


# --- 5. migration files must be well named and numbered ---------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["0001_initial.sql", "1_second.sql"], "not named NNNN_name.sql"),
        (["0001_initial.sql", "0002-second.sql"], "not named NNNN_name.sql"),
        (["0001_initial.sql", "0002_Second.sql"], "not named NNNN_name.sql"),
        (["0001_initial.sql", "0001_again.sql"], "0001_initial.sql repeats number 1"),
        (["0002_starts_late.sql"], "0002_starts_late.sql is where number 1 was expected"),
        ([], "no migrations found"),
    ],
)
def test_badly_named_or_numbered_migrations_are_refused(
    tmp_path: Path, names: list[str], expected: str
) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in names:
        (folder / name).write_text("SELECT 1;\n", encoding="utf-8")
    with pytest.raises(DatabaseError, match=re.escape(expected)):
        load_migrations(folder)


def test_well_numbered_migrations_load_in_order_and_other_files_are_ignored(tmp_path: Path) -> None:
    folder = tmp_path / "migrations"
    folder.mkdir()
    for name in ("0002_b.sql", "0001_a.sql", "0003_c.sql"):
        (folder / name).write_text("SELECT 1;\n", encoding="utf-8")
    (folder / "README.md").write_text("notes\n", encoding="utf-8")
    assert [(m.version, m.name) for m in load_migrations(folder)] == [
        (1, "0001_a.sql"),
        (2, "0002_b.sql"),
        (3, "0003_c.sql"),
    ]


async def test_a_lower_number_arriving_later_is_applied(tmp_path: Path) -> None:
    """Branches developed side by side number their migrations as they will be once merged: a database
    migrated without 0003 (a gap) gets it when it arrives, and a database holding a version this code
    does not know is refused as newer."""
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "0001_a.sql").write_text("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY);\n")
    (folder / "0002_b.sql").write_text("CREATE TABLE b (x INTEGER);\n")
    (folder / "0004_d.sql").write_text("CREATE TABLE d (x INTEGER);\n")
    path = tmp_path / "codex.db"
    db = await open_database(path, migration_files=load_migrations(folder))
    await db.close()
    assert versions(path) == [1, 2, 4]

    (folder / "0003_c.sql").write_text("CREATE TABLE c (x INTEGER);\n")
    db = await open_database(path, migration_files=load_migrations(folder))
    await db.close()
    assert versions(path) == [1, 2, 3, 4]
    assert {"b", "c", "d"} <= set(structure(path)["tables"])

    (folder / "0003_c.sql").unlink()
    with pytest.raises(DatabaseError, match="newer than this codex-mcp"):
        await open_database(path, migration_files=load_migrations(folder))


def test_unterminated_statement_is_refused() -> None:
    assert split_statements("-- only a comment\n") == []
    assert split_statements("CREATE TABLE a (x);\n-- c;\nCREATE TABLE b (y);") == [
        "CREATE TABLE a (x);",
        "-- c;\nCREATE TABLE b (y);",
    ]
    with pytest.raises(DatabaseError, match=r"0009_x\.sql: the last statement is not terminated"):
        split_statements("CREATE TABLE a (x);\nCREATE TABLE b (y)\n", "0009_x.sql")


# --- 6. automatic and idempotent --------------------------------------------------------------


async def test_migrations_run_on_first_use_and_are_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "codex.db"  # the folder is created too

    db = await open_database(path)
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO instances (id, type, status, worktree_path, branch_name, tmux_session) "
            "VALUES ('adhoc-a1', 'adhoc', 'running', '/w', 'main', 's')"
        )
    await db.close()
    assert versions(path) == known_versions()
    first = structure(path)

    db = await open_database(path)
    await db.close()
    assert versions(path) == known_versions()
    assert structure(path) == first

    conn = await connect(path)
    try:
        assert await migrate(conn, path) == []  # nothing left to apply
    finally:
        await conn.close()

    check = sqlite3.connect(path)
    try:
        assert check.execute("SELECT id FROM instances").fetchall() == [("adhoc-a1",)]
    finally:
        check.close()


async def test_migrate_false_does_not_create_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "codex.db"
    db = await open_database(path, migrate=False)
    await db.close()
    assert structure(path)["tables"] == []

    conn = await connect(path)
    try:
        applied = await migrate(conn, path)
    finally:
        await conn.close()
    assert applied == [m.name for m in load_migrations()]


# --- 7. many processes migrating one new file at once -----------------------------------------

_OPENER = """
import asyncio, sys
from pathlib import Path
from codex_mcp.store import open_database

async def main() -> None:
    db = await open_database(Path(sys.argv[1]))
    row = await db.fetchone("SELECT MAX(version) FROM schema_migrations")
    print(row[0])
    await db.close()

sys.stdin.read()  # start line: every process has imported everything before any opens the file
asyncio.run(main())
"""


@pytest.mark.slow
def test_concurrent_processes_migrate_one_new_file(tmp_path: Path) -> None:
    path = tmp_path / "codex.db"
    latest = load_migrations()[-1].version
    logs = [tmp_path / f"opener-{n}.log" for n in range(8)]
    processes = []
    for log in logs:
        with log.open("w") as out:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _OPENER, str(path)],
                    stdin=subprocess.PIPE,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    for process in processes:  # the start line
        assert process.stdin is not None
        process.stdin.close()
    for process, log in zip(processes, logs, strict=True):
        assert process.wait(timeout=120) == 0, log.read_text()
        assert log.read_text().strip() == str(latest)
    assert versions(path) == known_versions()
    reference = tmp_path / "reference.db"
    build_from_schema_sql(reference)
    assert structure(path) == structure(reference)
