"""Figure 4: ``spawn_review_instance`` end to end on a 5,000-file repository, vs the raw
``git worktree add`` + ``tmux new-session`` a reviewer needs at the very least.

A work instance (real worktree, real tmux session on a private server, an agent that only stays
alive) with a few uncommitted edits calls the tool through the SDK's in-process client, exactly as
its own server would run it. Between repetitions the reviewer is removed entirely (session,
worktree, branch, rows), so every repetition does the same work (same id, same files).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from common import (
    Row,
    TmuxServer,
    X,
    alternate,
    fmt_ms,
    git,
    make_repo,
    median,
    ms,
    paired_ratio,
    settle_index,
)

TARGET = 1.20
AGENT = "sleep 1000000"  # the stand-in agent: a tiny process that just stays alive
SETTLE = 0.3  # let the agent's launcher start before the next measurement


async def _run(argv: list[str], cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {err.decode().strip()}")
    return out.decode()


async def spawn_review(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    from mcp import Client

    from codex_mcp.app import App
    from codex_mcp.identity import Caller
    from codex_mcp.lifecycle import Lifecycle
    from codex_mcp.server import build_server
    from codex_mcp.settings import Settings
    from codex_mcp.store import instances as instances_store
    from codex_mcp.store import issues as issues_store
    from codex_mcp.store import open_database
    from codex_mcp.store.issues import Issue

    files = 500 if quick else 5000
    reps = 3 if quick else 7
    repo = make_repo(tmp / "repo", files=files)
    head = git(repo, "rev-parse", "HEAD")
    with TmuxServer() as tmux:
        mapping = {**env, "CODEX_MCP_TMUX_SOCKET": tmux.socket, "CODEX_MCP_AGENT_COMMAND": AGENT}
        settings = Settings.load(mapping, cwd=repo)
        db = await open_database(settings.require_db_path())
        try:
            async with db.write() as tx:  # the issue is in the cache, as after a sync
                await issues_store.upsert_many(
                    tx,
                    [
                        Issue(
                            number=7,
                            title="Speed up the parser",
                            body="It is slow on big inputs.\n" * 20,
                            state="open",
                            repo_owner="octo",
                            repo_name="flux",
                        )
                    ],
                )
            lifecycle = Lifecycle(settings, db)
            work = await lifecycle.commit(
                await lifecycle.prepare_work(issue_number=7, base=None, prompt="build")
            )
            worktree = Path(work.worktree_path)
            # The work under review: a few edited files and a new one, uncommitted.
            for n in (3, 1500 % files, files - 1):
                target = worktree / "src" / f"pkg{n // 100:03d}" / f"mod{n:05d}.py"
                target.write_text(target.read_text() + f"\n\ndef added_{n}() -> int:\n    return {n}\n")
            (worktree / "src" / "new_module.py").write_text("VALUE = 42\n")
            settle_index(repo, worktree)
            root = await lifecycle.worktrees_root()
            row = await instances_store.require(db, work.id)
            app = App(settings=settings, db=db, caller=Caller(row, "explicit"))

            async with Client(build_server(app), cache=None) as client:

                async def tool() -> dict[str, Any]:
                    started = time.perf_counter()
                    result = await client.call_tool("spawn_review_instance", {})
                    elapsed = time.perf_counter() - started
                    if result.is_error:
                        text = " ".join(getattr(c, "text", "") for c in result.content)
                        raise RuntimeError(f"spawn_review_instance failed: {text}")
                    out = dict(result.structured_content or {})
                    await asyncio.sleep(SETTLE)
                    review_id = out["review_instance_id"]
                    tmux.run("kill-session", "-t", f"={review_id}", check=False)
                    await _run(["git", "worktree", "remove", "--force", out["worktree_path"]], repo)
                    await _run(["git", "worktree", "prune"], repo)
                    await _run(["git", "update-ref", "-d", f"refs/heads/{out['branch_name']}"], repo)
                    async with db.write() as tx:
                        await tx.execute(
                            "DELETE FROM instance_relationships WHERE child_instance = ?", (review_id,)
                        )
                        await tx.execute("DELETE FROM instances WHERE id = ?", (review_id,))
                    return {"seconds": elapsed, "id": review_id}

                async def raw() -> dict[str, Any]:
                    path = root / "raw-review"
                    branch = "bench/raw-review"
                    started = time.perf_counter()
                    await _run(["git", "worktree", "add", "--quiet", "-b", branch, str(path), head], repo)
                    await _run(
                        [
                            "tmux",
                            "-L",
                            tmux.socket,
                            "new-session",
                            "-d",
                            "-s",
                            "raw-review",
                            "-x",
                            "200",
                            "-y",
                            "50",
                            "-c",
                            str(path),
                            "-P",
                            "-F",
                            "#{pane_pid}",
                            "--",
                            *AGENT.split(),
                        ],
                        repo,
                    )
                    elapsed = time.perf_counter() - started
                    await asyncio.sleep(SETTLE)
                    tmux.run("kill-session", "-t", "=raw-review", check=False)
                    await _run(["git", "worktree", "remove", "--force", str(path)], repo)
                    await _run(["git", "worktree", "prune"], repo)
                    await _run(["git", "branch", "-q", "-D", branch], repo)
                    return {"seconds": elapsed}

                a, b = await alternate(reps, tool, raw, warmup=1)
        finally:
            await db.close()
    t_tool = median(x["seconds"] for x in a)
    t_raw = median(x["seconds"] for x in b)
    ratio = t_tool / t_raw
    paired = paired_ratio([x["seconds"] for x in a], [x["seconds"] for x in b])
    return [
        Row(
            "spawn_review",
            f"4. spawn_review_instance, {files:,}-file repository",
            fmt_ms(t_tool),
            f"git worktree add + tmux new-session {fmt_ms(t_raw)}",
            f"{ratio:.2f}{X}",
            f"≤ {TARGET}{X}",
            ratio <= TARGET,
            {
                "files": files,
                "reps": reps,
                "tool_ms": [ms(x["seconds"]) for x in a],
                "raw_ms": [ms(x["seconds"]) for x in b],
                "tool_median_ms": ms(t_tool),
                "raw_median_ms": ms(t_raw),
                "overhead_ms": ms(t_tool - t_raw),
                "ratio": round(ratio, 3),
                "paired_ratio": round(paired, 3),
                "review_ids": sorted({x["id"] for x in a}),
            },
            note=f"overhead {fmt_ms(t_tool - t_raw)} per spawn (snapshot of the work in a temporary index, diff "
            f"summary, branch, launch files, rows); ratio of the medians of {reps} alternated runs each (median of "
            f"the paired ratios: {paired:.2f}{X}), everything removed between runs",
        )
    ]
