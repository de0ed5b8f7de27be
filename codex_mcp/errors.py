"""The errors codex-mcp raises on purpose.

Every message says what failed, why, and what to do next. The recording decorator turns a
``CodexError`` into a tool error with that text; the CLI prints it as one line and exits non-zero.
Anything else escaping a tool is a bug: it is logged with its traceback and reported generically.

    CodexError
    ├── InputError          the caller's input is wrong (bad id, bad filter, bad value)
    │   └── NotFoundError   a well-formed reference to something that does not exist
    ├── StateError          the request is valid but the current state forbids it
    ├── PermissionDenied    the caller may not do this to that instance
    ├── UpstreamError       git, tmux or GitHub failed
    └── ConfigError         settings, user_config, secrets or the database file are unusable
        └── DatabaseError   the database cannot be opened, migrated or is newer than this code
"""

from __future__ import annotations


class CodexError(Exception):
    """Base of every error codex-mcp raises deliberately; ``str()`` is the user-facing message."""

    exit_code = 1


class InputError(CodexError):
    exit_code = 2


class NotFoundError(InputError):
    pass


class StateError(CodexError):
    pass


class PermissionDenied(CodexError):
    pass


class UpstreamError(CodexError):
    pass


class ConfigError(CodexError):
    exit_code = 3


class DatabaseError(ConfigError):
    """``cause`` and ``remedy``, when known, are the message's parts (a write refused by a full disk,
    a read-only file, a lock held elsewhere), for an answer that must word them differently."""

    def __init__(self, message: str, *, cause: str | None = None, remedy: str | None = None) -> None:
        super().__init__(message)
        self.cause = cause
        self.remedy = remedy
