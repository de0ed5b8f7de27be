"""``python -m codex_mcp.finisher SPEC``: end an instance that terminated itself.

Started by terminate_instance as a separate process in its own session, so that the tool's answer
reaches the agent first and this process outlives the tmux session it kills. After a short delay it
kills the session, then applies the cleanup policy (which never deletes unpushed work).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio


async def finish(spec: dict[str, object]) -> None:
    from codex_mcp.lifecycle import cleanup_worktree
    from codex_mcp.tmux import Tmux

    await anyio.sleep(float(spec.get("delay") or 0))  # type: ignore[arg-type]
    session = str(spec["session"])
    await Tmux(spec.get("socket") or None).kill_session(session)  # type: ignore[arg-type]
    policy = str(spec.get("policy") or "manual")
    if policy != "manual":
        await cleanup_worktree(
            Path(str(spec["main_root"])),
            Path(str(spec["worktree"])),
            str(spec["branch"]),
            str(spec["base"]) if spec.get("base") else None,
            policy,  # type: ignore[arg-type]
        )


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m codex_mcp.finisher SPEC_JSON", file=sys.stderr)
        return 2
    anyio.run(finish, json.loads(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
