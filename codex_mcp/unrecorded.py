"""Calls whose ``mcp_events`` row could not be written: logged loudly, counted, and marked as a gap.

When the database cannot take a row (read-only, disk full, a lock held past the busy timeout), the
call's own answer decides what the caller is told (see ``recording.py``); here the loss is kept:

* every lost row is logged at ERROR on stderr at once, with the tool, the caller and the cause;
* the process counts its lost rows per database, and the first row it writes once the database takes
  rows again is followed by one marker row: tool ``unrecorded_calls``, ``success=0``, the number of
  calls lost, from when to when, their tools and callers, and the cause. ``events`` and
  ``list_events`` show that gap where it happened.

The count lives in the process that lost the rows: a process that ends before the database is
writable again (a CLI command) leaves its losses in its log (its stderr) only.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from codex_mcp.store import Database
from codex_mcp.store import events as events_store
from codex_mcp.store.events import NewEvent
from codex_mcp.timeutil import to_sqlite

log = logging.getLogger(__name__)

MARKER_TOOL = "unrecorded_calls"


class Gap:
    """The calls one process could not record in one database since its last successful write.

    A plain class, not a dataclass: this module is imported by every server at start, where building
    a dataclass costs more than it gives.
    """

    def __init__(self) -> None:
        self.count = 0
        self.first = ""
        self.last = ""
        self.tools: dict[str, int] = {}
        self.callers: set[str] = set()
        self.cause = ""

    def merge(self, other: Gap) -> None:
        self.count += other.count
        self.first = min(filter(None, (self.first, other.first)), default="")
        self.last = max(self.last, other.last)
        for name, n in other.tools.items():
            self.tools[name] = self.tools.get(name, 0) + n
        self.callers |= other.callers
        self.cause = other.cause or self.cause


_GAPS: WeakKeyDictionary[Database, Gap] = WeakKeyDictionary()


def note(
    db: Database, caller_id: str | None, tool_name: str, cause: object, *, refused: bool = False
) -> None:
    """Count one call whose row was lost, and say so on stderr now.

    ``refused``: the call was refused before it did anything, and its caller was told why; the log
    line is then INFO (a CLI command's own error stays its one line).
    """
    gap = _GAPS.setdefault(db, Gap())
    now = to_sqlite(datetime.now(UTC))
    gap.count += 1
    gap.first = gap.first or now
    gap.last = now
    gap.tools[tool_name] = gap.tools.get(tool_name, 0) + 1
    if caller_id is not None:
        gap.callers.add(caller_id)
    gap.cause = " ".join(str(cause).split())[:500]
    log.log(
        logging.INFO if refused else logging.ERROR,
        "NOT RECORDED: %s by %s left no row in %s (%s); %d call(s) unrecorded since %s UTC; `codex-mcp "
        "events` will show the gap once the database takes rows again",
        tool_name, caller_id or "?", db.path, gap.cause, gap.count, gap.first,
    )  # fmt: skip


def pending(db: Database) -> int:
    """How many calls this process has lost in ``db`` and not yet marked."""
    gap = _GAPS.get(db)
    return gap.count if gap is not None else 0


def current(db: Database) -> Gap | None:
    """The calls this process has lost in ``db`` and not yet marked (None: none), e.g. for a page
    that must say so while it lasts."""
    gap = _GAPS.get(db)
    return gap if gap is not None and gap.count else None


async def mark(db: Database, instance_id: str) -> None:
    """After a row was written: write the marker of the calls lost before it, if any (never raises).

    The marker is recorded under ``instance_id`` (whose row was just written, so it exists); the lost
    calls' own callers are in its metadata.
    """
    gap = _GAPS.pop(db, None)
    if gap is None or gap.count == 0:
        return
    event = NewEvent(
        instance_id=instance_id,
        tool_name=MARKER_TOOL,
        success=False,
        error_message=(
            f"{gap.count} call(s) between {gap.first} and {gap.last} UTC could not be recorded: {gap.cause}"
        ),
        metadata={
            "unrecorded": gap.count,
            "first": gap.first,
            "last": gap.last,
            "tools": dict(sorted(gap.tools.items())),
            "callers": sorted(gap.callers),
        },
    )
    try:
        await events_store.record_alone(db, event)
    except Exception as exc:  # still not writable: keep counting, the next success marks it
        later = _GAPS.get(db)
        if later is not None:
            gap.merge(later)
        _GAPS[db] = gap
        log.debug("the gap marker could not be written yet (%s)", exc)
        return
    log.warning(
        "recorded the gap: %d call(s) between %s and %s UTC were not recorded", gap.count, gap.first, gap.last
    )
