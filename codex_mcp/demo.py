"""``codex-mcp demo``: the review loop end to end, on a throwaway repository, in a few seconds.

It needs no Claude Code and no network: the agents are scripted stand-ins (real MCP clients, see
``codex_mcp.standin``) started in real tmux sessions on a private socket, each talking to its own
``codex-mcp serve`` through the MCP config it was given. The work agent edits a file (uncommitted)
and asks for a review; the reviewer, working on a snapshot of that work, sends feedback and ends
itself; the feedback lands in the work worktree and in the work agent's terminal. Then the demo
prints the instances, their relationship tree and the recorded tool calls, and cleans everything up.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from codex_mcp import git
from codex_mcp.errors import StateError
from codex_mcp.settings import Settings
from codex_mcp.tmux import Tmux

ISSUE_NUMBER = 1
ISSUE_TITLE = "Greet the user"
ISSUE_BODY = "The program should print a friendly greeting."
FEEDBACK = "The greeting works. Please also end it with an exclamation mark, and add a test."

SCRIPT: dict[str, list[dict[str, Any]]] = {
    "work": [
        {"write": {"path": "greeting.txt", "text": "Hello, world\n"}},
        {"call": "spawn_review_instance", "args": {"reviewer_prompt": "Check the wording of the greeting."}},
        {"wait_feedback": 60},
    ],
    "review": [
        {
            "call": "send_feedback",
            "args": {"feedback": FEEDBACK, "feedback_type": "needs_work", "priority": "high"},
        },
        {"call": "terminate_instance"},
    ],
}


DEMO_AUTHOR = {
    "GIT_AUTHOR_NAME": "codex-mcp demo",
    "GIT_AUTHOR_EMAIL": "demo@localhost",
    "GIT_COMMITTER_NAME": "codex-mcp demo",
    "GIT_COMMITTER_EMAIL": "demo@localhost",
}


async def _make_repo(folder: Path) -> Path:
    repo = folder / "repo"
    repo.mkdir()
    await git.run(repo, "init", "-q", "-b", "main")
    (repo / "hello.py").write_text('print("hello")\n', encoding="utf-8")
    await git.run(repo, "add", "hello.py")
    await git.run(repo, "commit", "-q", "-m", "A program that says hello", env=DEMO_AUTHOR)
    return repo


async def run_demo(*, keep: bool = False, timeout: float = 60.0) -> dict[str, Any]:
    from codex_mcp.app import open_app
    from codex_mcp.store import events as events_store
    from codex_mcp.store import instances as instances_store
    from codex_mcp.store import issues as issues_store
    from codex_mcp.store import relationships as relationships_store
    from codex_mcp.store.issues import Issue

    if shutil.which("tmux") is None:
        raise StateError("the demo runs agents in tmux, which is not installed; install tmux and retry")
    folder = Path(tempfile.mkdtemp(prefix="codex-mcp-demo-"))
    socket = f"codex-demo-{os.getpid()}-{os.urandom(3).hex()}"
    script = folder / "script.json"
    script.write_text(json.dumps(SCRIPT), encoding="utf-8")
    try:
        repo = await _make_repo(folder)
        agent = shlex.join([sys.executable, "-m", "codex_mcp.standin"]) + (
            f" --mcp-config {{mcp_config}} --instance {{instance_id}} --script {shlex.quote(str(script))}"
        )
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CODEX_MCP_")}
        environ.update(
            {
                "CODEX_MCP_TMUX_SOCKET": socket,
                "CODEX_MCP_AGENT_COMMAND": agent,
                "CODEX_MCP_SECRET_KEY_FILE": str(folder / "secret.key"),
            }
        )
        settings = Settings.load(environ, cwd=repo)
        started = time.monotonic()
        async with open_app(settings) as app:
            async with app.db.write() as tx:
                await issues_store.upsert_many(
                    tx,
                    [Issue(number=ISSUE_NUMBER, title=ISSUE_TITLE, body=ISSUE_BODY, state="open",
                           repo_owner="demo", repo_name="repo")],
                )  # fmt: skip
            lifecycle = app.lifecycle
            work = await lifecycle.commit(
                await lifecycle.prepare_work(
                    issue_number=ISSUE_NUMBER, base=None, prompt="Say hello to the user."
                )
            )
            feedback_dir = Path(work.worktree_path) / ".codex" / "feedback"
            review_id = f"review-{ISSUE_NUMBER}-a1"
            with anyio.fail_after(timeout):
                while True:
                    review = await instances_store.get(app.db, review_id)
                    if (
                        review is not None
                        and review.status == "terminated"
                        and any(feedback_dir.glob("*.md"))
                    ):
                        break
                    await anyio.sleep(0.05)
            root, edges = await relationships_store.tree_of(app.db, work.id)
            instances = await instances_store.list_dashboard(app.db, status=None)
            recorded = await events_store.list_recent(app.db, limit=50)
            feedback_file = sorted(feedback_dir.glob("*.md"))[0]
            review_worktree = Path(review.worktree_path) if review else None
            result = {
                "repository": str(repo),
                "database": str(app.db.path),
                "tmux_socket": socket,
                "seconds": round(time.monotonic() - started, 2),
                "instances": [i.model_dump(mode="json", exclude={"prompt"}) for i in instances],
                "tree": {"root": root, "edges": [e.model_dump(mode="json") for e in edges]},
                "events": [e.model_dump(mode="json") for e in reversed(recorded)],
                "feedback_file": str(feedback_file.relative_to(work.worktree_path)),
                "feedback": feedback_file.read_text(encoding="utf-8"),
                "review_saw_uncommitted_work": bool(
                    review_worktree and (review_worktree / "greeting.txt").exists()
                ),
                "kept": str(folder) if keep else None,
            }
    finally:
        with anyio.CancelScope(shield=True):
            await Tmux(socket).kill_server()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    return result


def print_demo(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print("[bold]codex-mcp demo[/bold]: the review loop on a throwaway repository")
    console.print(f"repository {result['repository']}, database {result['database']}")
    console.print(
        f"1. `start --issue {ISSUE_NUMBER}` made work-{ISSUE_NUMBER}-a1 (worktree, branch, tmux session, agent)\n"
        "2. its agent edited greeting.txt (uncommitted) and called spawn_review_instance\n"
        f"3. review-{ISSUE_NUMBER}-a1 started on a snapshot of that work "
        f"(saw greeting.txt: {'yes' if result['review_saw_uncommitted_work'] else 'no'}), called send_feedback, "
        "then terminate_instance\n"
        f"4. the feedback landed in {result['feedback_file']} and as a notice in the work agent's terminal\n"
        f"   (all in {result['seconds']} s)"
    )
    table = Table(title="instances", header_style="bold")
    for column in ("id", "type", "status", "issue", "branch", "tmux session"):
        table.add_column(column)
    for row in result["instances"]:
        issue = (
            f"#{row['issue_number']} {row.get('issue_title') or ''}".strip() if row["issue_number"] else ""
        )
        table.add_row(row["id"], row["type"], row["status"], issue, row["branch_name"], row["tmux_session"])
    console.print(table)
    console.print("[bold]relationship tree[/bold]")
    console.print(f"  {result['tree']['root']}")
    for edge in result["tree"]["edges"]:
        console.print(f"  └─ {edge['child_instance']} ({edge['relationship_type']}, {edge['child_status']})")
    events = Table(title="recorded tool calls (mcp_events)", header_style="bold")
    for column in ("time (UTC)", "instance", "tool", "ok", "ms"):
        events.add_column(column)
    for e in result["events"]:
        events.add_row(
            e["timestamp"], e["instance_id"], e["tool_name"], "yes" if e["success"] else "no",
            str((e.get("metadata") or {}).get("duration_ms", "")),
        )  # fmt: skip
    console.print(events)
    console.print("[bold]the feedback file[/bold]")
    console.print(result["feedback"].rstrip(), markup=False)
    if result.get("kept"):
        console.print(
            f"\nkept for inspection: {result['kept']} (tmux socket {result['tmux_socket']} was stopped)"
        )
    console.print(
        "\nReal use, in your repository: `codex-mcp start --issue N` starts Claude Code in a worktree; "
        "`codex-mcp attach ID` to watch it; `codex-mcp ls`, `show ID`, `events`; register the server with "
        "`claude mcp add codex -- codex-mcp serve` (see the README)."
    )
