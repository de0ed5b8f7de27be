"""Feedback: a reviewer's answer reaches the work it reviews, as a file and a notice.

The review is written verbatim as a markdown file under ``.codex/feedback/`` in the work instance's
worktree; when the work agent's session is alive, a one-line notice pointing at it is typed into its
terminal (delivered), otherwise the file waits for it (queued).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import anyio

from codex_mcp.agents import AgentFiles, write_private
from codex_mcp.errors import InputError, PermissionDenied, StateError
from codex_mcp.lifecycle.spawn import require_running
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.outcomes import DeliveryStatus, FeedbackType, Priority, SendFeedbackResult
from codex_mcp.store import instances as instances_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.instances import Instance
from codex_mcp.tmux import Tmux, TmuxError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackSent:
    """What send_feedback publishes, and where the file went (recorded, never published)."""

    result: SendFeedbackResult
    file: Path


async def send_feedback(
    workspace: Workspace, caller: Instance, feedback: str, feedback_type: FeedbackType, priority: Priority
) -> FeedbackSent:
    if caller.type != "review":
        raise PermissionDenied(
            f"only review instances send feedback, to the work they review; {caller.id} is a {caller.type} "
            "instance"
        )
    require_running(caller)
    db = workspace.db
    target_id = await relationships_store.reviewed_by(db, caller.id)
    if target_id is None:
        raise StateError(f"{caller.id} has no work instance recorded as its parent; nothing to send to")
    target = await instances_store.require(db, target_id)
    return await deliver_feedback(workspace, target, caller.id, feedback, feedback_type, priority)


async def deliver_feedback(
    workspace: Workspace,
    target: Instance,
    sender: str,
    feedback: str,
    feedback_type: FeedbackType,
    priority: Priority,
) -> FeedbackSent:
    """Write ``feedback`` from ``sender`` (an instance id, or a person's label) into ``target``'s
    worktree and announce it in its pane when its session is alive."""
    if not feedback.strip():
        raise InputError("feedback is empty; write what the author should know")
    worktree = Path(target.worktree_path)
    if not worktree.is_dir():
        raise StateError(
            f"the worktree of {target.id} ({worktree}) is gone; the feedback cannot be delivered"
        )
    stamp = datetime.now(UTC)
    safe_sender = "".join(c if c.isalnum() or c in "-_" else "-" for c in sender)[:40]
    feedback_id = f"{stamp:%Y%m%dT%H%M%S}Z-{safe_sender}-{os.urandom(3).hex()}"
    path = AgentFiles(worktree).feedback / f"{feedback_id}.md"
    document = (
        f"# Review feedback from {sender}\n\n"
        f"- type: {feedback_type}\n- priority: {priority}\n- for: {target.id}\n"
        f"- time: {stamp:%Y-%m-%d %H:%M:%S} UTC\n\n---\n\n{feedback}\n"
    )
    await anyio.to_thread.run_sync(partial(write_private, path, document))
    status: DeliveryStatus = "queued"
    if target.status == "running":
        notice = (
            f"[codex] Review feedback from {sender} ({feedback_type}, priority {priority}): read "
            f".codex/feedback/{path.name} and act on it."
        )
        tmux = Tmux(target.tmux_socket)
        try:
            if await tmux.has_session(target.tmux_session):
                await tmux.paste(target.tmux_session, notice)
                status = "delivered"
        except TmuxError as exc:
            log.warning("feedback %s written but not announced in %s: %s", feedback_id, target.id, exc)
    return FeedbackSent(
        result=SendFeedbackResult(
            feedback_id=feedback_id, delivery_status=status, target_instance_id=target.id
        ),
        file=path,
    )
