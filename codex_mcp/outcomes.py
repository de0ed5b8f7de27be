"""Types the tools publish in their schemas, kept apart from the modules that do the work.

A server imports this at start to register its tools; the heavier modules (lifecycle, the GitHub
adapter, the issue cache) are imported when a tool first runs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

FeedbackType = Literal["needs_work", "suggestions", "clarification", "approved"]
Priority = Literal["low", "medium", "high"]


class CleanupOutcome(BaseModel):
    worktree: Literal["kept", "removed", "gone"] = Field(description="What happened to the worktree")
    branch: Literal["kept", "deleted", "gone"] = Field(description="What happened to the branch")
    kept_because: list[str] = Field(default_factory=list, description="Why something was kept")


class SyncResult(BaseModel):
    repository: str = Field(description="owner/name synced")
    fetched: int = Field(description="Issues received from GitHub (pull requests excluded)")
    changed: int = Field(description="Issues new or updated in the cache")
    unchanged: int = Field(description="Issues received that were already up to date")
    pages: int = Field(description="Pages requested")
    not_modified_pages: int = Field(description="Pages GitHub answered 304 Not Modified (nothing new)")
    pull_requests_updated: int = Field(description="Instances whose pull request state changed")
