"""Logging: always to stderr (in stdio mode stdout carries only the protocol).

Kept apart from the server module so that CLI commands do not import the MCP SDK just to log.
"""

from __future__ import annotations

import logging
import sys

QUIET_LIBRARIES = ("aiosqlite", "httpx", "httpcore", "hishel")


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("codex-mcp %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)
    # These libraries log every statement with its parameters (prompts, feedback, token hashes) or every
    # request at DEBUG: nothing we promise never to log may reach the log through them.
    for noisy in QUIET_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().getEffectiveLevel()))
