"""The git adapter: the only module that runs git.

git is run as a binary with an argv list, never through a shell. We call it directly rather than
through GitPython's wrapper (which runs the same binary) for three reasons: exact control of the
environment (a snapshot is built in a temporary index via GIT_INDEX_FILE), hard timeouts on every
call, and start-up cost (Claude Code starts one server per agent).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from codex_mcp.errors import InputError, UpstreamError


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


# ------------------------------------------------------------------------------------ async operations
# Every call is an argv list (no shell); refs built from input are validated first and come after
# `--end-of-options` or `--` wherever git accepts it.

ZERO_SHA = "0" * 40


class GitError(UpstreamError):
    pass


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


async def run(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> GitResult:
    import anyio

    full_env = {**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        with anyio.fail_after(timeout):
            done = await anyio.run_process(["git", *args], cwd=cwd, env=full_env, check=False)
    except TimeoutError as exc:
        raise GitError(f"git {args[0]} in {cwd} did not finish within {timeout:.0f} s") from exc
    except FileNotFoundError as exc:
        raise GitError(
            f"cannot run git in {cwd}: {exc.strerror}; is git installed and the folder there?"
        ) from exc
    result = GitResult(
        done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    )
    if check and result.returncode != 0:
        raise GitError(
            f"git {args[0]} failed in {cwd}: {_first_line(result.stderr) or 'exit ' + str(result.returncode)}"
        )
    return result


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or [""])[0]


async def validate_branch_name(repo: Path, name: str, *, what: str = "branch") -> str:
    """A branch name that git accepts and that cannot be read as an option."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    if not name or name.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in name) or ".." in name:
        raise InputError(f"{what} {shown!r} is not a valid branch name; give a branch such as 'main'")
    result = await run(repo, "check-ref-format", "--branch", name, check=False)
    if result.returncode != 0:
        raise InputError(f"{what} {shown!r} is not a valid branch name; give a branch such as 'main'")
    return name


async def resolve_commit(repo: Path, ref: str, *, what: str = "base") -> str:
    """The commit ``ref`` names, or an InputError saying it does not exist."""
    await validate_branch_name(repo, ref, what=what)
    result = await run(
        repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False
    )
    sha = result.stdout.strip()
    if result.returncode != 0 or len(sha) != 40:
        raise InputError(f"{what} {ref!r} does not exist in {repo}; list branches with `git branch -a`")
    return sha


