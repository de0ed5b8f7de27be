"""A scripted stand-in agent: a real MCP client that does what a script says.

``python -m codex_mcp.standin --mcp-config FILE --instance ID --script FILE``

It starts the MCP server named in the config it was given, or connects to the shared HTTP server
that config names with the headers it gives (exactly as Claude Code would), then runs
the steps listed in the script for its instance type, logging every result as a JSON line to
``<cwd>/.codex/standin.jsonl``; whatever is typed or pasted into its terminal is logged there too.
The demo and the tests use it to drive the real path tmux -> agent -> MCP config -> server -> database
without Claude Code or a network.

Script: ``{"work": [step, ...], "review": [...], "adhoc": [...]}`` with steps
``{"call": TOOL, "args": {...}}``, ``{"write": {"path": P, "text": T}}``, ``{"wait_feedback": SECONDS}``,
``{"sleep": SECONDS}``, ``{"exit": CODE}``.
After the last step it stays alive (like an agent waiting for input) unless told to exit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio

from codex_mcp import SERVER_NAME


class Log:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def write(self, **entry: Any) -> None:
        entry["t"] = time.time()
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
        print(line, flush=True)


def _read_terminal(log: Log) -> None:
    # Pasted notices arrive as terminal input: record them exactly.
    for line in sys.stdin:
        log.write(event="input", text=line.rstrip("\n"))


async def run(config_path: Path, instance_id: str, script: dict[str, list[dict[str, Any]]], log: Log) -> int:
    from mcp import Client, StdioServerParameters

    config = json.loads(config_path.read_text(encoding="utf-8"))["mcpServers"][SERVER_NAME]
    kind = instance_id.split("-", 1)[0]
    steps = script.get(kind, [])
    log.write(event="start", instance=instance_id, steps=len(steps))
    async with AsyncExitStack() as stack:
        if config.get("type") == "http":
            # A shared server: its URL, with this agent's own token in the headers it was given.
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=config.get("headers") or {}, timeout=httpx2.Timeout(30, read=300))
            )
            server: Any = streamable_http_client(config["url"], http_client=http)
        else:
            server = StdioServerParameters(
                command=config["command"],
                args=config.get("args", []),
                env={**os.environ, **config.get("env", {})},
                cwd=os.getcwd(),
            )
        client = await stack.enter_async_context(Client(server))
        for step in steps:
            if "call" in step:
                result = await client.call_tool(step["call"], step.get("args") or {})
                text = " ".join(getattr(c, "text", "") for c in result.content)
                log.write(
                    event="call",
                    tool=step["call"],
                    is_error=bool(result.is_error),
                    result=result.structured_content,
                    text=text if result.is_error else None,
                )
            elif "wait_feedback" in step:
                folder = Path.cwd() / ".codex" / "feedback"
                deadline = time.monotonic() + float(step["wait_feedback"])
                found: list[str] = []
                while time.monotonic() < deadline:
                    found = sorted(p.name for p in folder.glob("*.md")) if folder.is_dir() else []
                    if found:
                        break
                    await anyio.sleep(0.05)
                log.write(event="feedback", files=found)
            elif "write" in step:
                # Edit the worktree like an agent would (left uncommitted).
                target = Path.cwd() / str(step["write"]["path"])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(str(step["write"]["text"]), encoding="utf-8")
                log.write(event="write", path=str(step["write"]["path"]))
            elif "sleep" in step:
                await anyio.sleep(float(step["sleep"]))
            elif "exit" in step:
                log.write(event="exit", code=int(step["exit"]))
                return int(step["exit"])
        log.write(event="done")
        await anyio.sleep_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codex_mcp.standin", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mcp-config", required=True, type=Path)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--script", required=True, type=Path)
    args = parser.parse_args(argv)
    log = Log(Path.cwd() / ".codex" / "standin.jsonl")
    threading.Thread(target=_read_terminal, args=(log,), daemon=True).start()
    script = json.loads(args.script.read_text(encoding="utf-8"))
    try:
        return anyio.run(run, args.mcp_config, args.instance, script, log)
    except Exception as exc:
        log.write(event="crash", error=f"{type(exc).__name__}: {exc}")
        raise


if __name__ == "__main__":
    sys.exit(main())
