"""Which instance needs a person first, and how an activity reads: ``waiting 2m``.

Listings a person reads (``ls``, the dashboard) put running instances whose agent waits for them first,
then those whose turn ended (idle), then working ones, then those that report nothing; within each
group the one that has been in that state longest comes first; terminated instances come last, newest
first. Activity comes from Claude Code's hooks only (``codex_mcp/hook.py``): agents started through
``CODEX_MCP_AGENT_COMMAND`` report none, and are shown as unknown rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from codex_mcp.timeutil import SQLITE_FORMAT

UNKNOWN = "—"
# Lower comes first: what needs a person, then what will soon, then what does not.
_GROUPS = {"waiting": 0, "idle": 1, "working": 2}
_UNKNOWN_GROUP = 3
_TERMINATED_GROUP = 4


class HasActivity(Protocol):
    @property
    def status(self) -> str: ...
    @property
    def activity(self) -> str | None: ...
    @property
    def activity_at(self) -> str | None: ...
    @property
    def created_at(self) -> str | None: ...


RowT = TypeVar("RowT", bound=HasActivity)


def _parse(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, SQLITE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def age(since: str | None, *, now: datetime | None = None) -> str:
    """How long ago ``since`` (SQLite UTC text) was, in one short unit: ``45s``, ``2m``, ``3h``, ``5d``."""
    moment = _parse(since)
    if moment is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def activity_label(row: HasActivity, *, now: datetime | None = None) -> str:
    """The activity and since when, as ``ls`` shows it (``waiting 2m``); ``—`` when unknown or ended."""
    if row.status != "running" or row.activity is None:
        return UNKNOWN
    since = age(row.activity_at, now=now)
    return f"{row.activity} {since}".strip()


def needs_attention_first(rows: Sequence[RowT]) -> list[RowT]:
    """``rows`` in the order a person should look at them (see the module docstring); stable otherwise."""

    def key(indexed: tuple[int, RowT]) -> tuple[int, str, int]:
        index, row = indexed
        if row.status != "running":
            return (_TERMINATED_GROUP, "", index)
        group = _GROUPS.get(row.activity or "", _UNKNOWN_GROUP)
        # Oldest change first ("" sorts before any time: an activity with no time is the oldest known).
        return (group, row.activity_at or "" if group != _UNKNOWN_GROUP else "", index)

    return [row for _, row in sorted(enumerate(rows), key=key)]
