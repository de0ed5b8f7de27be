"""``instances.activity``: what an agent's hooks report (working, waiting, idle), and the notify command.

Plain ``_sqlite3`` and nothing else: ``codex-mcp hook`` runs inside every agent turn, where the async
store (aiosqlite, anyio, pydantic) -- even pathlib, which imports re -- would cost more than the whole
hook is allowed to take: paths are plain strings here. ``_sqlite3`` is the C module the ``sqlite3``
package wraps (the same ``connect``, ``Connection`` and errors); the package adds only the default
datetime adapters, and importing ``datetime`` for them would cost the hook about a sixth of a bare
interpreter start. The connection never creates the database (``mode=rw``) and gives up on a busy one
after a short wait.
"""

from __future__ import annotations

import _sqlite3
import os.path

NOTIFY_KEY = "notify.command"
Error = _sqlite3.Error  # what a failing connection or statement raises


def connect(path: str, *, busy_timeout: float) -> _sqlite3.Connection:
    """Open an existing database for reading and writing; ``Error`` (OperationalError) when it is missing."""
    # What a file: URI must escape in a path (urllib.parse would cost the hook its import time).
    uri_path = path.replace("%", "%25").replace("?", "%3f").replace("#", "%23")
    conn = _sqlite3.connect(f"file:{uri_path}?mode=rw", uri=True, timeout=busy_timeout, isolation_level=None)
    # As the store does: WAL (set when the database was made) with synchronous=NORMAL needs no fsync per commit.
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def find_running_containing(conn: _sqlite3.Connection, path: str) -> str | None:
    """Id of the running instance whose worktree contains ``path`` (absolute; the deepest when nested)."""
    candidates = [path]
    while (parent := os.path.dirname(candidates[-1])) != candidates[-1]:
        candidates.append(parent)
    row = conn.execute(
        f"SELECT id FROM instances WHERE worktree_path IN ({', '.join('?' * len(candidates))}) "
        "AND status = 'running' ORDER BY length(worktree_path) DESC, created_at DESC LIMIT 1",
        candidates,
    ).fetchone()
    return str(row[0]) if row else None


class UnknownInstance(LookupError):
    """No ``instances`` row has the id the hook was given."""


class Change:
    """What a report changed: the activity before and after, and the detail now recorded.

    A plain class: dataclasses would import inspect, too slow for the hook."""

    __slots__ = ("after", "before", "detail")

    def __init__(self, before: str | None, after: str | None, detail: str | None) -> None:
        self.before = before
        self.after = after
        self.detail = detail

    def __repr__(self) -> str:
        return f"Change({self.before!r} -> {self.after!r}, {self.detail!r})"


def record(
    conn: _sqlite3.Connection,
    instance_id: str,
    activity: str | None,
    detail: str | None,
    *,
    order: float,
    keep_detail: bool = False,
) -> Change | None:
    """Record a report made at ``order`` (Unix seconds); the change, or None when nothing changed.
    ``UnknownInstance`` when no row has that id.

    ``activity`` None keeps the current activity and only replaces the detail; ``keep_detail`` keeps the
    detail when the activity stays the same (``detail`` is used otherwise). A report older than the
    one recorded is dropped: hooks run asynchronously, so a slow ``UserPromptSubmit`` may finish after
    the ``Stop`` of the same turn. ``activity_at`` moves only when the activity itself changes.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute(
            "SELECT activity, activity_detail, activity_order FROM instances WHERE id = ?", (instance_id,)
        ).fetchone()
        if row is None:
            raise UnknownInstance(instance_id)
        before, old_detail, old_order = row
        if old_order is not None and order < old_order:
            conn.execute("ROLLBACK")
            return None
        after = before if activity is None else activity
        if keep_detail and after == before:
            detail = old_detail
        if after == before and detail == old_detail:
            # Nothing to show, but the newer order keeps an older report from overwriting this one.
            conn.execute("UPDATE instances SET activity_order = ? WHERE id = ?", (order, instance_id))
            conn.execute("COMMIT")
            return None
        conn.execute(
            "UPDATE instances SET activity = ?, activity_detail = ?, activity_order = ?, "
            "activity_at = CASE WHEN activity IS ? AND activity_at IS NOT NULL THEN activity_at "
            "ELSE datetime(?, 'unixepoch') END WHERE id = ?",
            (after, detail, order, after, order, instance_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return Change(before=before, after=after, detail=detail)


def notify_command(conn: _sqlite3.Connection) -> tuple[str, bool] | None:
    """The ``notify.command`` setting and whether it is stored encrypted; None when unset."""
    row = conn.execute("SELECT value, is_encrypted FROM user_config WHERE key = ?", (NOTIFY_KEY,)).fetchone()
    return (str(row[0]), bool(row[1])) if row else None
