"""``user_config``: persistent preferences with the seed's defaults, and encrypted secrets."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from codex_mcp import secrets
from codex_mcp.errors import InputError
from codex_mcp.store import Database
from codex_mcp.store import config as config_store

_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z")
MASK = "********"


def _choice(*allowed: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value in allowed else f"use one of: {', '.join(allowed)}"

    return check


def _positive_int(value: str) -> str | None:
    return None if value.isdigit() and int(value) > 0 else "use a whole number greater than 0"


def _repo(value: str) -> str | None:
    return None if re.match(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+\Z", value) else "use the form owner/name"


def _non_empty(value: str) -> str | None:
    return None if value.strip() else "use a non-empty value"


NOTIFY_PLACEHOLDERS = ("instance_id", "activity", "message")  # what codex_mcp/hook.py substitutes


def _command(placeholders: tuple[str, ...], example: str) -> Callable[[str], str | None]:
    """A command split like a shell would (no shell runs it), with known placeholders only."""

    def check(value: str) -> str | None:
        try:
            words = shlex.split(value)
        except ValueError as exc:
            return f"it cannot be split into arguments ({exc}); check the quoting"
        if not words:
            return f"use a command, e.g. {example}"
        for word in words:
            for name in re.findall(r"\{([^{}]*)\}", word):
                if name not in placeholders:
                    known = ", ".join("{" + p + "}" for p in placeholders)
                    return f"unknown placeholder {{{name}}}; known: {known}"
        return None

    return check


_notify_command = _command(NOTIFY_PLACEHOLDERS, "notify-send 'codex {instance_id}' '{activity}: {message}'")
EDITOR_PLACEHOLDERS = ("path",)  # what codex_mcp/editor.py substitutes


@dataclass(frozen=True)
class KnownKey:
    description: str
    default: str | None = None
    check: Callable[[str], str | None] = _non_empty
    secret: bool = False
    # Read by `codex-mcp hook`, which holds no key: never stored encrypted.
    plain: bool = False


KNOWN_KEYS: dict[str, KnownKey] = {
    "editor.command": KnownKey(
        "command that opens a worktree in your editor (`codex-mcp open`), run without a shell; placeholder "
        "{path} (the worktree; added at the end when absent)",
        "code",  # the seed's default; without {path} the worktree is added at the end: `code {path}`
        _command(EDITOR_PLACEHOLDERS, "vim {path}"),
    ),
    "worktrees.base_path": KnownKey(
        "where instance worktrees go, relative to the repository root", "./worktrees"
    ),
    "terminal.theme": KnownKey("colour theme for terminal output", "dark", _choice("dark", "light")),
    "instances.cleanup_policy": KnownKey(
        "what terminating an instance does with its worktree: manual keeps everything; remove_worktree "
        "removes a clean worktree; remove_all also deletes a branch that is pushed or merged",
        "manual",
        _choice("manual", "remove_worktree", "remove_all"),
    ),
    "reviews.max_iterations": KnownKey("review rounds allowed per work instance", "3", _positive_int),
    "github.repo": KnownKey("owner/name of the GitHub repository, when origin does not tell", None, _repo),
    "notify.command": KnownKey(
        "command run (no shell) when an instance starts waiting for you or finishes a turn; placeholders "
        "{instance_id} {activity} {message}; only Claude Code agents report activity",
        None,
        _notify_command,
        plain=True,
    ),
    "github.poll_seconds": KnownKey(
        "how often long-running processes (serve over HTTP, ui) ask GitHub whether the pull requests of "
        "running instances were merged or closed (unchanged ones cost no rate limit)",
        "60",
        _positive_int,
    ),
    "github.token": KnownKey(
        "GitHub token (stored encrypted; GITHUB_TOKEN wins)", None, _non_empty, secret=True
    ),
}


class ConfigEntry(BaseModel):
    key: str = Field(description="Config key")
    value: str | None = Field(description="Value; secrets are masked")
    is_encrypted: bool = Field(description="Stored encrypted")
    source: Literal["database", "default"] = Field(description="Set by a user, or the built-in default")
    updated_at: str | None = Field(default=None, description="When it was last set, UTC")


class ConfigUnset(BaseModel):
    """What ``config unset`` did (kept with its recorded event; the command prints one line)."""

    key: str = Field(description="Config key")
    removed: bool = Field(description="False when it was not set")


def check_key(key: str) -> None:
    if not _KEY.match(key):
        known = ", ".join(sorted(KNOWN_KEYS))
        raise InputError(f"{key!r} is not a config key; keys look like 'section.name' (known: {known})")


class UserConfig:
    def __init__(self, db: Database, key_file: Path | None = None) -> None:
        self._db = db
        self._key_file = secrets.KeyFile(key_file)

    async def get(self, key: str) -> str | None:
        """The effective value (decrypted), the default when unset, None when neither exists."""
        check_key(key)
        row = await config_store.get(self._db, key)
        if row is None:
            known = KNOWN_KEYS.get(key)
            return known.default if known else None
        if row.is_encrypted:
            return secrets.decrypt(
                self._key_file.load(create=False), key, row.value, key_path=self._key_file.path
            )
        return row.value

    async def set(self, key: str, value: str, *, secret: bool = False) -> ConfigEntry:
        check_key(key)
        known = KNOWN_KEYS.get(key)
        if known is not None:
            if known.secret and not secret:
                raise InputError(f"{key} is sensitive and is only stored encrypted; add --secret")
            if known.plain and secret:
                raise InputError(f"{key} is read by the agents' hooks, which cannot decrypt; drop --secret")
            problem = known.check(value)
            if problem:
                raise InputError(f"{value!r} is not a valid value for {key}: {problem}")
        if "\x00" in value:
            raise InputError(f"the value for {key} contains a NUL byte; remove it")
        stored = value
        if secret:
            stored = secrets.encrypt(self._key_file.load(create=True), key, value)
        await config_store.put(self._db, key, stored, is_encrypted=secret)
        return await self.entry(key)

    async def unset(self, key: str) -> bool:
        check_key(key)
        return await config_store.delete(self._db, key)

    async def entry(self, key: str) -> ConfigEntry:
        check_key(key)
        row = await config_store.get(self._db, key)
        if row is None:
            known = KNOWN_KEYS.get(key)
            if known is None or known.default is None:
                raise InputError(f"{key} is not set; set it with `codex-mcp config set {key} VALUE`")
            return ConfigEntry(key=key, value=known.default, is_encrypted=False, source="default")
        return ConfigEntry(
            key=key,
            value=MASK if row.is_encrypted else row.value,
            is_encrypted=row.is_encrypted,
            source="database",
            updated_at=row.updated_at,
        )

    async def entries(self) -> list[ConfigEntry]:
        """Every set key and every default, secrets masked."""
        rows = {r.key: r for r in await config_store.list_all(self._db)}
        out: dict[str, ConfigEntry] = {}
        for key, known in KNOWN_KEYS.items():
            if key not in rows and known.default is not None:
                out[key] = ConfigEntry(key=key, value=known.default, is_encrypted=False, source="default")
        for key, row in rows.items():
            out[key] = ConfigEntry(
                key=key,
                value=MASK if row.is_encrypted else row.value,
                is_encrypted=row.is_encrypted,
                source="database",
                updated_at=row.updated_at,
            )
        return [out[k] for k in sorted(out)]
