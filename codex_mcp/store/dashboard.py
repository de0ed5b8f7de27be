"""What the web dashboard reads beyond the other store modules: change marks, the graph, attention.

The live stream polls :func:`data_version` a few times a second; only when it moved (another
connection committed) or this process wrote does it pay for :func:`instance_marks` and
:func:`events_after`. ``instances.activity`` arrives with a later migration: every reader here
works with and without that column.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from codex_mcp.store.db import Database
from codex_mcp.store.instances import PERSON_ROWS
from codex_mcp.store.rows import Row

# Columns whose change is "an instance row changed" for the stream (activity ones when present).
_MARK_COLUMNS = ("status", "pr_number", "pr_state", "claude_pid", "terminated_at", "tmux_socket")
_ACTIVITY_COLUMNS = ("activity", "activity_at")  # activity_detail changes with activity_at
_LATER_COLUMNS = ("merged_into",)


class Edge(Row):
    parent_instance: str
    child_instance: str
    relationship_type: str


class EventMark(Row):
    id: int
    instance_id: str
    tool_name: str
    success: bool


async def data_version(db: Database) -> int:
    """SQLite's counter of commits made by *other* connections to this file (a cheap change probe)."""
    row = await db.fetchone("PRAGMA data_version")
    return int(row[0]) if row else 0


async def columns_of(db: Database, table: str) -> set[str]:
    return {str(r["name"]) for r in await db.fetchall(f"PRAGMA table_info({table})")}


async def has_activity(db: Database) -> bool:
    return "activity" in await columns_of(db, "instances")


async def instance_marks(db: Database, *, activity: bool) -> dict[str, tuple[Any, ...]]:
    """Per instance id, the values whose change the dashboard shows."""
    columns = _MARK_COLUMNS + (_ACTIVITY_COLUMNS if activity else ())
    if activity:  # merged_into arrived after the activity columns (migration 0008)
        present = await columns_of(db, "instances")
        columns += tuple(c for c in _LATER_COLUMNS if c in present)
    rows = await db.fetchall(f"SELECT id, {', '.join(columns)} FROM instances")
    return {str(r[0]): tuple(r[1:]) for r in rows}


async def last_event_id(db: Database) -> int:
    row = await db.fetchone("SELECT max(id) FROM mcp_events")
    return int(row[0]) if row and row[0] is not None else 0


async def events_after(db: Database, after_id: int, *, limit: int = 200) -> list[EventMark]:
    rows = await db.fetchall(
        "SELECT id, instance_id, tool_name, success FROM mcp_events WHERE id > ? ORDER BY id LIMIT ?",
        (after_id, limit),
    )
    return [EventMark.model_validate(dict(r)) for r in rows]


async def list_order(
    db: Database, *, status: str | None, person_root: Path | None
) -> list[tuple[str, str | None]]:
    """(id, activity if running) of every instance the list shows, newest first: what the graph and the
    order need.

    Two narrow columns for every row; the whole rows are read only for the page shown
    (:func:`listed_instances`). ``person_root`` leaves the person's identity out.
    """
    where: list[str] = []
    params: list[object] = []
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if person_root is not None:
        where.append(f"NOT {PERSON_ROWS.format(t='')}")
        params.append(str(person_root))
    # A terminated agent's last activity is history, not something waiting for a person now.
    sql = "SELECT id, CASE WHEN status = 'running' THEN activity END FROM instances"
    if where:
        sql += " WHERE " + " AND ".join(where)
    rows = await db.fetchall(sql + " ORDER BY created_at DESC, rowid DESC", params)
    return [(str(r[0]), r[1]) for r in rows]


class ListedInstance(NamedTuple):
    """What one row of the dashboard's list shows: the columns read straight, not a validated model
    (hundreds of rows per page, refreshed on every change; the store wrote these values itself)."""

    id: str
    type: str
    status: str
    branch_name: str
    issue_number: int | None
    issue_title: str | None
    pr_number: int | None
    pr_url: str | None
    pr_state: str | None
    merged_into: str | None
    activity: str | None
    activity_at: str | None
    activity_detail: str | None


async def listed_instances(db: Database, ids: list[str]) -> dict[str, ListedInstance]:
    """The list's rows of ``ids`` (any number: they travel as one JSON array, not one ``?`` each)."""
    columns = ", ".join("gi.title" if c == "issue_title" else f"i.{c}" for c in ListedInstance._fields)
    rows = await db.fetchall(
        f"SELECT {columns} FROM instances i "
        "LEFT JOIN github_issues gi ON i.issue_number = gi.number "
        "WHERE i.id IN (SELECT value FROM json_each(?))",
        (json.dumps(ids),),
    )
    return {str(r[0]): ListedInstance(*r) for r in rows}


async def all_edges(db: Database) -> list[Edge]:
    rows = await db.fetchall(
        "SELECT parent_instance, child_instance, relationship_type FROM instance_relationships ORDER BY id"
    )
    return [Edge.model_validate(dict(r)) for r in rows]


class Activity(Row):
    """What an agent is doing, since when (UTC), and what it said (a waiting agent's message)."""

    activity: str | None = None
    at: str | None = None
    detail: str | None = None


async def activities(db: Database) -> dict[str, Activity]:
    """Per instance id that reported one, its activity; empty while the column does not exist."""
    columns = await columns_of(db, "instances")
    if "activity" not in columns:
        return {}
    detail = "activity_detail" if "activity_detail" in columns else "NULL"
    rows = await db.fetchall(
        f"SELECT id, activity, activity_at, {detail} FROM instances WHERE activity IS NOT NULL"
    )
    return {
        str(r[0]): Activity(activity=r[1], at=None if r[2] is None else str(r[2]), detail=r[3]) for r in rows
    }


async def waiting_count(db: Database) -> int:
    """Running instances waiting for a person; 0 while the activity column does not exist."""
    if not await has_activity(db):
        return 0
    row = await db.fetchone(
        "SELECT count(*) FROM instances WHERE status = 'running' AND activity = 'waiting'"
    )
    return int(row[0]) if row else 0
