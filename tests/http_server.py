"""Run the real `codex-mcp serve --transport http|sse` as a subprocess, for the HTTP tests.

The server announces itself on stderr (``codex-mcp: serving http at URL`` and, with
``--operator-token``, ``codex-mcp: read-only operator token (this run only): TOKEN``); :func:`serve`
waits for those lines (never for a fixed time), keeps draining stderr so the server can never block
on a full pipe, and stops the server with SIGTERM (SIGKILL if it does not go) when the test is done.
"""

from __future__ import annotations

import queue
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

SERVING = re.compile(r"codex-mcp: serving (?P<transport>\w+) at (?P<url>\S+)")
OPERATOR = re.compile(r"codex-mcp: read-only operator token \(this run only\): (?P<token>\S+)")
START_TIMEOUT = 30.0


@dataclass
class RunningServer:
    process: subprocess.Popen[str]
    url: str
    operator_token: str | None
    lines: list[str] = field(default_factory=list)

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    @property
    def origin(self) -> str:
        """The server's own origin (``http://127.0.0.1:PORT``)."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)


def free_port() -> int:
    """A port that was free a moment ago (for a server that must know its own URL before it starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _drain(stream: object, lines: list[str], arrived: queue.Queue[str | None]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        line = line.rstrip("\n")
        lines.append(line)
        arrived.put(line)
    arrived.put(None)


def _limit_descriptors(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextmanager
def serve(
    cwd: Path,
    env: dict[str, str],
    *,
    transport: str = "http",
    port: int = 0,
    operator_token: bool = False,
    extra_args: tuple[str, ...] = (),
    timeout: float = START_TIMEOUT,
    descriptor_limit: int | None = None,
) -> Iterator[RunningServer]:
    """`python -m codex_mcp serve --transport T --port P` in ``cwd``, ready to take requests.

    ``descriptor_limit`` caps the server's open files (soft and hard), as a small ``ulimit -n`` would.
    """
    argv = [sys.executable, "-m", "codex_mcp", "serve", "--transport", transport, "--port", str(port)]
    if operator_token:
        argv.append("--operator-token")
    argv.extend(extra_args)
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=None if descriptor_limit is None else partial(_limit_descriptors, descriptor_limit),
    )
    lines: list[str] = []
    arrived: queue.Queue[str | None] = queue.Queue()
    reader = threading.Thread(target=_drain, args=(process.stderr, lines, arrived), daemon=True)
    reader.start()
    try:
        url: str | None = None
        token: str | None = None
        deadline = time.monotonic() + timeout
        while url is None or (operator_token and token is None):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"the server did not announce itself within {timeout}s:\n" + "\n".join(lines)
                )
            try:
                line = arrived.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait(timeout=10)
                raise AssertionError(
                    f"the server exited ({process.returncode}) before serving:\n" + "\n".join(lines)
                )
            if (m := SERVING.search(line)) is not None:
                assert m["transport"] == transport, line
                url = m["url"]
            elif (m := OPERATOR.search(line)) is not None:
                token = m["token"]
        yield RunningServer(process=process, url=url, operator_token=token, lines=lines)
    finally:
        stop(process)
        reader.join(timeout=10)


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL if the server is still there after 10 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
