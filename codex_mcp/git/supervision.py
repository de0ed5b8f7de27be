"""The supervision engine: what `diff`, `merge` and `clean` need from git (DESIGN.md, "Supervision"),
with no CLI or records. Apart from :mod:`codex_mcp.git` (the runner, and what spawning and serving
need) so that a server's start does not pay for the types and parsers below: ``codex-mcp serve``
never diffs or lands.

  reading   diff_files, work_diff, commits_between, ahead_behind, checked_out_in, target_state,
            dirty_paths, branch_is_merged, branch_is_pushed
  landing   merge_check -> plan_landing -> apply_landing  (or land() for all three)
  cleaning  branches_under, commits_only_on, ref_moved_at, subject

Nothing here writes to a working tree or an index except the single, final `merge --ff-only` of
apply_landing in a target worktree proven clean just before. New objects (snapshot and landing
commits) are written to the object store, where unreferenced ones are harmless and collected later.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal

from codex_mcp.errors import InputError, StateError
from codex_mcp.git import (
    GitError,
    count_not_in,
    first_line,
    resolve_commit,
    run,
    validate_branch_name,
    worktrees_lock,
)

ChangeType = Literal["added", "modified", "deleted", "renamed", "copied", "type_changed"]
Strategy = Literal["merge", "squash", "rebase"]

_CHANGE_TYPES: dict[str, ChangeType] = {
    "A": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "C": "copied",
    "T": "type_changed",
}


@dataclass(frozen=True)
class FileDiff:
    """One changed file. ``old_path`` is set for renames and copies; ``patch`` is the unified diff
    (its ``diff --git`` header included), empty for binary files."""

    path: str
    old_path: str | None
    change_type: ChangeType
    additions: int
    deletions: int
    binary: bool
    patch: str


@dataclass(frozen=True)
class DiffStat:
    """Totals of a diff, and the text ``git diff --stat`` would print for it."""

    files: int
    additions: int
    deletions: int
    text: str


@dataclass(frozen=True)
class CommitInfo:
    """A commit as a person reads it in a list: ``date`` is the author date, ISO 8601 with offset."""

    sha: str
    subject: str
    author: str
    email: str
    date: str


@dataclass(frozen=True)
class WorkDiff:
    """An instance's work against its base: everything from ``merge_base`` to the worktree as it is.

    ``head`` is the worktree's HEAD; ``commits`` are the committed ones (merge_base..head); ``dirty``
    lists the uncommitted and untracked paths (what the worktree holds beyond HEAD).
    ``dataclasses.asdict`` makes it JSON-ready.
    """

    base_ref: str
    merge_base: str
    head: str
    commits: list[CommitInfo]
    files: list[FileDiff]
    dirty: list[str]
    stat: DiffStat

    @property
    def uncommitted(self) -> bool:
        return bool(self.dirty)


async def _together(*calls: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run independent git reads at once (each git start costs milliseconds); the first failure is
    raised as itself, not wrapped in an exception group, so callers see a plain CodexError."""
    import anyio

    try:
        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(call)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None


