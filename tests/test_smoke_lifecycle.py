"""A first end-to-end pass of the review loop (work -> review -> feedback) through real tmux."""

from __future__ import annotations

from pathlib import Path

from support import SettingsMaker, read_standin_log, tmux_sessions, wait_for

from codex_mcp.app import App, open_app
from codex_mcp.store import instances as instances_store
from codex_mcp.store import relationships as relationships_store


async def test_review_loop_through_tmux_and_stand_in_agents(
    lifecycle_settings: SettingsMaker, tmux_socket: str
) -> None:
    settings = lifecycle_settings(
        {
            "work": [{"call": "spawn_review_instance", "args": {}}, {"wait_feedback": 30}],
            "review": [
                {"call": "send_feedback", "args": {"feedback": "ok", "feedback_type": "approved"}},
                {"call": "terminate_instance"},
            ],
        }
    )
    async with open_app(settings) as app:
        assert isinstance(app, App)
        prepared = await app.lifecycle.prepare_work(issue_number=3, base=None, prompt="go")
        work = await app.lifecycle.commit(prepared)
        assert work.id == "work-3-a1" and work.status == "running"

        async def reviewed() -> bool:
            review = await instances_store.get(app.db, "review-3-a1")
            return review is not None and review.status == "terminated"

        await wait_for(reviewed)
        feedback = await wait_for(
            lambda: list((Path(work.worktree_path) / ".codex" / "feedback").glob("*.md"))
        )
        assert "ok" in feedback[0].read_text()
        assert [r.id for r in await relationships_store.reviews_spawned_from(app.db, work.id)] == [
            "review-3-a1"
        ]
        log = read_standin_log(Path(work.worktree_path))
        assert any(e.get("event") == "input" and "review-3-a1" in e.get("text", "") for e in log)
        await wait_for(lambda: "review-3-a1" not in tmux_sessions(tmux_socket))
        assert "work-3-a1" in tmux_sessions(tmux_socket)
