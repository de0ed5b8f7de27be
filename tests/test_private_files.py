"""What holds prompts and tool history is private to the user (issue 11, item 11)."""

from __future__ import annotations

import stat
from pathlib import Path

from codex_mcp.agents import write_private
from codex_mcp.store import open_database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_and_its_folder_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "codex-mcp" / "codex.db"
    db = await open_database(path)
    try:
        async with db.write() as tx:  # a write makes the WAL and shared-memory files exist
            await tx.execute("INSERT INTO user_config (key, value) VALUES ('probe', 'x')")
        assert mode(path) == 0o600
        assert mode(path.parent) == 0o700
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            assert side.exists() and mode(side) == 0o600, suffix
    finally:
        await db.close()


async def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    db = await open_database(folder / "codex.db")
    await db.close()
    assert mode(folder) == 0o755  # not ours to change; the file itself is still private
    assert mode(folder / "codex.db") == 0o600


def test_codex_folders_are_created_private(tmp_path: Path) -> None:
    worktree = tmp_path / "wt"
    worktree.mkdir(mode=0o755)
    write_private(worktree / ".codex" / "feedback" / "note.md", "secret review")
    assert mode(worktree / ".codex") == 0o700
    assert mode(worktree / ".codex" / "feedback") == 0o700
    assert mode(worktree / ".codex" / "feedback" / "note.md") == 0o600
    assert mode(worktree) == 0o755
