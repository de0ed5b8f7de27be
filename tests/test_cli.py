"""The `codex-mcp` command: help everywhere, JSON keyed by column names, one-line errors.

Most tests run the click command in-process (CliRunner) inside a real repository with a real
database file; a handful run the real command as a subprocess end to end.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import click
import pytest
from click.testing import CliRunner
from support import cli_ok, db_file, invoke, one_line_error, run_cli

from codex_mcp import __version__
from codex_mcp.cli import cli
from codex_mcp.cli.root import COMMAND_MODULES
from codex_mcp.store import events as events_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store import open_database
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.migrations import load_migrations

LATEST = load_migrations()[-1].version
MIGRATION_NAMES = [m.name for m in load_migrations()]


# ------------------------------------------------------------------------------------------ helpers


@pytest.fixture
def here(repo: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run commands inside the repository, with a private key file and wide tables."""
    monkeypatch.chdir(repo)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("COLUMNS", "250")
    return repo


def ok_json(*args: str) -> Any:
    return json.loads(cli_ok(*args).stdout)


def table_columns(path: Path, table: str) -> list[str]:
    with sqlite3.connect(path) as conn:
        cols = [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]
    conn.close()
    return cols


def schema_version(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        version = int(conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0])
    conn.close()
    return version


def seed(path: Path) -> None:
    """A work instance (issue 7, cached title) that spawned a review (terminated), and three events."""

    async def main() -> None:
        db = await open_database(path)
        try:
            async with db.write() as tx:
                await tx.execute(
                    "INSERT INTO github_issues (number, title, state, repo_owner, repo_name) "
                    "VALUES (7, 'Fix the frobnicator', 'open', 'octo', 'repo')"
                )
                await instances_store.insert(
                    tx,
                    instances_store.NewInstance(
                        id="work-7-a1",
                        type="work",
                        worktree_path=str(path.parent / "wt" / "work-7-a1"),
                        branch_name="codex/work-7-a1",
                        base_branch="main",
                        tmux_session="codex-work-7-a1",
                        issue_number=7,
                        prompt="fix it",
                        agent_number=1,
                    ),
                )
                await instances_store.insert(
                    tx,
                    instances_store.NewInstance(
                        id="review-7-a1",
                        type="review",
                        worktree_path=str(path.parent / "wt" / "review-7-a1"),
                        branch_name="codex/review-7-a1",
                        tmux_session="codex-review-7-a1",
                        issue_number=7,
                        agent_number=1,
                    ),
                )
                await relationships_store.add(
                    tx,
                    relationships_store.Relationship(
                        parent_instance="work-7-a1",
                        child_instance="review-7-a1",
                        relationship_type="spawned_review",
                    ),
                )
                await instances_store.mark_terminated(tx, "review-7-a1")
                await events_store.record(
                    tx,
                    events_store.NewEvent(
                        instance_id="work-7-a1",
                        tool_name="spawn_review_instance",
                        success=True,
                        metadata={"duration_ms": 12.5},
                    ),
                )
                await events_store.record(
                    tx,
                    events_store.NewEvent(
                        instance_id="review-7-a1",
                        tool_name="send_feedback",
                        success=False,
                        error_message="target is gone",
                    ),
                )
                old = await events_store.record(
                    tx,
                    events_store.NewEvent(
                        instance_id="work-7-a1",
                        tool_name="query_instances",
                        success=True,
                    ),
                )
                await tx.execute(
                    "UPDATE mcp_events SET timestamp = '2000-06-01 12:00:00' WHERE id = ?", (old,)
                )
        finally:
            await db.close()

    anyio.run(main)


# --------------------------------------------------------------------------------------------- help


