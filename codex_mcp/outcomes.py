"""Every model a tool publishes, in one place, apart from the modules that do the work.

The work (lifecycle, the GitHub adapter, the issue cache) returns these models and the tools return
them as they are: nothing is copied field by field. Enumerations are ``Literal`` types so that the
published schemas list their values. A server imports this at start to register its tools; the
heavier modules are imported when a tool first runs, so this stays cheap (pydantic and the store's
row models only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from codex_mcp.ids import FeedbackType as FeedbackType  # defined there for the command line; re-exported
from codex_mcp.ids import Priority as Priority
from codex_mcp.store.events import Event
from codex_mcp.store.instances import Instance, InstanceSummary
from codex_mcp.store.issues import Issue
from codex_mcp.store.relationships import RelationshipType

DeliveryStatus = Literal["delivered", "queued"]
SessionOutcome = Literal["killed", "already_gone", "scheduled", "not_killed"]
RECENT_EVENTS = 20


class Outcome(BaseModel):
    """A published model: its validator and serializer are built at its first use, not at import.

    A server imports every outcome to answer any tool but uses a few: building all of them cost its
    first call ~8 ms of CPU (32 servers starting at once: figure 6).
    """

    model_config = ConfigDict(defer_build=True)


# ---------------------------------------------------------------------------------------- lifecycle
class SpawnReviewResult(Outcome):
    review_instance_id: str = Field(description="Id of the new review instance")
    session_name: str = Field(description="tmux session the reviewer runs in")
    worktree_path: str = Field(description="Worktree holding the snapshot of your work")
    branch_name: str = Field(description="Branch of the review worktree")


class ForkResult(Outcome):
    instance_id: str = Field(description="Id of the new work instance")
    session_name: str = Field(description="tmux session it runs in")
    worktree_path: str = Field(description="Its worktree, starting from a snapshot of yours")
    branch_name: str = Field(description="Its branch")


class SendFeedbackResult(Outcome):
    feedback_id: str = Field(description="Id of the feedback (also its file name)")
    delivery_status: DeliveryStatus = Field(
        description="delivered (announced in the work agent's terminal) or queued"
    )
    target_instance_id: str = Field(description="The work instance that received it")


class CleanupOutcome(Outcome):
    worktree: Literal["kept", "removed", "gone"] = Field(description="What happened to the worktree")
    branch: Literal["kept", "deleted", "gone"] = Field(description="What happened to the branch")
    kept_because: list[str] = Field(default_factory=list, description="Why something was kept")


class TerminateResult(Outcome):
    instance_id: str = Field(description="The instance terminated")
    status: Literal["terminated"] = Field(description="terminated")
    session: SessionOutcome = Field(
        description="killed, already_gone, scheduled (your own session, ends shortly), or not_killed (tmux "
        "did not answer: the instance is marked terminated; `codex-mcp reconcile` lists its session)"
    )
    cleanup: CleanupOutcome = Field(description="What happened to the worktree and branch, and why")


class ReconcileReport(Outcome):
    """What `codex-mcp reconcile` found (printed by the CLI, not published by a tool)."""

    terminated: list[str] = Field(
        default_factory=list, description="Instances found dead and marked terminated"
    )
    unreachable_sockets: list[str] = Field(
        default_factory=list, description="tmux servers that did not answer"
    )
    orphan_sessions: list[str] = Field(
        default_factory=list, description="Sessions named like ours with no row"
    )
    orphan_worktrees: list[str] = Field(
        default_factory=list, description="Folders under the root with no running row"
    )
    orphan_branches: list[str] = Field(
        default_factory=list,
        description="codex/* branches no instance owns (a spawn cut short leaves them); `codex-mcp clean` removes the safe ones",
    )
    missing_worktrees: list[str] = Field(
        default_factory=list,
        description="Running instances whose worktree folder is gone (deleted behind codex-mcp's back)",
    )


# ------------------------------------------------------------------------------ supervision: care
WorktreeFate = Literal["removed", "would_remove", "kept", "gone"]
BranchFate = Literal["deleted", "would_delete", "kept", "gone"]
CleanItemKind = Literal["instance", "orphan_worktree", "orphan_branch"]


class CleanItem(Outcome):
    """What `codex-mcp clean` did (or, with --dry-run, would do) with one instance or one orphan."""

    kind: CleanItemKind = Field(description="instance (a terminated row), orphan_worktree or orphan_branch")
    instance_id: str | None = Field(default=None, description="The terminated instance (null for orphans)")
    worktree_path: str | None = Field(default=None, description="Its worktree folder")
    branch_name: str | None = Field(default=None, description="Its branch")
    worktree: WorktreeFate | None = Field(default=None, description="removed, would_remove, kept or gone")
    branch: BranchFate | None = Field(default=None, description="deleted, would_delete, kept or gone")
    kept_because: list[str] = Field(default_factory=list, description="Why something was kept")


class CleanReport(Outcome):
    """The result of `codex-mcp clean` (one event records the run, with these counts)."""

    dry_run: bool = Field(description="True when nothing was changed (--dry-run)")
    scope: Literal["terminated", "merged"] = Field(
        description="terminated: every terminated instance; merged: only those whose branch is merged"
    )
    items: list[CleanItem] = Field(
        default_factory=list, description="Each instance or orphan with something left"
    )
    worktrees_removed: int = Field(default=0, description="Worktrees removed (or that would be)")
    branches_deleted: int = Field(default=0, description="Branches deleted (or that would be)")
    kept: int = Field(default=0, description="Items of which something was kept")
    already_clean: int = Field(
        default=0, description="Terminated instances with nothing of ours left to remove"
    )
    running_untouched: int = Field(
        default=0, description="Running agents (worktrees under the root), never touched"
    )


class OpenResult(Outcome):
    """The result of `codex-mcp open`: which editor was started on which worktree."""

    instance_id: str = Field(description="The instance opened")
    worktree_path: str = Field(description="The folder given to the editor")
    command: list[str] = Field(description="The editor's argv (no shell)")
    foreground: bool = Field(description="True when it runs in this terminal (the command waits for it)")
    pid: int = Field(description="Process id of the editor")


# ---------------------------------------------------------------------------------------- instances
class QueryInstancesResult(Outcome):
    instances: list[InstanceSummary] = Field(description="Matching instances, newest first")
    count: int = Field(description="How many instances are listed")
    truncated: bool = Field(description="True when more instances matched than `limit`")
    caller_instance_id: str = Field(description="Your own instance id")


class RelatedSummary(InstanceSummary):
    relationship_type: RelationshipType = Field(description="spawned_review or created_fork")
    relationship_created: str | None = Field(default=None, description="When the link was made, UTC")


class GetInstanceResult(Outcome):
    instance: Instance = Field(description="The instance row, with its prompt")
    parents: list[RelatedSummary] = Field(description="Instances that spawned or forked this one")
    children: list[RelatedSummary] = Field(description="Instances this one spawned (reviews) or forked")
    recent_events: list[Event] = Field(description=f"Its last {RECENT_EVENTS} tool calls, newest first")


# ------------------------------------------------------------------------------------------- events
class ListEventsResult(Outcome):
    events: list[Event] = Field(description="Matching tool calls, newest first")
    count: int = Field(description="How many events are listed")
    truncated: bool = Field(description="True when more events matched than `limit`")


# ------------------------------------------------------------------------------------------- GitHub
class CreatePullRequestResult(Outcome):
    pr_number: int = Field(description="Pull request number")
    pr_url: str = Field(description="Link to the pull request")
    branch_name: str = Field(description="Your branch, which it merges")
    already_existed: bool = Field(description="True when an open pull request for your branch was returned")


class SyncResult(Outcome):
    repository: str = Field(description="owner/name synced")
    fetched: int = Field(description="Issues received from GitHub (pull requests excluded)")
    changed: int = Field(description="Issues new or updated in the cache")
    unchanged: int = Field(description="Issues received that were already up to date")
    pages: int = Field(description="Pages requested")
    not_modified_pages: int = Field(description="Pages GitHub answered 304 Not Modified (nothing new)")
    pull_requests_updated: int = Field(description="Instances whose pull request state changed")


class ListIssuesResult(Outcome):
    issues: list[Issue] = Field(description="Cached issues, most recently updated first")
    count: int = Field(description="How many are listed")
    truncated: bool = Field(description="True when more matched than `limit`")


# ------------------------------------------------------------------------------------ supervision

ChangeType = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed"]
MergeStrategy = Literal["merge", "squash", "rebase"]


class FileChange(Outcome):
    """One changed file of an instance's work (`diff --json`)."""

    path: str = Field(description="Path in the work (the new path of a rename)")
    old_path: str | None = Field(default=None, description="Path before a rename or copy")
    change_type: ChangeType = Field(description="added, modified, deleted, renamed, copied or type_changed")
    additions: int = Field(description="Lines added")
    deletions: int = Field(description="Lines deleted")
    binary: bool = Field(description="A binary file (no patch)")
    patch: str = Field(description="The unified diff of this file; empty for binary files")


