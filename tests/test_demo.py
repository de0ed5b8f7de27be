"""`codex-mcp demo`: the README's main job, run exactly as a newcomer runs it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support import run_cli

from codex_mcp.demo import FEEDBACK


def test_demo_runs_the_review_loop_and_cleans_up(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # Run from a folder that is not a repository: the demo needs nothing but python, git and tmux.
    done = run_cli("demo", "--json", cwd=tmp_path, env={**cli_env, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)

    by_id = {i["id"]: i for i in result["instances"]}
    assert set(by_id) == {"work-1-a1", "review-1-a1"}
    assert by_id["work-1-a1"]["issue_title"] == "Greet the user"
    assert by_id["review-1-a1"]["status"] == "terminated"
    assert result["tree"] == {
        "root": "work-1-a1",
        "edges": [
            {
                "parent_instance": "work-1-a1",
                "child_instance": "review-1-a1",
                "relationship_type": "spawned_review",
                "child_status": "terminated",
            }
        ],
    }
    calls = [(e["instance_id"], e["tool_name"], e["success"]) for e in result["events"]]
    assert calls == [
        ("work-1-a1", "spawn_review_instance", True),
        ("review-1-a1", "send_feedback", True),
        ("review-1-a1", "terminate_instance", True),
    ]
    assert FEEDBACK in result["feedback"]
    assert result["feedback_file"].startswith(".codex/feedback/")
    # The reviewer worked on a snapshot that held the work agent's uncommitted file.
    assert result["review_saw_uncommitted_work"] is True

    # Cleaned up: the throwaway repository is gone and the private tmux server stopped.
    assert not Path(result["repository"]).exists()
    assert list(tmp_path.glob("codex-mcp-demo-*")) == []
    probe = subprocess.run(["tmux", "-L", result["tmux_socket"], "list-sessions"], capture_output=True)
    assert probe.returncode != 0
