"""What the pages show, computed from the store: the instance list as a graph, words for states."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from codex_mcp.agents import AgentFiles
from codex_mcp.store import Database
from codex_mcp.store import dashboard as dashboard_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import InstanceSummary

View = Literal["active", "inactive", "all"]
VIEWS: tuple[View, ...] = ("active", "inactive", "all")

ACTIVITY_WORDS = {"waiting": "waiting for you", "idle": "idle", "working": "working"}
# What needs a person first: waiting, then idle, then working, then unknown.
ACTIVITY_RANK = {"waiting": 0, "idle": 1, "working": 2}


@dataclass
class Row:
    instance: InstanceSummary
    depth: int = 0
    relationship: str | None = None  # how it hangs under its parent: "review" or "fork"
    review_round: int | None = None  # for a review: which round of its work instance
    reviews: int = 0  # for a work instance: rounds spent
    activity: str | None = None
    activity_at: str | None = None
    activity_detail: str | None = None  # what a waiting agent asked, from its Notification hook
    children: list[Row] = field(default_factory=list)

    @property
    def status_words(self) -> str:
        return "running" if self.instance.status == "running" else "terminated"

    @property
    def activity_words(self) -> str:
        if self.instance.status != "running":
            return ""
        return ACTIVITY_WORDS.get(self.activity or "", "unknown")

    @property
    def tree(self) -> str:
        return "   " * (self.depth - 1) + "└─ "

    @property
    def issue_words(self) -> str:
        i = self.instance
        if not i.issue_number:
            return ""
        return f"#{i.issue_number} {i.issue_title}" if i.issue_title else f"#{i.issue_number}"

    def graph_words(self, cap: str) -> str:
        if self.relationship == "review":
            return f"review round {self.review_round} of {cap}"
        if self.relationship == "fork":
            return "fork" + (
                f", {self.reviews} of {cap} review rounds" if self.instance.type == "work" else ""
            )
        if self.instance.type == "work":
            return f"{self.reviews} of {cap} review rounds"
        return ""

    @property
    def pr_words(self) -> str:
        i = self.instance
        if not i.pr_number:
            return ""
        return f"#{i.pr_number} {i.pr_state or ''}".strip()


async def instance_rows(db: Database, view: View) -> list[Row]:
    """The list in display order: each root, then its reviews and forks under it (depth first)."""
    status = {"active": "running", "inactive": "terminated", "all": None}[view]
    found = await instances_store.list_dashboard_summaries(db, status=status)  # type: ignore[arg-type]
    edges = await dashboard_store.all_edges(db)
    activity = await dashboard_store.activities(db)
    none = dashboard_store.Activity()
    rows = {
        i.id: Row(
            instance=i,
            activity=activity.get(i.id, none).activity,
            activity_at=activity.get(i.id, none).at,
            activity_detail=activity.get(i.id, none).detail,
        )
        for i in found
    }
    parent_of: dict[str, str] = {}
    rounds: dict[str, int] = {}
    for edge in edges:
        if edge.relationship_type == "spawned_review":
            rounds[edge.parent_instance] = rounds.get(edge.parent_instance, 0) + 1
            if edge.child_instance in rows:
                rows[edge.child_instance].review_round = rounds[edge.parent_instance]
        if edge.parent_instance in rows and edge.child_instance in rows:
            parent_of[edge.child_instance] = edge.parent_instance
            child = rows[edge.child_instance]
            child.relationship = "review" if edge.relationship_type == "spawned_review" else "fork"
            rows[edge.parent_instance].children.append(child)
    for instance_id, count in rounds.items():
        if instance_id in rows:
            rows[instance_id].reviews = count
    roots = [r for i, r in rows.items() if i not in parent_of]
    roots.sort(key=lambda r: ACTIVITY_RANK.get(r.activity or "", 3))  # stable: newest first within a rank
    ordered: list[Row] = []

    def walk(row: Row, depth: int) -> None:
        row.depth = depth
        ordered.append(row)
        for child in row.children:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return ordered


@dataclass(frozen=True)
class FeedbackNote:
    """One review feedback file of a work instance (``.codex/feedback/<time>Z-<from>-<id>.md``)."""

    name: str
    text: str
    truncated: bool


def feedback_thread(worktree: Path, *, limit: int = 50, max_chars: int = 100_000) -> list[FeedbackNote]:
    """The instance's review feedback, oldest first (the names start with their UTC time).

    Shown as text, never as markup; the newest ``limit`` files, each cut at ``max_chars``. A worktree
    that is gone, or a file that cannot be read, shows nothing rather than failing the page.
    """
    folder = AgentFiles(worktree).feedback
    try:
        files = sorted(p for p in folder.iterdir() if p.suffix == ".md" and p.is_file())
    except OSError:
        return []
    notes = []
    for path in files[-limit:]:
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                text = f.read(max_chars + 1)
        except OSError:
            continue
        notes.append(FeedbackNote(name=path.name, text=text[:max_chars], truncated=len(text) > max_chars))
    return notes


def hunks(patch: str) -> list[str]:
    """A file's patch lines from its first hunk on (the page already names the file and its change)."""
    lines = patch.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("@@"):
            return lines[i:]
    return lines
