"""A local stand-in of the Anthropic Messages API that plays a scripted model, for driving the real
Claude Code offline (``ANTHROPIC_BASE_URL=<standin.url>``).

It is a real HTTP server on 127.0.0.1 (an ephemeral port, a background thread, listening as soon as
``start`` returns). ``POST /v1/messages`` answers like the real API: server-sent events (chunked) when
the request asks for ``stream`` -- ``message_start``, then per block ``content_block_start`` /
``content_block_delta`` (``text_delta``, or ``input_json_delta`` pieces for a tool's input) /
``content_block_stop``, then ``message_delta`` (stop reason) and ``message_stop`` -- else one JSON
message. ``/v1/messages/count_tokens`` gets a count; any other GET or HEAD (Claude Code 2.1 sends
``HEAD /api/hello`` at start) gets 200 with an empty JSON object, any other POST a 404. Every request
is logged (``standin.requests``, ``standin.transcript()``).

What Claude Code 2.1 sends, per session: a title request (no tools; structured output asking for
``{"title": ...}``), then the conversation: its first user message holds our prompt (after some
``<system-reminder>`` blocks), the tools list holds ``ToolSearch`` and, while MCP servers connect or
their tools are deferred, no ``mcp__*`` tool; after ``ToolSearch`` with ``select:<tool>`` the tool is in
the list; after the call, its ``tool_result``.

What the model says is decided per request, from the request alone (no hidden state):

- a request without tools (title, summary...): a short text, JSON when a schema is asked for;
- the role is the first of ``roles`` whose ``match`` occurs in the conversation's first user message
  (a conversation no role claims gets a short text);
- the role's calls are made in order, each once its predecessor's ``tool_result`` is in the history:
  the MCP tool (``mcp__<server>__<tool>``) when it is among the tools, else ``ToolSearch`` with
  ``select:mcp__<server>__<tool>`` (at most ``max_searches`` times per tool);
- all calls answered: the role's final text (``end_turn``) -- so later user turns (e.g. a pasted
  feedback notice) are answered with text too.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "claude-standin"
TOOL_SEARCH = "ToolSearch"


@dataclass(frozen=True)
class Call:
    """One tool call of a scripted agent: ``tool`` of MCP server ``server``, with ``input``."""

    tool: str
    input: dict[str, Any] = field(default_factory=dict)
    server: str = "codex"

    @property
    def tool_name(self) -> str:
        """``mcp__<server>__<tool>``; a built-in tool (``server=""``, e.g. Bash) by its own name."""
        return f"mcp__{self.server}__{self.tool}" if self.server else self.tool


@dataclass(frozen=True)
class Role:
    """One scripted agent: the conversation whose first prompt contains ``match`` makes ``calls`` in
    order (each after the previous one's result), then says ``final_text``."""

    name: str
    match: str
    calls: tuple[Call, ...]
    final_text: str = "Done."


@dataclass
class Logged:
    """One request as received, and what the stand-in decided to answer."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    kind: str = ""
    role: str | None = None
    reply: list[dict[str, Any]] = field(default_factory=list)
    at: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        tools = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
        last = _text_of(body.get("messages", [{}])[-1].get("content")) if body.get("messages") else ""
        replies = [
            b.get("name", "") + json.dumps(b.get("input"))
            if b.get("type") == "tool_use"
            else repr(b.get("text"))
            for b in self.reply
        ]
        return (
            f"{self.method} {self.path} kind={self.kind} role={self.role} stream={body.get('stream')} "
            f"messages={len(body.get('messages') or [])} tools={len(tools)} "
            f"mcp_tools={[t for t in tools if str(t).startswith('mcp__')]} last_user={last[:120]!r} "
            f"-> {replies}"
        )


def _text_of(content: Any) -> str:
    """The text of a message's content (a string, or a list of blocks), tool results included."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_result":
            parts.append(_text_of(block.get("content")))
    return "\n".join(parts)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


class AnthropicStandin:
    """The server; use as a context manager (or ``start`` / ``stop``)."""

    def __init__(self, roles: list[Role], *, max_searches: int = 3) -> None:
        self.roles = roles
        self.max_searches = max_searches
        self.requests: list[Logged] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "the stand-in is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> AnthropicStandin:
        standin = self

        class Handler(_Handler):
            owner = standin

        # Bound and listening when the constructor returns: no wait needed before the first request.
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="anthropic-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> AnthropicStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------------------ inspection
    def log(self, entry: Logged) -> None:
        with self._lock:
            self.requests.append(entry)

    def messages_requests(self) -> list[Logged]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == "/v1/messages"]

    def tool_calls(self, role: str | None = None) -> list[dict[str, Any]]:
        """The tool_use blocks the scripted model sent (optionally only in ``role``'s conversation)."""
        return [
            block
            for r in self.messages_requests()
            if role is None or r.role == role
            for block in r.reply
            if block.get("type") == "tool_use"
        ]

    def tool_results(self, role: str) -> list[str]:
        """The texts of the tool results Claude Code sent back in ``role``'s conversation (last request)."""
        requests = [r for r in self.messages_requests() if r.role == role]
        if not requests:
            return []
        results: list[str] = []
        for message in requests[-1].body.get("messages", []):
            for block in _blocks(message.get("content")):
                if block.get("type") == "tool_result":
                    results.append(_text_of(block.get("content")))
        return results

    def user_texts(self, role: str) -> list[str]:
        """Every plain user text in ``role``'s latest request (prompt, pasted notices...)."""
        requests = [r for r in self.messages_requests() if r.role == role]
        if not requests:
            return []
        return [
            _text_of([b for b in _blocks(m.get("content")) if b.get("type") == "text"])
            for m in requests[-1].body.get("messages", [])
            if m.get("role") == "user"
        ]

    def transcript(self) -> str:
        with self._lock:
            start = self.requests[0].at if self.requests else 0.0
            return "\n".join(
                f"{i:3d} +{r.at - start:6.2f}s {r.summary()}" for i, r in enumerate(self.requests)
            )

    # ------------------------------------------------------------------------------ the script
    def decide(self, body: dict[str, Any]) -> tuple[str, str | None, list[dict[str, Any]]]:
        """(kind, role name, content blocks) for one Messages request."""
        tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        if not tools:  # a side request: the session's title, a summary...
            return "aux", None, [_text(_aux_answer(body))]
        first_user = next((m for m in messages if m.get("role") == "user"), None)
        prompt = _text_of(first_user.get("content")) if first_user else ""
        role = next((r for r in self.roles if r.match in prompt), None)
        if role is None:
            return "unscripted", None, [_text("Nothing scripted for this conversation.")]
        uses: dict[str, dict[str, Any]] = {}  # the assistant's earlier tool_use blocks, by id
        answered: list[str] = []  # names of the tools whose results came back, in order
        for message in messages:
            for block in _blocks(message.get("content")):
                if block.get("type") == "tool_use":
                    uses[str(block.get("id"))] = block
                elif block.get("type") == "tool_result" and str(block.get("tool_use_id")) in uses:
                    answered.append(str(uses[str(block.get("tool_use_id"))].get("name")))
        step = 0
        for name in answered:
            if step < len(role.calls) and name == role.calls[step].tool_name:
                step += 1
        if step == len(role.calls):
            return "final", role.name, [_text(role.final_text)]
        call = role.calls[step]
        if call.tool_name in tools:
            return "call", role.name, [_tool_use(call.tool_name, call.input)]
        query = f"select:{call.tool_name}"
        searches = sum(
            1
            for u in uses.values()
            if u.get("name") == TOOL_SEARCH and (u.get("input") or {}).get("query") == query
        )
        if TOOL_SEARCH in tools and searches < self.max_searches:
            # The MCP tool is deferred (or its server still connecting): load it by name.
            return "search", role.name, [_tool_use(TOOL_SEARCH, {"query": query, "max_results": 1})]
        return "missing", role.name, [_text(f"The tool {call.tool_name} is not available.")]


