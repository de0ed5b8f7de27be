"""What an agent is told: the work prompt, the review brief, a fork's introduction, the footer.

Pure functions of their arguments (no git, tmux or database). Each prompt is the instance's task
plus what we add about the instance itself (its id, worktree, branch); the task is stored on its own
(``instances.task``) so that a fork can be given its parent's task without its parent's identity.
"""

from __future__ import annotations

from pathlib import Path

from codex_mcp.store.issues import Issue

# At most this many changed files are listed in a review brief.
REVIEW_FILES_LISTED = 200


def work_task(issue: Issue | None, issue_number: int | None, prompt: str | None) -> str:
    """A work (or adhoc) instance's task: the issue's heading and text, then the person's prompt."""
    parts = []
    if issue is not None:
        parts.append(f"# GitHub issue #{issue.number}: {issue.title}\n\n{(issue.body or '').strip()}")
    elif issue_number is not None:
        parts.append(f"# GitHub issue #{issue_number}")
    if prompt:
        parts.append(prompt)
    return "\n\n".join(p for p in parts if p)


def work_prompt(task: str, instance_id: str, worktree: Path, branch: str, base: str | None) -> str:
    return "\n\n".join(p for p in (task, work_footer(instance_id, worktree, branch, base)) if p)


def fork_prompt(
    task: str, instance_id: str, parent_id: str, worktree: Path, branch: str, base: str | None
) -> str:
    intro = fork_intro(instance_id, parent_id)
    return "\n\n".join(p for p in (intro, task, work_footer(instance_id, worktree, branch, base)) if p)


def fork_intro(instance_id: str, parent_id: str) -> str:
    return (
        f"You are {instance_id}, a fork of {parent_id}: your worktree starts from its work as it was, "
        "uncommitted changes included."
    )


def work_footer(instance_id: str, worktree: Path, branch: str, base: str | None) -> str:
    return (
        f"---\nYou are codex-mcp instance {instance_id}: worktree {worktree}, branch {branch}"
        + (f" (from {base})" if base else "")
        + ". Commit your work on this branch. When it is ready for review, call the codex MCP tool "
        "spawn_review_instance; review feedback arrives as markdown files under .codex/feedback/ and a notice "
        "in this terminal. When the review approves, open the pull request with create_pull_request."
    )


def review_brief(
    *,
    instance_id: str,
    worktree: Path,
    branch: str,
    author_id: str,
    author_branch: str,
    base: str,
    issue: Issue | None,
    issue_number: int | None,
    files: list[str],
    stat: str,
    request: str | None,
) -> str:
    """The reviewer's prompt: whose work, the issue, the changed files, the author's request, how to answer."""
    parts = [
        f"You are {instance_id}, reviewing the work of {author_id} (branch {author_branch}). Your "
        f"worktree {worktree} holds a snapshot of that work, uncommitted changes included, on "
        f"branch {branch}; compare it with {base}.",
    ]
    if issue is not None:
        parts.append(f"## The issue: #{issue.number} {issue.title}\n\n{(issue.body or '').strip()}")
    elif issue_number:
        parts.append(f"## The issue: #{issue_number}")
    listing = "\n".join(files[:REVIEW_FILES_LISTED]) + ("\n…" if len(files) > REVIEW_FILES_LISTED else "")
    parts.append(f"## Changed files against {base}\n\n{listing or '(none)'}\n\n{stat}")
    if request:
        parts.append(f"## What the author asks you to look at\n\n{request}")
    parts.append(
        "## How to answer\n\nCall the codex MCP tool send_feedback with your review: feedback_type "
        "needs_work (changes required), suggestions, clarification (questions) or approved. When you "
        "approve, you may open the pull request with create_pull_request. Then end your instance with "
        "terminate_instance."
    )
    return "\n\n".join(parts)