async def _resolve_many(repo: Path, refs: list[tuple[str, str, bool]]) -> list[str]:
    """The commits of several (name, what, is_branch) refs, validated like ``resolve_commit`` (a
    branch is looked up as ``refs/heads/<name>`` only), with one rev-parse for all of them."""
    found: dict[str, str] = {}

    def spec(name: str, branch: bool) -> str:
        return f"refs/heads/{name}^{{commit}}" if branch else f"{name}^{{commit}}"

    async def validate(name: str, what: str) -> None:
        if name != "HEAD":
            await validate_branch_name(repo, name, what=what)

    async def resolve() -> None:
        specs = [spec(name, branch) for name, _, branch in refs]
        # No --verify (one name only) and so no --end-of-options (it would be echoed): the names were
        # checked not to start with "-" before this runs.
        result = await run(repo, "rev-parse", *specs, check=False)
        if result.returncode == 0:
            found.update(zip(specs, result.stdout.split(), strict=False))
            return
        for one in specs:  # which one is missing: rare, so one call each
            single = await run(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", one, check=False)
            found[one] = single.stdout.strip()

    if any(name.startswith("-") for name, _, _ in refs):
        await _together(*(partial(validate, name, what) for name, what, _ in refs))
    await _together(resolve, *(partial(validate, name, what) for name, what, _ in refs))
    shas: list[str] = []
    for name, what, branch in refs:
        sha = found.get(spec(name, branch), "")
        if len(sha) != 40:
            listing = "`git branch`" if branch else "`git branch -a`"
            raise InputError(f"{what} {name!r} does not exist in {repo}; list branches with {listing}")
        shas.append(sha)
    return shas


def _diff_tokens(out: str) -> tuple[list[tuple[str, str, str | None]], list[tuple[int, int, bool]], str]:
    """Split ``git diff -z --raw --numstat -p`` output into raw entries (status, path, old path),
    numstat entries (additions, deletions, binary) and the patch text that follows them."""
    pos = 0

    def token() -> str:
        nonlocal pos
        end = out.find("\0", pos)
        if end < 0:
            raise GitError("git diff printed a truncated record; run `git diff --raw -z` to see it")
        text, pos = out[pos:end], end + 1
        return text

    raw: list[tuple[str, str, str | None]] = []
    while out.startswith(":", pos):
        status = token().split()[-1]
        first = token()
        if status[0] in "RC":
            raw.append((status, token(), first))
        else:
            raw.append((status, first, None))
    numstat: list[tuple[int, int, bool]] = []
    for _ in raw:
        added, deleted, path = token().split("\t", 2)
        if not path:  # a rename or copy: both paths follow as their own tokens
            token()
            token()
        binary = added == "-"
        numstat.append((0 if binary else int(added), 0 if binary else int(deleted), binary))
    if out.startswith("\0", pos):
        pos += 1
    return raw, numstat, out[pos:]


def _split_patch(patch: str) -> list[str]:
    # Inside a file's patch every line starts with a header word, ' ', '+', '-', '@' or '\', so a
    # line starting with "diff --git " always opens the next file.
    if not patch:
        return []
    starts = [0] if patch.startswith("diff --git ") else []
    at = patch.find("\ndiff --git ")
    while at >= 0:
        starts.append(at + 1)
        at = patch.find("\ndiff --git ", at + 1)
    return [patch[a:b] for a, b in zip(starts, [*starts[1:], len(patch)], strict=True)]


_DIFF_OPTIONS = (
    "--no-color",
    "--no-ext-diff",
    "--no-textconv",
    "--src-prefix=a/",
    "--dst-prefix=b/",
    "--find-renames",
    "--find-copies",
)


async def diff_files(repo: Path, base: str, head: str, *, merge_base: bool = False) -> list[FileDiff]:
    """The files changed from commit ``base`` to commit ``head`` (a plain two-point diff: pass a
    merge base as ``base``, or ``merge_base=True``, for "the work on head"), renames and copies detected.

    One ``git diff -z --raw --numstat -p`` run parsed here: GitPython builds an object per file and
    reads every blob through Python, several times slower on a large tree than git's own diff.
    ``base`` and ``head`` must be commit ids or validated refs (see ``resolve_commit``).
    """
    out = (
        await run(
            repo,
            "diff",
            "-z",
            "--raw",
            "--numstat",
            "-p",
            *_DIFF_OPTIONS,
            *(["--merge-base"] if merge_base else []),
            "--end-of-options",
            base,
            head,
            "--",
        )
    ).stdout
    return _parse_diff(out, f"{repo} ({base[:12]}..{head[:12]})")


def diff_stat(files: list[FileDiff], *, width: int = 80) -> DiffStat:
    """Totals and ``--stat``-like text for ``files`` (bars scaled to fit ``width`` columns)."""
    additions = sum(f.additions for f in files)
    deletions = sum(f.deletions for f in files)
    names = [f"{f.old_path} => {f.path}" if f.old_path else f.path for f in files]
    name_width = max((len(n) for n in names), default=0)
    count_width = max((len(str(f.additions + f.deletions)) for f in files), default=1)
    bar_room = max(10, width - name_width - count_width - 6)
    biggest = max((f.additions + f.deletions for f in files), default=0)
    scale = min(1.0, bar_room / biggest) if biggest else 1.0
    lines = []
    for f, name in zip(files, names, strict=True):
        if f.binary:
            lines.append(f" {name.ljust(name_width)} | {'Bin'.rjust(count_width)}")
            continue
        plus, minus = f.additions, f.deletions
        if scale < 1.0:
            plus = max(1, round(plus * scale)) if plus else 0
            minus = max(1, round(minus * scale)) if minus else 0
        total = str(f.additions + f.deletions).rjust(count_width)
        lines.append(f" {name.ljust(name_width)} | {total} {'+' * plus}{'-' * minus}".rstrip())
    summary = f" {len(files)} file{'s' if len(files) != 1 else ''} changed"
    if additions or not deletions:
        summary += f", {additions} insertion{'s' if additions != 1 else ''}(+)"
    if deletions:
        summary += f", {deletions} deletion{'s' if deletions != 1 else ''}(-)"
    text = "\n".join([*lines, summary]) if files else ""
    return DiffStat(files=len(files), additions=additions, deletions=deletions, text=text)


def _parse_log(out: str) -> list[CommitInfo]:
    # Records end in NUL (-z); fields are split by US (0x1f), the raw message last (it may hold anything
    # but NUL). The date is built as GitPython's ``authored_datetime.isoformat()`` did: from the Unix
    # time and the author's own offset, so the JSON of `diff` keeps its exact form.
    commits: list[CommitInfo] = []
    for record in out.split("\0"):
        if not record.strip():
            continue
        sha, name, email, seconds, offset, message = record.lstrip("\n").split("\x1f", 5)
        sign = -1 if offset.startswith("-") else 1
        minutes = sign * (int(offset[1:3]) * 60 + int(offset[3:5]))
        when = datetime.fromtimestamp(int(seconds), timezone(timedelta(minutes=minutes)))
        commits.append(
            CommitInfo(
                sha=sha, subject=message.split("\n", 1)[0], author=name, email=email, date=when.isoformat()
            )
        )
    return commits


_LOG_FORMAT = "--format=%H%x1f%an%x1f%ae%x1f%at%x1f%ad%x1f%B"


async def _log_commits(repo: Path, base: str, head: str, limit: int) -> list[CommitInfo]:
    """The commits of ``base..head`` (commit ids), newest first, at most ``limit``: one ``git log``
    (GitPython, used before, cost ~0.4 s of import in a fresh process, and a thread, for the same answer)."""
    result = await run(
        repo,
        "log",
        "-z",
        _LOG_FORMAT,
        "--date=format:%z",
        f"--max-count={limit}",
        "--end-of-options",
        f"{base}..{head}",
        "--",
        env=_READ_ONLY_ENV,
        check=False,
    )
    if result.returncode != 0:
        raise GitError(
            f"cannot read the commits {base[:12]}..{head[:12]} in {repo}: {first_line(result.stderr)}",
            returncode=result.returncode,
            stderr=result.stderr,
        )
    return _parse_log(result.stdout)


async def commits_between(repo: Path, base: str, head: str, *, limit: int = 1000) -> list[CommitInfo]:
    """The commits reachable from ``head`` but not from ``base``, newest first (at most ``limit``).
    ``base`` and ``head`` are refs or commit ids; refs are validated."""
    base_sha, head_sha = await _resolve_many(repo, [(base, "base", False), (head, "head", False)])
    return await _log_commits(repo, base_sha, head_sha, limit)


async def ahead_behind(repo: Path, a: str, b: str) -> tuple[int, int]:
    """(commits on ``a`` not on ``b``, commits on ``b`` not on ``a``); refs are validated."""
    a_sha = await resolve_commit(repo, a, what="branch")
    b_sha = await resolve_commit(repo, b, what="branch")
    out = (await run(repo, "rev-list", "--left-right", "--count", f"{a_sha}...{b_sha}", "--")).stdout.split()
    return int(out[0]), int(out[1])


async def dirty_paths(worktree: Path, *, untracked: bool = True) -> list[str]:
    """Uncommitted and (unless ``untracked`` is false) untracked paths of ``worktree`` (ignored files
    excluded); both sides of a staged rename are listed. Reads only: the index file is not even
    refreshed. Without untracked files git skips its walk of every folder (a third of the scan)."""
    # No optional locks: plain `git status` would rewrite the index to refresh its stat cache.
    result = await run(
        worktree,
        "status",
        "--porcelain=v1",
        f"--untracked-files={'all' if untracked else 'no'}",
        "-z",
        env={"GIT_OPTIONAL_LOCKS": "0"},
    )
    paths: list[str] = []
    entries = result.stdout.split("\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if not entry:
            continue
        paths.append(entry[3:])
        if entry[0] in "RC":  # the source path follows as its own entry
            paths.append(entries[i])
            i += 1
    return paths


_READ_ONLY_ENV = {"GIT_OPTIONAL_LOCKS": "0"}


def _parse_diff(out: str, what: str) -> list[FileDiff]:
    raw, numstat, patch = _diff_tokens(out)
    chunks = _split_patch(patch)
    expected = len(raw) + sum(1 for status, _, _ in raw if status == "T")  # a type change is 2 patches
    if len(chunks) != expected:
        raise GitError(f"git diff in {what} printed {len(chunks)} patches for {len(raw)} files")
    files: list[FileDiff] = []
    index = 0
    for (status, path, old_path), (added, deleted, binary) in zip(raw, numstat, strict=True):
        take = 2 if status == "T" else 1
        text = "".join(chunks[index : index + take])
        index += take
        files.append(
            FileDiff(
                path=path,
                old_path=old_path,
                change_type=_CHANGE_TYPES.get(status[0], "modified"),
                additions=added,
                deletions=deleted,
                binary=binary,
                patch="" if binary else text,
            )
        )
    return files


async def _locate_work(worktree: Path, base_ref: str) -> tuple[Path, str, str]:
    """(the worktree's index file, the base's commit, HEAD's commit): one rev-parse for all three,
    the base's name checked beside it; the usual InputError for a bad or unknown base."""
    found: dict[str, list[str]] = {}

    async def validate() -> None:
        if base_ref != "HEAD":
            await validate_branch_name(worktree, base_ref, what="base")

    async def resolve() -> None:
        # No --verify (it takes one name) and so no --end-of-options: the name was checked not to
        # start with "-" before this runs.
        result = await run(
            worktree,
            "rev-parse",
            "--path-format=absolute",
            "--git-path",
            "index",
            f"{base_ref}^{{commit}}",
            "HEAD^{commit}",
            check=False,
        )
        found["lines"] = result.stdout.split() if result.returncode == 0 else []

    if base_ref.startswith("-"):
        await validate()
    await _together(validate, resolve)
    lines = found["lines"]
    if len(lines) != 3 or any(len(sha) != 40 for sha in lines[1:]):
        # Which one is missing, said as resolving them one by one says it.
        await _resolve_many(worktree, [(base_ref, "base", False), ("HEAD", "HEAD of the worktree", False)])
        raise GitError(f"git rev-parse could not read {base_ref!r} and HEAD in {worktree}")
    return Path(lines[0]), lines[1], lines[2]


async def work_diff(worktree: Path, base_ref: str, *, commits_limit: int = 1000) -> WorkDiff:
    """The instance's work in ``worktree`` against ``base_ref``: from merge-base(base, HEAD) to the
    worktree as it is (its commits, uncommitted and untracked files; ignored files excluded).

    The worktree as it is lives in a temporary index: a copy of the worktree's own (its stat data is
    valid, so ``git add --all`` rehashes only what changed) with every change added, as ``snapshot``
    builds it but without writing a tree or a commit. The files are ``git diff --cached
    --merge-base`` of that index, renames and copies detected across committed, uncommitted and
    untracked changes alike; ``dirty`` is what that index holds beyond HEAD. The commits and the
    merge base are read meanwhile. The worktree's files, index, stash and refs are left as they were.
    Raises InputError for a bad or unknown ``base_ref``.
    """
    import shutil
    import tempfile

    import anyio

    own_index, base_sha, head = await _locate_work(worktree, base_ref)
    found: dict[str, Any] = {}

    async def merge_base() -> None:
        found["merge_base"] = (await run(worktree, "merge-base", base_sha, head, check=False)).stdout.strip()

    async def commits() -> None:
        # base..head is merge_base..head: what HEAD has and the base lacks.
        found["commits"] = await _log_commits(worktree, base_sha, head, commits_limit)

    with tempfile.TemporaryDirectory(prefix="codex-diff-") as tmp:
        env = {**_READ_ONLY_ENV, "GIT_INDEX_FILE": str(Path(tmp) / "index")}

        async def files() -> None:
            out = await run(
                worktree,
                "diff",
                "--cached",
                "-z",
                "--raw",
                "--numstat",
                "-p",
                *_DIFF_OPTIONS,
                "--merge-base",
                "--end-of-options",
                base_sha,
                "--",
                env=env,
            )
            found["files"] = _parse_diff(out.stdout, str(worktree))

        async def dirty() -> None:
            # As `git status` lists them, but from the index just built: exact, no second scan.
            out = await run(
                worktree, "diff", "--cached", "--name-only", "-z", "--no-renames", head, "--", env=env
            )
            found["dirty"] = [p for p in out.stdout.split("\0") if p]

        async def worktree_as_it_is() -> None:
            try:
                # Off the event loop: the index of a large tree is megabytes.
                await anyio.to_thread.run_sync(shutil.copyfile, own_index, env["GIT_INDEX_FILE"])
            except OSError:
                await run(worktree, "read-tree", head, env=env)
            await run(worktree, "add", "--all", "--", ".", env={"GIT_INDEX_FILE": env["GIT_INDEX_FILE"]})
            await _together(files, dirty)

        try:
            await _together(worktree_as_it_is, merge_base, commits)
        except GitError:
            if not (await run(worktree, "merge-base", base_sha, head, check=False)).stdout.strip():
                raise StateError(
                    f"{worktree} shares no history with {base_ref!r}; pick the branch it was started from"
                ) from None
            raise
    files_found: list[FileDiff] = found["files"]
    return WorkDiff(
        base_ref=base_ref,
        merge_base=found["merge_base"],
        head=head,
        commits=found["commits"],
        files=files_found,
        dirty=found["dirty"],
        stat=diff_stat(files_found),
    )


@dataclass(frozen=True)
class WorktreeInfo:
    """One entry of ``git worktree list``: ``branch`` is the short name, None when detached or bare;
    ``prunable`` when its folder is gone."""

    path: Path
    head: str | None
    branch: str | None
    bare: bool
    prunable: bool


async def worktrees(repo: Path) -> list[WorktreeInfo]:
    """Every worktree of the repository, the main one first (``git worktree list --porcelain -z``)."""
    out = (await run(repo, "worktree", "list", "--porcelain", "-z")).stdout
    found: list[WorktreeInfo] = []
    fields: dict[str, str] = {}
    for line in [*out.split("\0"), ""]:
        if line:
            key, _, value = line.partition(" ")
            fields[key] = value
            continue
        if "worktree" in fields:
            branch = fields.get("branch")
            found.append(
                WorktreeInfo(
                    path=Path(fields["worktree"]),
                    head=fields.get("HEAD"),
                    branch=branch.removeprefix("refs/heads/") if branch else None,
                    bare="bare" in fields,
                    prunable="prunable" in fields,
                )
            )
        fields = {}
    return found


async def checked_out_in(repo: Path, branch: str) -> Path | None:
    """The worktree where ``branch`` is checked out (the main one or a linked one), else None."""
    await validate_branch_name(repo, branch)
    for info in await worktrees(repo):
        if info.branch == branch:
            return info.path
    return None


async def _is_ancestor(repo: Path, older: str, newer: str) -> bool:
    result = await run(repo, "merge-base", "--is-ancestor", older, newer, check=False)
    if result.returncode > 1:
        raise GitError(f"git merge-base --is-ancestor failed in {repo}: {first_line(result.stderr)}")
    return result.returncode == 0


async def branch_is_pushed(repo: Path, branch: str) -> bool:
    """True when every commit of ``branch`` is on some remote-tracking branch (``git fetch`` first
    for a current answer); False for a branch with commits nobody else has."""
    sha = await resolve_commit(repo, branch, what="branch")
    return await count_not_in(repo, sha, "--remotes") == 0


async def branch_is_merged(repo: Path, branch: str, into: str) -> bool:
    """True when all the work of ``branch`` is in ``into``: it is an ancestor (a merge or
    fast-forward landed it), or merging it into ``into`` would change nothing (a squash or rebase
    landed it; its own commits then carry no change ``into`` lacks)."""
    sha = await resolve_commit(repo, branch, what="branch")
    into_sha = await resolve_commit(repo, into, what="target")
    if await _is_ancestor(repo, sha, into_sha):
        return True
    check = await _merge_tree(repo, into_sha, sha)
    into_tree = (await run(repo, "rev-parse", f"{into_sha}^{{tree}}")).stdout.strip()
    return check[0] and check[1] == into_tree


@dataclass(frozen=True)
class MergeCheck:
    """What merging ``source`` into ``target`` would do, found without touching any working tree.

    ``clean`` with ``tree``: the merged tree. ``conflicts``: the conflicted paths (``messages``:
    git's explanations, e.g. "CONFLICT (content): Merge conflict in a.txt"). ``up_to_date``: the
    source is already in the target; ``fast_forward``: the target is an ancestor of the source.
    """

    target: str
    source: str
    target_sha: str
    source_sha: str
    clean: bool
    conflicts: list[str]
    tree: str | None
    up_to_date: bool
    fast_forward: bool
    messages: list[str]


async def _merge_tree(repo: Path, ours: str, theirs: str) -> tuple[bool, str, list[str], list[str]]:
    """(clean, tree, conflicted paths, messages) of ``git merge-tree --write-tree`` on two commits."""
    result = await run(
        repo, "merge-tree", "--write-tree", "--name-only", "-z", "--messages", ours, theirs, check=False
    )
    if result.returncode not in (0, 1):
        raise GitError(f"git merge-tree failed in {repo}: {first_line(result.stderr) or result.returncode}")
    tokens = result.stdout.split("\0")
    tree = tokens[0]
    conflicts: list[str] = []
    i = 1
    while i < len(tokens) and tokens[i]:
        if tokens[i] not in conflicts:
            conflicts.append(tokens[i])
        i += 1
    messages: list[str] = []
    i += 1  # the empty token that ends the conflicted paths
    while i < len(tokens) and tokens[i].isdigit():  # <n paths> <paths...> <type> <message>
        i += 1 + int(tokens[i])
        if i + 1 < len(tokens):
            messages.append(tokens[i + 1].strip())
        i += 2
    return result.returncode == 0, tree, conflicts, messages


async def merge_check(repo: Path, target_branch: str, source: str) -> MergeCheck:
    """Would ``source`` (a branch) merge into ``target_branch`` without conflicts? Nothing changes:
    ``git merge-tree --write-tree`` only writes objects. InputError for a bad or unknown ref."""
    # The target is the branch itself (refs/heads/...), never a tag of that name.
    target_sha, source_sha = await _resolve_many(
        repo, [(target_branch, "target branch", True), (source, "source branch", False)]
    )
    found: dict[str, Any] = {}

    async def merge_base() -> None:
        found["base"] = (await run(repo, "merge-base", target_sha, source_sha, check=False)).stdout.strip()

    async def merge_tree() -> None:
        found["tree"] = await _merge_tree(repo, target_sha, source_sha)

    await _together(merge_base, merge_tree)
    up_to_date = found["base"] == source_sha
    fast_forward = not up_to_date and found["base"] == target_sha
    clean, tree, conflicts, messages = found["tree"]
    return MergeCheck(
        target=target_branch,
        source=source,
        target_sha=target_sha,
        source_sha=source_sha,
        clean=clean,
        conflicts=conflicts,
        tree=tree if clean else None,
        up_to_date=up_to_date,
        fast_forward=fast_forward,
        messages=messages if not clean else [],
    )


@dataclass(frozen=True)
class LandingPlan:
    """The commit ``target`` would move to (``new_sha``, from ``old_sha``): computed, not applied.

    ``commits``: the source's commits being landed, newest first. ``changed`` is False when the
    source is already in the target (nothing to do).
    """

    strategy: Strategy
    target: str
    source: str
    old_sha: str
    new_sha: str
    fast_forward: bool
    commits: list[CommitInfo]

    @property
    def changed(self) -> bool:
        return self.new_sha != self.old_sha


@dataclass(frozen=True)
class Landing:
    """A plan applied: the target branch now points at ``plan.new_sha``. ``worktree`` is where the
    target is checked out and was updated; None when the ref alone was moved."""

    plan: LandingPlan
    worktree: Path | None


def _conflict_error(check: MergeCheck) -> StateError:
    listed = ", ".join(check.conflicts[:20]) + (" ..." if len(check.conflicts) > 20 else "")
    return StateError(
        f"{check.source} conflicts with {check.target} in {len(check.conflicts)} file(s): {listed}; "
        f"merge {check.target} into {check.source} and resolve them there, then land again"
    )


async def plan_landing(
    repo: Path,
    target_branch: str,
    source: str,
    strategy: Strategy,
    *,
    message: str | None = None,
    check: MergeCheck | None = None,
) -> LandingPlan:
    """Compute the commit ``target_branch`` would move to when landing ``source`` with ``strategy``,
    without touching any working tree, index or ref.

    merge: a fast-forward to the source when possible, else a merge commit of the merged tree with
    parents (target, source). squash: one commit on top of the target with the merged tree, its
    message listing the squashed commits. rebase: the source's commits replayed onto the target in a
    temporary detached worktree under the git common dir (always removed). StateError on conflicts
    (listed by file); InputError for bad refs or strategy. ``message`` overrides the commit message.
    ``check``: the ``merge_check`` of these two branches the caller has just made, not repeated here.
    """
    if strategy not in ("merge", "squash", "rebase"):
        raise InputError(f"strategy {strategy!r} is not one of merge, squash, rebase")
    checked = check if check is not None else await merge_check(repo, target_branch, source)
    old = checked.target_sha
    if checked.up_to_date:
        return LandingPlan(strategy, target_branch, source, old, old, False, [])
    if not checked.clean or checked.tree is None:
        raise _conflict_error(checked)
    tree = checked.tree
    found: dict[str, Any] = {}

    async def commits() -> None:
        found["commits"] = await _log_commits(repo, old, checked.source_sha, 1000)

    async def merged() -> None:
        if checked.fast_forward:
            found["new"] = checked.source_sha
        else:
            text = message or f"Merge branch '{source}' into {target_branch}"
            found["new"] = await _commit_tree(repo, tree, [old, checked.source_sha], text)

    async def rebased() -> None:
        found["new"] = await _rebase(repo, checked)

    if strategy == "squash":  # its message lists the commits: read them first
        await commits()
        listed = "\n".join(f"* {c.sha[:12]} {c.subject}" for c in found["commits"])
        text = message or f"Squashed branch '{source}' into {target_branch}\n\n{listed}\n"
        found["new"] = await _commit_tree(repo, tree, [old], text)
    else:
        await _together(commits, merged if strategy == "merge" else rebased)
    new: str = found["new"]
    commits_found: list[CommitInfo] = found["commits"]
    return LandingPlan(
        strategy, target_branch, source, old, new, strategy == "merge" and checked.fast_forward, commits_found
    )


async def _commit_tree(repo: Path, tree: str, parents: list[str], message: str) -> str:
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return (await run(repo, *args, "-m", message)).stdout.strip()


async def _rebase(repo: Path, check: MergeCheck) -> str:
    """The source's commits replayed onto the target, in a detached worktree made for it alone.

    ``--no-update-refs``: with ``rebase.updateRefs`` set, git would also move the source branch and
    any other branch pointing into the replayed commits."""
    import tempfile

    common = Path((await run(repo, "rev-parse", "--path-format=absolute", "--git-common-dir")).stdout.strip())
    scratch_root = common / "codex-mcp" / "landing"
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="rebase-", dir=scratch_root))
    scratch.rmdir()  # `git worktree add` wants to create the folder itself
    async with worktrees_lock(repo):
        await run(repo, "worktree", "add", "--quiet", "--detach", "--", str(scratch), check.source_sha)
    try:
        result = await run(
            scratch, "rebase", "--quiet", "--no-autostash", "--no-update-refs", check.target_sha, check=False
        )
        if result.returncode != 0:
            conflicted = (
                await run(scratch, "diff", "--name-only", "--diff-filter=U", "-z", check=False)
            ).stdout
            await run(scratch, "rebase", "--abort", check=False)
            files = [p for p in conflicted.split("\0") if p]
            if files:
                raise StateError(
                    f"rebasing {check.source} onto {check.target} stops on conflicts in {', '.join(files)} "
                    f"(each commit is replayed alone); land it with --strategy merge or squash, or rebase "
                    f"{check.source} by hand"
                )
            raise GitError(f"git rebase failed: {first_line(result.stderr) or result.returncode}")
        new = (await run(scratch, "rev-parse", "--verify", "HEAD^{commit}")).stdout.strip()
    finally:
        async with worktrees_lock(repo):
            await run(repo, "worktree", "remove", "--force", "--", str(scratch), check=False)
            await run(repo, "worktree", "prune", check=False)
    if not await _is_ancestor(repo, check.target_sha, new):
        raise GitError(
            f"the rebase of {check.source} does not descend from {check.target}; nothing was landed"
        )
    return new


