"""The recording decorator: one ``mcp_events`` row per call, redaction, errors, staged writes, cancellation.

Test tools are registered on a fresh MCP server whose lifespan yields the conftest ``app`` and are called
through a real in-process MCP client; rows are read back from the real SQLite file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field
from support import new_instance, text_of

from codex_mcp.app import App
from codex_mcp.errors import StateError
from codex_mcp.identity import Caller
from codex_mcp.recording import ToolCall
from codex_mcp.store import Tx
from codex_mcp.store import instances as instances_store
from codex_mcp.store.instances import Instance
from codex_mcp.tools.spec import READ_ONLY, ToolSpec, register, tool

WRITES = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)


# --------------------------------------------------------------------------------------------- helpers


class Echo(BaseModel):
    """What the test tools answer."""

    ok: bool = Field(description="Always true")
    note: str | None = Field(default=None, description="A short note")
    prompt: str | None = Field(default=None, description="Echo of a sensitive value")
    prompt_len: int | None = Field(default=None, description="Length of the prompt received")


def make_server(app: App, *specs: ToolSpec) -> MCPServer[App]:
    """The same pattern as ``server.build_server``: the lifespan yields the app; only test tools."""

    @asynccontextmanager
    async def lifespan(_: MCPServer[App]) -> AsyncIterator[App]:
        yield app

    server: MCPServer[App] = MCPServer("codex-test", lifespan=lifespan)
    register(server, *specs)
    return server


async def events(app: App) -> list[dict[str, Any]]:
    rows = await app.db.fetchall("SELECT * FROM mcp_events ORDER BY id")
    out = []
    for row in rows:
        data = dict(row)
        data["metadata"] = json.loads(data["metadata"]) if data["metadata"] else None
        out.append(data)
    return out


def digest(text: str) -> dict[str, Any]:
    return {"redacted": True, "len": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}


def db_bytes(path: Path) -> bytes:
    data = b""
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")):
        if candidate.exists():
            data += candidate.read_bytes()
    assert data, f"no database file at {path}"
    return data


# ----------------------------------------------------------------------------------------- test tools


@tool(title="Echo", annotations=READ_ONLY)
async def echo(
    call: ToolCall,
    item_id: Annotated[str, Field(description="A short identifier")],
    prompt: Annotated[str | None, Field(description="A prompt")] = None,
    feedback: Annotated[str | None, Field(description="Feedback text")] = None,
    notes: Annotated[str | None, Field(description="Any text")] = None,
    credential: Annotated[str | None, Field(description="Something that looks like a token")] = None,
    tags: Annotated[list[str] | None, Field(description="Labels")] = None,
    count: Annotated[int, Field(description="A number")] = 1,
) -> Echo:
    """Answer with a summary of what was received."""
    return Echo(ok=True, note=f"got {item_id}", prompt=prompt, prompt_len=len(prompt) if prompt else None)


@tool(title="Refuse", annotations=READ_ONLY)
async def refuse(call: ToolCall) -> Echo:
    """Always refuse with an actionable message."""
    raise StateError("the review is not finished; call get_instance on it next")


SECRET_DETAIL = "internal-detail-" + uuid.uuid4().hex


@tool(title="Crash", annotations=READ_ONLY)
async def crash(call: ToolCall) -> Echo:
    """Fail with a bug."""
    try:
        _ = 1 / 0
    except ZeroDivisionError as exc:
        raise ZeroDivisionError(f"division by zero near {SECRET_DETAIL}") from exc
    return Echo(ok=True)


# ------------------------------------------------------------------------------------- one row a call


async def test_each_call_writes_exactly_one_event_row(app: App) -> None:
    assert app.caller is not None
    async with Client(make_server(app, echo)) as client:
        first = await client.call_tool("echo", {"item_id": "x-1", "count": 3})
        assert not first.is_error, text_of(first)
        assert first.structured_content is not None
        assert first.structured_content["note"] == "got x-1"
        rows = await events(app)
        assert len(rows) == 1
        second = await client.call_tool("echo", {"item_id": "x-2"})
        assert not second.is_error
    rows = await events(app)
    assert len(rows) == 2
    row = rows[0]
    assert row["instance_id"] == app.caller.id == "adhoc-a1"
    assert row["tool_name"] == "echo"
    assert row["success"] == 1
    assert row["error_message"] is None
    meta = row["metadata"]
    assert isinstance(meta["duration_ms"], int | float) and meta["duration_ms"] >= 0
    assert meta["args"] == {"item_id": "x-1", "count": 3}  # None-valued defaults are left out
    assert meta["result"]["ok"] is True
    assert meta["result"]["note"] == "got x-1"
    assert rows[1]["metadata"]["args"] == {"item_id": "x-2", "count": 1}


# ------------------------------------------------------------------------------------------- redaction


async def test_sensitive_and_long_arguments_never_reach_the_database_in_clear(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    prompt = "canary-prompt-" + uuid.uuid4().hex
    feedback = "canary-feedback-" + uuid.uuid4().hex
    long_text = "canary-long-" + uuid.uuid4().hex + " " + "x" * 80
    token = "ghp_" + uuid.uuid4().hex + "AbCd"  # ghp_ + 36 alphanumerics
    tag = "canary-tag-" + uuid.uuid4().hex
    assert len(token) == 40 and len(long_text) > 80 and len(prompt) <= 80

    async with Client(make_server(app, echo)) as client:
        result = await client.call_tool(
            "echo",
            {
                "item_id": "work-5-a1",
                "prompt": prompt,
                "feedback": feedback,
                "notes": long_text,
                "credential": token,
                "tags": [tag, "b"],
            },
        )
        assert not result.is_error, text_of(result)
        # The tool itself got the values in clear, and the client gets its answer in clear.
        assert result.structured_content is not None
        assert result.structured_content["prompt"] == prompt
        assert result.structured_content["prompt_len"] == len(prompt)

    (row,) = await events(app)
    args = row["metadata"]["args"]
    assert args["item_id"] == "work-5-a1"  # short harmless values are kept
    assert args["prompt"] == digest(prompt)
    assert args["feedback"] == digest(feedback)
    assert args["notes"] == digest(long_text)
    assert args["credential"] == digest(token)
    assert args["tags"] == {"items": 2}
    assert row["metadata"]["result"]["prompt"] == digest(prompt)

    raw = db_bytes(app.db.path)
    for canary in (prompt, feedback, long_text, "canary-long-", token, tag):
        assert canary.encode() not in raw, f"{canary[:20]}... is stored in clear in {app.db.path}"
    assert b"work-5-a1" in raw
    for canary in (prompt, feedback, token):
        assert canary not in caplog.text, "a sensitive argument was logged in clear"


# ---------------------------------------------------------------------------------------------- errors


async def test_codex_error_becomes_an_actionable_tool_error_and_a_failed_row(app: App) -> None:
    async with Client(make_server(app, refuse)) as client:
        result = await client.call_tool("refuse", {})
    assert result.is_error
    assert "the review is not finished; call get_instance on it next" in text_of(result)
    (row,) = await events(app)
    assert row["success"] == 0
    assert row["tool_name"] == "refuse"
    assert row["error_message"] == "the review is not finished; call get_instance on it next"
    assert "duration_ms" in row["metadata"]


async def test_unexpected_exception_is_generic_for_the_client_and_logged_with_traceback(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="codex_mcp")
    async with Client(make_server(app, crash)) as client:
        result = await client.call_tool("crash", {})
    assert result.is_error
    message = text_of(result)
    assert SECRET_DETAIL not in message and "ZeroDivisionError" not in message and "division" not in message
    ref = re.search(r"ref ([0-9a-f]{8})", message)
    assert ref, message
    assert "internal error" in message

    logged = [r for r in caplog.records if r.exc_info and r.name == "codex_mcp.recording"]
    assert logged, "the traceback was not logged"
    assert ref.group(1) in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is ZeroDivisionError
    assert SECRET_DETAIL in caplog.text  # the detail goes to the log, not to the client

    (row,) = await events(app)
    assert row["success"] == 0
    assert row["error_message"] == message.removeprefix("Error executing tool crash: ")
    assert SECRET_DETAIL not in row["error_message"]
    assert row["metadata"]["exception"] == "ZeroDivisionError"


# ------------------------------------------------------------------------ staged writes, one transaction


def staging_tools(worktree: str, ledger: list[str], *, fail: str | None) -> ToolSpec:
    """A tool that stages an instance row and a relationship; ``fail`` picks a staged step to break."""

    @tool(title="Make child", annotations=WRITES)
    async def make_child(
        call: ToolCall, child_id: Annotated[str, Field(description="Id of the child")]
    ) -> Echo:
        """Stage a child instance row and the relationship to it."""

        async def write_child(tx: Tx) -> None:
            await instances_store.insert(tx, new_instance(child_id, f"{worktree}/{child_id}"))

        async def undo_child() -> None:
            ledger.append(f"undo {child_id}")

        async def write_duplicate(tx: Tx) -> None:
            # The caller's own row exists: inserting it again is an IntegrityError (PRIMARY KEY).
            await instances_store.insert(tx, new_instance(call.caller.id, worktree))

        call.stage(write_child, compensation=undo_child)
        if fail == "write":
            call.stage(write_duplicate)
        call.relate(call.caller.id, child_id, "spawned_review")
        if fail == "relationship":
            call.relate(call.caller.id, "work-404-a1", "created_fork")  # no such instance: FOREIGN KEY
        ledger.append("body done")
        return Echo(ok=True, note=child_id)

    return make_child


async def test_staged_writes_and_relationships_commit_with_the_event(app: App) -> None:
    assert app.caller is not None
    ledger: list[str] = []
    async with Client(make_server(app, staging_tools(str(app.settings.cwd), ledger, fail=None))) as client:
        result = await client.call_tool("make_child", {"child_id": "review-7-a1"})
    assert not result.is_error, text_of(result)
    assert ledger == ["body done"]
    child = await instances_store.get(app.db, "review-7-a1")
    assert child is not None and child.status == "running"
    rels = [dict(r) for r in await app.db.fetchall("SELECT * FROM instance_relationships")]
    assert [(r["parent_instance"], r["child_instance"], r["relationship_type"]) for r in rels] == [
        (app.caller.id, "review-7-a1", "spawned_review")
    ]
    (row,) = await events(app)
    assert row["success"] == 1 and row["tool_name"] == "make_child"


@pytest.mark.parametrize("fail", ["write", "relationship"])
async def test_failed_staged_write_rolls_back_everything_and_compensates(
    app: App, fail: str, caplog: pytest.LogCaptureFixture
) -> None:
    ledger: list[str] = []
    async with Client(make_server(app, staging_tools(str(app.settings.cwd), ledger, fail=fail))) as client:
        result = await client.call_tool("make_child", {"child_id": "review-8-a1"})
    assert result.is_error
    message = text_of(result)
    assert "make_child could not save its changes (IntegrityError)" in message
    assert ledger == ["body done", "undo review-8-a1"]
    # Nothing the tool staged survived: not the child row, not the relationship.
    assert await instances_store.get(app.db, "review-8-a1") is None
    assert await app.db.fetchall("SELECT * FROM instance_relationships") == []
    (row,) = await events(app)
    assert row["success"] == 0
    assert row["error_message"] and "could not save its changes" in row["error_message"]
    assert any(r.exc_info and r.exc_info[0] is sqlite3.IntegrityError for r in caplog.records)


# ----------------------------------------------------------------------------------- recording failure


async def test_a_call_that_cannot_be_recorded_still_returns_its_result(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    assert app.caller is not None
    # A caller whose row is not in `instances` (e.g. removed by hand): the event insert hits the
    # FOREIGN KEY on mcp_events.instance_id.
    ghost = Instance.model_validate(
        {**app.caller.instance.model_dump(), "id": "adhoc-a99", "agent_number": 99}
    )
    ghost_app = App(settings=app.settings, db=app.db, caller=Caller(ghost, "explicit"))
    caplog.set_level(logging.ERROR, logger="codex_mcp")
    async with Client(make_server(ghost_app, echo, refuse)) as client:
        result = await client.call_tool("echo", {"item_id": "abc"})
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None and result.structured_content["note"] == "got abc"
        refused = await client.call_tool("refuse", {})
        assert refused.is_error  # a failed call that cannot be recorded still reports its own error
        assert "call get_instance on it next" in text_of(refused)
    assert await events(app) == []
    failures = [r.getMessage() for r in caplog.records if "could not record" in r.getMessage()]
    assert any("echo" in m for m in failures), caplog.text
    assert any("refuse" in m for m in failures), caplog.text


async def test_an_unrecordable_event_does_not_cost_the_tool_its_staged_writes(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    assert app.caller is not None
    ghost = Instance.model_validate(
        {**app.caller.instance.model_dump(), "id": "adhoc-a99", "agent_number": 99}
    )
    ghost_app = App(settings=app.settings, db=app.db, caller=Caller(ghost, "explicit"))
    worktree = str(app.settings.cwd)

    @tool(title="Register", annotations=WRITES)
    async def register_child(call: ToolCall) -> Echo:
        """Stage one instance row."""

        async def write(tx: Tx) -> None:
            await instances_store.insert(tx, new_instance("work-9-a1", f"{worktree}/w9"))

        call.stage(write)
        return Echo(ok=True, note="work-9-a1")

    caplog.set_level(logging.ERROR, logger="codex_mcp")
    async with Client(make_server(ghost_app, register_child)) as client:
        result = await client.call_tool("register_child", {})
    assert not result.is_error, text_of(result)
    # The row the tool made is kept (it describes something that exists); only the event is lost.
    assert await instances_store.get(app.db, "work-9-a1") is not None
    assert await events(app) == []
    assert any(
        "could not record" in r.getMessage() and "register_child" in r.getMessage() for r in caplog.records
    ), caplog.text


# ---------------------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("how", ["task cancelled", "client timeout"])
async def test_cancelled_call_is_recorded_as_failed_and_compensated(app: App, how: str) -> None:
    started = anyio.Event()
    ledger: list[str] = []

    @tool(title="Wait forever", annotations=WRITES)
    async def wait_forever(call: ToolCall) -> Echo:
        """Stage a side effect, then wait for something that never happens."""

        async def write(tx: Tx) -> None:
            ledger.append("write ran")

        async def undo() -> None:
            ledger.append("undo ran")

        call.stage(write, compensation=undo)
        started.set()
        await anyio.Event().wait()
        return Echo(ok=True)

    outcome: list[Any] = []
    async with Client(make_server(app, wait_forever)) as client:
        if how == "task cancelled":

            async def call_it() -> None:
                outcome.append(await client.call_tool("wait_forever", {}))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call_it)
                    await started.wait()
                    tg.cancel_scope.cancel()
        else:
            # The client gives up waiting; the server cancels the handler.
            with pytest.raises(MCPError, match=r"[Tt]imed out"):
                await client.call_tool("wait_forever", {}, read_timeout_seconds=0.2)
            assert started.is_set()
    assert outcome == []
    assert ledger == ["undo ran"]  # compensated; the staged write never ran
    (row,) = await events(app)
    assert row["success"] == 0
    assert row["tool_name"] == "wait_forever"
    assert "cancelled" in row["error_message"]


async def test_a_server_without_identity_refuses_and_records_nothing(app: App) -> None:
    anonymous = App(settings=app.settings, db=app.db, caller=None)
    async with Client(make_server(anonymous, echo)) as client:
        result = await client.call_tool("echo", {"item_id": "a"})
    assert result.is_error
    assert "--instance" in text_of(result)
    assert await events(app) == []


# ------------------------------------------------------------------------------ checks at decoration


class NotAModel:
    pass


def test_incomplete_tools_are_refused_at_decoration() -> None:
    decorate = tool(title="T", annotations=READ_ONLY)

    def sync_tool(call: ToolCall) -> Echo:
        """Doc."""
        return Echo(ok=True)

    async def no_doc(call: ToolCall) -> Echo:
        return Echo(ok=True)

    async def no_call(item: Annotated[str, Field(description="d")]) -> Echo:
        """Doc."""
        return Echo(ok=True)

    async def bare_param(call: ToolCall, item: str) -> Echo:
        """Doc."""
        return Echo(ok=True)

    async def empty_description(call: ToolCall, item: Annotated[str, Field(description=" ")]) -> Echo:
        """Doc."""
        return Echo(ok=True)

    async def no_hint(call: ToolCall, item) -> Echo:  # type: ignore[no-untyped-def]
        """Doc."""
        return Echo(ok=True)

    async def not_pydantic(call: ToolCall) -> NotAModel:
        """Doc."""
        return NotAModel()

    async def plain_dict(call: ToolCall) -> dict[str, int]:
        """Doc."""
        return {}

    async def no_return(call: ToolCall):  # type: ignore[no-untyped-def]
        """Doc."""
        return Echo(ok=True)

    # Deliberately ill-formed tools: their types are what the decorator refuses.
    cases: dict[Any, str] = {
        sync_tool: "async def",
        no_doc: "docstring",
        no_call: "call: ToolCall",
        bare_param: "Field(description",
        empty_description: "Field(description",
        no_hint: "Field(description",
        not_pydantic: "pydantic model",
        plain_dict: "pydantic model",
        no_return: "pydantic model",
    }
    for fn, expected in cases.items():
        with pytest.raises(TypeError, match=re.escape(expected)):
            decorate(fn)

    async def fine(call: ToolCall) -> Echo:
        """Doc."""
        return Echo(ok=True)

    with pytest.raises(TypeError, match="annotation hint"):
        tool(title="T", annotations=ToolAnnotations(read_only_hint=True))(fine)
    with pytest.raises(TypeError, match="title"):
        tool(title="  ", annotations=READ_ONLY)(fine)
    spec = decorate(fine)
    assert spec.name == "fine" and spec.output_model is Echo


# --------------------------------------------------------------------------------- a person's actions


async def test_a_persons_action_is_recorded_under_the_main_checkout_not_an_agent(
    app: App, repo: Path, tmp_path: Path
) -> None:
    from codex_mcp.identity import person_caller
    from codex_mcp.recording import run_person_action

    # An agent's instance exists, and the person runs the command from inside its worktree.
    agent_tree = tmp_path / "agent-tree"
    agent_tree.mkdir()
    async with app.db.write() as tx:
        await instances_store.insert(tx, new_instance("work-7-a1", str(agent_tree)))
    person = await person_caller(app.settings, app.db)
    assert person.id != "work-7-a1" and person.instance.type == "adhoc"
    assert Path(person.instance.worktree_path) == repo

    async def body(call: ToolCall) -> Echo:
        async def write(tx: Tx) -> None:
            await tx.execute("UPDATE instances SET pr_state = 'open' WHERE id = ?", ("work-7-a1",))

        call.stage(write)
        return Echo(ok=True, note="killed")

    result = await run_person_action(
        app, person, "kill", {"instance_id": "work-7-a1", "prompt": "secret words"}, body, via="cli"
    )
    assert result.note == "killed"
    # The same identity is reused for the next action.
    assert (await person_caller(app.settings, app.db)).id == person.id

    async def refused(call: ToolCall) -> Echo:
        raise StateError("work-7-a1 has uncommitted work; commit it first")

    with pytest.raises(StateError, match="uncommitted work"):
        await run_person_action(app, person, "merge", {"instance_id": "work-7-a1"}, refused, via="ui")

    rows = await events(app)
    assert [(r["instance_id"], r["tool_name"], r["success"]) for r in rows] == [
        (person.id, "kill", 1),
        (person.id, "merge", 0),
    ]
    first, second = rows[0]["metadata"], rows[1]["metadata"]
    assert first["actor"] == "person" and first["via"] == "cli" and first["user"]
    assert first["args"]["prompt"] == digest("secret words")
    assert first["result"]["note"] == "killed"
    assert second["via"] == "ui" and rows[1]["error_message"].startswith("work-7-a1 has uncommitted work")
    row = await instances_store.get(app.db, "work-7-a1")
    assert row is not None and row.pr_state == "open"
