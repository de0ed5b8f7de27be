"""Per-agent bearer tokens: issued at spawn, handed to the agent in its 0600 MCP config, stored hashed."""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "cmcp_"


def new_token() -> tuple[str, str]:
    """(token, its hash). The token has 256 bits of randomness, so a plain SHA-256 is enough."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
