"""Times as SQLite stores them: UTC text ``YYYY-MM-DD HH:MM:SS`` (what CURRENT_TIMESTAMP writes)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from codex_mcp.errors import InputError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(?:\d+[smhdw])+$")
_PART = re.compile(r"(\d+)([smhdw])")
SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S"


def to_sqlite(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(SQLITE_FORMAT)


def parse_since(text: str, *, now: datetime | None = None) -> str:
    """A duration back from now (``30m``, ``2h``, ``1d``, ``1w``, ``1h30m``) or an ISO time, as SQLite text."""
    raw = text.strip().lower()
    current = now or datetime.now(UTC)
    if _DURATION.match(raw):
        seconds = sum(int(n) * _UNITS[u] for n, u in _PART.findall(raw))
        try:
            return to_sqlite(current - timedelta(seconds=seconds))
        except OverflowError:
            return "0000-01-01 00:00:00"
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise InputError(
            f"{shown!r} is not a duration or a time; use e.g. 30m, 2h, 1d, 1w, or 2026-11-26T10:00:00Z"
        ) from None
    return to_sqlite(moment)
