"""``python -m codex_mcp.lifecycle.finisher SPEC``: end an instance that terminated itself.

Started by terminate_instance as a separate process in its own session, so that the tool's answer
reaches the agent first and this process outlives the tmux session it kills. After a short delay it
kills the session, then applies the cleanup policy (which never deletes unpushed work).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio

from codex_mcp.lifecycle.cleanup import CLEANUP_POLICIES, CleanupPolicy, cleanup_worktree
from codex_mcp.tmux import Tmux


@dataclass(frozen=True)
class FinishSpec:
    """What the finisher does, written by ``lifecycle.terminate`` as its one argument."""

    socket: str | None
    session: str
    delay: float
    main_root: str
    worktree: str
    branch: str
    base: str | None
    policy: CleanupPolicy

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> FinishSpec:
        data = json.loads(text)
        policy = data.get("policy")
        return cls(
            socket=str(data["socket"]) if data.get("socket") else None,
            session=str(data["session"]),
            delay=float(data.get("delay") or 0),
            main_root=str(data["main_root"]),
            worktree=str(data["worktree"]),
            branch=str(data["branch"]),
            base=str(data["base"]) if data.get("base") else None,
            policy=policy if policy in CLEANUP_POLICIES else "manual",
        )


async def finish(spec: FinishSpec) -> None:
    await anyio.sleep(spec.delay)
    await Tmux(spec.socket).kill_session(spec.session)
    if spec.policy != "manual":
        await cleanup_worktree(Path(spec.main_root), Path(spec.worktree), spec.branch, spec.base, spec.policy)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m codex_mcp.lifecycle.finisher SPEC_JSON", file=sys.stderr)
        return 2
    anyio.run(finish, FinishSpec.from_json(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
