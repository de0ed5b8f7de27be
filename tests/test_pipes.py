"""stdio pipes served by the event loop (codex_mcp/pipes.py): the same lines and bytes as the SDK's threads.

The reader is pinned against the SDK's own text layer (a ``TextIOWrapper``) on the same bytes; the writer
against a pipe whose buffer fills up; the transport end to end over pipes, over sockets (Node's
child_process, so Claude Code, starts servers on UNIX sockets) and over a file, left to the SDK's threads.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from support import db_file, query

from codex_mcp.pipes import Endpoint, PipeLines, PipeWriter, open_endpoint
from codex_mcp.wire import normalise_text

PROTOCOL = "2025-11-25"

# Line ends of every kind, invalid UTF-8, a character cut by a line end, a lone surrogate escape, and a
# last line without its end: what the SDK's TextIOWrapper(encoding="utf-8", errors="replace") reads.
AWKWARD = (
    b'{"a":1}\n{"b":"\xc3\xa9"}\r\n{"c":2}\r{"d":"\xff\xfe"}\n\n\r\n'
    b'{"e":"\xe2\n"}\n{"f":"x\\ud800y"}\n{"g":"last, no end"}'
)


def reference_lines(data: bytes) -> list[str]:
    wrapper = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    return [normalise_text(line) for line in iter(wrapper.readline, "")]


async def read_all(end: Endpoint) -> list[str]:
    return [line async for line in PipeLines(end, normalise_text)]


def piped(data: bytes, *, step: int) -> list[str]:
    """The lines PipeLines reads from a real pipe fed ``step`` bytes at a time by another thread."""
    read_end, write_end = os.pipe()
    reader = open_endpoint(read_end, os.O_RDONLY)
    assert reader is not None

    def feed() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as out:
            for start in range(0, len(data), step):
                out.write(data[start : start + step])

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        return anyio.run(read_all, reader)
    finally:
        feeder.join()
        reader.close()
        os.close(read_end)


@pytest.mark.parametrize("step", [1, 2, 7, len(AWKWARD)])
def test_lines_read_from_a_pipe_are_the_sdk_text_layers_lines(step: int) -> None:
    expected = reference_lines(AWKWARD)
    assert piped(AWKWARD, step=step) == expected
    assert expected[-1] == '{"g":"last, no end"}' and '{"f":"x\ufffdy"}\n' in expected


def test_a_message_larger_than_the_pipe_arrives_whole_and_in_order() -> None:
    read_end, write_end = os.pipe()
    writer_end = open_endpoint(write_end, os.O_WRONLY)
    assert writer_end is not None
    os.close(write_end)
    messages = [json.dumps({"n": n, "pad": "é" * 200_000}) + "\n" for n in range(3)]  # ~400 KB each
    received = bytearray()

    def drain() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as pipe:
            while chunk := pipe.read(4096):
                received.extend(chunk)

    drainer = threading.Thread(target=drain)
    drainer.start()

    async def write() -> None:
        writer = PipeWriter(writer_end)
        for message in messages:
            await writer.write(message)
            await writer.flush()

    try:
        anyio.run(write)
    finally:
        writer_end.close()
        drainer.join()
    assert received.decode("utf-8") == "".join(messages)


def test_pipes_and_sockets_are_served_and_what_the_client_holds_stays_blocking(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        reopened = open_endpoint(read_end, os.O_RDONLY)
        assert reopened is not None
        try:
            assert fcntl.fcntl(reopened.fd, fcntl.F_GETFL) & os.O_NONBLOCK
            assert not fcntl.fcntl(read_end, fcntl.F_GETFL) & os.O_NONBLOCK
            with pytest.raises(BlockingIOError):  # nothing written yet: no wait in a read
                reopened.read(10)
        finally:
            reopened.close()
    finally:
        os.close(read_end)
        os.close(write_end)
    left, right = socket.socketpair()
    with left, right:
        end = open_endpoint(left.fileno(), os.O_RDONLY)
        assert end is not None
        try:
            with pytest.raises(BlockingIOError):
                end.read(10)
            right.sendall(b"x\n")
            assert end.read(10) == b"x\n"
            assert left.getblocking() and not fcntl.fcntl(left.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK
        finally:
            end.close()
    with (tmp_path / "file").open("wb") as regular:
        assert open_endpoint(regular.fileno(), os.O_WRONLY) is None


def _request(request_id: int, method: str, params: dict[str, object]) -> bytes:
    return (
        json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}).encode() + b"\n"
    )


INITIALIZE = _request(
    1,
    "initialize",
    {"protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
)
INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
CALL = _request(2, "tools/call", {"name": "query_instances", "arguments": {"limit": 10}})


def answer(lines: IO[bytes] | Tail, request_id: int) -> dict[str, Any]:
    """The response to ``request_id`` (anything before it is skipped)."""
    while line := lines.readline():
        message = json.loads(line)
        if message.get("id") == request_id:
            return dict(message)
    raise AssertionError(f"the server closed its stdout before answering {request_id}")


def converse(to_server: IO[bytes], from_server: IO[bytes] | Tail) -> dict[str, Any]:
    """Initialize, call query_instances(limit=10) and return its result, one message after the other."""
    to_server.write(INITIALIZE)
    to_server.flush()
    assert "result" in answer(from_server, 1)
    to_server.write(INITIALIZED + CALL)
    to_server.flush()
    return dict(answer(from_server, 2)["result"])


@pytest.mark.parametrize("transport", ["pipes", "sockets (what Node's child_process gives)", "stdout a file"])
def test_serve_answers_and_records_over_pipes_sockets_and_the_sdks_threads(
    transport: str, repo: Path, cli_env: dict[str, str], tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", "codex_mcp", "serve"]
    if transport == "pipes":
        process = subprocess.Popen(
            argv,
            cwd=repo,
            env=cli_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert process.stdin is not None and process.stdout is not None
        with process.stdin, process.stdout:
            result = converse(process.stdin, process.stdout)
    elif transport.startswith("sockets"):
        ours, theirs = socket.socketpair()
        with ours:
            with theirs:
                process = subprocess.Popen(
                    argv,
                    cwd=repo,
                    env=cli_env,
                    stdin=theirs.fileno(),
                    stdout=theirs.fileno(),
                    stderr=subprocess.DEVNULL,
                )
            with ours.makefile("wb") as to_server, ours.makefile("rb") as from_server:
                result = converse(to_server, from_server)
            ours.shutdown(socket.SHUT_WR)
    else:  # not a pipe nor a socket: written by the SDK's own threads
        output = tmp_path / "stdout"
        with output.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=repo, env=cli_env, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.DEVNULL
            )
        assert process.stdin is not None
        with process.stdin, output.open("rb") as from_server:
            result = converse(process.stdin, Tail(from_server))
    assert process.wait(timeout=60) == 0
    assert result["isError"] is False
    text = json.loads(result["content"][0]["text"])
    assert result["structuredContent"] == text and text["caller_instance_id"]
    assert query(db_file(repo), "SELECT tool_name, success FROM mcp_events") == [("query_instances", 1)]


class Tail:
    """Lines of a file another process is still writing (``readline`` waits for a whole line)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._partial = b""

    def readline(self) -> bytes:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self._partial += self._file.readline()
            if self._partial.endswith(b"\n"):
                line, self._partial = self._partial, b""
                return line
            time.sleep(0.01)
        raise AssertionError("no whole line from the server within 60 s")


