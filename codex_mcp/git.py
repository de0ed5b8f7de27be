"""The git adapter.

Start-up paths (settings, identity) only need a few ``git rev-parse`` answers; they run the git
binary directly with an argv list (never a shell) so that no server pays for importing GitPython
before it needs it. Worktree and branch operations (GitPython) live here too, imported lazily.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from codex_mcp.errors import UpstreamError


@dataclass(frozen=True)
class RepoLocation:
    """Where a working directory sits in git: its checkout root and the shared ``.git`` directory."""

    toplevel: Path
    common_dir: Path


def _git(cwd: Path, *args: str) -> str | None:
    """Run ``git <args>`` in ``cwd``; the stripped stdout, or None when git says no."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except FileNotFoundError as exc:
        raise UpstreamError("git is not installed or not on PATH; install git and try again") from exc
    except (NotADirectoryError, PermissionError) as exc:
        raise UpstreamError(f"cannot run git in {cwd}: {exc.strerror}") from exc
    except subprocess.TimeoutExpired as exc:
        raise UpstreamError(f"git {' '.join(args)} in {cwd} did not answer within 30 s") from exc
    if done.returncode != 0:
        return None
    return done.stdout.strip()


def locate(cwd: Path) -> RepoLocation | None:
    """The repository ``cwd`` lies in, or None outside any git repository.

    One git call answers both questions. ``--git-common-dir`` is the main repository's ``.git`` for
    every linked worktree, which is why the default database lives there: all worktrees share it.
    """
    out = _git(cwd, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir")
    if not out:
        return None
    lines = out.splitlines()
    if len(lines) != 2:  # a bare repository has no toplevel
        return None
    return RepoLocation(toplevel=Path(lines[0]), common_dir=Path(lines[1]))


def current_branch(cwd: Path) -> str | None:
    """The branch checked out in ``cwd``, or None on a detached HEAD."""
    out = _git(cwd, "symbolic-ref", "--quiet", "--short", "HEAD")
    return out or None
