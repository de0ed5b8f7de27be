"""Figure 9: the git engine behind `diff` and `merge` on a 5,000-file repository, against plain git.

(a) what `codex-mcp diff --json` runs: ``Lifecycle.diff`` (lifecycle/diff.py) on an instance whose
worktree has two commits, a few uncommitted edits and an untracked file, JSON-dumped (every file's
patch included), vs ``git diff --merge-base main`` in that worktree: the plain command that shows the
same work from the same base (it leaves the untracked file out).
(b) what `codex-mcp merge` runs: ``Lifecycle.merge`` with the merge strategy (the instance's worktree
checked for uncommitted work, merge-tree conflict check, merge commit, fast-forward of the clean main
worktree), vs ``git merge --no-edit`` of the same branch in that worktree. Both make a real merge
commit (main has a commit the branch lacks); main is reset between runs, untimed.

Each run also records its CPU time (this process and the git processes it waited for, from
getrusage): far less sensitive than wall time to the other work on a shared machine. Beside the
baselines, a third side is timed for context only: the plain commands a careful person runs to learn
as much (9a: also ``git ls-files --others`` and ``git log main..HEAD``; 9b: ``git status`` in both
worktrees before ``git merge``), one after the other.
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

from common import Row, X, alternate, fmt_ms, git, make_repo, median, ms, paired_ratio, settle_index

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


Sample = tuple[float, float]  # (wall seconds, CPU seconds)


def _cpu() -> float:
    """CPU seconds of this process and of the children it has waited for (the git processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def _timed(work: Callable[[], Awaitable[Any]]) -> Sample:
    cpu, started = _cpu(), time.perf_counter()
    await work()
    return time.perf_counter() - started, _cpu() - cpu


def _row(
    key: str,
    figure: str,
    baseline: str,
    samples_a: list[Sample],
    samples_b: list[Sample],
    by_hand: list[Sample],
    data: dict[str, Any],
) -> Row:
    a, b = [w for w, _ in samples_a], [w for w, _ in samples_b]
    cpu_a, cpu_b = median(c for _, c in samples_a), median(c for _, c in samples_b)
    t_hand = median(w for w, _ in by_hand)
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
            "measured_cpu_ms": [ms(c) for _, c in samples_a],
            "baseline_cpu_ms": [ms(c) for _, c in samples_b],
            "cpu_ratio": round(cpu_a / cpu_b, 3),
            "by_hand_ms": [ms(w) for w, _ in by_hand],
            "by_hand_median_ms": ms(t_hand),
        },
        note=f"{'+' if t_a >= t_b else '-'}{fmt_ms(abs(t_a - t_b))}; ratio of the medians of {len(a)} alternated runs each (median of the "
        f"paired ratios: {paired:.2f}{X}); CPU time {fmt_ms(cpu_a)} vs {fmt_ms(cpu_b)} "
        f"({cpu_a / cpu_b:.2f}{X}); the plain commands that tell as much, one after the other: "
        f"{fmt_ms(t_hand)} ({t_a / t_hand:.2f}{X})",
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
    for n in (3, files * 3 // 10):  # 1,500 of 5,000; 150 of --quick's 500
        _edit(wt, n, f"\n\ndef committed_{n}() -> int:\n    return {n}\n")
        git(wt, "commit", "-qam", f"work on {n}")
    for n in (7, files // 2, files - 1):
        _edit(wt, n, f"\n\ndef uncommitted_{n}() -> int:\n    return {n}\n")
    (wt / "src" / "new_module.py").write_text("VALUE = 42\n")
    _edit(repo, files * 4 // 5, "\n# main moved on\n")
    git(repo, "commit", "-qam", "main moves on")
    settle_index(repo, wt)

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
    async def view() -> None:
        diff = await lifecycle.diff(instance)
        json.dumps(diff.model_dump(mode="json"))

    async def plain_diff() -> None:
        await _run(["git", "diff", "--merge-base", "main"], wt)

    async def diff_by_hand() -> None:
        await _run(["git", "diff", "--merge-base", "main"], wt)
        await _run(["git", "ls-files", "--others", "--exclude-standard"], wt)
        await _run(["git", "log", "main..HEAD"], wt)

    a, b = await alternate(reps, partial(_timed, view), partial(_timed, plain_diff), warmup=1)
    hand = [await _timed(diff_by_hand) for _ in range(reps)]
    sample = await lifecycle.diff(instance)
    rows = [
        _row(
            "supervision_diff",
            f"9a. diff --json (Lifecycle.diff), {files:,}-file repository",
            "git diff --merge-base main",
            a,
            b,
            hand,
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

    async def landing() -> Sample:
        taken = await _timed(
            partial(lifecycle.merge, instance, into=None, strategy="merge", to_agent=False, sender="bench")
        )
        await reset()
        return taken

    async def plain_merge() -> Sample:
        taken = await _timed(partial(_run, ["git", "merge", "-q", "--no-edit", "work"], repo))
        await reset()
        return taken

    async def merge_by_hand() -> Sample:
        async def commands() -> None:
            await _run(["git", "status", "--porcelain"], wt)
            await _run(["git", "status", "--porcelain"], repo)
            await _run(["git", "merge", "-q", "--no-edit", "work"], repo)

        taken = await _timed(commands)
        await reset()
        return taken

    a, b = await alternate(reps, landing, plain_merge, warmup=1)
    hand = [await merge_by_hand() for _ in range(reps)]
    rows.append(
        _row(
            "supervision_merge",
            f"9b. merge (Lifecycle.merge, strategy merge), {files:,}-file repository",
            "git merge --no-edit",
            a,
            b,
            hand,
            {"files": files, "reps": reps},
        )
    )
    return rows