def _aux_answer(body: dict[str, Any]) -> str:
    """A short text; JSON matching the schema when the request asks for structured output (the title
    request asks for ``{"title": ...}``)."""
    output = body.get("output_config") or {}
    schema = (output.get("format") or {}).get("schema") if isinstance(output, dict) else None
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        return json.dumps({name: "Scripted session" for name in schema["properties"]})
    return "Scripted session"


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_use(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": name, "input": tool_input}


class _Handler(BaseHTTPRequestHandler):
    owner: AnthropicStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request is in owner.requests; nothing on stderr

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def _entry(self, body: Any) -> Logged:
        keep = (
            "content-type",
            "x-api-key",
            "authorization",
            "anthropic-version",
            "anthropic-beta",
            "user-agent",
        )
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() in keep}
        return Logged(method=self.command, path=self.path, headers=headers, body=body)

    def _send_json(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        entry = self._entry(None)
        entry.kind = "other"
        self.owner.log(entry)
        self._send_json(200, {})

    def do_HEAD(self) -> None:
        entry = self._entry(None)
        entry.kind = "other"
        self.owner.log(entry)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        body = self._read_body()
        entry = self._entry(body)
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens" and isinstance(body, dict):
            entry.kind = "count_tokens"
            self.owner.log(entry)
            self._send_json(200, {"input_tokens": max(1, len(json.dumps(body)) // 4)})
            return
        if path != "/v1/messages" or not isinstance(body, dict):
            entry.kind = "unknown"
            self.owner.log(entry)
            self._send_json(
                404, {"type": "error", "error": {"type": "not_found_error", "message": "not here"}}
            )
            return
        entry.kind, entry.role, entry.reply = self.owner.decide(body)
        self.owner.log(entry)
        stop = "tool_use" if any(b["type"] == "tool_use" for b in entry.reply) else "end_turn"
        message = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or MODEL,
            "content": entry.reply,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 10},
        }
        if body.get("stream"):
            self._stream(message)
        else:
            self._send_json(200, message)

    # ------------------------------------------------------------------------------ SSE
    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _event(self, name: str, data: dict[str, Any]) -> None:
        self._chunk(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

    def _stream(self, message: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", f"req_{uuid.uuid4().hex[:24]}")
        self.end_headers()
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 10, "output_tokens": 1},
        }
        self._event("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                self._event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                self._event("ping", {"type": "ping"})
                self._event(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": block["text"]},
                    },
                )
            else:
                opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                self._event(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": opened},
                )
                text = json.dumps(block["input"])
                # Split like the real API does: partial JSON, in pieces.
                for piece in (text[i : i + 16] for i in range(0, len(text), 16)):
                    self._event(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece},
                        },
                    )
            self._event("content_block_stop", {"type": "content_block_stop", "index": index})
        self._event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": 10},
            },
        )
        self._event("message_stop", {"type": "message_stop"})
        self._chunk(b"")  # zero-length chunk: end of the body
