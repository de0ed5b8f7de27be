"""Long tools report progress when asked, and a cancelled call leaves nothing half made."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
from mcp import Client
from support import SettingsMaker, tmux_sessions, wait_for

from codex_mcp.app import App, open_app
from codex_mcp.identity import Caller
from codex_mcp.server import build_server
from codex_mcp.store import instances as instances_store


def branches(repo: Path) -> set[str]:
    out = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads"],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    return set(out.stdout.split())


async def test_spawn_reports_increasing_progress_and_nothing_after_the_result(
    lifecycle_settings: SettingsMaker,
) -> None:
    settings = lifecycle_settings()
    async with open_app(settings) as base:
        work = await base.lifecycle.commit(
            await base.lifecycle.prepare_work(issue_number=2, base=None, prompt="x")
        )
        app = App(settings=settings, db=base.db, caller=Caller(work, "explicit"))
        seen: list[tuple[float, float | None, str | None]] = []
        done = anyio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            assert not done.is_set(), "progress arrived after the result"
            seen.append((progress, total, message))

        async with Client(build_server(app)) as client:
            result = await client.call_tool("spawn_review_instance", {}, progress_callback=on_progress)
            done.set()
        assert not result.is_error, result.content
        values = [p for p, _, _ in seen]
        assert len(values) >= 3
        assert values == sorted(values) and len(set(values)) == len(values)  # strictly increasing
        assert all(total == 4.0 for _, total, _ in seen)
        assert any("tmux" in (m or "") for _, _, m in seen)


async def test_a_cancelled_spawn_is_either_complete_or_gone(
    lifecycle_settings: SettingsMaker, repo: Path, tmux_socket: str
) -> None:
    settings = lifecycle_settings()
    async with open_app(settings) as base:
        work = await base.lifecycle.commit(
            await base.lifecycle.prepare_work(issue_number=3, base=None, prompt="x")
        )
        app = App(settings=settings, db=base.db, caller=Caller(work, "explicit"))
        before_branches = branches(repo)
        async with Client(build_server(app)) as client:
            with anyio.move_on_after(30) as scope:

                async def cancel_on_progress(
                    progress: float, total: float | None, message: str | None
                ) -> None:
                    if progress >= 2:  # the worktree is being made: cancel right in the middle
                        scope.cancel()

                await client.call_tool("spawn_review_instance", {}, progress_callback=cancel_on_progress)
            # The spawn is fast: the cancellation may arrive after it finished. Both outcomes must be
            # whole; tests/test_spawn_failures.py cancels deterministically at every step.

            async def settled() -> list[dict[str, object]]:
                rows = await base.db.fetchall(
                    "SELECT success, error_message FROM mcp_events WHERE tool_name = 'spawn_review_instance'"
                )
                return [dict(r) for r in rows]

            (event,) = await wait_for(settled)
        review = await instances_store.get(base.db, "review-3-a1")
        if event["success"]:
            assert review is not None and review.status == "running"
        else:
            assert "cancelled" in str(event["error_message"])
            assert review is None
            assert branches(repo) == before_branches
            assert "review-3-a1" not in tmux_sessions(tmux_socket)
            assert not (repo / "worktrees" / "review-3-a1").exists()
        # No transaction was left open: another write goes through at once.
        async with base.db.write() as tx:
            await tx.execute("UPDATE instances SET prompt = prompt WHERE id = ?", (work.id,))
