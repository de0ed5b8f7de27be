"""The baseline of figure 11e: the least a browser terminal on a tmux session needs.

A WebSocket server (the ``websockets`` library, compression off, no authentication, no framework)
that gives the one connection a pty running ``tmux attach`` on one session, attached and sized as
``codex_mcp/ui/terminal.py`` does it, and relays bytes both ways as they come. What the dashboard
adds on top (uvicorn, Starlette, the guard, the instance lookup, its own pump) is the difference.

Usage: ``python bare_terminal.py SOCKET SESSION COLS ROWS``; prints the port it listens on
(127.0.0.1) and serves until its stdin closes.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import subprocess
import sys
import termios

from websockets.asyncio.server import ServerConnection, serve


async def relay(ws: ServerConnection, socket: str, session: str, cols: int, rows: int) -> None:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "TMUX_PANE")} | {"TERM": "xterm-256color"}
    argv = ["tmux", "-L", socket, "attach-session", "-f", "ignore-size", "-t", f"={session}"]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    os.set_blocking(master, False)
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes] = asyncio.Queue()

    def readable() -> None:
        try:
            output.put_nowait(os.read(master, 65536))
        except BlockingIOError:
            pass
        except OSError:
            loop.remove_reader(master)
            output.put_nowait(b"")

    async def pump() -> None:
        while data := await output.get():
            await ws.send(data)

    loop.add_reader(master, readable)
    sending = asyncio.create_task(pump())
    try:
        async for message in ws:
            os.write(master, message if isinstance(message, bytes) else message.encode())
    finally:
        loop.remove_reader(master)
        sending.cancel()
        proc.terminate()
        proc.wait()
        os.close(master)


async def main() -> None:
    socket, session, cols, rows = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    async def handler(ws: ServerConnection) -> None:
        await relay(ws, socket, session, cols, rows)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
