"""Opening a worktree in the person's editor: ``editor.command``, run without a shell.

The command is split like a shell would (``shlex``) and ``{path}`` is replaced inside each argument;
a command without ``{path}`` gets the path as its last argument (so ``vim`` or ``code`` alone work).
How it runs:

* a terminal editor (vi, vim, nvim, nano, micro, hx, ...) needs this terminal: when stdin and stdout
  are terminals it runs in the foreground and ``open`` returns when it exits;
* anything else (VS Code, a GUI editor, a script) is started detached, in its own session with no
  terminal, so the command returns at once;
* ``wait=True`` forces the foreground (``emacs -nw``, ``code --wait``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from codex_mcp.errors import ConfigError

KEY = "editor.command"
DEFAULT_COMMAND = "code"  # the seed's user_config default: `code {path}`
PLACEHOLDERS = ("path",)
EXAMPLE = "vim {path}"
# Editors that draw in the terminal they are started from: detached, they would have none.
TERMINAL_EDITORS = frozenset(
    {"vi", "vim", "nvim", "view", "nano", "pico", "micro", "hx", "helix", "kak", "ne", "joe", "mg", "jed"}
)
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")


@dataclass(frozen=True)
class EditorLaunch:
    """The argv to run and whether it takes over this terminal (``foreground``) or runs detached."""

    argv: list[str]
    foreground: bool


def editor_argv(template: str, path: Path) -> list[str]:
    """``template`` split into arguments, ``{path}`` replaced inside each (once: a path holding
    ``{path}`` is not expanded again); the path appended when no argument names it."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise ConfigError(
            f"{KEY} {template!r} cannot be split into arguments ({exc}); {_how_to_set()}"
        ) from None
    if not words:
        raise ConfigError(f"{KEY} is empty; {_how_to_set()}")
    argv = [_PLACEHOLDER.sub(lambda _: str(path), word) for word in words]
    if not any(_PLACEHOLDER.search(word) for word in words):
        argv.append(str(path))
    return argv


def plan(template: str, path: Path, *, wait: bool, interactive: bool) -> EditorLaunch:
    """What to run for ``path``; ``interactive`` when stdin and stdout are terminals.

    Raises ConfigError ("no editor found") when the program is not on PATH (or not executable).
    """
    argv = editor_argv(template, path)
    program = argv[0]
    found = shutil.which(program)
    if found is None:
        raise ConfigError(
            f"no editor found: {program!r} ({KEY} is {template!r}) is not an executable on PATH; "
            f"{_how_to_set()}"
        )
    foreground = wait or (interactive and Path(program).name in TERMINAL_EDITORS)
    return EditorLaunch(argv=[found, *argv[1:]], foreground=foreground)


def start(launch: EditorLaunch, cwd: Path) -> subprocess.Popen[bytes]:
    """Start the editor: in this terminal (the caller waits for it) or detached from it."""
    if launch.foreground:
        return subprocess.Popen(launch.argv, cwd=cwd)
    return subprocess.Popen(
        launch.argv,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # outlives this command, and no terminal signal reaches it
        close_fds=True,
    )


def interactive() -> bool:
    """stdin and stdout are both terminals (a person typing, not a script or a test)."""
    return os.isatty(0) and os.isatty(1)


def _how_to_set() -> str:
    return f'set your editor with `codex-mcp config set {KEY} "{EXAMPLE}"` ({{path}} is the worktree)'
