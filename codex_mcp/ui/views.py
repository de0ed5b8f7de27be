"""What the pages show, computed from the store: the instance list as a graph, words for states."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codex_mcp.agents import AgentFiles
from codex_mcp.store import Database
from codex_mcp.store import dashboard as dashboard_store
from codex_mcp.store.dashboard import ListedInstance

View = Literal["active", "inactive", "all"]
VIEWS: tuple[View, ...] = ("active", "inactive", "all")

ACTIVITY_WORDS = {"waiting": "waiting for you", "idle": "idle", "working": "working"}
# What needs a person first: waiting, then idle, then working, then unknown.
ACTIVITY_RANK = {"waiting": 0, "idle": 1, "working": 2}


@dataclass
class Row:
    instance: ListedInstance
    depth: int = 0
    relationship: str | None = None  # how it hangs under its parent: "review" or "fork"
    review_round: int | None = None  # for a review: which round of its work instance
    reviews: int = 0  # for a work instance: rounds spent
    activity: str | None = None
    activity_at: str | None = None
    activity_detail: str | None = None  # what a waiting agent asked, from its Notification hook

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


# A person scans the top of the list (what needs them is sorted first); 1,000 rows at once is a page
# nobody reads that costs every live refresh. "Show more" raises the limit by this much.
PAGE = 200


@dataclass
class Listing:
    """The rows shown, in display order, and how many the view holds (the rest: behind "Show more")."""

    rows: list[Row]
    total: int
    limit: int

    @property
    def more(self) -> int:
        return self.total - len(self.rows)


async def instance_rows(
    db: Database, view: View, *, person_root: Path | None = None, limit: int = PAGE
) -> Listing:
    """The list in display order: each root, then its reviews and forks under it (depth first).

    The order and the graph come from two narrow queries over every row; whole rows are read only for
    the first ``limit`` shown (a tree is never cut: the last one shown may go past the limit).
    ``person_root`` leaves the person's own identity out: it is not an agent.
    """
    status = {"active": "running", "inactive": "terminated", "all": None}[view]
    order = await dashboard_store.list_order(db, status=status, person_root=person_root)
    edges = await dashboard_store.all_edges(db)
    listed = {instance_id: activity for instance_id, activity in order}
    children: dict[str, list[tuple[str, str]]] = {}
    parent_of: dict[str, str] = {}
    rounds: dict[str, int] = {}
    round_of: dict[str, int] = {}
    for edge in edges:
        parent, child = edge.parent_instance, edge.child_instance
        if edge.relationship_type == "spawned_review":
            rounds[parent] = rounds.get(parent, 0) + 1
            round_of[child] = rounds[parent]
        if parent in listed and child in listed:
            parent_of[child] = parent
            kind = "review" if edge.relationship_type == "spawned_review" else "fork"
            children.setdefault(parent, []).append((child, kind))
    roots = [i for i, _ in order if i not in parent_of]
    # Stable: newest first within a rank.
    roots.sort(key=lambda i: ACTIVITY_RANK.get(listed[i] or "", 3))
    shown: list[tuple[str, int, str | None]] = []  # id, depth, relationship

    def walk(instance_id: str, depth: int, relationship: str | None) -> None:
        shown.append((instance_id, depth, relationship))
        for child, kind in children.get(instance_id, ()):
            walk(child, depth + 1, kind)

    for root in roots:
        if len(shown) >= limit:
            break
        walk(root, 0, None)
    found = await dashboard_store.listed_instances(db, [i for i, _, _ in shown])
    rows = []
    for instance_id, depth, relationship in shown:
        summary = found.get(instance_id)
        if summary is None:  # removed between the two reads
            continue
        rows.append(
            Row(
                instance=summary,
                depth=depth,
                relationship=relationship,
                review_round=round_of.get(instance_id),
                reviews=rounds.get(instance_id, 0),
                activity=summary.activity,
                activity_at=summary.activity_at,
                activity_detail=summary.activity_detail,
            )
        )
    return Listing(rows=rows, total=len(order), limit=limit)


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
