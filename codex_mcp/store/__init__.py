"""The SQLite store: the connection factory, migrations, and one module per table.

SQL lives here and nowhere else. Functions are named by intent and return pydantic models.

This package's import is kept free of aiosqlite and anyio: ``store.activity`` (plain sqlite3) serves
``codex-mcp hook``, which runs inside every agent turn and must start fast. ``Database``, ``Tx`` and
``open_database`` load on first use.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: importing typing alone costs the hook a few milliseconds.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from codex_mcp.store.db import Database, Tx
    from codex_mcp.store.opening import open_database

__all__ = ["Database", "Tx", "open_database"]


def __getattr__(name: str) -> Any:
    if name in ("Database", "Tx"):
        from codex_mcp.store import db

        return getattr(db, name)
    if name == "open_database":
        from codex_mcp.store.opening import open_database

        return open_database
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
