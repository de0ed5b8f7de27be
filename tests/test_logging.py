"""Nothing we promise never to log reaches the log, even at DEBUG (issue 11, item 10)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from codex_mcp.logs import configure_logging
from codex_mcp.store import open_database


async def test_debug_logging_never_shows_statement_parameters(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("DEBUG")
    secret = "PROMPT-" + "s3cr3t" * 5
    db = await open_database(tmp_path / "codex.db")
    try:
        async with db.write() as tx:
            await tx.execute("INSERT INTO user_config (key, value) VALUES (?, ?)", ("probe", secret))
        logging.getLogger("codex_mcp.probe").debug("our own debug line")
    finally:
        await db.close()
    err = capfd.readouterr().err
    assert "our own debug line" in err  # DEBUG is on for codex-mcp itself
    assert secret not in err
