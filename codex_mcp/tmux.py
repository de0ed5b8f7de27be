"""The tmux adapter: the only module that runs tmux.

tmux is run as a binary with argv lists (never a shell), each call with a timeout, so that "tmux
did not answer" can be told apart from "the session is gone". libtmux offers the same calls
through the same binary but without timeouts, which reconcile needs.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from codex_mcp.errors import UpstreamError

NOT_IN_TMUX = "(not in tmux)"


def current_session(environ: Mapping[str, str] | None = None) -> str | None:
    """The name of the tmux session this process runs in, or None when it is not inside tmux."""
    env = os.environ if environ is None else environ
    if not env.get("TMUX"):
        return None
    argv = ["tmux", "display-message", "-p"]
    if pane := env.get("TMUX_PANE"):
        argv += ["-t", pane]
    argv.append("#{session_name}")
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False, env=dict(env))
    except (OSError, subprocess.TimeoutExpired):
        return None
    name = done.stdout.strip()
    return name if done.returncode == 0 and name else None


# ------------------------------------------------------------------------------------ async operations
# tmux gets argv lists: a command given as several words runs without a shell. Targets use the
# `=name` form so a session name never matches another by prefix.


class TmuxError(UpstreamError):
    pass


class TmuxUnreachable(TmuxError):
    """tmux did not answer (missing binary, permissions, timeout): NOT the same as "no sessions"."""


_NO_SERVER = ("no server running", "server exited unexpectedly")


def _no_server(err: str) -> bool:
    """tmux said that no server listens on the socket (as opposed to: it could not reach one)."""
    if any(marker in err for marker in _NO_SERVER):
        return True
    # A missing socket file reads "error connecting to PATH (No such file or directory)"; any other
    # reason ("Permission denied", ...) is a server we cannot reach, whose sessions may well be alive.
    # (tmux localizes only LC_CTYPE and LC_TIME, so strerror's text is always the C locale's.)
    return "error connecting to" in err and "(No such file or directory)" in err


@dataclass(frozen=True)
class SessionInfo:
    name: str
    pane_pid: int | None
    pane_dead: bool


# What a tmux server we start may inherit. A tmux server copies its starting environment into its
# global environment, which every agent on it can read (`tmux show-environment -g`) and every new
# window inherits: a person's GITHUB_TOKEN or API keys must not land there. Agents get their own
# environment explicitly from the launcher, so the server needs only what a terminal needs.
SERVER_ENVIRONMENT = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TERM", "COLORTERM", "TZ", "TMPDIR",
     "TMUX_TMPDIR", "XDG_RUNTIME_DIR"}
)  # fmt: skip


def server_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment tmux commands run with (and so a server they start inherits).

    No ``TMUX``/``TMUX_PANE`` either: without -L, tmux would follow $TMUX to whatever server this
    process sits in; instances record "default server" as no socket, so "default" must mean the same
    from everywhere.
    """
    return {k: v for k, v in environ.items() if k in SERVER_ENVIRONMENT or k.startswith("LC_")}


@dataclass(frozen=True)
class Tmux:
    socket: str | None = None

    def argv(self, *args: str) -> list[str]:
        return ["tmux", *(["-L", self.socket] if self.socket else []), *args]

    async def _run(self, *args: str, input: bytes | None = None, timeout: float = 15) -> tuple[int, str, str]:
        import anyio

        env = server_environment(os.environ)
        try:
            with anyio.fail_after(timeout):
                done = await anyio.run_process(self.argv(*args), input=input, check=False, env=env)
        except TimeoutError as exc:
            raise TmuxUnreachable(f"tmux did not answer within {timeout:.0f} s ({args[0]})") from exc
        except FileNotFoundError as exc:
            raise TmuxUnreachable("tmux is not installed or not on PATH; install tmux and retry") from exc
        except PermissionError as exc:
            raise TmuxUnreachable(f"cannot run tmux: {exc.strerror}") from exc
        return done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")

    async def list_sessions(self) -> dict[str, SessionInfo]:
        """Every session on this server (one call); empty when no server runs. Raises TmuxUnreachable."""
        code, out, err = await self._run(
            "list-panes",
            "-a",
            "-F",
            "#{session_name}\t#{pane_pid}\t#{pane_dead}\t#{window_index}.#{pane_index}",
        )
        if code != 0:
            if _no_server(err):
                return {}
            raise TmuxUnreachable(f"tmux list-panes failed: {err.strip() or 'exit ' + str(code)}")
        sessions: dict[str, SessionInfo] = {}
        for line in out.splitlines():
            parts = line.split("\t")
            if len(parts) < 3 or parts[0] in sessions:
                continue
            pid = int(parts[1]) if parts[1].isdigit() else None
            sessions[parts[0]] = SessionInfo(parts[0], pid, parts[2] == "1")
        return sessions

    async def has_session(self, name: str) -> bool:
        return name in await self.list_sessions()

    async def new_session(
        self, name: str, cwd: Path, argv: list[str], *, width: int = 200, height: int = 50
    ) -> int:
        """Start ``argv`` (no shell) in a new detached session; the pane's process id."""
        code, out, err = await self._run(
            "new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), "-c", str(cwd),
            "-P", "-F", "#{pane_pid}", "--", *argv,
        )  # fmt: skip
        if code != 0:
            raise TmuxError(f"tmux could not start session {name}: {err.strip() or 'exit ' + str(code)}")
        pid = out.strip().splitlines()[-1] if out.strip() else ""
        if not pid.isdigit():
            raise TmuxError(f"tmux started session {name} but did not report its process id")
        return int(pid)

    async def kill_server(self) -> None:
        """Stop this tmux server and every session on it (nothing to do when none runs)."""
        await self._run("kill-server")

    async def kill_session(self, name: str) -> bool:
        """Kill the session; False when it did not exist (or no server runs)."""
        code, _, err = await self._run("kill-session", "-t", f"={name}")
        if code == 0:
            return True
        if "can't find session" in err or _no_server(err):
            return False
        raise TmuxError(f"tmux could not kill session {name}: {err.strip()}")

    async def paste(self, name: str, text: str, *, enter: bool = True) -> None:
        """Paste ``text`` into the session's active pane through a buffer: no key names are parsed and
        the bytes arrive as given, except that tmux turns each line feed into a carriage return (as a
        terminal paste does). Only our own one-line notices are pasted."""
        buffer = f"codex-{os.getpid()}-{os.urandom(4).hex()}"
        code, _, err = await self._run("load-buffer", "-b", buffer, "-", input=text.encode("utf-8"))
        if code != 0:
            raise TmuxError(f"tmux could not load the text for {name}: {err.strip()}")
        # -p: bracketed paste when the program asked for it, so newlines do not submit early.
        code, _, err = await self._run("paste-buffer", "-d", "-p", "-b", buffer, "-t", f"={name}:")
        if code != 0:
            await self._run("delete-buffer", "-b", buffer)
            raise TmuxError(f"tmux could not paste into {name}: {err.strip()}")
        if enter:
            code, _, err = await self._run("send-keys", "-t", f"={name}:", "Enter")
            if code != 0:
                raise TmuxError(f"tmux could not press Enter in {name}: {err.strip()}")

    async def capture(self, name: str) -> str:
        code, out, err = await self._run("capture-pane", "-p", "-J", "-S", "-", "-t", f"={name}:")
        if code != 0:
            raise TmuxError(f"tmux could not read session {name}: {err.strip()}")
        return out
