"""The MCP server for an app: its instructions, its tools, the recording middleware, setLevel.

Which transport runs it, and how each call's caller is found, is the composition root's business
(``codex_mcp/serve.py``)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from mcp.server.mcpserver import MCPServer

from codex_mcp import SERVER_NAME, __version__
from codex_mcp.app import App
from codex_mcp.errors import CodexError, PermissionDenied
from codex_mcp.published_tools import LazyToolServer
from codex_mcp.tools import MODULES, register_one

INSTRUCTIONS = """\
codex-mcp coordinates several coding agents working on one git repository at once.

Each agent runs in an *instance*: its own git worktree on its own branch, its own tmux session,
and this MCP server, which knows which instance you are (you never pass your own id). Instance
ids look like work-123-a1 (a work instance on GitHub issue 123, agent 1), review-123-a1 (a
reviewer of that work) or adhoc-a1 (a session started by hand). An instance is running or
terminated; nothing else about it is guessed.

The review loop: a work instance calls spawn_review_instance when its work is ready; a reviewer
starts on a snapshot of that worktree (uncommitted changes included) and answers with send_feedback,
which lands as a markdown file under .codex/feedback/ in the work worktree plus a notice in the work
agent's terminal. Each side ends itself with terminate_instance when done.

- spawn_review_instance (work instances): start a reviewer on a snapshot of your work.
- send_feedback (review instances): deliver your review to the work you review.
- fork_instance: start another agent on the same issue from a snapshot of your work.
- terminate_instance: end yourself (default) or an instance you spawned or forked.
- create_pull_request: push your branch and open its pull request (safe to call again).
- sync_issues, list_issues, get_issue: the repository's GitHub issues, from a local cache.
- query_instances: who is working on what (running instances by default), with issue titles,
  each agent's activity (working, waiting for a person, idle; null: not reported) and since when,
  and its pull request's state (open, closed, merged).
- get_instance: one instance in full: prompt, the instance it came from, the reviews and forks it
  made, and its recent tool calls.
- list_events: the recent tool calls of every instance, with errors; use it to see why a call failed.

Answers leave out the fields whose value is null (not known, or not applicable yet): a field that
is missing from an answer is null. Every call you make is recorded (long text and prompts only as
length and digest). Errors say what to do next: read them and follow them rather than retrying blindly.
"""


def build_server(app: App) -> MCPServer[App]:
    """An MCP server whose tools use ``app.db`` and act for ``app.caller_for(<the call>)``."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[App]) -> AsyncIterator[App]:
        yield app

    with _sdk_logging_set_up_already():
        server: MCPServer[App] = LazyToolServer(
            SERVER_NAME,
            title="codex-mcp",
            version=__version__,
            instructions=INSTRUCTIONS,
            lifespan=lifespan,
            log_level=app.settings.log_level,
            middleware=[_record_rejected_calls],
            # Each tool (its module, models and schemas) is built at the first call that needs it;
            # tools/list is answered from the published listing until all are (published_tools.py).
            tools=list(MODULES),
            register=register_one,
        )
    _accept_log_levels(server, app)
    return server


OPERATOR_SET_LEVEL = (
    "the server's log level was left unchanged (the request was answered without effect, as the log "
    "notifications of the operator's own session, of which this server sends none)"
)


@contextmanager
def _sdk_logging_set_up_already() -> Iterator[None]:
    """Skip the SDK's logging set-up when logging is configured already (``codex_mcp/logs.py``).

    ``MCPServer()`` calls ``logging.basicConfig`` with a handler from rich. With a handler on the root
    logger already, basicConfig changes nothing, but the handler was built first: rich imported, a
    console made: a few percent of a stdio server's cold start, for nothing (figure 1).
    """
    from mcp.server.mcpserver import server as sdk_server

    if not logging.getLogger().handlers or not hasattr(sdk_server, "configure_logging"):
        yield
        return
    original = sdk_server.configure_logging
    sdk_server.configure_logging = lambda level="INFO": None
    try:
        yield
    finally:
        sdk_server.configure_logging = original


async def _record_rejected_calls(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    """The recording middleware (``recording.record_rejected_calls``), imported at the first tool call:
    recording and the event store are not needed to answer the handshake and tools/list (figure 1)."""
    if getattr(ctx, "method", None) != "tools/call":
        return await call_next(ctx)
    from codex_mcp.recording import record_rejected_calls

    return await record_rejected_calls(ctx, call_next)


def _accept_log_levels(server: MCPServer[App], app: App) -> None:
    """Answer ``logging/setLevel`` (clients and the conformance suite send it): it sets how much this
    server logs on its stderr. The capability is deprecated in newer protocol versions but still used."""
    from mcp.shared.exceptions import MCPError
    from mcp_types import INVALID_REQUEST, EmptyResult, SetLevelRequestParams

    levels = {"debug": "DEBUG", "info": "INFO", "notice": "INFO", "warning": "WARNING", "error": "ERROR",
              "critical": "CRITICAL", "alert": "CRITICAL", "emergency": "CRITICAL"}  # fmt: skip

    async def set_level(ctx: object, params: SetLevelRequestParams) -> EmptyResult:
        if app.resolve is not None:  # many callers (HTTP): the read-only operator changes nothing
            from codex_mcp.recording import refuse_if_read_only

            try:
                await refuse_if_read_only(
                    app, ctx, "logging/setLevel", {"level": str(params.level)}, outcome=OPERATOR_SET_LEVEL
                )
            except PermissionDenied:
                # Refused, recorded, and the server's log level left as it is; but answered: the MCP
                # Inspector sets a level on every connect and gives up when that fails, and in MCP the
                # request sets the level of the log notifications sent to this session (we send none).
                return EmptyResult()
            except CodexError as exc:
                raise MCPError(INVALID_REQUEST, str(exc)) from None
        logging.getLogger("codex_mcp").setLevel(levels.get(str(params.level), "INFO"))
        return EmptyResult()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
