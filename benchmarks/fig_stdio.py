"""Figures 1-3: one stdio server per agent.

1. cold start: spawn -> initialize -> tools/list, ``codex-mcp serve`` vs the bare MCPServer;
2. idle RSS after tools/list, same two servers (read from the very runs of figure 1);
3. latency of the recorded read tool ``query_instances`` vs the bare server's unrecorded ``ping``,
   hundreds of calls on one connection each.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    BARE,
    CODEX,
    Row,
    StdioPeer,
    X,
    alternate,
    fmt_mib,
    fmt_ms,
    make_repo,
    median,
    ms,
    paired_ratio,
    percentile,
    rss_kib,
)

COLD_TARGET = 1.05  # issue 11: the stdio cold start at most 1.05x a bare server
RSS_TARGET = 1.10
LATENCY_TARGET_MS = 0.3  # issue 11: a recorded read costs at most +0.3 ms over an unrecorded ping
SETTLE = 0.3  # seconds after tools/list before reading VmRSS


@dataclass
class Start:
    seconds: float
    rss_kib: int
    cpu_seconds: float  # CPU time the server used up to the tools/list answer (less sensitive to load)


def cpu_seconds(pid: int) -> float:
    """Time the process has spent on a CPU so far (/proc/<pid>/schedstat, nanoseconds)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


