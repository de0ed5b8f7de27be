"""Figure 8: issue sync of 10,000 issues (100 pages of 100) from the loopback GitHub stand-in, and
the re-sync with nothing changed.

The stand-in (tests/github_standin.py) runs in this process, in its own thread; the sync runs in
another process, so the two never share an interpreter: (a) the ``sync_issues`` tool of a running
``codex-mcp serve`` over stdio (what an agent calls), (b) the ``codex-mcp issues sync`` command
(start-up included). A subclass times the stand-in's request handler (``_handle``: routing, building
and serializing the JSON, writing the answer to the socket); requests are sequential, so

    time outside the stand-in = wall time of the sync - sum of the handler times

is what codex-mcp itself spends (HTTP client, githubkit validation, SQLite, start-up for (b)).
Each repetition starts from an empty database.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from common import CODEX, TESTS, Row, StdioPeer, alternate, fmt_ms, make_repo, median, ms

TARGET_S = 2.0
TOKEN = "ghp_benchbenchbenchbenchbenchbenchbench00"


def timed_standin_class() -> Any:
    if str(TESTS) not in sys.path:
        sys.path.insert(0, str(TESTS))
    from github_standin import GitHubStandIn

    class TimedStandIn(GitHubStandIn):
        """The stand-in, with the time spent in each request's handler summed up."""

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.serving = 0.0
            self.handled = 0
            self.statuses: dict[int, int] = {}
            self._timing = threading.Lock()

        def _handle(self, handler: Any) -> None:
            started = time.perf_counter()
            try:
                super()._handle(handler)
            finally:
                with self._timing:
                    self.serving += time.perf_counter() - started
                    self.handled += 1

        def _send(self, handler: Any, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
            super()._send(handler, status, body, headers)

        def reset(self) -> None:
            with self._timing:
                self.serving = 0.0
                self.handled = 0
                self.statuses = {}

    return TimedStandIn


async def issue_sync(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    issues = 2_000 if quick else 10_000
    reps = 1 if quick else 5
    repo = make_repo(tmp / "repo")
    standin = timed_standin_class()()
    standin.add_many_issues(issues, datetime.now(UTC) - timedelta(days=400), step=timedelta(minutes=30))
    standin.start()
    base_env = {
        **env,
        "CODEX_MCP_GITHUB_API_URL": standin.base_url,
        "CODEX_MCP_GITHUB_REPO": f"{standin.owner}/{standin.repo}",
        "GITHUB_TOKEN": TOKEN,
        "CODEX_MCP_LOG_LEVEL": "WARNING",
    }
    counter = iter(range(1_000_000))
    log = tmp / "sync.log"

    def fresh_env() -> dict[str, str]:
        return {**base_env, "CODEX_MCP_DB": str(tmp / f"sync-{next(counter)}.db")}

    def measure(wall: float, result: dict[str, Any]) -> dict[str, Any]:
        return {
            "wall_s": wall,
            "standin_s": standin.serving,
            "outside_s": wall - standin.serving,
            "requests": standin.handled,
            "statuses": dict(standin.statuses),
            "result": result,
        }

    async def tool() -> dict[str, Any]:
        peer = await StdioPeer.spawn([CODEX, "serve"], cwd=repo, env=fresh_env(), stderr=log)
        try:
            await peer.initialize()
            out = {}
            for name in ("first", "again"):
                standin.reset()
                t0 = time.perf_counter()
                result = await peer.call_tool("sync_issues")
                wall = time.perf_counter() - t0
                if result.get("isError"):
                    raise RuntimeError(f"sync_issues failed: {result.get('content')}")
                out[name] = measure(wall, dict(result.get("structuredContent") or {}))
            return out
        finally:
            await peer.close()

    async def cli() -> dict[str, Any]:
        run_env = fresh_env()
        out = {}
        for name in ("first", "again"):
            standin.reset()
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                CODEX,
                "issues",
                "sync",
                "--json",
                cwd=repo,
                env=run_env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await proc.communicate()
            wall = time.perf_counter() - t0
            if proc.returncode != 0:
                raise RuntimeError(f"codex-mcp issues sync failed: {stderr.decode().strip()}")
            out[name] = measure(wall, json.loads(stdout))
        return out

    try:
        a, b = await alternate(reps, tool, cli, warmup=0 if quick else 1)
    finally:
        standin.stop()
        if standin.errors:
            raise RuntimeError(f"the stand-in failed: {standin.errors[:3]}")

    rows = []
    pages = (issues + 99) // 100
    for label, runs in (
        ("sync_issues tool (stdio server)", a),
        ("`codex-mcp issues sync` (incl. start-up)", b),
    ):
        first = [r["first"] for r in runs]
        again = [r["again"] for r in runs]
        outside = median(r["outside_s"] for r in first)
        wall = median(r["wall_s"] for r in first)
        serving = median(r["standin_s"] for r in first)
        fetched = first[-1]["result"].get("fetched")
        resync_pages = again[-1]["result"].get("pages")
        resync_304 = again[-1]["result"].get("not_modified_pages")
        all_304 = all(
            r["result"].get("pages") == r["result"].get("not_modified_pages")
            and r["result"].get("fetched") == 0
            for r in again
        )
        key = "tool" if label.startswith("sync_issues") else "cli"
        rows.append(
            Row(
                f"issue_sync:{key}",
                f"8. issue sync, {issues:,} issues ({pages} pages): {label}",
                f"outside the stand-in {fmt_ms(outside)} (wall {fmt_ms(wall)})",
                f"stand-in serving {fmt_ms(serving)}",
                f"re-sync: {resync_304}/{resync_pages} pages 304",
                f"≤ {TARGET_S:.0f} s; re-sync all 304",
                outside <= TARGET_S and all_304 and fetched == issues,
                {
                    "issues": issues,
                    "reps": reps,
                    "outside_ms": [ms(r["outside_s"]) for r in first],
                    "wall_ms": [ms(r["wall_s"]) for r in first],
                    "standin_ms": [ms(r["standin_s"]) for r in first],
                    "requests": first[-1]["requests"],
                    "statuses": first[-1]["statuses"],
                    "fetched": fetched,
                    "resync_wall_ms": [ms(r["wall_s"]) for r in again],
                    "resync_outside_ms": [ms(r["outside_s"]) for r in again],
                    "resync_pages": resync_pages,
                    "resync_not_modified": resync_304,
                    "resync_statuses": again[-1]["statuses"],
                    "median_outside_ms": ms(outside),
                },
                note=(
                    f"{first[-1]['requests']} requests on the first sync (the listing, then once more from the new "
                    f"watermark); re-sync wall {fmt_ms(median(r['wall_s'] for r in again))}. Method: wall time of "
                    "the sync minus the summed time of the stand-in's request handler (timed in a subclass; "
                    "requests are sequential), stand-in and sync in different processes"
                ),
            )
        )
    return rows
