"""Tools that create, connect and end instances: reviews, forks, feedback, termination."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from codex_mcp.outcomes import (
    FeedbackType,
    ForkResult,
    Priority,
    SendFeedbackResult,
    SpawnReviewResult,
    TerminateResult,
)
from codex_mcp.recording import ToolCall
from codex_mcp.store import Tx
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance
from codex_mcp.tools.spec import ADDITIVE, DESTRUCTIVE, tool

if TYPE_CHECKING:
    from codex_mcp.lifecycle.spawn import Prepared


async def _caller(call: ToolCall) -> Instance:
    # The row as it is now (the identity was resolved at start; the status may have changed since).
    return await instances_store.require(call.app.db, call.caller.id)


def _stage_spawn(call: ToolCall, prepared: Prepared) -> None:
    call.stage(prepared.write, compensation=prepared.compensate)


@tool(title="Spawn a review instance", annotations=ADDITIVE)
async def spawn_review_instance(
    call: ToolCall,
    reviewer_prompt: Annotated[
        str | None,
        Field(
            description="What the reviewer should focus on, in addition to the generated review brief "
            "(changed files, diff stats, the issue, how to answer)",
            max_length=100_000,
        ),
    ] = None,
) -> SpawnReviewResult:
    """Ask for a review of your current work: start a reviewer agent on a snapshot of your worktree.

    Call it when your work is ready to be looked at. The snapshot includes uncommitted and untracked
    changes and is taken without touching your files or index. The reviewer gets a brief built from
    your diff against your base branch and the issue, and answers with send_feedback: the feedback
    appears as a markdown file under .codex/feedback/ in your worktree and as a notice in your
    terminal. Only work instances may call this, a limited number of times (reviews.max_iterations).
    Returns the reviewer's instance id, tmux session, worktree and branch.
    """
    caller = await _caller(call)
    prepared = await call.app.lifecycle.prepare_review(caller, reviewer_prompt, progress=call.progress)
    _stage_spawn(call, prepared)
    call.relate(caller.id, prepared.new.id, "spawned_review")
    return prepared.review_result()


@tool(title="Fork this instance", annotations=ADDITIVE)
async def fork_instance(
    call: ToolCall,
    prompt: Annotated[
        str | None,
        Field(description="Instructions for the fork (default: your own prompt)", max_length=100_000),
    ] = None,
) -> ForkResult:
    """Start another agent on the same issue from a snapshot of your worktree (uncommitted work included).

    Use it to try an alternative approach in parallel without disturbing your own work. The fork is a
    new instance with the next agent number (e.g. work-12-a2) on its own branch and tmux session; you
    can follow it with get_instance and end it with terminate_instance. Review instances cannot fork.
    """
    caller = await _caller(call)
    prepared = await call.app.lifecycle.prepare_fork(caller, prompt, progress=call.progress)
    _stage_spawn(call, prepared)
    call.relate(caller.id, prepared.new.id, "created_fork")
    return prepared.fork_result()


@tool(title="Send review feedback", annotations=ADDITIVE)
async def send_feedback(
    call: ToolCall,
    feedback: Annotated[
        str,
        Field(
            description="The review, in markdown: what to change and why, with file and line references",
            min_length=1,
            max_length=200_000,
        ),
    ],
    feedback_type: Annotated[
        FeedbackType,
        Field(
            description="needs_work (changes required), suggestions (optional improvements), clarification "
            "(questions for the author) or approved"
        ),
    ],
    priority: Annotated[
        Priority, Field(description="How urgent the feedback is: low, medium or high")
    ] = "medium",
) -> SendFeedbackResult:
    """Send your review to the work instance you are reviewing (review instances only).

    The feedback is written verbatim as a markdown file under .codex/feedback/ in the work instance's
    worktree, and a one-line notice pointing at it is typed into the work agent's terminal. When the
    work agent's session is gone the file is still written and the status is 'queued'. After sending
    your final feedback, end your own instance with terminate_instance.
    """
    caller = await _caller(call)
    sent = await call.app.lifecycle.send_feedback(caller, feedback, feedback_type, priority)
    call.notes["feedback_file"] = str(sent.file)
    return sent.result


@tool(title="Terminate an instance", annotations=DESTRUCTIVE)
async def terminate_instance(
    call: ToolCall,
    instance_id: Annotated[
        str | None,
        Field(
            description="Instance to end: yourself (the default) or one you spawned or forked", max_length=64
        ),
    ] = None,
) -> TerminateResult:
    """End an instance: kill its tmux session (and agent) and mark it terminated.

    Call it without an id to end yourself when your job is done (your session ends a moment after
    this answer). You may also end instances you spawned or forked, and theirs. The worktree follows
    the cleanup policy (instances.cleanup_policy): by default everything is kept; a removal policy
    never deletes uncommitted work or commits that are neither pushed nor merged, and the result says
    what was kept and why.
    """
    caller = await _caller(call)
    lifecycle = call.app.lifecycle
    # An empty id is invalid input (refused by authorize_terminate), never a way of saying "myself".
    target = await lifecycle.authorize_terminate(caller, caller.id if instance_id is None else instance_id)
    if target.id != caller.id:
        # The row first (its own transaction), then the session and the cleanup: a failed write
        # destroys nothing, and the answer describes exactly what happened.
        return await lifecycle.terminate_now(target)
    # Ending yourself: the row is marked with this call's event, and the session is killed by a
    # separate process after the answer has reached you (an after-commit action).
    outcome, after = await lifecycle.terminate(target, deferred=True)

    async def mark(tx: Tx) -> None:
        await instances_store.mark_terminated(tx, target.id)

    call.stage(mark)
    if after is not None:
        call.after_commit(after)
    return outcome


TOOLS = [spawn_review_instance, fork_instance, send_feedback, terminate_instance]