async def head_branch(worktree: Path) -> str | None:
    result = await run(worktree, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return result.stdout.strip() or None


async def create_branch(repo: Path, branch: str, sha: str) -> bool:
    """Create ``branch`` at ``sha`` atomically; False when it already exists (nothing changed)."""
    result = await run(
        repo,
        "update-ref",
        "-m",
        "codex-mcp: new instance",
        f"refs/heads/{branch}",
        sha,
        ZERO_SHA,
        check=False,
    )
    if result.returncode == 0:
        return True
    exists = await run(repo, "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    if exists.returncode == 0 or "cannot lock ref" in result.stderr:
        # Taken, or being taken this very moment by a concurrent spawn: either way not ours.
        return False
    raise GitError(f"cannot create branch {branch}: {_first_line(result.stderr)}")


async def delete_branch(repo: Path, branch: str, expected_sha: str | None = None) -> None:
    """Delete ``branch`` (only if it still points at ``expected_sha`` when given)."""
    args = ["update-ref", "-d", f"refs/heads/{branch}"]
    if expected_sha:
        args.append(expected_sha)
    await run(repo, *args)


async def branch_sha(repo: Path, branch: str) -> str | None:
    result = await run(repo, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False)
    return result.stdout.strip() or None


@asynccontextmanager
async def worktrees_lock(repo: Path) -> AsyncIterator[None]:
    """Serialise worktree changes across processes: concurrent `git worktree add` calls read each
    other's half-written administrative files ("failed to read .git/worktrees/<x>/commondir")."""
    import fcntl

    import anyio

    common = (await run(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")).stdout.strip()
    folder = Path(common) / "codex-mcp"
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "worktrees.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await anyio.to_thread.run_sync(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


async def worktree_add(repo: Path, path: Path, branch: str) -> None:
    async with worktrees_lock(repo):
        await run(repo, "worktree", "add", "--quiet", "--", str(path), branch)


async def worktree_remove(repo: Path, path: Path, *, force: bool = False) -> None:
    args = ["worktree", "remove"]
    if force:
        args.append("--force")
    async with worktrees_lock(repo):
        await run(repo, *args, "--", str(path))
        await run(repo, "worktree", "prune", check=False)


async def is_dirty(worktree: Path) -> list[str]:
    """The paths with uncommitted changes (untracked included, ignored excluded)."""
    result = await run(worktree, "status", "--porcelain=v1", "--untracked-files=all", "-z")
    return [entry[3:] for entry in result.stdout.split("\0") if entry]


async def snapshot(worktree: Path) -> str:
    """A commit holding the worktree exactly as it is, uncommitted and untracked files included.

    Built in a temporary index, so the worktree's own index and files are never touched; the
    commit's parent is HEAD, so ``git diff HEAD <snapshot>`` shows the uncommitted work.
    """
    import shutil
    import tempfile

    import anyio

    head = (await run(worktree, "rev-parse", "--verify", "HEAD^{commit}")).stdout.strip()
    own_index = (
        await run(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index")
    ).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="codex-snapshot-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        try:
            # A copy of the worktree's own index carries valid stat data: `add --all` then only
            # rehashes files that changed, instead of every file of a large tree.
            # Off the event loop: the index of a large tree is megabytes.
            await anyio.to_thread.run_sync(shutil.copyfile, own_index, env["GIT_INDEX_FILE"])
        except OSError:
            await run(worktree, "read-tree", head, env=env)
        await run(worktree, "add", "--all", "--", ".", env=env)
        tree = (await run(worktree, "write-tree", env=env)).stdout.strip()
    head_tree = (await run(worktree, "rev-parse", f"{head}^{{tree}}")).stdout.strip()
    if tree == head_tree:
        return head
    commit_env = {
        "GIT_AUTHOR_NAME": "codex-mcp",
        "GIT_AUTHOR_EMAIL": "codex-mcp@localhost",
        "GIT_COMMITTER_NAME": "codex-mcp",
        "GIT_COMMITTER_EMAIL": "codex-mcp@localhost",
    }
    message = "codex-mcp snapshot: uncommitted work at review time"
    return (
        await run(worktree, "commit-tree", tree, "-p", head, "-m", message, env=commit_env)
    ).stdout.strip()


async def diff_summary(repo: Path, base: str, head: str) -> tuple[list[str], str]:
    """(changed files, `--stat` text) of ``head`` against its merge base with ``base``."""
    merge_base = (await run(repo, "merge-base", base, head, check=False)).stdout.strip() or base
    files = (await run(repo, "diff", "--name-status", merge_base, head)).stdout.strip().splitlines()
    stat = (await run(repo, "diff", "--stat", merge_base, head)).stdout.rstrip()
    return files, stat


async def unsafe_to_delete(repo: Path, branch: str, base: str | None) -> str | None:
    """Why deleting ``branch`` would lose work, or None when every commit is pushed or merged."""
    sha = await branch_sha(repo, branch)
    if sha is None:
        return None
    # Commits on the branch that no remote-tracking branch and no base branch contains.
    args = ["rev-list", "--count", sha, "--not", "--remotes"]
    if base:
        base_sha = await branch_sha(repo, base)
        if base_sha:
            args.append(base_sha)
    count = int((await run(repo, *args)).stdout.strip() or "0")
    if count:
        return f"branch {branch} has {count} commit(s) that are neither pushed nor merged into {base or 'a remote'}"
    return None


def exclude_from_status(common_dir: Path, patterns: list[str]) -> None:
    """Add patterns to the repository's own ``info/exclude`` (shared by every worktree; never committed)."""
    info = common_dir / "info"
    info.mkdir(parents=True, exist_ok=True)
    exclude = info / "exclude"
    current = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    lines = set(current.splitlines())
    missing = [p for p in patterns if p not in lines]
    if not missing:
        return
    addition = (
        ("" if current.endswith("\n") or not current else "\n") + "# codex-mcp\n" + "\n".join(missing) + "\n"
    )
    with exclude.open("a", encoding="utf-8") as fh:
        fh.write(addition)
