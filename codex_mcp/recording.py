"""Recording: every MCP tool call, and every action a person takes, leaves exactly one ``mcp_events`` row.

A tool (declared with :func:`codex_mcp.tools.spec.tool`, which checks it and publishes its signature)
and a person's action from the CLI or the dashboard (:func:`run_person_action`) run through here. This
module does not import the MCP SDK at module level (only the functions that answer an MCP call do, and
the SDK is loaded by then): a CLI command pays for none of it. Each call

* runs the tool, then in one ``BEGIN IMMEDIATE`` transaction applies the database writes the tool
  staged on ``call`` (its own changes and the relationships it made) and inserts the event row:
  caller, tool, success, error, and metadata (duration, redacted arguments, a small result summary);
* turns a :class:`CodexError` into a tool error with its actionable text, and anything else into a
  generic tool error after logging the traceback on stderr -- both recorded with ``success=0``;
* logs a failure to record, which never replaces the tool's own result.

When the event row cannot be written (read-only database, full disk, a lock held past the busy
timeout), what the caller is told depends on the kind of call:

* a read (``READ_ONLY`` tool) answers as usual: it changed nothing, and its loss is logged at ERROR;
* an action (any other tool, every person's action) first checks that the database can take rows
  (:meth:`Database.check_writable`) and fails *before doing anything* when it cannot; when the row
  is lost after the action was done, its answer says so (an MCP tool adds a "NOT RECORDED" text
  beside its result; the CLI prints the loss on stderr);
* either way the loss is counted and ``events`` shows it as a gap (:mod:`codex_mcp.unrecorded`).

Redaction: prompts, feedback, descriptions, secrets and any long text are recorded as their length
and a digest, never in clear.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets as pysecrets
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from pydantic import BaseModel

from codex_mcp import unrecorded
from codex_mcp.errors import CodexError, DatabaseError
from codex_mcp.store import Tx
from codex_mcp.store import events as events_store
from codex_mcp.store.events import NewEvent

if TYPE_CHECKING:
    from pathlib import Path

    from mcp.server.mcpserver import Context

    from codex_mcp.app import App
    from codex_mcp.identity import Caller
    from codex_mcp.store.relationships import Relationship, RelationshipType

log = logging.getLogger(__name__)

SENSITIVE_ARGUMENTS = frozenset(
    {"prompt", "reviewer_prompt", "feedback", "description", "body", "token", "secret", "password", "value"}
)
_SECRET_LOOKING = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|sk-[A-Za-z0-9_-]{20,})"
)
MAX_CLEAR_TEXT = 80
ERROR_MESSAGE_LIMIT = 2000

Write = Callable[[Tx], Awaitable[None]]
# Compensations undo a side effect outside SQLite when the call's transaction fails; after-commit
# actions start something only once it has committed. Same shape, opposite moments.
Compensation = Callable[[], Awaitable[None]]
AfterCommit = Callable[[], Awaitable[None]]
OutputT = TypeVar("OutputT", bound=BaseModel)


@dataclass
class ToolCall:
    """What a tool body gets: who calls, the app, and where to stage its database changes."""

    app: App
    caller: Caller
    # The SDK's request context; None for an action a person takes from the CLI or the dashboard.
    ctx: Context[Any, Any] | None
    tool_name: str
    _writes: list[Write] = field(default_factory=list)
    _compensations: list[Compensation] = field(default_factory=list)
    _relationships: list[Relationship] = field(default_factory=list)
    _after_commit: list[AfterCommit] = field(default_factory=list)
    # What already happened outside SQLite that staged writes record and nothing undoes.
    _done: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    # Why this call's event row could not be written, when it could not (the call itself stands).
    unrecorded: str | None = None

    def stage(
        self, write: Write, *, compensation: Compensation | None = None, done: str | None = None
    ) -> None:
        """Apply ``write`` in the transaction that records this call; ``compensation`` runs if that fails.

        ``compensation`` undoes side effects outside SQLite (a session, a worktree) that the write
        describes, so nothing is left half-made when the row cannot be written. ``done`` says what
        already happened that nothing can undo (a branch moved, a pull request opened): if the write
        fails, the answer says that this was done and not recorded, instead of "nothing was kept".
        """
        self._writes.append(write)
        if compensation is not None:
            self._compensations.append(compensation)
        if done is not None:
            self._done.append(done)

    def relate(self, parent: str, child: str, relationship_type: RelationshipType) -> None:
        """Record a relationship this call created (written with the event, in one transaction)."""
        # Imported here: only the calls that spawn or fork relate instances (a server's start skips it).
        from codex_mcp.store.relationships import Relationship

        self._relationships.append(
            Relationship(parent_instance=parent, child_instance=child, relationship_type=relationship_type)
        )

    async def progress(self, done: float, total: float | None, message: str) -> None:
        """A progress notification, when the client asked for them (increasing ``done``)."""
        if self.ctx is None:
            return
        try:
            await self.ctx.report_progress(done, total, message)
        except Exception:  # progress is a courtesy: it never fails the call
            log.debug("%s: progress notification failed", self.tool_name, exc_info=True)

    def after_commit(self, action: AfterCommit) -> None:
        """Run ``action`` once the call's transaction has committed (e.g. start a delayed kill)."""
        self._after_commit.append(action)

    async def run_after_commit(self) -> None:
        for action in self._after_commit:
            try:
                await action()
            except Exception:
                log.exception("%s: an after-commit step failed", self.tool_name)

    def safe_notes(self) -> dict[str, Any]:
        """Tool-specific metadata, redacted like the arguments."""
        return {k: redact(k, v) for k, v in self.notes.items()}

    async def compensate(self) -> None:
        with anyio.CancelScope(shield=True):
            for compensation in reversed(self._compensations):
                try:
                    await compensation()
                except Exception:
                    log.exception(
                        "%s: compensation step failed; something may be left behind", self.tool_name
                    )


