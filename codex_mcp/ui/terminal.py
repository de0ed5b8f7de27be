"""The terminal bridge: a browser's WebSocket <-> a pty running ``tmux attach`` for one viewer.

Not a ``capture-pane`` poll: tmux itself draws the pane into our pty, so the browser sees exactly
what a person attached in a terminal sees, at tmux's cost. Read-only viewers attach with ``-r``.

Watching never resizes the agent's window. Measured (tmux 3.3): a plain attach from a 60x20 pty
shrinks a 120x40 window to 60x19, and ``-f ignore-size`` alone does not help while it is the only
client (tmux then sizes to the ignore-size clients too). So the pty is made exactly the window's
size plus its status lines, and the client also carries ``ignore-size`` so that a person attached
elsewhere keeps deciding the size. The browser's xterm.js takes the pty's size from the first
message; its own resize requests are not passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import struct
import subprocess
import termios
from dataclasses import dataclass

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from codex_mcp.errors import StateError
from codex_mcp.store.instances import Instance
from codex_mcp.tmux import Tmux, TmuxError

log = logging.getLogger(__name__)

READ_CHUNK = 65536


@dataclass(frozen=True)
class PaneSize:
    cols: int
    rows: int  # the window's rows plus the status lines: what the client's terminal must have


async def pane_size(instance: Instance) -> PaneSize:
    tmux = Tmux(instance.tmux_socket)
    argv = tmux.argv(
        "display-message",
        "-p",
        "-t",
        f"={instance.tmux_session}:",
        "#{window_width} #{window_height} #{status}",
    )
    done = await anyio.run_process(argv, check=False, env=_tmux_env())
    fields = done.stdout.decode().split()
    if done.returncode != 0 or len(fields) != 3:
        raise StateError(
            f"the tmux session of {instance.id} ({instance.tmux_session}) is not there; "
            f"`codex-mcp resume {instance.id}` restarts it"
        )
    width, height, status = fields
    status_lines = 0 if status == "off" else (int(status) if status.isdigit() else 1)
    return PaneSize(cols=int(width), rows=int(height) + status_lines)


def _tmux_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")}
    env["TERM"] = "xterm-256color"
    return env


class Attachment:
    """One ``tmux attach`` client in its own pty."""

    def __init__(self, instance: Instance, size: PaneSize, *, writable: bool) -> None:
        self.size = size
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size.rows, size.cols, 0, 0))
        flags = "ignore-size" if writable else "ignore-size,read-only"
        argv = Tmux(instance.tmux_socket).argv(
            "attach-session", "-f", flags, "-t", f"={instance.tmux_session}"
        )
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=_tmux_env(),
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            os.close(master)
            raise TmuxError(f"cannot run tmux attach: {exc.strerror}") from exc
        finally:
            os.close(slave)
        self.master = master
        os.set_blocking(master, False)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                # A paste larger than the pty's buffer: wait for tmux to read, never spin a core.
                await anyio.wait_writable(self.master)
                continue
            view = view[written:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            os.close(self.master)


async def bridge(websocket: WebSocket, instance: Instance, *, writable: bool) -> None:
    """Pump bytes both ways until either side ends; the tmux client is gone afterwards."""
    size = await pane_size(instance)
    attachment = Attachment(instance, size, writable=writable)
    loop = asyncio.get_running_loop()
    # Unbounded: tmux writes no faster than it draws, and a viewer that stops reading is disconnected
    # by the WebSocket's own send timeout long before this grows large.
    output: asyncio.Queue[bytes | None] = asyncio.Queue()

    def readable() -> None:
        try:
            data = os.read(attachment.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError:  # EIO: the tmux client exited and closed the pty
            data = b""
        if not data:
            loop.remove_reader(attachment.master)
            output.put_nowait(None)
            return
        output.put_nowait(data)

    loop.add_reader(attachment.master, readable)
    try:
        await websocket.send_text(json.dumps({"cols": size.cols, "rows": size.rows, "writable": writable}))
        async with anyio.create_task_group() as tg:

            async def pump_out() -> None:
                while True:
                    # What piled up while the last send waited goes as one message: a burst of
                    # output costs the browser one write, not one per read. A lone echo goes at once.
                    chunks = [await output.get()]
                    while not output.empty():
                        chunks.append(output.get_nowait())
                    data = b"".join(c for c in chunks if c is not None)
                    if data:
                        await websocket.send_bytes(data)
                    if None in chunks:
                        break
                tg.cancel_scope.cancel()

            async def pump_in() -> None:
                try:
                    while True:
                        message = await websocket.receive()
                        if message["type"] == "websocket.disconnect":
                            break
                        data = message.get("bytes") or (message.get("text") or "").encode()
                        # Refused here, not only by tmux's -r: a read-only viewer's keys never reach the pty.
                        if writable and data:
                            await attachment.write(data)
                except WebSocketDisconnect:
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(pump_out)
            tg.start_soon(pump_in)
    finally:
        with contextlib.suppress(Exception):
            loop.remove_reader(attachment.master)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(attachment.close)
