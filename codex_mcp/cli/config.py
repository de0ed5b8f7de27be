"""``config get|set|unset|ls``: persistent settings in ``user_config``; secrets stored encrypted."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from codex_mcp.cli.output import Column, emit, output_options, print_table
from codex_mcp.cli.person import person_action
from codex_mcp.cli.running import in_app

if TYPE_CHECKING:
    from codex_mcp.app import App
    from codex_mcp.recording import ToolCall
    from codex_mcp.userconfig import ConfigEntry, ConfigUnset, UserConfig

T = TypeVar("T")

CONFIG_COLUMNS = [
    Column("key", lambda e: e.key),
    Column("value", lambda e: e.value, kind="wrap"),
    Column("source", lambda e: e.source + (", encrypted" if e.is_encrypted else ""), drop=1),
    Column("updated (UTC)", lambda e: e.updated_at),
]


@click.group()
def config() -> None:
    """Read and change persistent settings (user_config); --secret values are stored encrypted."""


def _user_config_call(ctx: click.Context, fn: Callable[[UserConfig], Awaitable[T]]) -> T:
    from codex_mcp.userconfig import UserConfig

    return in_app(ctx, lambda app: fn(UserConfig(app.db, app.settings.secret_key_file)))


@config.command("get")
@click.argument("key")
@click.option("--reveal", is_flag=True, help="Print a secret's decrypted value instead of a mask.")
@output_options()
@click.pass_context
def config_get(ctx: click.Context, key: str, reveal: bool, as_json: bool) -> None:
    """Print the value of KEY (a built-in default when it was never set)."""

    async def main(uc: UserConfig) -> dict[str, Any]:
        entry = await uc.entry(key)
        value = await uc.get(key) if (reveal or not entry.is_encrypted) else entry.value
        return {**entry.model_dump(mode="json"), "value": value}

    emit(_user_config_call(ctx, main), as_json, lambda data: click.echo(data["value"]))


@config.command("set")
@click.argument("key")
@click.argument("value", required=False)
@click.option("--secret", is_flag=True, help="Encrypt the value (the key file never enters the database).")
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str | None, secret: bool) -> None:
    """Set KEY to VALUE.

    Without VALUE (or with VALUE "-") the value is read from standard input, or asked for without
    echo on a terminal: a secret given on the command line is visible to every local user (in
    /proc) and lands in your shell history. For example:
    `codex-mcp config set github.token --secret < token.txt`.
    """
    from codex_mcp.userconfig import UserConfig

    if value is None or value == "-":
        value = _read_value(key, secret)
    given = value

    async def put(app: App, call: ToolCall) -> ConfigEntry:
        return await UserConfig(app.db, app.settings.secret_key_file).set(key, given, secret=secret)

    # Changing a setting is a person's action, recorded; a secret's value is not recorded at all.
    arguments = {"key": key, "secret": secret, **({} if secret else {"value": value})}
    entry = person_action(ctx, "config set", arguments, put)
    click.echo(f"{entry.key} = {entry.value}" + (" (encrypted)" if entry.is_encrypted else ""))


def _read_value(key: str, secret: bool) -> str:
    """VALUE from a hidden prompt on a terminal, else from standard input (one trailing newline dropped)."""
    if sys.stdin.isatty():
        return str(click.prompt(f"{key}", hide_input=secret, show_default=False))
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


@config.command("unset")
@click.argument("key")
@click.pass_context
def config_unset(ctx: click.Context, key: str) -> None:
    """Remove KEY (its built-in default, if any, applies again)."""
    from codex_mcp.userconfig import ConfigUnset, UserConfig

    async def remove(app: App, call: ToolCall) -> ConfigUnset:
        removed = await UserConfig(app.db, app.settings.secret_key_file).unset(key)
        return ConfigUnset(key=key, removed=removed)

    removed = person_action(ctx, "config unset", {"key": key}, remove).removed
    click.echo(f"{key} removed" if removed else f"{key} was not set")


@config.command("ls")
@output_options()
@click.pass_context
def config_ls(ctx: click.Context, as_json: bool) -> None:
    """List every setting and default; secrets are masked."""
    entries = _user_config_call(ctx, lambda uc: uc.entries())
    # Never empty: the built-in defaults are always listed.
    emit(entries, as_json, lambda rows: print_table(rows, CONFIG_COLUMNS))


COMMANDS: list[click.Command] = [config]