def _digest(text: str) -> dict[str, Any]:
    return {
        "redacted": True,
        "len": len(text),
        "sha256": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:16],
    }


def redact(name: str, value: Any, *, depth: int = 0) -> Any:
    """A summary of one argument or result field that is safe to keep forever."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if name in SENSITIVE_ARGUMENTS or len(value) > MAX_CLEAR_TEXT or _SECRET_LOOKING.search(value):
            return _digest(value)
        return value
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return {"items": len(value)}
    if isinstance(value, dict):
        if depth >= 1:
            return {"keys": len(value)}
        return {str(k): redact(str(k), v, depth=depth + 1) for k, v in value.items()}
    return {"type": type(value).__name__}


def summarize_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    return {k: redact(k, v) for k, v in arguments.items() if v is not None}


def summarize_result(result: BaseModel) -> dict[str, Any]:
    # A list is summarized by its length: it is not dumped (100 instance rows cost a read ~1 ms).
    lists = {k for k in type(result).model_fields if isinstance(getattr(result, k), list | tuple)}
    data = result.model_dump(mode="json", exclude=lists) if lists else result.model_dump(mode="json")
    summary = {k: redact(k, v) for k, v in data.items()}
    summary.update({k: {"items": len(getattr(result, k))} for k in lists})
    return summary


# Set by the middleware for each tools/call; run_recorded marks it, so the middleware knows whether
# the call reached a tool body (which records itself) or was rejected before it.
_REACHED: ContextVar[list[bool] | None] = ContextVar("codex_mcp_tool_reached", default=None)


async def record_rejected_calls(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    """Server middleware: a ``tools/call`` rejected before any tool ran still leaves one failed row.

    That covers arguments that fail the input schema (the SDK validates them before calling the
    tool) and unknown tool names. Nothing here ever turns a call into a success.
    """
    if getattr(ctx, "method", None) != "tools/call":
        return await call_next(ctx)
    reached = [False]
    token = _REACHED.set(reached)
    try:
        result = await call_next(ctx)
    except Exception as exc:
        if not reached[0]:
            await _record_rejected(ctx, f"the call was rejected: {exc}")
        raise
    finally:
        _REACHED.reset(token)
    if not reached[0]:
        await _record_rejected(ctx, _result_text(result) or "the call was rejected before the tool ran")
    return result


def _result_text(result: Any) -> str:
    content = getattr(result, "content", None)
    if content is None and isinstance(result, dict):
        content = result.get("content")
    texts = []
    for item in content or []:
        text = getattr(item, "text", None) if not isinstance(item, dict) else item.get("text")
        if isinstance(text, str):
            texts.append(text)
    return " ".join(texts)


_INPUT_VALUE = re.compile(r"input_value=.*, input_type=")


def _without_inputs(message: str) -> str:
    """A validation message without the rejected values (they may be prompts or secrets)."""
    lines = [
        _INPUT_VALUE.sub("input_type=", line)
        for line in message.splitlines()
        if not line.strip().startswith("For further information visit")
    ]
    return "\n".join(lines)


async def _record_rejected(ctx: Any, message: str) -> None:
    message = _without_inputs(message)
    params = getattr(ctx, "params", None) or {}
    name = str(params.get("name") or "?")[:100]
    arguments = params.get("arguments")
    metadata: dict[str, Any] = {"rejected": True}
    if isinstance(arguments, dict):
        metadata["args"] = summarize_arguments({str(k): v for k, v in arguments.items()})
    app: App = ctx.lifespan_context
    try:
        caller = await app.caller_for(ctx)
    except Exception:
        log.warning("%s rejected before an identity was known", name)
        return
    await _fail(app, None, caller.id, name, message[:ERROR_MESSAGE_LIMIT], metadata, time.perf_counter())


async def run_recorded(
    app: App,
    ctx: Context[Any, Any],
    name: str,
    fn: Callable[..., Awaitable[BaseModel]],
    arguments: dict[str, Any],
    output_model: type[BaseModel],
    *,
    read_only: bool = False,
) -> tuple[BaseModel, str | None]:
    """Run and record one tool call: its result, and for an action done but left without its event
    row, the note its answer adds (what the agent is told; None otherwise)."""
    from mcp.server.mcpserver.exceptions import ToolError  # loaded already: an MCP server is calling

    started = time.perf_counter()
    if (reached := _REACHED.get()) is not None:
        reached[0] = True
    metadata: dict[str, Any] = {"args": summarize_arguments(arguments)}
    caller_id: str | None = None
    try:
        # Who calls is known even when the call is refused (the read-only operator token asking to
        # act): the refusal is then recorded under that instance.
        caller_id = (await app.caller_for(ctx)).id
        caller = await app.caller_for(ctx, read_only=read_only)
    except CodexError as exc:
        message = str(exc)
        await _fail(app, None, caller_id, name, message[:ERROR_MESSAGE_LIMIT], metadata, started)
        raise ToolError(message) from None
    call = ToolCall(app=app, caller=caller, ctx=ctx, tool_name=name)
    try:
        result = await _execute(
            call, lambda: fn(call, **arguments), output_model, metadata, started, action=not read_only
        )
    except CodexError as exc:
        raise ToolError(str(exc)) from None
    except _Internal as exc:
        raise ToolError(exc.message) from None
    if call.unrecorded is not None and not read_only:
        return result, _unrecorded_note(name, call.unrecorded)
    return result, None


def _unrecorded_note(name: str, cause: str) -> str:
    """What an action's answer adds when the action was done but its call left no event row."""
    return (
        f"NOT RECORDED: {name} was done (the result above is true), but its call could not be "
        f"recorded in the database ({cause}); list_events will show a gap here. Do not repeat it."
    )


