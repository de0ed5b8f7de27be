"""stdin and stdout pipes served by the event loop itself: no worker thread per line or message.

The SDK's stdio transport reads every line and writes every message through anyio's file wrapper, a
hand-off to a worker thread and back for each read, each write and each flush: three per tool call.
On a loaded machine (32 servers on 2 CPUs, figure 6) those hand-offs are a large part of a call's CPU
time. When stdin and stdout are pipes, as they are for every MCP client that starts its server, the
event loop can wait for them directly.

A pipe is opened again through ``/proc/self/fd``: a file description of our own, made non-blocking
without changing the client's (``O_NONBLOCK`` on a shared description would change it for every
process holding it). Anything else -- a terminal, a file, a socket, a system without ``/proc`` -- is
left to the SDK's threads, as before.

What a reader sees is what the SDK's text wrapper gives: UTF-8 with invalid bytes replaced, and
universal newlines (``\\r\\n`` and ``\\r`` end a line too, and become ``\\n``).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

import anyio

CHUNK = 64 * 1024


def reopen_pipe(fd: int, flags: int) -> int | None:
    """A new non-blocking description of the pipe behind ``fd`` (None: not a pipe, or not possible)."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        return os.open(f"/proc/self/fd/{fd}", flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None


class PipeLines:
    """The lines of a non-blocking pipe (an async iterator of ``str``, like the SDK's stdin)."""

    def __init__(self, fd: int, transform: Callable[[str], str] = str) -> None:
        self._fd = fd
        self._transform = transform
        self._buffer = bytearray()
        self._eof = False

    def __aiter__(self) -> PipeLines:
        return self

    async def __anext__(self) -> str:
        while True:
            line = self._next_line()
            if line is not None:
                return self._transform(line.decode("utf-8", "replace"))
            if self._eof:
                raise StopAsyncIteration
            await anyio.wait_readable(self._fd)
            try:
                chunk = os.read(self._fd, CHUNK)
            except BlockingIOError:  # woken without data after all
                continue
            if chunk:
                self._buffer += chunk
            else:
                self._eof = True

    def _next_line(self) -> bytes | None:
        """The next whole line (its end made ``\\n``), the rest at end of file, or None: read more."""
        buffer = self._buffer
        newline, carriage = buffer.find(b"\n"), buffer.find(b"\r")
        if carriage >= 0 and (newline < 0 or carriage < newline):
            if carriage + 1 == len(buffer) and not self._eof:
                return None  # a "\r" last: "\r\n" or a line of its own, the next byte says
            end = carriage + 2 if buffer[carriage + 1 : carriage + 2] == b"\n" else carriage + 1
            line = bytes(buffer[:carriage]) + b"\n"
        elif newline >= 0:
            end = newline + 1
            line = bytes(buffer[:end])
        elif self._eof and buffer:
            end = len(buffer)
            line = bytes(buffer)
        else:
            return None
        del buffer[:end]
        return line


class PipeWriter:
    """Text written whole to a non-blocking pipe (``write`` and ``flush``, like the SDK's stdout)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        # A message is never torn, even by a cancellation (the SDK's thread finished its write too).
        with anyio.CancelScope(shield=True):
            while data:
                try:
                    written = os.write(self._fd, data)
                except BlockingIOError:  # the pipe is full: the client has not read yet
                    await anyio.wait_writable(self._fd)
                    continue
                data = data[written:]

    async def flush(self) -> None:
        """Nothing is buffered here: each write went to the pipe whole."""
