"""Resuming an instance whose agent died: a new session in the same worktree, same conversation.

The session comes first, then the row (resumed, with a new token); when the row cannot be written
the new session is killed again.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio

from codex_mcp.agents import AgentFiles, new_session_id, write_launch_files
from codex_mcp.errors import StateError
from codex_mcp.lifecycle.spawn import kill_quietly, run_compensations
from codex_mcp.lifecycle.workspace import Workspace
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance
from codex_mcp.tokens import new_token


async def resume(workspace: Workspace, target: Instance) -> Instance:
    """Restart a dead instance's agent in its worktree, continuing its conversation."""
    settings = workspace.settings
    worktree = Path(target.worktree_path)
    if not worktree.is_dir():
        raise StateError(f"the worktree of {target.id} ({worktree}) is gone; it cannot be resumed")
    tmux = workspace.tmux
    current = (await tmux.list_sessions()).get(target.tmux_session)
    if current is not None and not current.pane_dead:
        raise StateError(f"{target.id} is still running in tmux session {target.tmux_session}; attach to it")
    profile = workspace.profile
    profile.check_available()
    if current is not None:  # only the dead agent's pane is left (remain-on-exit): make room
        await tmux.kill_session(target.tmux_session)
    session_id = target.agent_session_id or new_session_id()
    token, token_hash = new_token() if settings.server_url else (None, None)
    # Off the event loop: it may wait for Claude Code's lock on its config file.
    launcher = await anyio.to_thread.run_sync(
        partial(
            write_launch_files,
            profile=profile,
            instance_id=target.id,
            files=AgentFiles(worktree),
            prompt=target.prompt or "",
            session_id=session_id,
            db_path=workspace.db.path,
            settings=settings,
            main_root=workspace.main_root,
            token=token,
            resume=target.agent_session_id is not None,
        )
    )
    with anyio.CancelScope(shield=True):  # cancelled later, the session is killed below
        pid = await tmux.new_session(target.tmux_session, worktree, launcher)
    try:
        async with workspace.db.write() as tx:
            await instances_store.mark_resumed(
                tx, target.id, claude_pid=pid, tmux_socket=settings.tmux_socket
            )
            # A new token (the old one is not kept in clear anywhere); none for stdio configs.
            await instances_store.set_token_hash(tx, target.id, token_hash)
    except BaseException:
        await run_compensations([partial(kill_quietly, tmux, target.tmux_session)])
        raise
    return await instances_store.require(workspace.db, target.id)