async def refuse_if_read_only(
    app: App, ctx: Any, name: str, arguments: dict[str, Any], *, outcome: str = ""
) -> None:
    """For a request that is no tool but changes something (``logging/setLevel``): a caller that may
    only read is refused with :class:`PermissionDenied`, recorded as a failed row like a tool's refusal
    (``outcome``, when given, is added to the recorded message: what the caller was answered)."""
    started = time.perf_counter()
    caller_id: str | None = None
    try:
        caller_id = (await app.caller_for(ctx)).id
        await app.caller_for(ctx, read_only=False)
    except CodexError as exc:
        metadata = {"args": summarize_arguments(arguments)}
        message = f"{exc}; {outcome}" if outcome else str(exc)
        await _fail(app, None, caller_id, name, message[:ERROR_MESSAGE_LIMIT], metadata, started)
        raise


async def run_person_action(
    app: App,
    caller: Caller,
    name: str,
    arguments: dict[str, Any],
    body: Callable[[ToolCall], Awaitable[OutputT]],
    *,
    via: str,
) -> OutputT:
    """Run an action a person takes (CLI or dashboard) and record it like a tool call.

    ``caller`` is the person's identity (:func:`codex_mcp.identity.person_caller`), ``name`` the
    action (``kill``, ``merge``, ...), ``via`` where it came from (``cli``, ``ui``). The body stages
    its writes on the :class:`ToolCall` it gets exactly as a tool does. A refusal is recorded as a
    failed event and raised as the same :class:`CodexError`; an unexpected error is logged, recorded
    and raised as an internal :class:`CodexError` naming the log reference.
    """
    started = time.perf_counter()
    metadata: dict[str, Any] = {
        "args": summarize_arguments(arguments),
        "actor": "person",
        "via": via,
        "user": _login_name(),
    }
    call = ToolCall(app=app, caller=caller, ctx=None, tool_name=name)
    try:
        # The loss of its row, if any, is on stderr already (unrecorded.note logs it at ERROR).
        result = await _execute(call, lambda: body(call), None, metadata, started, action=True)
    except _Internal as exc:
        raise CodexError(exc.message) from None
    return result