@dataclass(frozen=True)
class TargetState:
    """Where a branch is checked out (``worktree``; None: nowhere) and the uncommitted changes to
    tracked files of that worktree (empty when it has none, or its folder is gone).

    Untracked files there are not counted: landing never overwrites them (``git merge --ff-only``
    refuses, changing nothing, when the landed commit would), and a person's main checkout often holds
    some (notes, local settings) that have nothing to do with the branch."""

    branch: str
    worktree: WorktreeInfo | None
    dirty: list[str]


def _head_file_names(root: Path, branch: str) -> bool:
    """A guess, only to start work early: whether the main worktree at ``root`` has ``branch`` checked
    out, read from its HEAD file (no process). ``git worktree list`` stays the answer."""
    try:
        return (root / ".git" / "HEAD").read_text(encoding="utf-8").strip() == f"ref: refs/heads/{branch}"
    except (OSError, UnicodeDecodeError):
        return False


async def target_state(repo: Path, branch: str) -> TargetState:
    """Where ``branch`` is checked out and whether that worktree is clean: what ``apply_landing``
    checks, read ahead so a caller can refuse early and run it beside the conflict check."""
    found: dict[str, Any] = {}

    async def where() -> None:
        found["where"] = next((w for w in await worktrees(repo) if w.branch == branch), None)

    async def guessed() -> None:
        found["guess"] = await dirty_paths(repo, untracked=False)

    # The usual case, landing on the branch the main worktree has checked out: its status scan (tens
    # of ms on a large tree) starts with the worktree list instead of after it.
    guess = _head_file_names(repo, branch)
    await _together(where, *([guessed] if guess else []))
    info: WorktreeInfo | None = found["where"]
    if info is None or not info.path.is_dir():
        return TargetState(branch, info, [])
    if guess and info.path.resolve() == repo.resolve():
        return TargetState(branch, info, found["guess"])
    return TargetState(branch, info, await dirty_paths(info.path, untracked=False))


