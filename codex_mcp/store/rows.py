"""The base of the store's row models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Row(BaseModel):
    """A row (or a new row) as the store reads or writes it.

    Its validator and serializer are built at its first use, not at import: a stdio server starts once
    per agent and uses two or three of the store's models before its first tool call (figure 1).
    """

    model_config = ConfigDict(defer_build=True)
