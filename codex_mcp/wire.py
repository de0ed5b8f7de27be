"""JSON messages as they arrive, made parseable before the SDK reads them: lone surrogates become U+FFFD.

A JSON string may carry an escaped UTF-16 surrogate without its partner (``"\\ud800"``). JSON's grammar
allows it and Python's ``json`` reads it, but the SDK's parser (pydantic-core) refuses the whole message
with -32700 before any of our code runs: a ``tools/call`` that left no row. So both transports hand the
SDK a normalised copy: every lone surrogate in every string (keys too) becomes U+FFFD, the replacement
character, and the call then runs and is recorded like any other. A message without a surrogate escape
passes untouched (one scan); one that is not JSON at all is left for the SDK to refuse as before.

- HTTP and SSE: :class:`codex_mcp.http.Guard` passes each POST body through :func:`normalise_body`.
- stdio: :func:`stdio_transport` is the SDK's stdio transport reading stdin through :func:`normalise_text`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from functools import cache
from io import TextIOWrapper
from typing import Any, BinaryIO

import anyio

# \uD800-\uDFFF written as an escape (a backslash-escaped backslash before it also matches: harmless,
# the message is then re-written with the same meaning). Compiled on first use, not at every start.
_ESCAPE = r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}"
REPLACEMENT = "\ufffd"


@cache
def _patterns() -> tuple[re.Pattern[bytes], re.Pattern[str], re.Pattern[str]]:
    return re.compile(_ESCAPE.encode()), re.compile(_ESCAPE), re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any) -> Any:
    """``value`` (decoded JSON) with every lone UTF-16 surrogate replaced by U+FFFD."""
    if isinstance(value, str):
        return _patterns()[2].sub(REPLACEMENT, value)
    if isinstance(value, list):
        return [without_lone_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {without_lone_surrogates(k): without_lone_surrogates(v) for k, v in value.items()}
    return value


def _rewritten(text: str | bytes) -> str | None:
    """``text`` re-written without lone surrogates; None when it is not JSON (the SDK answers that)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return json.dumps(without_lone_surrogates(value), ensure_ascii=False, separators=(",", ":"))


def normalise_body(body: bytes) -> bytes:
    """An HTTP body the SDK can parse: lone surrogates replaced, anything else as it came."""
    if b"\\u" not in body or not _patterns()[0].search(body):
        return body
    text = _rewritten(body)
    return body if text is None else text.encode("utf-8")


def normalise_text(line: str) -> str:
    """One stdio line (a JSON message and its newline), normalised like :func:`normalise_body`."""
    if "\\u" not in line or not _patterns()[1].search(line):
        return line
    text = _rewritten(line)
    return line if text is None else text + "\n"


class _NormalisingReader(TextIOWrapper):
    """stdin as UTF-8 text, each line normalised; closing it never closes the descriptor."""

    def readline(self, size: int | None = -1, /) -> str:  # type: ignore[override]  # typeshed's IOBase
        return normalise_text(super().readline(-1 if size is None else size))

    def close(self) -> None:
        with suppress(ValueError):  # already detached
            self.detach()


@asynccontextmanager
async def stdio_transport() -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's stdio transport (read and write streams), reading stdin through :func:`normalise_text`.

    As the SDK does, descriptor 0 points at the null device and descriptor 1 at stderr while serving
    (a child process reads EOF, and stray output misses the wire); both are restored afterwards, and
    the protocol goes through private duplicates of them. Pipes and sockets are waited for by the
    event loop itself (:mod:`codex_mcp.pipes`); anything else is read and written by the SDK's worker threads.
    """
    from mcp.server.stdio import stdio_server

    from codex_mcp.pipes import Endpoint, PipeLines, PipeWriter, open_endpoint

    opened: list[Endpoint] = []
    diverted: list[tuple[int, int]] = []
    held_by_a_thread: int | None = None  # a private duplicate a worker thread may still be reading
    stdin: Any
    stdout: Any = None  # a PipeWriter; None: the SDK claims descriptor 1 and writes through its threads
    try:
        if (out := open_endpoint(1, os.O_WRONLY)) is not None:
            opened.append(out)
            if (private := _divert(1)) is not None:
                diverted.append((1, private))
                stdout = PipeWriter(out)
        private_in = _divert(0)
        if private_in is not None:
            diverted.append((0, private_in))
        if private_in is not None and (piped := open_endpoint(private_in, os.O_RDONLY)) is not None:
            opened.append(piped)
            stdin = PipeLines(piped, normalise_text)
        else:
            # closefd=False: a worker thread may still be blocked reading it when the transport ends
            # (and then it stays open: closed, its number could be reused under the blocked read).
            held_by_a_thread = private_in
            raw: BinaryIO = (
                sys.stdin.buffer if private_in is None else os.fdopen(private_in, "rb", closefd=False)
            )
            stdin = anyio.wrap_file(_NormalisingReader(raw, encoding="utf-8", errors="replace"))
        async with stdio_server(stdin=stdin, stdout=stdout) as streams:
            yield streams
    finally:
        for end in opened:
            with suppress(OSError):
                end.close()
        for std, private in diverted:
            with suppress(OSError):
                os.dup2(private, std)
            if private != held_by_a_thread:
                with suppress(OSError):
                    os.close(private)


def _divert(std: int) -> int | None:
    """Point ``std`` at the null device (stdin) or at stderr (stdout); a private duplicate of what it was.

    None when it cannot be duplicated or diverted: it is then served in place.
    """
    try:
        private = fcntl.fcntl(std, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        return None
    try:
        if std == 1:
            sys.stdout.flush()
            os.dup2(2, 1)
        else:
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                os.dup2(null, 0)
            finally:
                os.close(null)
    except (OSError, ValueError):
        os.close(private)
        return None
    return private