async def apply_landing(repo: Path, plan: LandingPlan, *, target: TargetState | None = None) -> Landing:
    """Move ``plan.target`` from ``plan.old_sha`` to ``plan.new_sha``.

    Checked out in a worktree (the main one or another): that worktree must be clean and is updated
    with ``git merge --ff-only``. Checked out nowhere: ``git update-ref`` with the old value, so a
    branch moved meanwhile is refused, not overwritten. Every refusal (StateError) changes nothing.
    ``target``: the ``target_state`` of ``plan.target`` read just before (while the plan was made),
    not read again. The window it leaves is no wider than a re-read's: ``merge --ff-only`` itself
    still refuses to overwrite a file changed meanwhile, and a branch that moved is refused.
    """
    if not plan.changed:
        return Landing(plan, None)
    if target is None or target.branch != plan.target:
        target = await target_state(repo, plan.target)
    where = target.worktree
    if where is None:
        # `merge --ff-only` below refuses a non-fast-forward itself; a bare ref move must be checked.
        if not await _is_ancestor(repo, plan.old_sha, plan.new_sha):
            raise StateError(f"{plan.target} would not fast-forward to the landed commit; nothing changed")
        result = await run(
            repo,
            "update-ref",
            "-m",
            f"codex-mcp: land {plan.source} ({plan.strategy})",
            f"refs/heads/{plan.target}",
            plan.new_sha,
            plan.old_sha,
            check=False,
        )
        if result.returncode != 0:
            raise StateError(
                f"{plan.target} moved while {plan.source} was being landed "
                f"({first_line(result.stderr)}); nothing changed, land again"
            )
        return Landing(plan, None)
    if where.prunable or not where.path.is_dir():
        raise StateError(
            f"{plan.target} is checked out in {where.path}, which no longer exists; "
            "run `git worktree prune` and land again"
        )
    if where.head != plan.old_sha:
        raise StateError(
            f"{plan.target} moved while {plan.source} was being landed; nothing changed, land again"
        )
    if target.dirty:
        shown = ", ".join(target.dirty[:10]) + (" ..." if len(target.dirty) > 10 else "")
        raise StateError(
            f"{plan.target} is checked out in {where.path} with uncommitted changes ({shown}); "
            "commit or stash them there, then land again"
        )
    result = await run(where.path, "merge", "--ff-only", "--quiet", "--no-stat", plan.new_sha, check=False)
    if result.returncode != 0:
        if in_the_way := _untracked_in_the_way(result.stderr):
            shown = ", ".join(in_the_way[:10]) + (" ..." if len(in_the_way) > 10 else "")
            raise StateError(
                f"{plan.target} is checked out in {where.path} with untracked files the landing would "
                f"overwrite ({shown}); nothing changed: move or remove them there, then land again"
            )
        raise StateError(
            f"could not fast-forward {plan.target} in {where.path}: "
            f"{first_line(result.stderr) or result.returncode}; check that worktree, then land again"
        )
    return Landing(plan, where.path)