class Servers:
    """Both servers started the same way: same cwd (a real git repository), same environment."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.repo = make_repo(tmp / "stdio-repo")
        self.env = {**env, "CODEX_MCP_DB": str(tmp / "stdio.db")}
        self.log = tmp / "stdio-servers.log"
        # The database exists already (as it does for every agent but the very first): migrate it now.
        subprocess.run([CODEX, "db", "migrate"], cwd=self.repo, env=self.env, check=True, capture_output=True)

    async def spawn(self, which: str) -> StdioPeer:
        argv = [CODEX, "serve"] if which == "codex" else BARE
        return await StdioPeer.spawn(argv, cwd=self.repo, env=self.env, stderr=self.log)

    async def cold_start(self, which: str) -> Start:
        started = time.perf_counter()
        peer = await self.spawn(which)
        try:
            await peer.initialize()
            tools = await peer.request("tools/list")
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(peer.pid)
            assert tools["tools"], "tools/list answered no tools"
            await asyncio.sleep(SETTLE)
            rss = rss_kib(peer.pid)
        finally:
            await peer.kill()  # its shutdown is not measured; killing saves the interpreter teardown
        return Start(elapsed, rss, cpu)


async def cold_start_and_rss(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    servers = Servers(tmp, env)
    reps = 3 if quick else 15
    codex, bare = await alternate(
        reps, lambda: servers.cold_start("codex"), lambda: servers.cold_start("bare"), warmup=1
    )
    t_codex = median(s.seconds for s in codex)
    t_bare = median(s.seconds for s in bare)
    r_codex = median(s.rss_kib for s in codex)
    r_bare = median(s.rss_kib for s in bare)
    c_codex = median(s.cpu_seconds for s in codex)
    c_bare = median(s.cpu_seconds for s in bare)
    ratio_t = t_codex / t_bare
    paired_t = paired_ratio([s.seconds for s in codex], [s.seconds for s in bare])
    ratio_r = r_codex / r_bare
    return [
        Row(
            "stdio_cold_start",
            "1. stdio cold start (spawn → initialize → tools/list)",
            fmt_ms(t_codex),
            f"bare MCPServer {fmt_ms(t_bare)}",
            f"{ratio_t:.2f}{X}",
            f"≤ {COLD_TARGET}{X}",
            ratio_t <= COLD_TARGET,
            {
                "reps": reps,
                "codex_ms": [ms(s.seconds) for s in codex],
                "bare_ms": [ms(s.seconds) for s in bare],
                "codex_median_ms": ms(t_codex),
                "bare_median_ms": ms(t_bare),
                "ratio": round(ratio_t, 3),
                "codex_cpu_ms": [ms(s.cpu_seconds) for s in codex],
                "bare_cpu_ms": [ms(s.cpu_seconds) for s in bare],
                "cpu_ratio": round(c_codex / c_bare, 3),
                "paired_ratio": round(paired_t, 3),
            },
            note=f"ratio of the medians of {reps} alternated runs each (median of the paired ratios: "
            f"{paired_t:.2f}{X}); CPU time of the server process up to the tools/list answer, less sensitive to "
            f"other load: {fmt_ms(c_codex)} vs {fmt_ms(c_bare)}, {c_codex / c_bare:.2f}{X}",
        ),
        Row(
            "stdio_idle_rss",
            "2. idle RSS of a stdio server after tools/list",
            fmt_mib(r_codex),
            f"bare MCPServer {fmt_mib(r_bare)}",
            f"{ratio_r:.2f}{X}",
            f"≤ {RSS_TARGET}{X}",
            ratio_r <= RSS_TARGET,
            {
                "reps": reps,
                "codex_kib": [s.rss_kib for s in codex],
                "bare_kib": [s.rss_kib for s in bare],
                "codex_median_kib": r_codex,
                "bare_median_kib": r_bare,
                "ratio": round(ratio_r, 3),
            },
        ),
    ]


async def _calls(peer: StdioPeer, tool: str, n: int) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        result = await peer.call_tool(tool)
        out.append(time.perf_counter() - started)
        if result.get("isError"):
            raise RuntimeError(f"{tool} failed: {result.get('content')}")
    return out


async def recorded_latency(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    tmp_dir = tmp / "latency"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    servers = Servers(tmp_dir, env)
    rounds, per_round = (3, 30) if quick else (10, 100)
    codex = await servers.spawn("codex")
    bare = await servers.spawn("bare")
    try:
        await codex.initialize()
        await bare.initialize()
        rows_before = await _event_count(servers)
        a, b = await alternate(
            rounds,
            lambda: _calls(codex, "query_instances", per_round),
            lambda: _calls(bare, "ping", per_round),
            warmup=1,
        )
        rows_after = await _event_count(servers)
    finally:
        await codex.close()
        await bare.close()
    all_a = [x for r in a for x in r]
    all_b = [x for r in b for x in r]
    p50_a, p99_a = percentile(all_a, 50), percentile(all_a, 99)
    p50_b, p99_b = percentile(all_b, 50), percentile(all_b, 99)
    round_diffs = [percentile(ra, 50) - percentile(rb, 50) for ra, rb in zip(a, b, strict=True)]
    diff = p50_a - p50_b
    return [
        Row(
            "recorded_read_latency",
            "3. recorded read tool query_instances over stdio",
            f"p50 {fmt_ms(p50_a)} / p99 {fmt_ms(p99_a)}",
            f"unrecorded ping p50 {fmt_ms(p50_b)} / p99 {fmt_ms(p99_b)}",
            f"p50 +{diff * 1000:.2f} ms (p99 +{(p99_a - p99_b) * 1000:.2f} ms)",
            f"p50 ≤ +{LATENCY_TARGET_MS} ms",
            diff * 1000 <= LATENCY_TARGET_MS,
            {
                "rounds": rounds,
                "calls_per_round": per_round,
                "query_instances_p50_ms": ms(p50_a),
                "query_instances_p99_ms": ms(p99_a),
                "ping_p50_ms": ms(p50_b),
                "ping_p99_ms": ms(p99_b),
                "p50_difference_ms": ms(diff),
                "p99_difference_ms": ms(p99_a - p99_b),
                "per_round_p50_difference_ms": [ms(d) for d in round_diffs],
                "median_of_round_differences_ms": ms(median(round_diffs)),
                "events_recorded": rows_after - rows_before,
            },
            note=f"{rows_after - rows_before} event rows written for {rounds * per_round} measured calls "
            f"(+{per_round} warm-up)",
        )
    ]


async def _event_count(servers: Servers) -> int:
    import sqlite3

    conn = sqlite3.connect(servers.env["CODEX_MCP_DB"])
    try:
        return int(conn.execute("SELECT COUNT(*) FROM mcp_events").fetchone()[0])
    finally:
        conn.close()
