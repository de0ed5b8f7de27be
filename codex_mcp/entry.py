"""The ``codex-mcp`` console script (and ``python -m codex_mcp``): ``hook`` first, everything else to the CLI.

``codex-mcp hook EVENT`` runs inside every turn of every agent, so it must not pay for click, rich and
the rest of the command line: it is dispatched here, before any of that is imported. ``hook`` with
``--help`` (or without an event) goes to the CLI, which documents it.
"""

from __future__ import annotations

import sys


def main() -> None:
    args = sys.argv[1:]
    if len(args) == 2 and args[0] == "hook" and not args[1].startswith("-"):
        import os

        from codex_mcp.hook import main as hook_main

        status = hook_main(args[1:])
        # Straight out, without the interpreter's teardown (freeing every module, running the collector):
        # it costs the hook about a quarter of a bare interpreter start, and there is nothing to tear
        # down: the hook closed its database, writes its log unbuffered and prints nothing.
        os._exit(status)
    from codex_mcp.cli import main as cli_main

    cli_main(args)
