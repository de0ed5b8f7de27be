"""The launcher tmux runs: ``python -m codex_mcp.launch SPEC``.

It reads the agent's argv and environment from the spec file, waits until the instance's row is
committed (the spawner writes it right after tmux started us), then replaces itself with the agent,
so the pane's process id is the agent's. It imports nothing heavy: it runs once per agent start.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from dataclasses import asdict, dataclass
from urllib.parse import quote

ROW_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class LaunchSpec:
    """What the launcher needs, written by ``agents.write_launch_files`` into a 0600 JSON file."""

    instance_id: str
    db: str
    argv: list[str]
    env: dict[str, str]
    cwd: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LaunchSpec:
        data = json.loads(text)
        return cls(
            instance_id=str(data["instance_id"]),
            db=str(data["db"]),
            argv=[str(word) for word in data["argv"]],
            env={str(k): str(v) for k, v in data["env"].items()},
            cwd=str(data["cwd"]),
        )


def _row_committed(db: str, instance_id: str) -> bool:
    # A plain read through the standard library: the store's async machinery is not worth
    # starting here, and a read cannot disturb the spawner's write transaction (WAL).
    try:
        conn = sqlite3.connect(f"file:{quote(db)}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        row = conn.execute("SELECT status FROM instances WHERE id = ?", (instance_id,)).fetchone()
    except sqlite3.Error:
        return False
    finally:
        conn.close()
    return row is not None and row[0] == "running"


def forget_environment(path: str, spec: LaunchSpec) -> None:
    """Rewrite the spec without its environment, which holds the agent's secrets (API key, token).

    Once read, the environment lives only in the agent's process: nothing secret stays on disk for as
    long as the worktree does. The argv (for a person to see how the agent was started) stays.
    """
    kept = LaunchSpec(instance_id=spec.instance_id, db=spec.db, argv=spec.argv, env={}, cwd=spec.cwd)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(kept.to_json())
    os.replace(tmp, path)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m codex_mcp.launch SPEC", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as fh:
        spec = LaunchSpec.from_json(fh.read())
    forget_environment(argv[0], spec)
    deadline = time.monotonic() + ROW_WAIT_SECONDS
    while not _row_committed(spec.db, spec.instance_id):
        if time.monotonic() > deadline:
            print(
                f"codex-mcp: instance {spec.instance_id} was never recorded; not starting the agent",
                file=sys.stderr,
            )
            return 1
        time.sleep(0.02)
    os.chdir(spec.cwd)
    try:
        os.execvpe(spec.argv[0], spec.argv, spec.env)  # noqa: S606 - argv, deliberately no shell
    except OSError as exc:
        print(f"codex-mcp: cannot start {spec.argv[0]!r}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # unreachable: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