LEAK_PROBE = """
import os, sys, anyio
from codex_mcp.wire import stdio_transport

def described(fd):
    return os.readlink(f"/proc/self/fd/{fd}")

async def main():
    before = {fd: described(fd) for fd in (0, 1)}
    opened = sorted(os.listdir("/proc/self/fd"))
    for _ in range(3):
        async with stdio_transport() as (read, write):
            assert described(0) == os.devnull and described(1) == described(2)  # diverted while serving
            await write.aclose()
            await read.aclose()
    print(before == {fd: described(fd) for fd in (0, 1)}, opened == sorted(os.listdir("/proc/self/fd")),
          file=sys.stderr)

anyio.run(main)
"""


@pytest.mark.parametrize("transport", ["pipes", "sockets"])
def test_the_transport_gives_back_descriptors_0_and_1_and_keeps_no_descriptor(transport: str) -> None:
    """After serving, 0 and 1 are what they were, and the private duplicates made for serving are closed."""
    ends: list[socket.socket] = []
    streams: dict[str, Any] = {"input": b"", "stdout": subprocess.PIPE}
    if transport == "sockets":
        ends = [*socket.socketpair(), *socket.socketpair()]
        ends[1].shutdown(socket.SHUT_WR)  # the server reads end of input
        streams = {"stdin": ends[0], "stdout": ends[2]}
    try:
        done = subprocess.run(
            [sys.executable, "-c", LEAK_PROBE], **streams, stderr=subprocess.PIPE, timeout=60, check=False
        )
    finally:
        for end in ends:
            end.close()
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr.decode().split() == ["True", "True"], done.stderr.decode()
