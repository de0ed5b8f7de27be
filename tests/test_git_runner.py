"""git.py's runner: the async `run` and the start-up `run_sync` fail the same way, on a real git."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from codex_mcp import git
from codex_mcp.errors import UpstreamError

Runner = Callable[..., Awaitable[git.GitResult]]


async def _async(cwd: Path, *args: str, check: bool = True, timeout: float = 30) -> git.GitResult:
    return await git.run(cwd, *args, check=check, timeout=timeout)


async def _sync(cwd: Path, *args: str, check: bool = True, timeout: float = 30) -> git.GitResult:
    return git.run_sync(cwd, *args, check=check, timeout=timeout)


RUNNERS = [pytest.param(_async, id="run"), pytest.param(_sync, id="run_sync")]


@pytest.mark.parametrize("runner", RUNNERS)
async def test_output_comes_back_decoded(runner: Runner, repo: Path) -> None:
    result = await runner(repo, "symbolic-ref", "--short", "HEAD")
    assert (result.returncode, result.stdout.strip(), result.stderr) == (0, "main", "")


@pytest.mark.parametrize("runner", RUNNERS)
async def test_a_refusal_is_a_git_error_carrying_stderr(runner: Runner, repo: Path) -> None:
    with pytest.raises(git.GitError) as caught:
        await runner(repo, "rev-parse", "--verify", "no-such-branch")
    assert str(caught.value) == f"git rev-parse failed in {repo}: fatal: Needed a single revision"
    assert caught.value.returncode == 128
    assert "Needed a single revision" in caught.value.stderr


@pytest.mark.parametrize("runner", RUNNERS)
async def test_check_false_hands_the_refusal_back(runner: Runner, repo: Path) -> None:
    result = await runner(repo, "rev-parse", "--verify", "no-such-branch", check=False)
    assert result.returncode == 128
    assert result.stdout == ""
    assert "Needed a single revision" in result.stderr


@pytest.mark.parametrize("runner", RUNNERS)
async def test_a_missing_folder_names_the_folder(runner: Runner, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    with pytest.raises(git.GitUnavailable) as caught:
        await runner(gone, "status", check=False)
    assert str(caught.value) == (
        f"cannot run git in {gone}: No such file or directory; check that the folder exists and is readable"
    )
    assert isinstance(caught.value, UpstreamError)
    assert not isinstance(caught.value, git.GitError)  # nothing was learnt about the repository


@pytest.mark.parametrize("runner", RUNNERS)
async def test_a_file_as_folder_names_the_folder(runner: Runner, repo: Path) -> None:
    file = repo / "README.md"
    with pytest.raises(git.GitUnavailable, match=f"cannot run git in {file}: Not a directory"):
        await runner(file, "status")


@pytest.mark.parametrize("runner", RUNNERS)
async def test_no_git_on_path_says_install_git(
    runner: Runner, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(git.GitUnavailable) as caught:
        await runner(repo, "status", check=False)
    assert str(caught.value) == "git is not installed or not on PATH; install git and try again"


@pytest.mark.parametrize("runner", RUNNERS)
async def test_a_git_that_does_not_answer_is_given_up_on(runner: Runner, repo: Path) -> None:
    # git blocks opening a FIFO nobody writes to: a hang without a shell or a sleep.
    fifo = repo / "never-written"
    os.mkfifo(fifo)
    with pytest.raises(git.GitUnavailable) as caught:
        await runner(repo, "hash-object", "--", fifo.name, timeout=0.5, check=False)
    assert str(caught.value).startswith(f"git hash-object in {repo} did not answer within 0.5 s; retry")


def _git_reading(name: str) -> bool:
    """Whether a git process with ``name`` in its command line is still alive (from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:  # it ended while we looked
            continue
        if argv and argv[0].endswith(b"git") and name.encode() in argv:
            return True
    return False


async def test_a_cancelled_call_kills_its_git_at_once(repo: Path) -> None:
    # The git would wait for its 60 s timeout on the FIFO; the caller gives up after 0.3 s instead.
    fifo = repo / "cancelled-fifo"
    os.mkfifo(fifo)
    with anyio.move_on_after(0.3) as scope:
        await git.run(repo, "hash-object", "--", fifo.name, timeout=60)
    assert scope.cancelled_caught
    with anyio.fail_after(20):  # far below the 60 s git would otherwise have been left running
        while _git_reading(fifo.name):
            await anyio.sleep(0.05)


async def test_stdin_is_not_inherited(repo: Path) -> None:
    # Under `serve` stdin is the MCP client's pipe: a git reading stdin must see end of file, not steal it.
    for result in (
        await git.run(repo, "hash-object", "--stdin"),
        git.run_sync(repo, "hash-object", "--stdin"),
    ):
        assert result.stdout.strip() == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # the empty blob


async def test_locate_and_current_branch_use_the_same_failures(tmp_path: Path, repo: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    assert git.locate(outside) is None
    assert git.current_branch(repo) == "main"
    with pytest.raises(git.GitUnavailable, match="cannot run git in"):
        git.locate(tmp_path / "gone")
    # A detached HEAD has no branch (git's refusal, not a failure).
    await git.run(repo, "checkout", "-q", "--detach")
    assert git.current_branch(repo) is None
