"""The git adapter: the only package that runs git. This module holds the runner and what spawning
and serving need (locate, branches, worktrees, snapshots, pushes); :mod:`codex_mcp.git.supervision`
the diff and landing engine of `diff`, `merge` and `clean`, kept apart so that a server's start does
not import it.

git is run as a binary with an argv list, never through a shell, for exact control of the environment
(a snapshot is built in a temporary index via GIT_INDEX_FILE), hard timeouts on every call, and
start-up cost (Claude Code starts one server per agent). Commit history is read with one ``git log``
too: GitPython, used here before, took ~0.4 s to import in a fresh `codex-mcp diff` process.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codex_mcp.errors import ConfigError, InputError, StateError, UpstreamError


@dataclass(frozen=True)
class RepoLocation:
    """Where a working directory sits in git: its checkout root and the shared ``.git`` directory."""

    toplevel: Path
    common_dir: Path


# ------------------------------------------------------------------------------------------ the runner
# Every git call goes through `run` (async) or `run_sync` (start-up only: `locate`, `current_branch`).
# Both build the command the same way and share one failure behaviour:
#   git missing, cwd unusable, no answer in time -> GitUnavailable (an UpstreamError saying what to do)
#   non-zero exit                                -> GitError carrying git's stderr, or, with
#                                                   check=False, the GitResult for the caller to read.


class GitUnavailable(UpstreamError):
    """git could not be run in that folder, or did not answer in time: nothing is known about the repo."""


class GitError(UpstreamError):
    """git ran and said no; ``stderr`` and ``returncode`` are git's own (None: a refusal read from output)."""

    def __init__(self, message: str, *, returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class GitResult:
    returncode: int
    stdout: str
    stderr: str


def _command(args: tuple[str, ...], env: dict[str, str] | None) -> tuple[list[str], dict[str, str]]:
    # No prompt may wait for a terminal nobody watches; messages in English, since some are matched.
    return ["git", *args], {**os.environ, **(env or {}), "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _unavailable(exc: OSError, cwd: Path) -> GitUnavailable:
    # subprocess names the missing program in `filename`, or the working directory it could not enter.
    if isinstance(exc, FileNotFoundError) and exc.filename == "git":
        return GitUnavailable("git is not installed or not on PATH; install git and try again")
    return GitUnavailable(
        f"cannot run git in {cwd}: {exc.strerror}; check that the folder exists and is readable"
    )


def _timed_out(cwd: Path, args: tuple[str, ...], timeout: float) -> GitUnavailable:
    return GitUnavailable(
        f"git {args[0]} in {cwd} did not answer within {timeout:g} s; retry, and if it persists look "
        "for another git process holding a lock in that repository"
    )


def _result(
    cwd: Path, args: tuple[str, ...], returncode: int, stdout: bytes, stderr: bytes, check: bool
) -> GitResult:
    result = GitResult(returncode, stdout.decode("utf-8", "replace"), stderr.decode("utf-8", "replace"))
    if check and result.returncode != 0:
        raise GitError(
            f"git {args[0]} failed in {cwd}: {first_line(result.stderr) or 'exit ' + str(result.returncode)}",
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return result


def first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("fatal:", "error:"))]
    return (fatal or lines or [""])[0]


async def run(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> GitResult:
    """``git <args>`` in ``cwd``, waited on in a worker thread, so the event loop keeps serving meanwhile.

    A thread running ``subprocess`` costs the loop ~0.5 ms of CPU per git call, an asyncio child
    process (pipe transports, a child-watcher thread of its own) ~2 ms: `merge` runs nine git calls,
    `diff` seven. Cancelled, the call does not wait for the thread: the git process is killed."""
    import anyio

    argv, full_env = _command(args, env)
    state: dict[str, Any] = {}

    def call() -> tuple[int, bytes, bytes]:
        if state.get("cancelled"):
            return -1, b"", b""  # cancelled before it started: nobody waits for this answer any more
        # stdin is not inherited: under `serve` it is the MCP client's pipe.
        with subprocess.Popen(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as proc:
            state["proc"] = proc
            if state.get("cancelled"):
                proc.kill()
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise
            return proc.returncode, out, err

    try:
        returncode, stdout, stderr = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
    except subprocess.TimeoutExpired as exc:
        raise _timed_out(cwd, args, timeout) from exc
    except OSError as exc:
        raise _unavailable(exc, cwd) from exc
    except anyio.get_cancelled_exc_class():
        state["cancelled"] = True
        if (proc := state.get("proc")) is not None:
            proc.kill()  # the abandoned thread's communicate() then returns at once
        raise
    return _result(cwd, args, returncode, stdout, stderr, check)


def run_sync(
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 30,
) -> GitResult:
    """`run` for the few calls made before any event loop exists (settings, identity at start-up)."""
    argv, full_env = _command(args, env)
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise _timed_out(cwd, args, timeout) from exc
    except OSError as exc:
        raise _unavailable(exc, cwd) from exc
    return _result(cwd, args, done.returncode, done.stdout, done.stderr, check)


# ------------------------------------------------------------------------------------ sync operations


def locate(cwd: Path) -> RepoLocation | None:
    """The repository ``cwd`` lies in, or None outside any git repository.

    One git call answers both questions. ``--git-common-dir`` is the main repository's ``.git`` for
    every linked worktree, which is why the default database lives there: all worktrees share it.
    """
    result = run_sync(
        cwd, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", check=False
    )
    lines = result.stdout.strip().splitlines() if result.returncode == 0 else []
    if len(lines) != 2:  # a bare repository has no toplevel
        return None
    return RepoLocation(toplevel=Path(lines[0]), common_dir=Path(lines[1]))


def current_branch(cwd: Path) -> str | None:
    """The branch checked out in ``cwd``, or None on a detached HEAD."""
    result = run_sync(cwd, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    return result.stdout.strip() or None


# ------------------------------------------------------------------------------------ async operations
# Every call is an argv list (no shell); refs built from input are validated first and come after
# `--end-of-options` or `--` wherever git accepts it.

ZERO_SHA = "0" * 40


async def validate_branch_name(repo: Path, name: str, *, what: str = "branch") -> str:
    """A branch name that git accepts and that cannot be read as an option."""
    shown = name if len(name) <= 80 else name[:77] + "..."
    if not name or name.startswith("-") or any(ch.isspace() or ord(ch) < 32 for ch in name) or ".." in name:
        raise InputError(f"{what} {shown!r} is not a valid branch name; give a branch such as 'main'")
    if _plainly_valid_branch(name):
        return name
    result = await run(repo, "check-ref-format", "--branch", name, check=False)
    if result.returncode != 0:
        raise InputError(f"{what} {shown!r} is not a valid branch name; give a branch such as 'main'")
    return name


_PLAIN_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")


def _plainly_valid_branch(name: str) -> bool:
    """True only for names ``git check-ref-format --branch`` certainly accepts (ASCII letters, digits,
    ``_ . - /`` in git's rules), so the usual name needs no git process; any other goes to git."""
    return (
        _PLAIN_BRANCH.fullmatch(name) is not None
        and ".." not in name
        and name != "HEAD"
        and not any(part.endswith((".", ".lock")) for part in name.split("/"))
    )


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
    raise GitError(
        f"cannot create branch {branch}: {first_line(result.stderr)}",
        returncode=result.returncode,
        stderr=result.stderr,
    )


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

    # One process for the index path, HEAD and its tree: every git start costs milliseconds.
    own_index, head, head_tree = (
        await run(
            worktree,
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "index",
            "HEAD^{commit}",
            "HEAD^{tree}",
        )
    ).stdout.split()
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


async def count_not_in(repo: Path, sha: str, *excluded: str) -> int:
    return int((await run(repo, "rev-list", "--count", sha, "--not", *excluded, "--")).stdout.strip() or "0")


async def unsafe_to_delete(repo: Path, branch: str, base: str | None) -> str | None:
    """Why deleting ``branch`` would lose work, or None when every commit is pushed or merged."""
    sha = await branch_sha(repo, branch)
    if sha is None:
        return None
    # Commits on the branch that no remote-tracking branch and no base branch contains.
    excluded = ["--remotes"]
    if base:
        base_sha = await branch_sha(repo, base)
        if base_sha:
            excluded.append(base_sha)
    count = await count_not_in(repo, sha, *excluded)
    if count:
        return f"branch {branch} has {count} commit(s) that are neither pushed nor merged into {base or 'a remote'}"
    return None


# --------------------------------------------------------------------------------- remotes and pushes


async def remote_url(repo: Path, remote: str = "origin") -> str | None:
    """The fetch URL of ``remote``, or None when the repository has no such remote."""
    result = await run(repo, "remote", "get-url", "--", remote, check=False)
    return result.stdout.strip() or None


async def commits_ahead(repo: Path, branch: str, base: str) -> int | None:
    """How many commits ``branch`` has that ``base`` lacks, against origin's copy of ``base`` when there
    is one (what a pull request is compared with), else the local branch; None when neither exists."""
    for ref in (f"refs/remotes/origin/{base}", f"refs/heads/{base}"):
        if (await run(repo, "show-ref", "--verify", "--quiet", ref, check=False)).returncode == 0:
            out = await run(repo, "rev-list", "--count", f"{ref}..refs/heads/{branch}")
            return int(out.stdout.strip() or "0")
    return None


async def push_branch(worktree: Path, branch: str) -> None:
    """``git push --set-upstream origin <branch>``, its failures explained."""
    ref = f"refs/heads/{branch}"
    result = await run(
        worktree, "push", "--porcelain", "--set-upstream", "origin", f"{ref}:{ref}", check=False, timeout=300
    )
    if result.returncode == 0:
        return
    text = (result.stdout + "\n" + result.stderr).lower()
    if "rejected" in text or "non-fast-forward" in text or "fetch first" in text:
        raise StateError(
            f"the push of {branch} was rejected: origin has commits on that branch that yours lacks "
            f"(non-fast-forward); fetch and rebase or merge (git pull --rebase origin {branch}), then retry"
        )
    if "no such remote" in text or "does not appear to be a git repository" in text:
        raise ConfigError(
            "this repository has no usable 'origin' remote to push to; add one (git remote add origin URL)"
        )
    if (
        "authentication" in text
        or "permission denied" in text
        or "could not read username" in text
        or "403" in text
    ):
        raise UpstreamError(
            f"git could not authenticate to push {branch} to origin; set up git credentials for origin "
            "(a credential helper or an SSH key) and retry"
        )
    last = [line for line in result.stderr.strip().splitlines() if line.strip()]
    raise UpstreamError(
        f"git push of {branch} to origin failed: {last[-1] if last else 'exit ' + str(result.returncode)}"
    )


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