def _login_name() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without passwd entry): not worth failing for
        return "?"


class _Internal(Exception):
    """An unexpected failure, already logged and recorded; ``message`` is what the caller is told."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _execute(
    call: ToolCall,
    run: Callable[[], Awaitable[OutputT]],
    output_model: type[BaseModel] | None,
    metadata: dict[str, Any],
    started: float,
    *,
    action: bool,
) -> OutputT:
    """Run a call's body, then write its staged changes and its event in one transaction.

    Raises the body's :class:`CodexError` (recorded as a failed event, compensations run) or
    :class:`_Internal` for anything unexpected (logged with a reference, recorded). An ``action``
    that could not be recorded is refused before its body runs (a :class:`DatabaseError`).
    """
    app, name, caller_id = call.app, call.tool_name, call.caller.id
    if action:
        try:
            await app.db.check_writable()
        except DatabaseError as exc:
            # Recording the refusal would meet the same fault (and wait out the lock again).
            unrecorded.note(app.db, caller_id, name, exc, refused=True)
            raise
    try:
        result = await run()
        if output_model is not None and not isinstance(result, output_model):
            raise TypeError(f"{name} returned {type(result).__name__}, not {output_model.__name__}")
    except CodexError as exc:
        await _fail(app, call, caller_id, name, str(exc)[:ERROR_MESSAGE_LIMIT], metadata, started)
        raise
    except Exception as exc:
        ref = pysecrets.token_hex(4)
        log.exception("%s failed unexpectedly (ref %s)", name, ref)
        message = (
            f"{name} failed because of an internal error (ref {ref}, logged on the codex-mcp server's stderr); "
            "retry once, and if it fails again report it with that log"
        )
        metadata["exception"] = type(exc).__name__
        await _fail(app, call, caller_id, name, message, metadata, started)
        raise _Internal(message) from exc
    except BaseException:
        # Cancelled (the client gave up, or the server is stopping): undo, record, re-raise.
        with anyio.CancelScope(shield=True):
            await _fail(app, call, caller_id, name, "cancelled before it finished", metadata, started)
        raise

    metadata.update(call.safe_notes())
    metadata["result"] = summarize_result(result) if isinstance(result, BaseModel) else {}
    metadata["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    event = NewEvent(instance_id=caller_id, tool_name=name, success=True, metadata=metadata)
    try:
        if not call._writes and not call._relationships:
            # The event is the call's only write: one autocommit statement instead of a transaction.
            await events_store.record_alone(app.db, event)
        else:
            with anyio.CancelScope(shield=True):
                async with app.db.write() as tx:
                    for write in call._writes:
                        await write(tx)
                    if call._relationships:
                        from codex_mcp.store import relationships as relationships_store

                        for relationship in call._relationships:
                            await relationships_store.add(tx, relationship)
                    call.unrecorded = await _insert_event(tx, event)
    except Exception as exc:
        if not call._writes and not call._relationships:
            # Only the event row was lost: the call's own answer stands (an action's says so).
            call.unrecorded = " ".join(str(exc).split()) or type(exc).__name__
            unrecorded.note(app.db, caller_id, name, f"could not record the call: {call.unrecorded}")
            return result
        if call._done:
            message = _done_unrecorded_message(name, call._done, app.db.path, exc)
            log.error("%s: %s", name, message, exc_info=not isinstance(exc, CodexError))
            await _fail(app, call, caller_id, name, message, metadata, started)
            raise (DatabaseError if isinstance(exc, DatabaseError) else CodexError)(message) from exc
        message = _write_failure_message(name, exc)
        if not isinstance(exc, CodexError):
            log.exception("%s: its database changes could not be written", name)
        await _fail(app, call, caller_id, name, message, metadata, started)
        if isinstance(exc, CodexError):
            raise
        raise CodexError(message) from exc
    if call.unrecorded is not None:
        unrecorded.note(app.db, caller_id, name, f"could not record the call: {call.unrecorded}")
    elif unrecorded.pending(app.db):
        await unrecorded.mark(app.db, caller_id)
    await call.run_after_commit()
    return result


async def _insert_event(tx: Tx, event: NewEvent) -> str | None:
    """Insert the event in the call's transaction; why it failed, if it did.

    A statement that fails in SQLite is undone alone; the transaction (and the tool's own changes
    in it) carries on. Recording is never allowed to cost the tool its result.
    """
    try:
        await events_store.record(tx, event)
    except sqlite3.Error as exc:
        return str(exc)
    return None


def _done_unrecorded_message(name: str, done: list[str], db_path: Path, exc: Exception) -> str:
    """The answer when an action changed the world and its database changes could not be written."""
    if isinstance(exc, DatabaseError) and exc.cause:
        why, remedy = exc.cause, f"{exc.remedy}; then " if exc.remedy else "then "
    elif isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        why, remedy = "it stayed locked by other processes", "in a moment, "
    else:
        why, remedy = " ".join(str(exc).split()) or type(exc).__name__, ""
    return (
        f"{name} was done ({'; '.join(done)}), but database {db_path} could not record it: {why}. "
        f"Nothing was undone; {remedy}run {name} again: it finds this already done and records it"
    )


def _write_failure_message(name: str, exc: Exception) -> str:
    if isinstance(exc, CodexError):
        return str(exc)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return f"{name} could not save its changes: the database stayed locked by other processes; retry in a moment"
    return f"{name} could not save its changes ({type(exc).__name__}); nothing was kept, retry once"


async def _fail(
    app: App,
    call: ToolCall | None,
    caller_id: str | None,
    name: str,
    message: str,
    metadata: dict[str, Any],
    started: float,
) -> None:
    """Undo staged side effects and record a failed event (best effort, never raises)."""
    with anyio.CancelScope(shield=True):
        if call is not None:
            await call.compensate()
            metadata = {**metadata, **call.safe_notes()}
        if caller_id is None:
            log.warning("%s refused before an identity was known: %s", name, message)
            return
        metadata = {**metadata, "duration_ms": round((time.perf_counter() - started) * 1000, 3)}
        event = NewEvent(
            instance_id=caller_id, tool_name=name, success=False, error_message=message, metadata=metadata
        )
        try:
            await events_store.record_alone(app.db, event)
        except Exception as exc:
            unrecorded.note(app.db, caller_id, name, f"could not record the failed call: {exc}")
            return
        if unrecorded.pending(app.db):
            await unrecorded.mark(app.db, caller_id)
