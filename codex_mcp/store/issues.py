"""The ``github_issues`` table: the local cache of the repository's GitHub issues."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from codex_mcp.store.db import Database, Tx
from codex_mcp.store.rows import Row

IssueState = Literal["open", "closed"]


class Issue(Row):
    number: int = Field(description="Issue number")
    title: str = Field(description="Issue title")
    body: str | None = Field(default=None, description="Issue text (markdown)")
    state: IssueState = Field(description="open or closed")
    assignee: str | None = Field(default=None, description="Login of the assignee")
    labels: list[str] = Field(default_factory=list, description="Label names")
    created_at: str | None = Field(default=None, description="Created on GitHub, UTC")
    updated_at: str | None = Field(default=None, description="Last updated on GitHub, UTC")
    synced_at: str | None = Field(default=None, description="When it was last cached, UTC")
    repo_owner: str = Field(description="Repository owner")
    repo_name: str = Field(description="Repository name")


def _issue(row: Any) -> Issue:
    data = dict(row)
    try:
        labels = json.loads(data.get("labels") or "[]")
    except ValueError:
        labels = []
    data["labels"] = [str(x) for x in labels] if isinstance(labels, list) else []
    return Issue.model_validate(data)


async def get(db: Database | Tx, number: int) -> Issue | None:
    row = await db.fetchone("SELECT * FROM github_issues WHERE number = ?", (number,))
    return _issue(row) if row else None


async def upsert_many(tx: Tx, issues: list[Issue]) -> None:
    await tx.executemany(
        "INSERT INTO github_issues (number, title, body, state, assignee, labels, created_at, updated_at, "
        "synced_at, repo_owner, repo_name) VALUES (?, ?, ?, ?, ?, ?, ?, ?, CURRENT_TIMESTAMP, ?, ?) "
        "ON CONFLICT (number) DO UPDATE SET title = excluded.title, body = excluded.body, "
        "state = excluded.state, assignee = excluded.assignee, labels = excluded.labels, "
        "created_at = excluded.created_at, updated_at = excluded.updated_at, synced_at = excluded.synced_at, "
        "repo_owner = excluded.repo_owner, repo_name = excluded.repo_name",
        [
            (
                i.number,
                i.title,
                i.body,
                i.state,
                i.assignee,
                json.dumps(i.labels),
                i.created_at,
                i.updated_at,
                i.repo_owner,
                i.repo_name,
            )
            for i in issues
        ],
    )


async def newest_updated_at(db: Database) -> str | None:
    row = await db.fetchone("SELECT MAX(updated_at) FROM github_issues")
    return str(row[0]) if row and row[0] else None


async def repositories(db: Database) -> list[tuple[str, str]]:
    rows = await db.fetchall("SELECT DISTINCT repo_owner, repo_name FROM github_issues")
    return [(str(r[0]), str(r[1])) for r in rows]


async def updated_at_of(db: Database, numbers: list[int]) -> dict[int, str | None]:
    """updated_at of the cached issues among ``numbers`` (to tell changed from unchanged).

    One statement for any number of issues (the numbers as one JSON array): a sync of 10,000 issues
    asked 20 chunks of 500 before, each a hop to the connection's thread.
    """
    rows = await db.fetchall(
        "SELECT number, updated_at FROM github_issues WHERE number IN (SELECT value FROM json_each(?))",
        (json.dumps(numbers),),
    )
    return {int(r[0]): r[1] for r in rows}


async def search(
    db: Database,
    *,
    state: str | None = None,
    label: str | None = None,
    assignee: str | None = None,
    text: str | None = None,
    limit: int = 100,
) -> list[Issue]:
    """Cached issues, most recently updated first, filtered (labels match whole names)."""
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if assignee is not None:
        where.append("assignee = ?")
        params.append(assignee)
    if label is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(github_issues.labels) WHERE json_each.value = ?)")
        params.append(label)
    if text is not None:
        # Unicode case folding (db.casefold): SQLite's lower() folds ASCII letters only.
        where.append("(instr(casefold(title), ?) > 0 OR instr(casefold(coalesce(body, '')), ?) > 0)")
        params.extend([text.casefold(), text.casefold()])
    sql = "SELECT * FROM github_issues"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY updated_at DESC, number DESC LIMIT ?"
    params.append(limit)
    return [_issue(r) for r in await db.fetchall(sql, params)]