def command_paths(
    command: click.Command, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        ctx = click.Context(command)
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{' '.join((*path, name))} is listed but cannot be loaded"
            yield from command_paths(sub, (*path, name))


ALL_COMMANDS = list(command_paths(cli))


def test_the_root_loads_each_command_from_the_module_that_defines_it() -> None:
    # COMMAND_MODULES names every command's module; each module lists its commands in COMMANDS.
    defined = {
        command.name: name
        for name in sorted(set(COMMAND_MODULES.values()))
        for command in importlib.import_module(f"codex_mcp.cli.{name}").COMMANDS
    }
    assert defined == COMMAND_MODULES, "add the new command to COMMAND_MODULES in codex_mcp/cli/root.py"
    # Asking for one command loads its group's module and no other group's.
    code = (
        "import sys, click\n"
        "from codex_mcp.cli.root import COMMAND_MODULES, cli\n"
        "cli.get_command(click.Context(cli), 'serve')\n"
        "print(sorted(m for m in set(COMMAND_MODULES.values()) if f'codex_mcp.cli.{m}' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(["serve"])


def test_the_command_tree_has_the_contract_commands() -> None:
    names = {" ".join(path) for path, _ in ALL_COMMANDS}
    for expected in (
        "serve",
        "ls",
        "show",
        "events",
        "config get",
        "config set",
        "config ls",
        "config unset",
        "db migrate",
        "db status",
        "demo",
    ):
        assert expected in names
    assert any(isinstance(c, click.Group) and path for path, c in ALL_COMMANDS)  # nested groups are walked


@pytest.mark.parametrize(
    ("path", "command"), ALL_COMMANDS, ids=[" ".join(p) or "codex-mcp" for p, _ in ALL_COMMANDS]
)
def test_every_command_has_help(
    path: tuple[str, ...], command: click.Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert (command.help or "").strip(), f"{path} has no help text"
    for flag in ("--help", "-h"):
        result = invoke(*path, flag)
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: codex-mcp" + "".join(" " + p for p in path))
        first_line = (command.help or "").strip().splitlines()[0]
        assert first_line.split()[0] in result.stdout
        assert result.stderr == ""
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            assert name in result.stdout  # the group lists its subcommands
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip() or param.name in ("help", "version"), (
                f"{path}: {param.name} has no help"
            )


def test_version_in_process() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout and "codex-mcp" in result.stdout


# ----------------------------------------------------------------------------------------------- ls


def test_ls_on_a_new_repository(here: Path) -> None:
    result = cli_ok("ls")
    assert "No running instances" in result.stdout
    assert ok_json("ls", "--all", "--json") == []
    assert db_file(here).exists()  # the default database was created in the git common dir


def test_ls_json_is_keyed_by_column_names(here: Path) -> None:
    cli_ok("db", "migrate")
    seed(db_file(here))
    rows = ok_json("ls", "--all", "--json")
    assert isinstance(rows, list)
    assert [r["id"] for r in rows] == ["work-7-a1", "review-7-a1"]  # running first, terminated last
    newest = ok_json("ls", "--all", "--sort", "newest", "--json")
    assert isinstance(newest, list)
    assert [r["id"] for r in newest] == ["review-7-a1", "work-7-a1"]
    # Every column but the token hash, which is never printed or returned; the task, kept for forks (the
    # prompt, printed, holds it); and activity_order, the hooks'
    # bookkeeping of which report is newest (activity_at says when the activity changed).
    internal = ("token_hash", "task", "activity_order")
    columns = [c for c in table_columns(db_file(here), "instances") if c not in internal]
    assert {"id", "type", "status", "worktree_path", "branch_name", "tmux_session"} <= set(columns)
    for row in rows:
        assert set(columns) <= set(row), set(columns) - set(row)
        assert "token_hash" not in row
        assert {"activity", "activity_at", "activity_detail"} <= set(row)
    work = next(r for r in rows if r["id"] == "work-7-a1")
    assert work["type"] == "work"
    assert work["status"] == "running"
    assert work["branch_name"] == "codex/work-7-a1"
    assert work["issue_number"] == 7
    assert work["issue_title"] == "Fix the frobnicator"
    review = next(r for r in rows if r["id"] == "review-7-a1")
    assert review["status"] == "terminated" and review["terminated_at"]


def test_ls_filters(here: Path) -> None:
    cli_ok("db", "migrate")
    seed(db_file(here))
    assert [r["id"] for r in ok_json("ls", "--json")] == ["work-7-a1"]  # running only by default
    assert [r["id"] for r in ok_json("ls", "--all", "--type", "review", "--json")] == ["review-7-a1"]
    assert ok_json("ls", "--type", "review", "--json") == []
    assert len(ok_json("ls", "--all", "--issue", "7", "--json")) == 2
    assert ok_json("ls", "--all", "--issue", "8", "--json") == []
    bad = invoke("ls", "--type", "boss")
    assert bad.exit_code == 2 and "boss" in bad.stderr


def test_ls_table(here: Path) -> None:
    cli_ok("db", "migrate")
    seed(db_file(here))
    out = cli_ok("ls").stdout
    assert "work-7-a1" in out and "review-7-a1" not in out
    assert "#7 Fix the frobnicator" in out
    assert "review-7-a1" in cli_ok("ls", "--all").stdout


# --------------------------------------------------------------------------------------------- show


def test_show_json_has_instance_parents_children_events(here: Path) -> None:
    cli_ok("db", "migrate")
    seed(db_file(here))
    data = ok_json("show", "work-7-a1", "--json")
    assert isinstance(data, dict)
    assert set(data) >= {"instance", "parents", "children", "events"}
    assert data["instance"]["id"] == "work-7-a1"
    assert data["instance"]["prompt"] == "fix it"
    assert set(table_columns(db_file(here), "instances")) - {"token_hash", "task", "activity_order"} <= set(
        data["instance"]
    )
    assert "token_hash" not in data["instance"]
    assert data["parents"] == []
    assert [(c["id"], c["relationship_type"]) for c in data["children"]] == [
        ("review-7-a1", "spawned_review")
    ]
    assert {e["tool_name"] for e in data["events"]} == {"spawn_review_instance", "query_instances"}
    assert all(e["instance_id"] == "work-7-a1" for e in data["events"])

    child = ok_json("show", "review-7-a1", "--json")
    assert isinstance(child, dict)
    assert [(p["id"], p["relationship_type"]) for p in child["parents"]] == [("work-7-a1", "spawned_review")]
    assert child["children"] == []
    assert [e["tool_name"] for e in child["events"]] == ["send_feedback"]
    assert child["events"][0]["success"] is False


def test_show_text(here: Path) -> None:
    cli_ok("db", "migrate")
    seed(db_file(here))
    out = cli_ok("show", "work-7-a1").stdout
    assert "work-7-a1" in out
    assert "codex/work-7-a1" in out
    assert "review-7-a1 (spawned_review)" in out
    assert "spawn_review_instance" in out


def test_show_malformed_id_is_one_line(here: Path) -> None:
    line = one_line_error(invoke("show", "bogus"), "'bogus'", "is not an instance id", "work-123-a1")
    assert "ls --all" in line
    # a trailing newline does not sneak through the id check
    one_line_error(invoke("show", "work-7-a1\n"), "is not an instance id")


def test_show_unknown_id_is_a_clear_not_found(here: Path) -> None:
    result = invoke("show", "work-424242-a9")
    one_line_error(result, "work-424242-a9", "not found", "ls --all")
    assert result.exit_code == 2


# ------------------------------------------------------------------------------------------- events


def test_events_json_and_filters(here: Path) -> None:
    cli_ok("db", "migrate")
    seed(db_file(here))
    rows = ok_json("events", "--since", "1d", "--json")
    assert isinstance(rows, list)
    assert sorted(r["tool_name"] for r in rows) == [
        "send_feedback",
        "spawn_review_instance",
    ]  # not the old one
    columns = table_columns(db_file(here), "mcp_events")
    assert {"id", "instance_id", "tool_name", "success", "error_message", "metadata", "timestamp"} <= set(
        columns
    )
    for row in rows:
        assert set(columns) <= set(row)
    spawn = next(r for r in rows if r["tool_name"] == "spawn_review_instance")
    assert spawn["metadata"] == {"duration_ms": 12.5}
    assert spawn["success"] is True and spawn["instance_id"] == "work-7-a1"

    failed = ok_json("events", "--failed", "--json")
    assert [(r["tool_name"], r["error_message"]) for r in failed] == [("send_feedback", "target is gone")]
    assert [r["tool_name"] for r in ok_json("events", "--tool", "spawn_review_instance", "--json")] == [
        "spawn_review_instance"
    ]
    assert [r["instance_id"] for r in ok_json("events", "--instance", "review-7-a1", "--json")] == [
        "review-7-a1"
    ]
    everything = ok_json("events", "--since", "1999-01-01T00:00:00Z", "--json")
    assert len(everything) == 3
    assert len(ok_json("events", "--since", "1999-01-01", "--limit", "1", "--json")) == 1
    assert ok_json("events", "--since", "1d", "--instance", "work-9-a1", "--json") == []


def test_events_text(here: Path) -> None:
    assert "No tool calls since" in cli_ok("events").stdout
    seed(db_file(here))
    out = cli_ok("events", "--since", "2h").stdout
    assert "spawn_review_instance" in out and "send_feedback" in out and "target is gone" in out


@pytest.mark.parametrize("since", ["yesterday", "1x", "-1d", "2026-13-45"])
def test_events_bad_since_is_one_line(here: Path, since: str) -> None:
    one_line_error(invoke("events", "--since", since), since, "30m")


def test_events_bad_instance_is_one_line(here: Path) -> None:
    one_line_error(invoke("events", "--instance", "nope"), "'nope'", "is not an instance id")


# ------------------------------------------------------------------------------------------- config


def test_config_set_get_ls_unset(here: Path) -> None:
    assert cli_ok("config", "get", "terminal.theme").stdout == "dark\n"
    entry = ok_json("config", "get", "terminal.theme", "--json")
    assert entry == {
        "key": "terminal.theme",
        "value": "dark",
        "is_encrypted": False,
        "source": "default",
        "updated_at": None,
    }
    assert cli_ok("config", "set", "terminal.theme", "light").stdout == "terminal.theme = light\n"
    assert cli_ok("config", "get", "terminal.theme").stdout == "light\n"
    listed = {e["key"]: e for e in ok_json("config", "ls", "--json")}
    assert listed["terminal.theme"]["value"] == "light" and listed["terminal.theme"]["source"] == "database"
    assert listed["editor.command"]["value"] == "code" and listed["editor.command"]["source"] == "default"
    assert "terminal.theme" in cli_ok("config", "ls").stdout
    assert cli_ok("config", "unset", "terminal.theme").stdout == "terminal.theme removed\n"
    assert cli_ok("config", "get", "terminal.theme").stdout == "dark\n"
    assert cli_ok("config", "unset", "terminal.theme").stdout == "terminal.theme was not set\n"
    # persisted in the repository's database
    with sqlite3.connect(db_file(here)) as conn:
        assert conn.execute("SELECT COUNT(*) FROM user_config").fetchone()[0] == 0
    conn.close()


def test_config_secret_is_masked_unless_revealed(here: Path, env: dict[str, str]) -> None:
    value = "canary-cli-4b1d0c"
    out = cli_ok("config", "set", "github.token", value, "--secret").stdout
    assert value not in out and "(encrypted)" in out
    assert Path(env["CODEX_MCP_SECRET_KEY_FILE"]).exists()
    assert cli_ok("config", "get", "github.token").stdout == "********\n"
    masked = ok_json("config", "get", "github.token", "--json")
    assert masked["value"] == "********" and masked["is_encrypted"] is True
    assert cli_ok("config", "get", "github.token", "--reveal").stdout == value + "\n"
    revealed = ok_json("config", "get", "github.token", "--reveal", "--json")
    assert revealed["value"] == value
    ls_text = cli_ok("config", "ls").stdout
    assert value not in ls_text and "github.token" in ls_text and "encrypted" in ls_text
    ls_json = cli_ok("config", "ls", "--json").stdout
    assert value not in ls_json
    assert {e["key"]: e["value"] for e in json.loads(ls_json)}["github.token"] == "********"
    for suffix in ("", "-wal", "-shm"):
        f = Path(str(db_file(here)) + suffix)
        if f.exists():
            assert value.encode() not in f.read_bytes()


def test_config_secret_can_come_from_stdin_instead_of_the_command_line(here: Path) -> None:
    value = "canary-stdin-" + "9" * 20
    for args in (
        ("config", "set", "github.token", "--secret"),
        ("config", "set", "github.token", "-", "--secret"),
    ):
        result = CliRunner().invoke(cli, list(args), prog_name="codex-mcp", input=value + "\n")  # stdin
        assert result.exit_code == 0, result.output
        assert value not in result.output and "(encrypted)" in result.output
        assert cli_ok("config", "get", "github.token", "--reveal").stdout == value + "\n"
    assert "standard input" in cli_ok("config", "set", "--help").stdout


def test_config_secret_without_key_file_is_one_line(here: Path, env: dict[str, str]) -> None:
    cli_ok("config", "set", "github.token", "canary-x", "--secret")
    Path(env["CODEX_MCP_SECRET_KEY_FILE"]).unlink()
    assert cli_ok("config", "get", "github.token").stdout == "********\n"  # the mask needs no key
    one_line_error(
        invoke("config", "get", "github.token", "--reveal"), "missing", env["CODEX_MCP_SECRET_KEY_FILE"]
    )


def test_config_errors_are_one_line(here: Path) -> None:
    result = invoke("config", "set", "terminal.theme", "blue")
    one_line_error(result, "'blue'", "terminal.theme", "dark")
    assert result.exit_code == 2
    one_line_error(invoke("config", "set", "github.token", "canary-y"), "--secret")
    one_line_error(invoke("config", "get", "github.token"), "not set", "config set github.token")
    one_line_error(invoke("config", "get", "NoDots"), "is not a config key")
    one_line_error(invoke("config", "unset", "bad key"), "is not a config key")
    assert cli_ok("config", "get", "terminal.theme").stdout == "dark\n"  # nothing was stored


# ----------------------------------------------------------------------------------------------- db


def test_db_status_and_migrate(here: Path) -> None:
    status = ok_json("db", "status", "--json")
    assert status == {
        "path": str(db_file(here)),
        "exists": False,
        "version": 0,
        "latest": LATEST,
        "pending": MIGRATION_NAMES,
    }
    assert not db_file(here).exists()  # reporting created nothing
    assert "not created yet" in cli_ok("db", "status").stdout
    out = cli_ok("db", "migrate").stdout
    for name in MIGRATION_NAMES:
        assert name in out
    assert f"schema version {LATEST}" in out
    assert schema_version(db_file(here)) == LATEST
    status = ok_json("db", "status", "--json")
    assert status == {
        "path": str(db_file(here)),
        "exists": True,
        "version": LATEST,
        "latest": LATEST,
        "pending": [],
    }
    assert "up to date" in cli_ok("db", "migrate").stdout
    text = cli_ok("db", "status").stdout
    assert str(db_file(here)) in text and "up to date" in text


def test_db_flag_and_variable_choose_the_file(
    here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flag_db = tmp_path / "flag" / "x.db"
    cli_ok("--db", str(flag_db), "db", "migrate")
    assert schema_version(flag_db) == LATEST
    assert ok_json("--db", str(flag_db), "db", "status", "--json")["path"] == str(flag_db)
    var_db = tmp_path / "var.db"
    monkeypatch.setenv("CODEX_MCP_DB", str(var_db))
    cli_ok("config", "set", "editor.command", "vim")
    assert ok_json("db", "status", "--json")["path"] == str(var_db)
    assert cli_ok("--db", str(flag_db), "config", "get", "editor.command").stdout == "code\n"  # the flag wins
    assert cli_ok("config", "get", "editor.command").stdout == "vim\n"
    assert not db_file(here).exists()


def test_database_newer_than_the_code(here: Path) -> None:
    cli_ok("db", "migrate")
    path = db_file(here)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations (version) VALUES (?)", (LATEST + 1,))
    conn.close()
    before = path.read_bytes()

    status = ok_json("db", "status", "--json")
    assert status["version"] == LATEST + 1 and status["latest"] == LATEST and status["pending"] == []
    text = cli_ok("db", "status").stdout
    assert "newer" in text and "upgrade" in text

    result = invoke("ls")
    one_line_error(result, str(path), f"version {LATEST + 1}", "upgrade")
    assert result.exit_code == 3
    one_line_error(invoke("db", "migrate"), "upgrade")
    one_line_error(invoke("config", "set", "editor.command", "vim"), "upgrade")

    assert path.read_bytes() == before
    assert schema_version(path) == LATEST + 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM user_config").fetchone()[0] == 0
    conn.close()


def test_database_path_inside_a_regular_file(
    here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("just text\n")
    bad = blocker / "codex.db"
    monkeypatch.setenv("CODEX_MCP_DB", str(bad))
    for args in (("ls",), ("db", "status"), ("db", "migrate"), ("config", "ls")):
        one_line_error(invoke(*args), str(bad), "CODEX_MCP_DB")
    assert blocker.read_text() == "just text\n"


def test_database_path_that_is_a_folder(here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    monkeypatch.setenv("CODEX_MCP_DB", str(folder))
    one_line_error(invoke("ls"), str(folder), "folder")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("kind", ["random bytes", "damaged pages"])
def test_corrupt_database_is_one_line_and_untouched(here: Path, kind: str) -> None:
    path = db_file(here)
    if kind == "random bytes":
        path.parent.mkdir(parents=True)
        path.write_bytes(b"this is not a database at all\n" * 300)
    else:
        cli_ok("config", "set", "editor.command", "vim")
        data = bytearray(path.read_bytes())
        data[4096:] = b"\xab" * (len(data) - 4096)  # keep the header page, wreck every other page
        path.write_bytes(bytes(data))
    before = path.read_bytes()
    for args in (("ls",), ("db", "status"), ("db", "migrate"), ("config", "get", "editor.command")):
        one_line_error(invoke(*args), str(path), "not a usable SQLite database", "CODEX_MCP_DB")
    assert path.read_bytes() == before


def test_foreign_sqlite_database_is_refused_untouched(
    here: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "someone-elses.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    before = other.read_bytes()
    monkeypatch.setenv("CODEX_MCP_DB", str(other))
    one_line_error(invoke("ls"), "customers", "not a codex-mcp database")
    one_line_error(invoke("db", "migrate"), "not a codex-mcp database")
    assert other.read_bytes() == before
    assert table_columns(other, "instances") == []


# -------------------------------------------------------------------------------- settings errors


def test_bad_environment_variable_is_one_line(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEX_MCP_PORT", "abc")
    for args in (("ls",), ("config", "ls"), ("db", "status")):
        result = invoke(*args)
        one_line_error(result, "CODEX_MCP_PORT", "'abc'", "65535")
        assert result.exit_code == 3
    assert not db_file(here).exists()  # nothing ran


def test_bad_log_level_flag_is_one_line(here: Path) -> None:
    one_line_error(invoke("--log-level", "LOUD", "ls"), "--log-level", "'LOUD'")


def test_outside_a_repository_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.chdir(outside)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for args in (("ls",), ("db", "status"), ("config", "ls")):
        one_line_error(invoke(*args), "not inside a git repository", "CODEX_MCP_DB")
    assert list(outside.iterdir()) == []
    monkeypatch.setenv("CODEX_MCP_DB", str(tmp_path / "explicit.db"))
    assert ok_json("ls", "--json") == []


# ------------------------------------------------------------------------------ real subprocesses


def test_version_subprocess(repo: Path, cli_env: dict[str, str]) -> None:
    done = run_cli("--version", cwd=repo, env=cli_env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"codex-mcp, version {__version__}"


def test_errors_in_a_real_process_are_one_line(repo: Path, cli_env: dict[str, str]) -> None:
    done = run_cli("show", "bogus", cwd=repo, env=cli_env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("codex-mcp: error: ")
    assert "Traceback" not in done.stderr

    done = run_cli("ls", cwd=repo, env={**cli_env, "CODEX_MCP_PORT": "abc"})
    assert done.returncode == 3
    assert done.stderr.splitlines() == [
        "codex-mcp: error: CODEX_MCP_PORT='abc' is not a TCP port; use a number from 0 to 65535"
    ]
