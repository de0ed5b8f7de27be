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
from codex_mcp.ids import parse_instance_id
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


def _refuse_links(worktree: Path, path: Path) -> None:
    """Feedback is written inside the worktree only: a symlinked ``.codex`` or ``.codex/feedback`` (an
    agent can make one) would send it, with the file's private mode, anywhere on the machine."""
    for folder in (path.parent.parent, path.parent):
        if folder.is_symlink():
            raise StateError(
                f"{folder} is a symbolic link; feedback is only written inside the worktree {worktree}: "
                f"remove the link (rm {folder}) and send the feedback again"
            )
    if not path.parent.resolve().is_relative_to(worktree.resolve()) and path.parent.exists():
        raise StateError(f"{path.parent} is outside the worktree {worktree}; the feedback was not written")


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
    _refuse_links(worktree, path)
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


MAX_FEEDBACK = 200_000  # as the send_feedback tool's schema allows


def person_label(login: str) -> str:
    """How a person signs feedback: ``a person (<login>)``."""
    return f"a person ({login})"


async def person_feedback(
    workspace: Workspace,
    target_id: str,
    login: str,
    text: str,
    feedback_type: FeedbackType,
    priority: Priority,
) -> FeedbackSent:
    """A person's review (``codex-mcp feedback``): to a running work or adhoc instance codex-mcp started.

    Review instances are refused (their answer goes to the work they review: send yours there), and so
    are adhoc instances registered for a folder codex-mcp did not create (a person's own checkout:
    there is no agent of ours to tell). A terminated instance is refused: resume it first.
    """
    parse_instance_id(target_id)
    target = await instances_store.require(workspace.db, target_id)
    if target.type == "review":
        parent = await relationships_store.reviewed_by(workspace.db, target.id)
        where = f" (it reviews {parent}: codex-mcp feedback {parent} TEXT)" if parent else ""
        raise StateError(
            f"{target.id} is a review instance; a person's feedback goes to the work instance{where}"
        )
    if target.status != "running":
        raise StateError(
            f"{target.id} is terminated; its agent would never read the feedback. Resume it first "
            f"(codex-mcp resume {target.id}), then send it"
        )
    if target.type == "adhoc" and await workspace.foreign_worktree(target):
        raise StateError(
            f"{target.id} is the registration of {target.worktree_path}, not an agent codex-mcp started; "
            "there is nobody to send feedback to"
        )
    if len(text) > MAX_FEEDBACK:
        raise InputError(
            f"feedback is {len(text)} characters long; at most {MAX_FEEDBACK} are delivered, shorten it"
        )
    return await deliver_feedback(workspace, target, person_label(login), text, feedback_type, priority)
