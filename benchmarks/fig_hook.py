"""Figure 9: ``codex-mcp hook Stop``, the command Claude Code runs at the end of every agent turn.

A real Stop event (its JSON on stdin) recorded on a real database (made by ``codex-mcp db migrate``,
one running instance): the console script of this venv, exactly as the generated ``--settings`` file
runs it, with ``CODEX_MCP_DB`` and ``CODEX_MCP_INSTANCE`` as every spawned agent has them. Before each
run the row is set back to ``working`` (outside the timing), so every run records a real change
(working -> idle), not the cheaper nothing-changed path. No notify command is configured.

Baseline, alternated in the same run: the same interpreter doing nothing (``python -c pass``), i.e.
what any Python hook costs at the least. The figure is the ratio of the medians (goal <= 2x); the
paired ratio is in the data. The hooks are registered ``async``, so even this never delays the turn.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path

from common import CODEX, PYTHON, Row, X, alternate, fmt_ms, make_repo, median, ms, paired_ratio

TARGET = 2.0
INSTANCE = "work-1-a1"
STOP = json.dumps(
    {
        "session_id": "00000000-0000-4000-8000-000000000000",
        "transcript_path": "/dev/null",
        "cwd": "/",
        "hook_event_name": "Stop",
        "stop_hook_active": False,
        "last_assistant_message": "Done: the README is friendlier now.",
        "background_tasks": [],
    }
).encode()


def run_timed(argv: list[str], cwd: Path, env: dict[str, str], stdin: bytes) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or done.stdout or done.stderr:
        raise RuntimeError(f"{argv[-2:]} exited {done.returncode}: {done.stdout!r} {done.stderr!r}")
    return elapsed


async def hook_wall_time(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    reps = 5 if quick else 30
    repo = make_repo(tmp / "repo")
    db = tmp / "codex.db"
    base_env = {**env, "CODEX_MCP_DB": str(db), "CODEX_MCP_INSTANCE": INSTANCE}
    subprocess.run([CODEX, "db", "migrate"], cwd=repo, env=base_env, check=True, capture_output=True)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "INSERT INTO instances (id, type, status, worktree_path, branch_name, tmux_session, issue_number) "
            "VALUES (?, 'work', 'running', ?, 'codex/work-1-a1', ?, 1)",
            (INSTANCE, str(repo), INSTANCE),
        )
        conn.commit()

    def reset() -> None:
        with contextlib.closing(sqlite3.connect(db, timeout=10)) as conn:
            conn.execute(
                "UPDATE instances SET activity = 'working', activity_detail = NULL, activity_order = NULL "
                "WHERE id = ?",
                (INSTANCE,),
            )
            conn.commit()

    async def hook() -> float:
        reset()
        elapsed = run_timed([CODEX, "hook", "Stop"], repo, base_env, STOP)
        with contextlib.closing(sqlite3.connect(db)) as conn:
            (state,) = conn.execute("SELECT activity FROM instances WHERE id = ?", (INSTANCE,)).fetchone()
        if state != "idle":
            raise RuntimeError(f"the hook did not record idle (activity={state!r}); see {db.parent}/hook.log")
        return elapsed

    async def bare() -> float:
        reset()  # the same work outside the timing, so both sides run in the same conditions
        return run_timed([PYTHON, "-c", "pass"], repo, base_env, STOP)

    hook_s, bare_s = await alternate(reps, hook, bare)
    ratio = median(hook_s) / median(bare_s)
    return [
        Row(
            "hook_wall_time",
            "10. `codex-mcp hook Stop` (a real turn end, real database)",
            fmt_ms(median(hook_s)),
            f"`python -c pass` {fmt_ms(median(bare_s))}",
            f"{ratio:.2f}{X}",
            f"≤ {TARGET:g}{X}",
            ratio <= TARGET,
            {
                "hook_ms": [ms(s) for s in hook_s],
                "bare_ms": [ms(s) for s in bare_s],
                "ratio": round(ratio, 3),
                "paired_ratio": round(paired_ratio(hook_s, bare_s), 3),
                "reps": reps,
            },
            note=f"paired ratio {paired_ratio(hook_s, bare_s):.2f}{X}; hooks are registered async, so the turn "
            "never waits for them",
        )
    ]
