"""Messages the SDK's JSON parser would refuse before any tool ran: a lone surrogate in a string.

Over stdio, the real ``codex-mcp serve`` gets hand-written lines; the call must run and leave its
row (HTTP: ``test_http.py``). The normalisation itself is pinned on its own below.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from support import db_file, query

from codex_mcp.wire import normalise_body, normalise_text

PROTOCOL = "2025-11-25"


class StdioServer:
    """The real server over stdio, spoken to line by line."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, raw: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(raw + b"\n")
        self.process.stdin.flush()

    def answer(self, request_id: int) -> dict[str, Any]:
        """The response to ``request_id`` (notifications in between are skipped)."""
        while True:
            line = self.lines.get(timeout=60)
            assert line is not None, "the server closed stdout"
            message = json.loads(line)
            if message.get("id") == request_id:
                return dict(message)


@contextmanager
def stdio_server(repo: Path, env: dict[str, str]) -> Iterator[StdioServer]:
    process = subprocess.Popen(
        [sys.executable, "-m", "codex_mcp", "serve"],
        cwd=repo,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        server = StdioServer(process)
        server.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": PROTOCOL,
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "1"},
                    },
                }
            ).encode()
        )
        assert "result" in server.answer(1)
        server.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        yield server
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_stdio_call_whose_arguments_hold_a_lone_surrogate_still_leaves_its_row(
    repo: Path, cli_env: dict[str, str]
) -> None:
    with stdio_server(repo, cli_env) as server:
        server.send(
            b'{"jsonrpc":"2.0","id":2,"method":"tools/call",'
            b'"params":{"name":"list_issues","arguments":{"text":"bug\\ud800fix"}}}'
        )
        answer = server.answer(2)
        assert "error" not in answer and answer["result"]["isError"] is False, answer
        server.send(
            b'{"jsonrpc":"2.0","id":3,"method":"tools/call",'
            b'"params":{"name":"get_instance","arguments":{"instance_id":"x\\udfff"}}}'
        )
        assert server.answer(3)["result"]["isError"] is True
        # A line that is not JSON is still refused as one, and the server carries on.
        server.send(b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"x":"\\ud800')
        server.send(b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"query_instances"}}')
        assert server.answer(5)["result"]["isError"] is False
    rows = query(db_file(repo), "SELECT tool_name, success, metadata FROM mcp_events ORDER BY id")
    by_tool = {name: (success, json.loads(metadata)) for name, success, metadata in rows}
    assert by_tool["list_issues"][0] == 1
    assert by_tool["list_issues"][1]["args"]["text"] == "bug\ufffdfix"
    assert by_tool["get_instance"][0] == 0
    assert set(by_tool) == {"list_issues", "get_instance", "query_instances"}


def test_normalisation_replaces_lone_surrogates_only() -> None:
    pair = '{"a":"\\ud83d\\ude00","b":"\\ud800","\\udc00":["\\udbff x"]}'
    assert json.loads(normalise_body(pair.encode())) == {
        "a": "\U0001f600",
        "b": "\ufffd",
        "\ufffd": ["\ufffd x"],
    }
    assert json.loads(normalise_text(pair + "\n")) == json.loads(normalise_body(pair.encode()))
    assert normalise_text(pair + "\n").endswith("\n")
    untouched = b'{"text":"plain \\u00e9 and \\\\ud800 as text"}'
    assert json.loads(normalise_body(untouched)) == json.loads(untouched)
    for body in (b'{"x": 1}', b"not json \\ud800", b""):
        assert normalise_body(body) == body
