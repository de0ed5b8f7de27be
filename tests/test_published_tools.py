"""A server registers each tool at its first use, and only that tool; tools/list is answered from the
published listing until every tool is registered (codex_mcp/published_tools.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support import EXPECTED_TOOLS, count_registrations, failed, ok

from codex_mcp import published_tools
from codex_mcp.app import App
from codex_mcp.published_tools import LazyToolServer
from codex_mcp.server import build_server
from codex_mcp.tools import MODULES, all_tools, tool_spec


def lazy_server(app: App) -> LazyToolServer:
    server = build_server(app)
    assert isinstance(server, LazyToolServer)
    return server


def registered(server: LazyToolServer) -> set[str]:
    """The tools the SDK has built on this server (tools/list would answer from the file)."""
    return {t.name for t in server._tool_manager.list_tools()}


def wire(tools: list[Any]) -> list[dict[str, Any]]:
    return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]


def test_every_tool_is_in_the_map_with_the_module_that_defines_it() -> None:
    defined = {spec.name: spec.handler.__module__ for spec in all_tools()}
    assert defined == MODULES, "add the new tool to MODULES in codex_mcp/tools/__init__.py"
    assert list(MODULES) == [spec.name for spec in all_tools()]  # the listing's order
    assert set(MODULES) == EXPECTED_TOOLS
    assert all(tool_spec(spec.name) is spec for spec in all_tools())


def test_choosing_a_tool_imports_only_its_module() -> None:
    code = (
        "import sys\n"
        "from codex_mcp.tools import tool_spec\n"
        "tool_spec('query_instances')\n"
        "print(sorted(m for m in sys.modules if m.startswith('codex_mcp.tools.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == str(["codex_mcp.tools.instances", "codex_mcp.tools.spec"])


async def test_the_first_call_registers_only_the_tool_it_calls(app: App) -> None:
    lazy = lazy_server(app)
    full = lazy_server(app)
    full.register_tools()
    async with Client(lazy) as client, Client(full) as reference:
        published = wire((await client.list_tools()).tools)
        assert registered(lazy) == set()

        answer = ok(await client.call_tool("query_instances", {"status": "all"}))
        assert registered(lazy) == {"query_instances"}
        assert answer == ok(await reference.call_tool("query_instances", {"status": "all"}))
        assert wire((await client.list_tools()).tools) == published  # still the file, all eleven

        ok(await client.call_tool("query_instances", {}))
        assert registered(lazy) == {"query_instances"}

        # A second tool registers at its own first call.
        events = ok(await client.call_tool("list_events", {"limit": 5}))
        assert registered(lazy) == {"query_instances", "list_events"}
        assert {e["tool_name"] for e in events["events"]} == {"query_instances"} and events["count"] == 3
        assert failed(await client.call_tool("get_instance", {"instance_id": "adhoc-a9"})) == failed(
            await reference.call_tool("get_instance", {"instance_id": "adhoc-a9"})
        )
        assert registered(lazy) == {"query_instances", "list_events", "get_instance"}


async def test_an_input_schema_look_up_registers_only_that_tool(app: App) -> None:
    lazy = lazy_server(app)
    published = {t.name: t.input_schema for t in published_tools.published_listing() or []}
    assert lazy._tool_input_schema("get_issue") == published["get_issue"]
    assert registered(lazy) == {"get_issue"}


async def test_a_name_that_is_no_tool_gets_the_sdks_answer_and_registers_nothing(app: App) -> None:
    lazy = lazy_server(app)
    full = lazy_server(app)
    full.register_tools()
    assert lazy._tool_input_schema("no_such_tool") is None
    async with Client(lazy) as client, Client(full) as reference:
        answer = await client.call_tool("no_such_tool", {"x": 1})
        expected = await reference.call_tool("no_such_tool", {"x": 1})
    assert failed(answer) == failed(expected) == "Unknown tool: no_such_tool"
    assert answer.model_dump() == expected.model_dump()
    assert registered(lazy) == set()


async def test_two_first_calls_arriving_together_register_the_tool_once(
    app: App, caplog: pytest.LogCaptureFixture
) -> None:
    lazy = lazy_server(app)
    added = count_registrations(lazy)
    answers: list[dict[str, Any]] = []
    async with Client(lazy) as client:

        async def first_call() -> None:
            answers.append(ok(await client.call_tool("query_instances", {})))

        async with anyio.create_task_group() as tg:
            tg.start_soon(first_call)
            tg.start_soon(first_call)
    assert len(answers) == 2 and answers[0] == answers[1]
    assert added == ["query_instances"]
    assert registered(lazy) == {"query_instances"}
    assert "already exists" not in caplog.text


async def test_the_registered_listing_registers_every_tool_in_the_published_order(app: App) -> None:
    lazy = lazy_server(app)
    async with Client(lazy) as client:
        ok(await client.call_tool("list_issues", {}))
        published = wire((await client.list_tools()).tools)
        listing = wire(await lazy.registered_listing())
        assert registered(lazy) == EXPECTED_TOOLS
        # Every tool registered: the listing now comes from the tools themselves, in the same order.
        assert wire((await client.list_tools()).tools) == listing == published


async def test_without_the_published_file_the_first_listing_registers_every_tool(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(published_tools, "PUBLISHED", tmp_path / "missing.json")
    monkeypatch.setattr(published_tools, "_cache", None)
    lazy = lazy_server(app)
    async with Client(lazy) as client:
        listed = (await client.list_tools()).tools
    assert [t.name for t in listed] == list(MODULES)
    assert registered(lazy) == EXPECTED_TOOLS

    (tmp_path / "unreadable.json").write_text(json.dumps([{"name": 3}]), encoding="utf-8")
    monkeypatch.setattr(published_tools, "PUBLISHED", tmp_path / "unreadable.json")
    lazy = lazy_server(app)
    async with Client(lazy) as client:
        assert [t.name for t in (await client.list_tools()).tools] == list(MODULES)
    assert registered(lazy) == EXPECTED_TOOLS


def with_entry(name: str, **update: Any) -> dict[str, Any]:
    """The published listing by name, with ``name``'s entry changed as a stale or edited file would be."""
    entries = dict(published_tools.published_entries() or {})
    entries[name] = entries[name].model_copy(update=update)
    return entries


