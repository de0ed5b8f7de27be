"""Figure 9: the git engine behind `diff` and `merge` on a 5,000-file repository, against plain git.

(a) what `codex-mcp diff --json` runs: ``Lifecycle.diff`` (lifecycle/diff.py) on an instance whose
worktree has two commits, a few uncommitted edits and an untracked file, JSON-dumped (every file's
patch included), vs ``git diff --merge-base main`` in that worktree: the plain command that shows the
same work from the same base (it leaves the untracked file out).
(b) what `codex-mcp merge` runs: ``Lifecycle.merge`` with the merge strategy (the instance's worktree
checked for uncommitted work, merge-tree conflict check, merge commit, fast-forward of the clean main
worktree), vs ``git merge --no-edit`` of the same branch in that worktree. Both make a real merge
commit (main has a commit the branch lacks); main is reset between runs, untimed.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from common import Row, X, alternate, fmt_ms, git, make_repo, median, ms, paired_ratio

TARGET = 1.30


async def _run(argv: list[str], cwd: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed: {err.decode().strip()}")
    return out.decode()


def _edit(root: Path, n: int, text: str) -> None:
    target = root / "src" / f"pkg{n // 100:03d}" / f"mod{n:05d}.py"
    target.write_text(target.read_text() + text)


def _row(key: str, figure: str, baseline: str, a: list[float], b: list[float], data: dict[str, Any]) -> Row:
    t_a, t_b = median(a), median(b)
    ratio = t_a / t_b
    paired = paired_ratio(a, b)
    return Row(
        key,
        figure,
        fmt_ms(t_a),
        f"{baseline} {fmt_ms(t_b)}",
        f"{ratio:.2f}{X}",
        f"≤ {TARGET}{X}",
        ratio <= TARGET,
        {
            **data,
            "measured_ms": [ms(x) for x in a],
            "baseline_ms": [ms(x) for x in b],
            "measured_median_ms": ms(t_a),
            "baseline_median_ms": ms(t_b),
            "ratio": round(ratio, 3),
            "paired_ratio": round(paired, 3),
        },
        note=f"+{fmt_ms(t_a - t_b)}; ratio of the medians of {len(a)} alternated runs each (median of the "
        f"paired ratios: {paired:.2f}{X})",
    )


async def supervision(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    from codex_mcp.lifecycle import Lifecycle
    from codex_mcp.settings import Settings
    from codex_mcp.store import open_database
    from codex_mcp.store.instances import Instance

    files = 500 if quick else 5000
    reps = 5 if quick else 15
    repo = make_repo(tmp / "repo", files=files)
    git(repo, "branch", "work")
    wt = tmp / "work"
    git(repo, "worktree", "add", "-q", str(wt), "work")
    for n in (3, 1500 % files):
        _edit(wt, n, f"\n\ndef committed_{n}() -> int:\n    return {n}\n")
        git(wt, "commit", "-qam", f"work on {n}")
    for n in (7, 2500 % files, files - 1):
        _edit(wt, n, f"\n\ndef uncommitted_{n}() -> int:\n    return {n}\n")
    (wt / "src" / "new_module.py").write_text("VALUE = 42\n")
    _edit(repo, 4000 % files, "\n# main moved on\n")
    git(repo, "commit", "-qam", "main moves on")

    settings = Settings.load(env, cwd=repo)
    db = await open_database(settings.require_db_path())
    lifecycle = Lifecycle(settings, db)
    instance = Instance(
        id="work-1-a1",
        type="work",
        status="running",
        worktree_path=str(wt),
        branch_name="work",
        base_branch="main",
        tmux_session="codex-work-1-a1",
    )
    try:
        return await _figures(repo, wt, lifecycle, instance, files, reps)
    finally:
        await db.close()


async def _figures(repo: Path, wt: Path, lifecycle: Any, instance: Any, files: int, reps: int) -> list[Row]:
    # (a) the diff view, as `diff --json` prints it
    async def view() -> float:
        started = time.perf_counter()
        diff = await lifecycle.diff(instance)
        json.dumps(diff.model_dump(mode="json"))
        return time.perf_counter() - started

    async def plain_diff() -> float:
        started = time.perf_counter()
        await _run(["git", "diff", "--merge-base", "main"], wt)
        return time.perf_counter() - started

    a, b = await alternate(reps, view, plain_diff, warmup=1)
    sample = await lifecycle.diff(instance)
    rows = [
        _row(
            "supervision_diff",
            f"9a. diff --json (Lifecycle.diff), {files:,}-file repository",
            "git diff --merge-base main",
            a,
            b,
            {
                "files": files,
                "reps": reps,
                "changed_files": len(sample.files),
            },
        )
    ]

    # (b) landing with the merge strategy on the clean main worktree
    git(wt, "stash", "-q", "-u")  # the instance's work is committed before it lands
    main_before = git(repo, "rev-parse", "main")

    async def reset() -> None:
        await _run(["git", "reset", "-q", "--hard", main_before], repo)

    async def landing() -> float:
        started = time.perf_counter()
        await lifecycle.merge(instance, into=None, strategy="merge", to_agent=False, sender="bench")
        elapsed = time.perf_counter() - started
        await reset()
        return elapsed

    async def plain_merge() -> float:
        started = time.perf_counter()
        await _run(["git", "merge", "-q", "--no-edit", "work"], repo)
        elapsed = time.perf_counter() - started
        await reset()
        return elapsed

    a, b = await alternate(reps, landing, plain_merge, warmup=1)
    rows.append(
        _row(
            "supervision_merge",
            f"9b. merge (Lifecycle.merge, strategy merge), {files:,}-file repository",
            "git merge --no-edit",
            a,
            b,
            {"files": files, "reps": reps},
        )
    )
    return rows
