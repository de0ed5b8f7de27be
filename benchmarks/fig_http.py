"""Figure 7: HTTP mode, the server memory each extra connected agent costs.

``codex-mcp serve --transport http --port 0`` is started on a database holding one running instance
(with its own bearer token) per agent. Agents are the SDK's streamable-HTTP client, each with its
own token: it initializes and lists the tools (what Claude Code does on connecting), and its
session stays open. The server's VmRSS is read once a few agents are connected (warm: the first
requests load code and fill caches), then after N more: (RSS_after - RSS_before) / N, for N = 10 and 50.
A fresh server per repetition; the median over repetitions.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from contextlib import AsyncExitStack
from pathlib import Path

from common import CODEX, Row, make_repo, median, rss_kib

TARGET_KIB = 1024
WARM = 3
COUNTS = (10, 50)
SETTLE = 0.5
SERVING = re.compile(r"codex-mcp: serving http at (\S+)")


async def _start(repo: Path, env: dict[str, str], log: Path) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        CODEX,
        "serve",
        "--transport",
        "http",
        "--port",
        "0",
        cwd=repo,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode(errors="replace")
        if not line:
            raise RuntimeError("the HTTP server exited before serving:\n" + "".join(lines))
        lines.append(line)
        if m := SERVING.search(line):
            url = m.group(1)
            break

    async def drain() -> None:  # never let the server block on a full stderr pipe
        assert proc.stderr is not None
        with log.open("a") as fh:
            while line := await proc.stderr.readline():
                fh.write(line.decode(errors="replace"))

    asyncio.get_running_loop().create_task(drain())
    return proc, url


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def memory_per_agent(tmp: Path, env: dict[str, str], quick: bool) -> list[Row]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from codex_mcp.tokens import new_token

    reps = 1 if quick else 5
    counts = (5, 10) if quick else COUNTS
    repo = make_repo(tmp / "repo")
    db_path = tmp / "http.db"
    env = {**env, "CODEX_MCP_DB": str(db_path)}
    subprocess.run([CODEX, "db", "migrate"], cwd=repo, env=env, check=True, capture_output=True)
    agents = WARM + max(counts)
    tokens = [new_token() for _ in range(agents)]
    conn = sqlite3.connect(db_path)
    with conn:
        conn.executemany(
            "INSERT INTO instances (id, type, status, worktree_path, branch_name, tmux_session, agent_number, "
            "token_hash) VALUES (?, 'adhoc', 'running', ?, 'main', '(not in tmux)', ?, ?)",
            [(f"adhoc-a{n}", str(tmp / "checkouts" / str(n)), n, h) for n, (_, h) in enumerate(tokens, 1)],
        )
    conn.close()

    # "legacy": the initialize handshake with a stateful session (mcp-session-id, a standing GET stream),
    # what Claude Code and the other current clients do; "auto": the SDK's default, which here settles on
    # the stateless 2026-07-28 protocol.
    modes = ("legacy", "auto")
    per_agent: dict[tuple[str, int], list[float]] = {(m, n): [] for m in modes for n in counts}
    samples: list[dict[str, object]] = []
    versions: dict[str, set[str]] = {m: set() for m in modes}
    for rep in range(reps):
        for mode in modes:
            proc, url = await _start(repo, env, tmp / f"server-{rep}-{mode}.log")
            try:
                async with AsyncExitStack() as stack:

                    async def connect(token: str, mode: str = mode, url: str = url) -> None:
                        http = await stack.enter_async_context(
                            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
                        )
                        client = await stack.enter_async_context(
                            Client(streamable_http_client(url, http_client=http), cache=None, mode=mode)
                        )
                        await client.list_tools()
                        versions[mode].add(client.protocol_version)

                    connected = 0
                    for token, _ in tokens[:WARM]:
                        await connect(token)
                        connected += 1
                    await asyncio.sleep(SETTLE)
                    before = rss_kib(proc.pid)
                    sample: dict[str, object] = {"mode": mode, "before_kib": before}
                    for n in counts:
                        while connected < WARM + n:
                            await connect(tokens[connected][0])
                            connected += 1
                        await asyncio.sleep(SETTLE)
                        after = rss_kib(proc.pid)
                        sample[f"after_{n}_kib"] = after
                        per_agent[(mode, n)].append((after - before) / n)
                    samples.append(sample)
            finally:
                await _stop(proc)

    rows = []
    for mode in modes:
        version = ", ".join(sorted(versions[mode]))
        for n in counts:
            value = median(per_agent[(mode, n)])
            rows.append(
                Row(
                    f"http_memory_per_agent:{mode}:{n}",
                    f"7. HTTP mode: server memory per extra agent, N = {n}, protocol {version}",
                    f"{value:.0f} KiB per agent",
                    f"{WARM} agents connected",
                    "",
                    "≤ 1 MiB",
                    value <= TARGET_KIB,
                    {
                        "mode": mode,
                        "protocol": version,
                        "n": n,
                        "reps": reps,
                        "per_agent_kib": [round(x, 1) for x in per_agent[(mode, n)]],
                        "median_kib": round(value, 1),
                    },
                )
            )
    rows[0].data["samples"] = samples
    rows[0].note = (
        "each agent: its own token, connect + tools/list, session left open; RSS growth of the server process / N, "
        f"median of {reps} fresh servers per protocol (2025-11-25: initialize handshake, stateful session with a "
        "standing GET stream, as Claude Code connects today; 2026-07-28: the SDK's default, stateless)"
    )
    return rows
