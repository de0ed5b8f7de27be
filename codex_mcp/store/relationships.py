"""The ``instance_relationships`` table: links made through our tools (reviews spawned, forks)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codex_mcp.store.db import Database, Tx, as_dicts
from codex_mcp.store.instances import _COLUMNS, Instance
from codex_mcp.store.rows import Row

RelationshipType = Literal["spawned_review", "created_fork"]


class Relationship(Row):
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
    return [RelatedInstance.model_validate(d) for d in as_dicts(rows)]


async def children_of(db: Database | Tx, parent_instance: str) -> list[RelatedInstance]:
    rows = await db.fetchall(_related("child_instance", "ir.parent_instance = ?"), (parent_instance,))
    return [RelatedInstance.model_validate(d) for d in as_dicts(rows)]


async def parents_of(db: Database | Tx, child_instance: str) -> list[RelatedInstance]:
    rows = await db.fetchall(_related("parent_instance", "ir.child_instance = ?"), (child_instance,))
    return [RelatedInstance.model_validate(d) for d in as_dicts(rows)]


async def count_reviews_spawned_from(db: Database | Tx, parent_instance: str) -> int:
    row = await db.fetchone(
        "SELECT COUNT(*) FROM instance_relationships WHERE parent_instance = ? AND relationship_type = 'spawned_review'",
        (parent_instance,),
    )
    return int(row[0]) if row else 0


async def descendant_ids(db: Database | Tx, ancestor: str) -> set[str]:
    """Every instance reachable from ``ancestor`` through relationships (children, their children, ...)."""
    rows = await db.fetchall(
        "WITH RECURSIVE tree(id) AS ("
        " SELECT child_instance FROM instance_relationships WHERE parent_instance = ?"
        " UNION SELECT ir.child_instance FROM instance_relationships ir JOIN tree ON ir.parent_instance = tree.id"
        ") SELECT id FROM tree",
        (ancestor,),
    )
    return {str(r[0]) for r in rows}


async def reviewed_by(db: Database | Tx, review_instance: str) -> str | None:
    """The work instance a review instance reviews."""
    row = await db.fetchone(
        "SELECT parent_instance FROM instance_relationships WHERE child_instance = ? "
        "AND relationship_type = 'spawned_review' ORDER BY id LIMIT 1",
        (review_instance,),
    )
    return str(row[0]) if row else None


class TreeEdge(Row):
    parent_instance: str
    child_instance: str
    relationship_type: RelationshipType
    child_status: str


async def tree_of(db: Database | Tx, instance_id: str) -> tuple[str, list[TreeEdge]]:
    """The whole relationship tree ``instance_id`` belongs to: (root id, edges from the root down)."""
    row = await db.fetchone(
        "WITH RECURSIVE up(id, depth) AS ("
        " SELECT ?, 0"
        " UNION SELECT ir.parent_instance, up.depth + 1 FROM instance_relationships ir"
        " JOIN up ON ir.child_instance = up.id WHERE up.depth < 1000"
        ") SELECT id FROM up ORDER BY depth DESC LIMIT 1",
        (instance_id,),
    )
    root = str(row[0]) if row else instance_id
    rows = await db.fetchall(
        "WITH RECURSIVE down(id, depth) AS ("
        " SELECT ?, 0"
        " UNION SELECT ir.child_instance, down.depth + 1 FROM instance_relationships ir"
        " JOIN down ON ir.parent_instance = down.id WHERE down.depth < 1000"
        ") SELECT ir.parent_instance, ir.child_instance, ir.relationship_type, i.status AS child_status "
        "FROM instance_relationships ir JOIN instances i ON i.id = ir.child_instance "
        "WHERE ir.parent_instance IN (SELECT id FROM down) ORDER BY ir.id",
        (root,),
    )
    return root, [TreeEdge.model_validate(d) for d in as_dicts(rows)]
