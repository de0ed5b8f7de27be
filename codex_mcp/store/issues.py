"""The ``github_issues`` table: the local cache of the repository's GitHub issues."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from codex_mcp.store.db import Database, Tx


class Issue(BaseModel):
    number: int = Field(description="Issue number")
    title: str = Field(description="Issue title")
    body: str | None = Field(default=None, description="Issue text (markdown)")
    state: str = Field(description="open or closed")
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