def _untracked_in_the_way(stderr: str) -> list[str]:
    """The untracked files ``git merge`` refused to overwrite (listed tab-indented under its error)."""
    lines = stderr.splitlines()
    for n, line in enumerate(lines):
        if "untracked working tree files would be overwritten" in line:
            return [entry.strip() for entry in lines[n + 1 :] if entry.startswith("\t")]
    return []


async def land(
    repo: Path, target_branch: str, source: str, strategy: Strategy = "merge", *, message: str | None = None
) -> Landing:
    """Land ``source`` on ``target_branch``: ``plan_landing`` then ``apply_landing`` (see both).
    The caller checks first that the source's own worktree has nothing uncommitted (``dirty_paths``):
    only committed work is landed."""
    found: dict[str, Any] = {}

    async def plan() -> None:
        found["plan"] = await plan_landing(repo, target_branch, source, strategy, message=message)

    async def state() -> None:
        found["target"] = await target_state(repo, target_branch)

    await _together(plan, state)  # the target's worktree is read while the plan is computed
    return await apply_landing(repo, found["plan"], target=found["target"])


# ------------------------------------------------------------------------------------------- cleaning
# What `clean` needs beyond the supervision engine: the branches under a prefix, whether a branch's
# commits live anywhere else, and when a ref last moved.


