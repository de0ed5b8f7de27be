"""What every figure needs: a clean environment, real git repositories, a private tmux server,
a newline-delimited JSON-RPC client for stdio servers, RSS readings and statistics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
TESTS = ROOT / "tests"
PYTHON = sys.executable
CODEX = str(Path(sys.executable).parent / "codex-mcp")  # this venv's console script
BARE = [PYTHON, str(BENCH / "bare_server.py")]
PROTOCOL_VERSION = "2025-11-25"
X = "\u00d7"  # the multiplication sign of ratios

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


# ----------------------------------------------------------------------------------------- results


@dataclass
class Row:
    """One line of the results table (and one entry of the JSON)."""

    key: str
    figure: str
    measured: str
    baseline: str
    compare: str  # the ratio or difference the target is about
    target: str
    passed: bool | None  # None: informational, no target
    data: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "MISS", None: "info"}[self.passed]


def error_row(key: str, figure: str, exc: BaseException) -> Row:
    return Row(
        key,
        figure,
        "ERROR",
        "",
        "",
        "",
        False,
        {"error": f"{type(exc).__name__}: {exc}"},
        note=f"the benchmark failed: {type(exc).__name__}: {exc}",
    )


# ----------------------------------------------------------------------------------------- statistics


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0-100), linear interpolation between closest ranks."""
    data = sorted(values)
    if not data:
        return float("nan")
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the ratios of runs made next to each other (A_i / B_i): robust to load that drifts
    during the run, where the ratio of the two medians is not."""
    return median(x / y for x, y in zip(a, b, strict=True))


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds >= 0.01 else f"{seconds * 1000:.2f} ms"


def fmt_mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


async def alternate(
    reps: int, a: Callable[[], Awaitable[Any]], b: Callable[[], Awaitable[Any]], *, warmup: int = 1
) -> tuple[list[Any], list[Any]]:
    """Run A and B alternately (A/B/A/B...), after ``warmup`` discarded runs of each."""
    for _ in range(warmup):
        await a()
        await b()
    out_a: list[Any] = []
    out_b: list[Any] = []
    for i in range(reps):
        # Alternate which goes first, so neither always runs right after the other's clean-up.
        if i % 2 == 0:
            out_a.append(await a())
            out_b.append(await b())
        else:
            out_b.append(await b())
            out_a.append(await a())
    return out_a, out_b


# ----------------------------------------------------------------------------------------- machine


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()

    def version(argv: list[str]) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:
            return "missing"

    commit = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = bool(version(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]))
    return {
        "hostname": os.uname().nodename,
        "kernel": f"{os.uname().sysname} {os.uname().release}",
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": sys.version.split()[0],
        "git": version(["git", "--version"]),
        "tmux": version(["tmux", "-V"]),
        "sqlite": __import__("sqlite3").sqlite_version,
        "project_commit": commit + ("+dirty" if dirty else ""),
    }


# ----------------------------------------------------------------------------------------- environment


def clean_environment(tmp: Path) -> dict[str, str]:
    """os.environ without any CODEX_MCP_/GitHub/tmux variable, with HOME, XDG data and the secret key
    file under ``tmp`` (nothing touches the real home), and a fixed git identity."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CODEX_MCP_") and k not in ("GITHUB_TOKEN", "TMUX", "TMUX_PANE")
    }
    for name in ("home", "xdg-data", "keys"):
        (tmp / name).mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(tmp / "home")
    env["XDG_DATA_HOME"] = str(tmp / "xdg-data")
    env["CODEX_MCP_SECRET_KEY_FILE"] = str(tmp / "keys" / "secret.key")
    env.update(GIT_ENV)
    return env


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env=env or {**os.environ, **GIT_ENV},
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


SOURCE = '''"""Module {n}: part of a synthetic code base for the benchmarks."""

from __future__ import annotations


def function_{n}(value: int) -> int:
    """Return value transformed by step {n}."""
    total = value
    for i in range({m}):
        total = (total * 31 + i) % 1_000_003
    return total


class Thing{n}:
    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return f"thing {n} called {{self.name}}"
'''


