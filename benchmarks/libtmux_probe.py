"""Should codex-mcp drive tmux through libtmux? A measurement, runnable on its own.

    .venv/bin/pip install libtmux        # not a dependency of codex-mcp: installed only for this probe
    .venv/bin/python benchmarks/libtmux_probe.py [--runs 15]

Compares codex_mcp.tmux (tmux run as argv lists through anyio, a timeout on every call) with libtmux on
a private tmux server (its own -L socket, `exit-empty off`, killed at the end):

1. import time in a fresh interpreter (what every `codex-mcp serve` start would pay), runs alternated;
2. list sessions, and create + kill one session, on a server holding 20 sessions (medians, alternated);
3. what each does when the server is not there, when the socket is unusable, and when the server hangs
   (a listening socket that never answers): "no sessions", an error, or no answer at all.

The README's "Design notes" give the figures of a run and the decision taken from them.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from codex_mcp.tmux import Tmux, TmuxError  # noqa: E402

try:
    import libtmux
except ImportError:  # pragma: no cover - the probe's one prerequisite
    sys.exit("libtmux is not installed here: .venv/bin/pip install libtmux, then run the probe again")


def tmux(socket_name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", "-L", socket_name, *args], capture_output=True, text=True, check=False)


def socket_dir() -> Path:
    return Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:.1f} ms"


# ---------------------------------------------------------------------------------------- 1. imports


def import_seconds(module: str, before: str) -> float:
    code = f"import time{before}; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout)


# What a server start would pay: our adapter alone, and libtmux on top of it (the standard modules both
# need, subprocess among them, are then already loaded).
IMPORTS = {
    "codex_mcp.tmux": ("codex_mcp.tmux", ""),
    "libtmux, added": ("libtmux", ", codex_mcp.tmux"),
}


def imports(runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {key: [] for key in IMPORTS}
    for module, before in IMPORTS.values():  # one discarded warm-up each (file-system cache)
        import_seconds(module, before)
    for i in range(runs):
        order = list(IMPORTS) if i % 2 == 0 else list(reversed(IMPORTS))
        for key in order:
            samples[key].append(import_seconds(*IMPORTS[key]))
    return samples


# ------------------------------------------------------------------------------------- 2. operations


def operations(runs: int, cwd: Path) -> dict[str, list[float]]:
    name = f"codex-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    tmux(name, "new-session", "-d", "-s", "_keep")
    tmux(name, "set-option", "-g", "exit-empty", "off")
    try:
        for i in range(19):
            tmux(name, "new-session", "-d", "-s", f"idle-{i}", "-c", str(cwd), "sleep", "600")
        ours = Tmux(name)
        server = libtmux.Server(socket_name=name)
        samples: dict[str, list[float]] = {
            k: [] for k in ("ours list", "libtmux list", "ours new+kill", "libtmux new+kill")
        }

        async def ours_list() -> None:
            assert len(await ours.list_sessions()) == 20

        async def ours_new_kill() -> None:
            session = f"p-{uuid.uuid4().hex[:8]}"
            await ours.new_session(session, cwd, ["sleep", "600"])
            assert await ours.kill_session(session)

        def lib_list() -> None:
            assert len(server.sessions) == 20

        def lib_new_kill() -> None:
            # window_command is one string that tmux hands to /bin/sh: libtmux has no argv form.
            session = server.new_session(
                session_name=f"p-{uuid.uuid4().hex[:8]}",
                start_directory=str(cwd),
                window_command="sleep 600",
                x=200,
                y=50,
            )
            session.kill()

        def timed_async(fn: Callable[[], Any]) -> float:
            async def go() -> float:
                t = time.perf_counter()
                await fn()
                return time.perf_counter() - t

            return anyio.run(go)

        def timed(fn: Callable[[], None]) -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        for _ in range(2):  # warm-up
            timed_async(ours_list), timed(lib_list), timed_async(ours_new_kill), timed(lib_new_kill)
        for i in range(runs):
            pairs: list[tuple[str, Callable[[], float]]] = [
                ("ours list", lambda: timed_async(ours_list)),
                ("libtmux list", lambda: timed(lib_list)),
            ]
            pairs += [
                ("ours new+kill", lambda: timed_async(ours_new_kill)),
                ("libtmux new+kill", lambda: timed(lib_new_kill)),
            ]
            if i % 2:
                pairs = [pairs[1], pairs[0], pairs[3], pairs[2]]
            for key, fn in pairs:
                samples[key].append(fn())
        return samples
    finally:
        tmux(name, "kill-server")
        (socket_dir() / name).unlink(missing_ok=True)


# --------------------------------------------------------------------------------------- 3. failures


def ours_outcome(name: str, timeout: float) -> str:
    async def go() -> str:
        tm = Tmux(name)
        try:
            with anyio.fail_after(timeout + 5):
                # list_sessions' own default timeout is 15 s; the probe asks for a short one.
                code, _, err = await tm._run("list-panes", "-a", "-F", "#{session_name}", timeout=timeout)
                if code != 0:
                    return f"exit {code} ({err.strip()[:60]})"
                sessions = await tm.list_sessions()
                return f"sessions: {sorted(sessions)}"
        except TmuxError as exc:
            return f"{type(exc).__name__}: {str(exc)[:70]}"

    t = time.perf_counter()
    what = anyio.run(go)
    if what.startswith("exit"):  # what list_sessions makes of that exit
        try:
            what = f"{what} -> list_sessions: {anyio.run(Tmux(name).list_sessions)}"
        except TmuxError as exc:
            what = f"{what} -> list_sessions raises {type(exc).__name__}"
    return f"{what} ({time.perf_counter() - t:.1f} s)"


def libtmux_outcome(name: str, wait: float, release: Callable[[], None] = lambda: None) -> str:
    box: dict[str, str] = {}

    def call() -> None:
        try:
            box["out"] = f"sessions: {[s.name for s in libtmux.Server(socket_name=name).sessions]}"
        except Exception as exc:  # the probe reports whatever libtmux raises
            box["out"] = f"{type(exc).__name__}: {str(exc)[:70]}"

    t = time.perf_counter()
    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(wait)
    if worker.is_alive():
        release()  # let the hung call return, so the probe leaves nothing behind
        worker.join(10)
        return f"no answer after {wait:.0f} s (returned only once the server went away: {box.get('out')})"
    return f"{box['out']} ({time.perf_counter() - t:.1f} s)"


def failures(timeout: float) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    missing = f"codex-probe-none-{uuid.uuid4().hex[:6]}"
    rows.append(
        ("no server on the socket", ours_outcome(missing, timeout), libtmux_outcome(missing, timeout + 3))
    )

    # A socket directory tmux refuses ("unsafe permissions"): the sessions behind it are unknown, not gone.
    with tempfile.TemporaryDirectory(prefix="codex-probe-tmpdir-") as tmpdir:
        unsafe = Path(tmpdir) / f"tmux-{os.getuid()}"
        unsafe.mkdir()
        unsafe.chmod(0o777)
        saved = os.environ.get("TMUX_TMPDIR")
        os.environ["TMUX_TMPDIR"] = tmpdir
        try:
            rows.append(
                ("socket unusable", ours_outcome(missing, timeout), libtmux_outcome(missing, timeout + 3))
            )
        finally:
            if saved is None:
                del os.environ["TMUX_TMPDIR"]
            else:
                os.environ["TMUX_TMPDIR"] = saved

    # A server that accepts the connection and never answers (a stopped or wedged tmux).
    hung = f"codex-probe-hung-{uuid.uuid4().hex[:6]}"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(socket_dir() / hung))
    listener.listen(16)
    try:
        ours = ours_outcome(hung, timeout)
        lib = libtmux_outcome(hung, timeout + 3, release=listener.close)
        rows.append(("server hangs", ours, lib))
    finally:
        listener.close()
        (socket_dir() / hung).unlink(missing_ok=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, libtmux {libtmux.__version__}, {tmux('x', '-V').stdout.strip()}")
    print(f"load average before: {os.getloadavg()[0]:.1f}")

    print(f"\n1. import in a fresh interpreter (median of {args.runs}, alternated)")
    for module, samples in imports(args.runs).items():
        print(f"   {module:<16} {median_ms(samples)}")

    with tempfile.TemporaryDirectory(prefix="codex-probe-") as tmp:
        print(f"\n2. on a private server with 20 sessions (median of {args.runs}, alternated)")
        for key, samples in operations(args.runs, Path(tmp)).items():
            print(f"   {key:<18} {median_ms(samples)}")

    print("\n3. failures (ours: a 2 s timeout on the call)")
    for case, ours, lib in failures(2.0):
        print(f"   {case}\n      ours:    {ours}\n      libtmux: {lib}")
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
