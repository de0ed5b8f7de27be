"""`codex-mcp ui` as a real process for the dashboard tests: started, its login URL read, stopped."""

from __future__ import annotations

import resource
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx


@dataclass
class Dashboard:
    login_url: str
    process: subprocess.Popen[str]
    stderr: Path

    @property
    def base(self) -> str:
        parts = urlsplit(self.login_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        return urlsplit(self.login_url).netloc

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    @property
    def token(self) -> str:
        return urlsplit(self.login_url).query.split("token=", 1)[1]

    def client(self) -> httpx.Client:
        """A logged-in client (its cookie jar holds the session), sending our own Origin."""
        client = httpx.Client(base_url=self.base, headers={"origin": self.base}, timeout=60)
        answer = client.get(self.login_url)
        assert answer.status_code == 303, answer.text
        return client


def _limit_descriptors(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@contextmanager
def running_dashboard(
    repo: Path, env: dict[str, str], *args: str, descriptor_limit: int | None = None
) -> Iterator[Dashboard]:
    """``descriptor_limit`` caps the dashboard's open files (soft and hard), as a small ``ulimit -n``."""
    stderr = repo.parent / f"ui-stderr-{time.monotonic_ns()}.log"
    with stderr.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "codex_mcp", "ui", "--port", "0", *args],
            cwd=repo,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=None if descriptor_limit is None else partial(_limit_descriptors, descriptor_limit),
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline().strip() if ready else ""
        assert line.startswith("http://127.0.0.1:"), (line, stderr.read_text())
        yield Dashboard(line, process, stderr)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
