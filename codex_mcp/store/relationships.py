"""The ``instance_relationships`` table: links made through our tools (reviews spawned, forks)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from codex_mcp.store.db import Database, Tx
from codex_mcp.store.instances import _COLUMNS, Instance

RelationshipType = Literal["spawned_review", "created_fork"]


class Relationship(BaseModel):
    parent_instance: str
    child_instance: str
    relationship_type: RelationshipType


class RelatedInstance(Instance):
    """An instance seen through a relationship (the seed's relationship query)."""

    relationship_type: RelationshipType = Field(description="spawned_review or created_fork")
    relationship_created: str | None = Field(default=None, description="When the link was made, UTC")


async def add(tx: Tx, relationship: Relationship) -> None:
    await tx.execute(
        "INSERT INTO instance_relationships (parent_instance, child_instance, relationship_type) VALUES (?, ?, ?)",
        (relationship.parent_instance, relationship.child_instance, relationship.relationship_type),
    )


def _related(join_on: str, where: str) -> str:
    cols = ", ".join(f"other.{c}" for c in _COLUMNS.split(", "))
    return (
        f"SELECT {cols}, gi.title AS issue_title, ir.relationship_type, ir.created_at AS relationship_created "
        f"FROM instances other JOIN instance_relationships ir ON other.id = ir.{join_on} "
        f"LEFT JOIN github_issues gi ON other.issue_number = gi.number WHERE {where} "
        "ORDER BY ir.created_at, ir.id"
    )


async def reviews_spawned_from(db: Database, parent_instance: str) -> list[RelatedInstance]:
    """The seed's query: every review instance spawned from a work instance."""
    rows = await db.fetchall(
        _related("child_instance", "ir.parent_instance = ? AND ir.relationship_type = 'spawned_review'"),
        (parent_instance,),
    )
    return [RelatedInstance.model_validate(dict(r)) for r in rows]


async def children_of(db: Database | Tx, parent_instance: str) -> list[RelatedInstance]:
    rows = await db.fetchall(_related("child_instance", "ir.parent_instance = ?"), (parent_instance,))
    return [RelatedInstance.model_validate(dict(r)) for r in rows]


async def parents_of(db: Database | Tx, child_instance: str) -> list[RelatedInstance]:
    rows = await db.fetchall(_related("parent_instance", "ir.child_instance = ?"), (child_instance,))
    return [RelatedInstance.model_validate(dict(r)) for r in rows]
