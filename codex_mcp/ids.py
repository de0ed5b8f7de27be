"""Instance ids: ``{type}-{issue}-a{n}`` (``work-123-a1``) or, without an issue, ``{type}-a{n}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from codex_mcp.errors import InputError

InstanceType = Literal["work", "review", "adhoc"]
INSTANCE_TYPES: tuple[InstanceType, ...] = ("work", "review", "adhoc")
InstanceStatus = Literal["running", "terminated"]
INSTANCE_STATUSES: tuple[InstanceStatus, ...] = ("running", "terminated")
# The words of review feedback (send_feedback, `codex-mcp feedback`): here, not with the result models
# in outcomes.py, so that the command line can offer them without building those models.
FeedbackType = Literal["needs_work", "suggestions", "clarification", "approved"]
Priority = Literal["low", "medium", "high"]

# The one definition of a valid issue number, used by ids, CLI options and tool schemas: GitHub's are
# positive 32-bit integers, and anything larger would make an id `show`, `kill` and `serve` reject.
MAX_ISSUE_NUMBER = 2**31 - 1
ISSUE_NUMBER_HELP = f"1..{MAX_ISSUE_NUMBER}"

_ID = re.compile(r"^(?P<type>work|review|adhoc)(?:-(?P<issue>[1-9][0-9]{0,9}))?-a(?P<n>[1-9][0-9]{0,5})\Z")


@dataclass(frozen=True)
class InstanceId:
    type: InstanceType
    issue_number: int | None
    agent_number: int

    def __str__(self) -> str:
        issue = f"-{self.issue_number}" if self.issue_number is not None else ""
        return f"{self.type}{issue}-a{self.agent_number}"


def parse_instance_id(value: str) -> InstanceId:
    """Parse an id, or raise an InputError that shows the expected shape."""
    m = _ID.match(value)
    if m is None:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise InputError(
            f"{shown!r} is not an instance id; ids look like 'work-123-a1', 'review-123-a2' or 'adhoc-a1' "
            "(run `codex-mcp ls --all` or call query_instances to list them)"
        )
    issue = m.group("issue")
    if issue and int(issue) > MAX_ISSUE_NUMBER:
        raise InputError(
            f"{value!r} is not an instance id: issue numbers go up to {MAX_ISSUE_NUMBER} "
            "(run `codex-mcp ls --all` or call query_instances to list ids)"
        )
    return InstanceId(
        type=cast(InstanceType, m.group("type")),
        issue_number=int(issue) if issue else None,
        agent_number=int(m.group("n")),
    )


def check_issue_number(number: int) -> int:
    """``number`` if it is a valid issue number, else an InputError saying the range."""
    if not 1 <= number <= MAX_ISSUE_NUMBER:
        raise InputError(f"issue number {number} is out of range; issue numbers are {ISSUE_NUMBER_HELP}")
    return number


def validate_instance_id(value: str) -> str:
    parse_instance_id(value)
    return value