async def test_a_tool_takes_its_output_schema_from_the_published_listing(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registering a tool does not derive its output schema: the file's is published as it is."""
    marked = dict((published_tools.published_entries() or {})["list_issues"].output_schema or {})
    marked["description"] = "taken from the published file"
    monkeypatch.setattr(published_tools, "_cache", with_entry("list_issues", output_schema=marked))
    lazy = lazy_server(app)
    async with Client(lazy) as client:
        ok(await client.call_tool("list_issues", {}))
        listing = {t.name: t for t in await lazy.registered_listing()}
        assert listing["list_issues"].output_schema == marked
        # The answer is still the tool's own, structured and as text.
        answer = await client.call_tool("list_issues", {})
        assert answer.structured_content is not None and "issues" in answer.structured_content


async def test_a_stale_published_entry_is_not_trusted_and_the_sdk_derives_the_schemas(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An entry whose input schema or description no longer matches the tool (the file was not
    regenerated) gives no output schema either: the tool is built as the SDK derives it."""
    true_output = (published_tools.published_entries() or {})["get_issue"].output_schema
    bogus_output = {"type": "object", "properties": {"stale": {"type": "string"}}}
    input_schema = {**(published_tools.published_entries() or {})["get_issue"].input_schema}
    input_schema["required"] = ["a_parameter_it_no_longer_has"]
    for stale in (
        with_entry("get_issue", input_schema=input_schema, output_schema=bogus_output),
        with_entry("get_issue", description="what an older version said", output_schema=bogus_output),
    ):
        monkeypatch.setattr(published_tools, "_cache", stale)
        lazy = lazy_server(app)
        lazy.register_tool("get_issue")
        (built,) = [t for t in await lazy.registered_listing() if t.name == "get_issue"]
        assert built.output_schema == true_output
        assert "published listing of get_issue is stale" in caplog.text
        caplog.clear()


async def test_without_the_sdks_tool_record_the_schemas_are_derived_and_nothing_is_called_stale(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Should the SDK's tool manager move (a private attribute), tools are built the SDK's way."""
    from codex_mcp.tools import spec as tool_spec_module

    monkeypatch.setattr(tool_spec_module, "_registered", lambda server, name: None)
    lazy = lazy_server(app)
    async with Client(lazy) as client:
        answer = ok(await client.call_tool("query_instances", {}))
        assert app.caller is not None and answer["caller_instance_id"] == app.caller.id
        listing = {t.name: t for t in await lazy.registered_listing()}
    published = published_tools.published_entries() or {}
    assert listing["query_instances"].output_schema == published["query_instances"].output_schema
    assert "stale" not in caplog.text


def _objects(schema: Any) -> list[dict[str, Any]]:
    """Every object schema with properties inside ``schema`` (its $defs included)."""
    found: list[dict[str, Any]] = []
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                found.append(node)
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


def _nullable(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "null" or any(
        isinstance(alt, dict) and alt.get("type") == "null" for alt in prop.get("anyOf", [])
    )


def test_every_nullable_output_field_may_be_left_out_of_an_answer() -> None:
    """Answers leave out null fields (tools.spec.answer): each nullable field of every published
    output schema must be optional with the default null, or an answer would not validate."""
    listing = published_tools.published_entries()
    assert listing is not None
    checked = 0
    for name, entry in listing.items():
        assert entry.output_schema is not None, name
        for obj in _objects(entry.output_schema):
            required = set(obj.get("required", []))
            for field, prop in obj["properties"].items():
                if isinstance(prop, dict) and _nullable(prop):
                    checked += 1
                    where = f"{name}: {obj.get('title', '?')}.{field}"
                    assert field not in required, f"{where} is nullable but required: give it `= None`"
                    assert prop.get("default", ...) is None, f"{where} is nullable without the default null"
    assert checked > 20  # the rows' many nullable columns were found


def _nulls(value: Any, path: str = "$") -> list[str]:
    """Where ``value`` holds a null, outside an event's metadata (free-form JSON, answered as recorded)."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() if k != "metadata" for p in _nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in _nulls(v, f"{path}[{n}]")]
    return []


async def test_answers_leave_out_null_fields_and_validate_against_the_published_schema(app: App) -> None:
    import jsonschema  # type: ignore[import-untyped]  # (a dependency of the MCP SDK)

    listing = published_tools.published_entries()
    assert listing is not None
    async with Client(build_server(app)) as client:
        for name, arguments in [
            ("query_instances", {}),
            ("get_instance", {"instance_id": app.caller.id if app.caller else ""}),
            ("list_events", {}),
        ]:
            result = await client.call_tool(name, arguments)
            structured = ok(result)
            assert _nulls(structured) == [], name
            assert json.loads(result.content[0].text) == structured, name  # type: ignore[union-attr]
            schema = listing[name].output_schema
            assert schema is not None
            jsonschema.validate(structured, schema)
        # The caller's row has no pull request: the field is left out, where it used to read null.
        rows = ok(await client.call_tool("query_instances", {}))["instances"]
        mine = next(r for r in rows if app.caller is not None and r["id"] == app.caller.id)
        assert "pr_url" not in mine and "merged_at" not in mine
        assert {"id", "type", "status", "worktree_path", "branch_name", "tmux_session"} <= set(mine)