class CommitSummary(Outcome):
    sha: str = Field(description="Commit id")
    subject: str = Field(description="First line of its message")
    author: str = Field(description="Author name")
    date: str = Field(description="Author date, ISO 8601")


class InstanceDiff(Outcome):
    """An instance's work against its base: commits plus uncommitted and untracked changes."""

    instance_id: str = Field(description="The instance")
    base: str = Field(description="The branch compared with")
    merge_base: str = Field(description="Where the work left the base")
    head: str = Field(description="The worktree's HEAD commit")
    uncommitted: list[str] = Field(description="Paths with uncommitted or untracked changes")
    commits: list[CommitSummary] = Field(description="Commits on the branch since the base, newest first")
    files: list[FileChange] = Field(description="Every changed file")
    additions: int = Field(description="Lines added in all")
    deletions: int = Field(description="Lines deleted in all")
    stat: str = Field(description="The summary `git diff --stat` would print")


class MergeResult(Outcome):
    """What `codex-mcp merge` did."""

    instance_id: str = Field(description="The instance whose work was merged")
    target: str = Field(description="The branch merged into")
    strategy: MergeStrategy = Field(description="merge, squash or rebase")
    outcome: Literal["merged", "up_to_date", "sent_to_agent"] = Field(
        description="merged; up_to_date (nothing to land); sent_to_agent (conflicts handed to the agent)"
    )
    old_commit: str = Field(description="Where the target pointed before")
    new_commit: str = Field(description="Where it points now")
    updated_worktree: str | None = Field(
        default=None, description="The worktree updated (None: the ref alone moved)"
    )
    commits: int = Field(default=0, description="Commits landed")
    conflicts: list[str] = Field(default_factory=list, description="Conflicted files (sent_to_agent)")
    feedback_id: str | None = Field(
        default=None, description="The feedback holding the conflicts (sent_to_agent)"
    )