def make_repo(path: Path, files: int = 0) -> Path:
    """A real git repository on ``main`` with README.md plus ``files`` small source files, committed."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("benchmark repository\n")
    per_dir = 100
    for n in range(files):
        folder = path / "src" / f"pkg{n // per_dir:03d}"
        if n % per_dir == 0:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "__init__.py").write_text("")
        (folder / f"mod{n:05d}.py").write_text(SOURCE.format(n=n, m=n % 17 + 3))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path.resolve()


def settle_index(*checkouts: Path) -> None:
    """Leave each checkout's index as a lived-in one is: no entry racily clean.

    git cannot trust the stat data of a file changed in the same second its index was written, so it
    marks such entries to be re-read; a checkout made and timed at once has thousands of them, or none,
    depending on where a second boundary fell, and every later git command re-reads those files: the
    figure then measures the clock. A second later, ``git status`` rewrites the index with stat data it
    can trust, as any git status in a person's or an agent's worktree has done long before a review.
    """
    time.sleep(1.1)
    for checkout in checkouts:
        git(checkout, "status", "--porcelain")


class TmuxServer:
    """A private tmux server (its own -L socket) that survives its last session; killed by ``kill()``."""

    def __init__(self) -> None:
        self.socket = f"codex-bench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.socket_path: Path | None = None

    def __enter__(self) -> TmuxServer:
        self.run("new-session", "-d", "-s", "_keep")
        self.run("set-option", "-g", "exit-empty", "off")
        self.socket_path = Path(self.run("display-message", "-p", "#{socket_path}").stdout.strip())
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args[:3])} failed: {done.stderr.strip()}")
        return done

    def sessions(self) -> set[str]:
        done = self.run("list-sessions", "-F", "#{session_name}", check=False)
        return set(done.stdout.split()) if done.returncode == 0 else set()

    def new_sessions(self, names: list[str], command: str, cwd: Path, batch: int = 50) -> None:
        """Start many detached sessions, ``batch`` per tmux invocation."""
        for start in range(0, len(names), batch):
            argv: list[str] = []
            for name in names[start : start + batch]:
                if argv:
                    argv.append(";")
                argv += ["new-session", "-d", "-s", name, "-c", str(cwd), command]
            self.run(*argv)

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)
        if self.socket_path is not None and self.socket_path.name == self.socket:
            self.socket_path.unlink(missing_ok=True)  # tmux leaves the socket file behind


# ----------------------------------------------------------------------------------------- stdio client


class RpcError(Exception):
    pass


class StdioPeer:
    """An MCP server subprocess spoken to directly: newline-delimited JSON-RPC over its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process, stderr_path: Path) -> None:
        self.proc = proc
        self.stderr_path = stderr_path
        self._next_id = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def spawn(cls, argv: list[str], *, cwd: Path, env: dict[str, str], stderr: Path) -> StdioPeer:
        with stderr.open("ab") as err:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=err,
                limit=64 * 1024 * 1024,
            )
        return cls(proc, stderr)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        await self.proc.stdin.drain()

    async def receive(self, request_id: int) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                raise RpcError(f"server {self.pid} closed its stdout; stderr: {self.stderr_tail()}")
            message: dict[str, Any] = json.loads(line)
            if message.get("id") == request_id and ("result" in message or "error" in message):
                return message
            # Notifications (logging, progress) and anything else: skipped.

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        rid = self._next_id
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        reply = await self.receive(rid)
        if "error" in reply:
            raise RpcError(f"{method}: {reply['error']}")
        return dict(reply["result"])

    async def initialize(self) -> dict[str, Any]:
        result = await self.request(
            "initialize",
            {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "codex-bench", "version": "0"},
            },
        )
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.request("tools/call", {"name": name, "arguments": arguments or {}})

    async def close(self, timeout: float = 10) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    async def kill(self) -> None:
        """End the server at once (when its shutdown is not what is being measured)."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()

    def stderr_tail(self, n: int = 2000) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def timer() -> Callable[[], float]:
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
