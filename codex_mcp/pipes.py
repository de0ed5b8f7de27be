"""stdin and stdout pipes served by the event loop itself: no worker thread per line or message.

The SDK's stdio transport reads every line and writes every message through anyio's file wrapper, a
hand-off to a worker thread and back for each read, each write and each flush: three per tool call.
On a loaded machine (32 servers on 2 CPUs, figure 6) those hand-offs are a large part of a call's CPU
time. When stdin and stdout are pipes or sockets, as they are for every MCP client that starts its
server (Python's subprocess gives pipes; Node's child_process, so Claude Code, gives UNIX sockets),
the event loop can wait for them directly.

Neither is switched to non-blocking mode where the client could see it (``O_NONBLOCK`` on a shared
file description changes it for every process holding it): a pipe is opened again through
``/proc/self/fd``, a description of our own, and a socket is read and written with ``MSG_DONTWAIT``,
a flag of each call. Anything else -- a terminal, a file, a system without ``/proc`` -- is left to
the SDK's threads, as before.

What a reader sees is what the SDK's text wrapper gives: UTF-8 with invalid bytes replaced, and
universal newlines (``\\r\\n`` and ``\\r`` end a line too, and become ``\\n``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import stat
from collections.abc import Callable

import anyio

CHUNK = 64 * 1024


class Endpoint:
    """Our end of a pipe or socket: ``read`` and ``write`` never block (BlockingIOError: wait for it)."""

    def __init__(self, fd: int, sock: socket.socket | None = None) -> None:
        self.fd = fd
        self._sock = sock

    def read(self, size: int) -> bytes:
        if self._sock is not None:
            return self._sock.recv(size, socket.MSG_DONTWAIT)
        return os.read(self.fd, size)

    def write(self, data: memoryview) -> int:
        if self._sock is not None:
            return self._sock.send(data, socket.MSG_DONTWAIT)
        return os.write(self.fd, data)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
        else:
            os.close(self.fd)


def open_endpoint(fd: int, flags: int) -> Endpoint | None:
    """``fd`` (a pipe or a socket) as an :class:`Endpoint` of our own; None for anything else.

    ``flags``: ``os.O_RDONLY`` or ``os.O_WRONLY``, the pipe's direction.
    """
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISFIFO(mode):
            return Endpoint(os.open(f"/proc/self/fd/{fd}", flags | os.O_NONBLOCK | os.O_CLOEXEC))
        if stat.S_ISSOCK(mode):
            private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
            try:
                # No timeout given: the socket's own (blocking) mode is left as it is.
                return Endpoint(private, socket.socket(fileno=private))
            except OSError:
                os.close(private)
                raise
    except OSError:
        return None
    return None


class PipeLines:
    """The lines of a pipe or socket (an async iterator of ``str``, like the SDK's stdin)."""

    def __init__(self, end: Endpoint, transform: Callable[[str], str] = str) -> None:
        self._end = end
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
            await anyio.wait_readable(self._end.fd)
            try:
                chunk = self._end.read(CHUNK)
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
    """Text written whole to a pipe or socket (``write`` and ``flush``, like the SDK's stdout)."""

    def __init__(self, end: Endpoint) -> None:
        self._end = end

    async def write(self, text: str) -> None:
        data = memoryview(text.encode("utf-8"))
        with contextlib.suppress(BlockingIOError):  # (the pipe is full: waited for below)
            data = data[self._end.write(data) :]
        if not data:  # the usual case: the pipe took the whole message at once, without waiting
            return
        # A message is never torn, even by a cancellation (the SDK's thread finished its write too).
        with anyio.CancelScope(shield=True):
            while data:
                try:
                    written = self._end.write(data)
                except BlockingIOError:  # the pipe is full: the client has not read yet
                    await anyio.wait_writable(self._end.fd)
                    continue
                data = data[written:]

    async def flush(self) -> None:
        """Nothing is buffered here: each write went to the pipe whole."""
