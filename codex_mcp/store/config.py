"""The ``user_config`` table: persistent preferences; sensitive values are stored encrypted."""

from __future__ import annotations

from codex_mcp.store.db import Database
from codex_mcp.store.rows import Row


class ConfigRow(Row):
    key: str
    value: str
    is_encrypted: bool
    updated_at: str | None = None


async def get(db: Database, key: str) -> ConfigRow | None:
    row = await db.fetchone(
        "SELECT key, value, is_encrypted, updated_at FROM user_config WHERE key = ?", (key,)
    )
    return ConfigRow.model_validate(dict(row)) if row else None


async def list_all(db: Database) -> list[ConfigRow]:
    rows = await db.fetchall("SELECT key, value, is_encrypted, updated_at FROM user_config ORDER BY key")
    return [ConfigRow.model_validate(dict(r)) for r in rows]


async def put(db: Database, key: str, value: str, *, is_encrypted: bool) -> None:
    async with db.write() as tx:
        await tx.execute(
            "INSERT INTO user_config (key, value, is_encrypted, updated_at) VALUES (?, ?, ?, CURRENT_TIMESTAMP) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, is_encrypted = excluded.is_encrypted, "
            "updated_at = excluded.updated_at",
            (key, value, 1 if is_encrypted else 0),
        )


async def delete(db: Database, key: str) -> bool:
    async with db.write() as tx:
        return await tx.execute("DELETE FROM user_config WHERE key = ?", (key,)) > 0