async def branches_under(repo: Path, prefix: str) -> dict[str, str]:
    """Every local branch named ``<prefix>...`` (e.g. ``codex/``) and the commit it points at."""
    out = (
        await run(repo, "for-each-ref", "--format=%(refname:short)%00%(objectname)", f"refs/heads/{prefix}")
    ).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, _, sha = line.partition("\0")
        if name and sha:
            found[name] = sha
    return found


async def commits_only_on(repo: Path, sha: str, *, excluding: set[str]) -> int:
    """How many commits reachable from ``sha`` no remote-tracking branch and no local branch contains,
    the local branches named in ``excluding`` (short names) left out: they are about to go."""
    # --exclude applies to the next --branches only (names without refs/heads/); branch names cannot
    # hold glob characters (check-ref-format refuses them), so each pattern matches one branch.
    excludes = [f"--exclude={name}" for name in sorted(excluding)]
    out = await run(repo, "rev-list", "--count", sha, "--not", *excludes, "--branches", "--remotes", "--")
    return int(out.stdout.strip() or "0")


async def ref_moved_at(repo: Path, branch: str) -> float | None:
    """When ``branch`` last moved (Unix seconds, from its reflog), None without a reflog."""
    # %gd with --date=unix is "<name>@{<seconds>}": the time of the reflog entry (%ct would be the
    # commit's own date, which says nothing about when the branch was made).
    result = await run(
        repo,
        "reflog",
        "show",
        "--date=unix",
        "-n",
        "1",
        "--format=%gd",
        f"refs/heads/{branch}",
        "--",
        check=False,
    )
    value = result.stdout.strip().rpartition("@{")[2].rstrip("}")
    return float(value) if result.returncode == 0 and value.isdigit() else None


async def subject(repo: Path, sha: str) -> str:
    """The first line of ``sha``'s commit message."""
    return (await run(repo, "log", "-1", "--format=%s", sha, "--")).stdout.strip()
