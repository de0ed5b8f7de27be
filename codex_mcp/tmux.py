"""The tmux adapter.

Start-up only needs to know which session the current process runs in; that is one
``tmux display-message`` call (argv, no shell), without importing libtmux.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

NOT_IN_TMUX = "(not in tmux)"


def current_session(environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the tmux session this process runs in, or None when it is not inside tmux."""
    env = os.environ if environ is None else environ
    if not env.get("TMUX"):
        return None
    argv = ["tmux", "display-message", "-p"]
    if pane := env.get("TMUX_PANE"):
        argv += ["-t", pane]
    argv.append("#{session_name}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False, env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return None
    name = done.stdout.strip()
    return name if done.returncode == 0 and name else None
