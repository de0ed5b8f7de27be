"""The MCP server: its tool listing, the read tools, caller identity, and real stdio servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.server.mcpserver import MCPServer
from pydantic import ValidationError
from support import (
    EXPECTED_TOOLS,
    HANDSHAKE,
    MODULES_PROBE,
    count_registrations,
    event_rows,
    git,
    new_instance,
    ok,
    text_of,
    tickets_taken,
)

from codex_mcp import published_tools
from codex_mcp.app import App
from codex_mcp.errors import ConfigError
from codex_mcp.identity import Caller, resolve_caller
from codex_mcp.outcomes import ListEventsResult
from codex_mcp.published_tools import LazyToolServer
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.store import relationships as relationships_store
from codex_mcp.store.append_queue import queue_path
from codex_mcp.store.events import Event
from codex_mcp.store.issues import Issue
from codex_mcp.store.relationships import Relationship
from codex_mcp.tmux import NOT_IN_TMUX
from codex_mcp.tools import MODULES, all_tools
from codex_mcp.tools.spec import register

SNAPSHOT = Path(__file__).parent / "snapshots" / "tools_list.json"
# Read at import: the autouse `clean_environment` fixture removes every CODEX_MCP_* variable.
UPDATE_SNAPSHOTS = os.environ.get("CODEX_MCP_UPDATE_SNAPSHOTS") == "1"
READ_TOOLS = {"query_instances", "get_instance", "list_events", "list_issues", "get_issue"}


# --------------------------------------------------------------------------------------------- helpers


ISSUE_TITLE = "Fix the flux capacitor"


async def populate(app: App) -> None:
    """Issue 12 cached; work-12-a1 spawned review-12-a1 and forked work-12-a2; work-13-a1 terminated."""
    root = app.settings.cwd
    async with app.db.write() as tx:
        await issues_store.upsert_many(
            tx, [Issue(number=12, title=ISSUE_TITLE, state="open", repo_owner="octo", repo_name="flux")]
        )
        await instances_store.insert(
            tx,
            new_instance(
                "work-12-a1",
                root / "wt" / "work-12-a1",
                issue_number=12,
                prompt="implement the flux capacitor",
            ),
        )
        await instances_store.insert(
            tx,
            new_instance("review-12-a1", root / "wt" / "review-12-a1", issue_number=12, prompt="review it"),
        )
        await instances_store.insert(
            tx, new_instance("work-12-a2", root / "wt" / "work-12-a2", issue_number=12, agent_number=2)
        )
        await instances_store.insert(
            tx, new_instance("work-13-a1", root / "wt" / "work-13-a1", issue_number=13)
        )
        assert await instances_store.mark_terminated(tx, "work-13-a1")
        await relationships_store.add(
            tx,
            Relationship(
                parent_instance="work-12-a1",
                child_instance="review-12-a1",
                relationship_type="spawned_review",
            ),
        )
        await relationships_store.add(
            tx,
            Relationship(
                parent_instance="work-12-a1", child_instance="work-12-a2", relationship_type="created_fork"
            ),
        )


async def app_for(app: App, instance_id: str) -> App:
    instance = await instances_store.require(app.db, instance_id)
    return App(settings=app.settings, db=app.db, caller=Caller(instance, "explicit"))


def tool_listing(tools: Any) -> list[dict[str, Any]]:
    listing = []
    for t in sorted(tools, key=lambda t: t.name):
        data = t.model_dump(mode="json", by_alias=True, exclude_none=True)
        listing.append(
            {
                k: data.get(k)
                for k in ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
            }
        )
    return listing


# ------------------------------------------------------------------------------------------ tools/list


async def test_tools_list_is_complete_and_described(app: App) -> None:
    async with Client(build_server(app)) as client:
        listed = (await client.list_tools()).tools
        instructions = client.instructions
    assert {t.name for t in listed} == EXPECTED_TOOLS
    assert len(listed) == len(EXPECTED_TOOLS)
    for t in listed:
        assert t.title and t.title.strip(), t.name
        assert t.description and len(t.description) > 40, t.name
        assert t.annotations is not None, t.name
        for hint in ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint"):
            assert getattr(t.annotations, hint) is not None, (t.name, hint)
        if t.name in READ_TOOLS:  # they only read the store
            assert t.annotations.read_only_hint is True and t.annotations.destructive_hint is False
        else:  # they change the world; only terminating removes anything
            assert t.annotations.read_only_hint is False
            assert t.annotations.destructive_hint is (t.name == "terminate_instance")
        assert t.output_schema is not None and t.output_schema.get("properties"), t.name
        # Only the GitHub tools reach beyond this machine.
        assert t.annotations.open_world_hint is (t.name in ("create_pull_request", "sync_issues"))
        assert "call" not in t.input_schema.get("properties", {}) and "ctx" not in t.input_schema.get(
            "properties", {}
        )
        for name, prop in t.input_schema.get("properties", {}).items():
            assert str(prop.get("description", "")).strip(), f"{t.name}.{name} has no description"
    assert instructions is not None
    assert "instance" in instructions.lower()
    for name in EXPECTED_TOOLS:
        assert name in instructions


async def test_tools_list_matches_snapshot(app: App) -> None:
    async with Client(build_server(app)) as client:
        listing = tool_listing((await client.list_tools()).tools)
    rendered = json.dumps(listing, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if UPDATE_SNAPSHOTS:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(rendered, encoding="utf-8")
    assert SNAPSHOT.exists(), (
        f"{SNAPSHOT} is missing; create it with: CODEX_MCP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest "
        "tests/test_server.py -k snapshot"
    )
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert listing == expected, (
        "tools/list changed (names, titles, descriptions, schemas or annotations that clients see). If the "
        "change is intended, regenerate the snapshot with: CODEX_MCP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m "
        f"pytest tests/test_server.py -k snapshot, and review the diff of {SNAPSHOT.name}"
    )


async def test_the_published_listing_is_what_the_registered_tools_list(app: App) -> None:
    """A server answers tools/list from published_tools.json until a call builds the tools, and takes
    each tool's output schema from it: the file must be exactly what the tools list when the SDK derives
    every schema, on the wire."""
    derived_server: MCPServer[App] = MCPServer("derived")
    register(derived_server, *all_tools())  # no published listing: every schema derived by the SDK
    derived = await derived_server.list_tools()
    if UPDATE_SNAPSHOTS:
        published_tools.PUBLISHED.write_text(published_tools.render(derived), encoding="utf-8")
        published_tools._cache = None
    lazy = build_server(app)
    built = build_server(app)
    assert isinstance(built, LazyToolServer)
    async with Client(lazy) as client:
        before_any_call = (await client.list_tools()).tools
        assert lazy._tool_manager.list_tools() == []  # answered without building a tool
        ok(await client.call_tool("query_instances", {}))  # the first call builds it
        after_a_call = (await client.list_tools()).tools
    await built.registered_listing()
    async with Client(built) as client:
        from_registered = (await client.list_tools()).tools

    def wire(tools: list[Any]) -> list[dict[str, Any]]:
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools]

    assert len(derived) == len(EXPECTED_TOOLS)
    assert wire(before_any_call) == wire(derived), (
        f"{published_tools.PUBLISHED.name} is not what the tools list. Regenerate it with: "
        "CODEX_MCP_UPDATE_SNAPSHOTS=1 .venv/bin/python -m pytest tests/test_server.py -k published"
    )
    assert wire(from_registered) == wire(after_a_call) == wire(derived)


# ------------------------------------------------------------------------------------ query_instances


async def test_query_instances_filters(app: App) -> None:
    await populate(app)
    async with Client(build_server(app)) as client:
        default = ok(await client.call_tool("query_instances", {}))
        terminated = ok(await client.call_tool("query_instances", {"status": "terminated"}))
        everything = ok(await client.call_tool("query_instances", {"status": "all"}))
        reviews = ok(await client.call_tool("query_instances", {"type": "review"}))
        issue12 = ok(await client.call_tool("query_instances", {"issue_number": 12}))
        issue13 = ok(await client.call_tool("query_instances", {"issue_number": 13}))
        issue13_all = ok(await client.call_tool("query_instances", {"issue_number": 13, "status": "all"}))
        limited = ok(await client.call_tool("query_instances", {"limit": 2}))

    def ids(result: dict[str, Any]) -> list[str]:
        return [i["id"] for i in result["instances"]]

    # Newest first (same second: insertion order reversed).
    assert ids(default) == ["work-12-a2", "review-12-a1", "work-12-a1", "adhoc-a1"]
    assert default["count"] == 4 and default["truncated"] is False
    assert default["caller_instance_id"] == "adhoc-a1"
    by_id = {i["id"]: i for i in default["instances"]}
    assert by_id["work-12-a1"]["issue_title"] == ISSUE_TITLE
    assert by_id["review-12-a1"]["issue_title"] == ISSUE_TITLE
    assert "issue_title" not in by_id["adhoc-a1"]  # null: an answer leaves it out
    assert all(i["status"] == "running" for i in default["instances"])
    assert "prompt" not in by_id["work-12-a1"]

    assert ids(terminated) == ["work-13-a1"]
    assert terminated["instances"][0]["terminated_at"]
    assert "issue_title" not in terminated["instances"][0]  # issue 13 is not cached
    assert sorted(ids(everything)) == sorted([*ids(default), "work-13-a1"])
    assert ids(reviews) == ["review-12-a1"]
    assert sorted(ids(issue12)) == ["review-12-a1", "work-12-a1", "work-12-a2"]
    assert ids(issue13) == []
    assert ids(issue13_all) == ["work-13-a1"]
    assert limited["count"] == 2 and limited["truncated"] is True

    rows = await event_rows(app.db)
    assert len(rows) == 8
    assert all(r["tool_name"] == "query_instances" and r["success"] == 1 for r in rows)
    assert json.loads(rows[1]["metadata"])["args"]["status"] == "terminated"


@pytest.mark.parametrize(
    "arguments", [{"status": "bogus"}, {"type": "manager"}, {"issue_number": 0}, {"limit": 0}]
)
async def test_query_instances_bad_filter_is_an_error_never_a_success(
    app: App, arguments: dict[str, Any]
) -> None:
    async with Client(build_server(app)) as client:
        result = await client.call_tool("query_instances", arguments)
    assert result.is_error
    (field,) = arguments
    assert field in text_of(result)
    assert await event_rows(app.db, "success = 1") == []
    # Rejected before the tool ran, the call still leaves exactly one failed row.
    (row,) = await event_rows(app.db)
    assert app.caller is not None
    assert (row["tool_name"], row["success"], row["instance_id"]) == ("query_instances", 0, app.caller.id)
    assert field in row["error_message"]
    assert json.loads(row["metadata"])["rejected"] is True


async def test_rejected_calls_are_recorded_once_without_the_rejected_values(app: App) -> None:
    canary = "canary-" + os.urandom(8).hex()
    async with Client(build_server(app)) as client:
        wrong_type = await client.call_tool("get_instance", {"instance_id": {"prompt": canary}})
        too_long = await client.call_tool("get_instance", {"instance_id": canary * 10})
        unknown = await client.call_tool("no_such_tool", {"prompt": canary})
    assert wrong_type.is_error and too_long.is_error and unknown.is_error
    rows = await event_rows(app.db)
    assert [(r["tool_name"], r["success"]) for r in rows] == [
        ("get_instance", 0),
        ("get_instance", 0),
        ("no_such_tool", 0),
    ]
    assert "Unknown tool" in rows[2]["error_message"]
    for row in rows:
        assert canary not in row["error_message"]
        assert canary not in (row["metadata"] or "")
    await app.db.close()
    for suffix in ("", "-wal"):
        file = Path(str(app.db.path) + suffix)
        if file.exists():
            assert canary.encode() not in file.read_bytes()


# --------------------------------------------------------------------------------------- get_instance


async def test_get_instance_shows_row_relationships_and_recent_events(app: App) -> None:
    await populate(app)
    worker = await app_for(app, "work-12-a1")
    async with Client(build_server(worker)) as client:
        ok(await client.call_tool("query_instances", {"type": "review"}))
        failed = await client.call_tool("get_instance", {"instance_id": "work-77-a1"})
        assert failed.is_error
        work = ok(await client.call_tool("get_instance", {"instance_id": "work-12-a1"}))
    async with Client(build_server(app)) as client:
        review = ok(await client.call_tool("get_instance", {"instance_id": "review-12-a1"}))

    instance = work["instance"]
    assert instance["id"] == "work-12-a1" and instance["status"] == "running"
    assert instance["prompt"] == "implement the flux capacitor"
    assert instance["issue_title"] == ISSUE_TITLE
    assert work["parents"] == []
    children = {c["id"]: c for c in work["children"]}
    assert set(children) == {"review-12-a1", "work-12-a2"}
    assert children["review-12-a1"]["relationship_type"] == "spawned_review"
    assert children["work-12-a2"]["relationship_type"] == "created_fork"
    assert children["review-12-a1"]["issue_title"] == ISSUE_TITLE
    assert children["review-12-a1"]["relationship_created"]
    assert "prompt" not in children["review-12-a1"]
    # Its own earlier calls, newest first (the get_instance call itself is recorded after it answers).
    recent = work["recent_events"]
    assert [(e["tool_name"], e["success"]) for e in recent] == [
        ("get_instance", False),
        ("query_instances", True),
    ]
    assert all(e["instance_id"] == "work-12-a1" and e["instance_type"] == "work" for e in recent)
    assert "not found" in recent[0]["error_message"]

    assert review["instance"]["id"] == "review-12-a1"
    assert [(p["id"], p["relationship_type"]) for p in review["parents"]] == [
        ("work-12-a1", "spawned_review")
    ]
    assert review["children"] == []
    assert review["recent_events"] == []

    # The prompt the result carried is recorded only as a digest.
    (recorded,) = await event_rows(
        app.db, "tool_name = 'get_instance' AND success = 1 AND instance_id = ?", ("work-12-a1",)
    )
    summary = json.loads(recorded["metadata"])["result"]
    assert summary["instance"]["prompt"]["redacted"] is True
    assert "implement the flux capacitor" not in recorded["metadata"]


@pytest.mark.parametrize("instance_id", ["work-404-a1", "not an id", "work-12-a0"])
async def test_get_instance_unknown_or_malformed_id_is_actionable(app: App, instance_id: str) -> None:
    async with Client(build_server(app)) as client:
        result = await client.call_tool("get_instance", {"instance_id": instance_id})
    assert result.is_error
    assert "query_instances" in text_of(result)
    assert instance_id in text_of(result)
    (row,) = await event_rows(app.db)
    assert row["tool_name"] == "get_instance" and row["success"] == 0
    assert "query_instances" in row["error_message"]


# ---------------------------------------------------------------------------------------- list_events


async def test_list_events_filters(app: App) -> None:
    await populate(app)
    worker = await app_for(app, "work-12-a1")
    async with Client(build_server(worker)) as client:
        ok(await client.call_tool("query_instances", {}))
    async with Client(build_server(app)) as client:
        ok(await client.call_tool("query_instances", {}))
        assert (await client.call_tool("get_instance", {"instance_id": "work-99-a1"})).is_error
        ok(await client.call_tool("get_instance", {"instance_id": "work-12-a1"}))
        # One old event, from before the default window of a day.
        async with app.db.write() as tx:
            await tx.execute(
                "UPDATE mcp_events SET timestamp = '2020-01-01 00:00:00' WHERE id = "
                "(SELECT MIN(id) FROM mcp_events WHERE instance_id = 'adhoc-a1')"
            )

        def listed(result: Any) -> list[tuple[str, str, bool]]:
            data = ok(result)
            assert data["count"] == len(data["events"])
            return [(e["instance_id"], e["tool_name"], e["success"]) for e in data["events"]]

        by_worker = listed(await client.call_tool("list_events", {"instance_id": "work-12-a1"}))
        gets = listed(await client.call_tool("list_events", {"tool_name": "get_instance"}))
        failures = await client.call_tool("list_events", {"success": False})
        recent = listed(await client.call_tool("list_events", {"tool_name": "query_instances"}))
        old_too = listed(
            await client.call_tool(
                "list_events", {"tool_name": "query_instances", "since": "2019-12-31T00:00:00Z"}
            )
        )
        last_hour = listed(
            await client.call_tool("list_events", {"tool_name": "query_instances", "since": "1h"})
        )
        limited = ok(await client.call_tool("list_events", {"limit": 1, "since": "1w"}))
        bad_since = await client.call_tool("list_events", {"since": "yesterday"})
        bad_id = await client.call_tool("list_events", {"instance_id": "boss"})

    assert by_worker == [("work-12-a1", "query_instances", True)]
    assert gets == [("adhoc-a1", "get_instance", True), ("adhoc-a1", "get_instance", False)]
    failed = ok(failures)["events"]
    assert [(e["tool_name"], e["success"]) for e in failed] == [("get_instance", False)]
    assert "work-99-a1" in failed[0]["error_message"] and failed[0]["instance_type"] == "adhoc"
    assert recent == [("work-12-a1", "query_instances", True)]  # the old one is outside the last day
    assert old_too == [("work-12-a1", "query_instances", True), ("adhoc-a1", "query_instances", True)]
    assert last_hour == recent
    assert limited["count"] == 1 and limited["truncated"] is True

    assert bad_since.is_error
    message = text_of(bad_since)
    assert "yesterday" in message and "30m" in message and "1d" in message
    assert bad_id.is_error and "query_instances" in text_of(bad_id)
    failed_rows = await event_rows(app.db, "tool_name = 'list_events' AND success = 0")
    assert len(failed_rows) == 2
    assert "30m" in failed_rows[0]["error_message"]


# Metadata as other versions or other programs may have stored it: what each row must come back as is
# whatever the reference below (decode, then validate the row alone) makes of it.
ODD_METADATA = [
    None,
    "[1, 2]",
    "{not json",
    '"just text"',
    '{"a": 1, "a": 2}',
    '{"big": 123456789012345678901234567890, "tiny": 5e-324, "neg": -0.0, "exp": 1E2}',
    '{"pair": "\\ud83d\\ude00", "escaped": "\\u00e9\\t"}',
    '{"nested": {"deep": [1, {"x": null}], "t": true}, "text": "caf\u00e9 \\n"}',
    " \t{} ",
]


def reference_listing(rows: list[Any], limit: int) -> dict[str, Any]:
    """The answer list_events must give for these rows (newest first, one more than ``limit``), built the
    slow way: each row decoded with ``json`` and validated on its own (the construction list_events had
    before it validated listings at once)."""
    events = []
    for row in rows:
        data = dict(row)
        raw = data.get("metadata")
        if raw:
            try:
                parsed = json.loads(raw)
                data["metadata"] = parsed if isinstance(parsed, dict) else {"value": parsed}
            except ValueError:
                data["metadata"] = {"unparsed": str(raw)[:200]}
        events.append(Event.model_validate(data))
    shown = events[:limit]
    result = ListEventsResult(events=shown, count=len(shown), truncated=len(events) > limit)
    # An answer leaves out the fields whose value is null.
    return result.model_dump(mode="json", by_alias=True, exclude_none=True)


async def reference_rows(db: Database, where: str = "1", limit: int = 50) -> list[Any]:
    return await db.fetchall(
        "SELECT me.*, i.type AS instance_type FROM mcp_events me JOIN instances i ON me.instance_id = i.id "
        f"WHERE {where} ORDER BY me.timestamp DESC, me.id DESC LIMIT ?",
        (limit + 1,),
    )


async def test_list_events_answers_exactly_what_each_row_validated_alone_gives(app: App) -> None:
    """Recorded calls of every kind and metadata in every shape: the listing (structured content and
    text) is the one the row-by-row validated construction makes, for every filter."""
    await populate(app)
    worker = await app_for(app, "work-12-a1")
    reviewer = await app_for(app, "review-12-a1")
    for caller in (worker, reviewer, app):
        async with Client(build_server(caller)) as client:
            ok(await client.call_tool("query_instances", {"status": "all"}))
            ok(await client.call_tool("get_instance", {"instance_id": "work-12-a1"}))
            assert (await client.call_tool("get_instance", {"instance_id": "work-99-a1"})).is_error
            ok(await client.call_tool("list_issues", {}))
    async with app.db.write() as tx:
        for n, raw in enumerate(ODD_METADATA):
            await tx.execute(
                "INSERT INTO mcp_events (instance_id, tool_name, success, error_message, metadata, timestamp) "
                "VALUES ('work-13-a1', 'elsewhere', ?, ?, ?, datetime('now', ?))",
                (n % 2, None if n % 2 else f"failure {n}", raw, f"-{n} minutes"),
            )
    cases: list[tuple[dict[str, Any], str, int]] = [
        ({}, "1", 20),  # the default limit
        ({"limit": 5}, "1", 5),
        ({"instance_id": "work-13-a1", "since": "1w", "limit": 50}, "me.instance_id = 'work-13-a1'", 50),
        ({"success": False, "limit": 3}, "me.success = 0", 3),
        ({"tool_name": "elsewhere", "limit": 1000}, "me.tool_name = 'elsewhere'", 1000),
    ]
    async with Client(build_server(app)) as client:
        for arguments, where, limit in cases:
            # Before the call: the call's own event is recorded after it answers.
            expected = reference_listing(await reference_rows(app.db, where, limit), limit)
            result = await client.call_tool("list_events", arguments)
            assert ok(result) == expected, arguments
            assert json.loads(text_of(result)) == expected, arguments
    assert len(expected["events"]) == len(ODD_METADATA)
    assert [e.get("metadata") for e in expected["events"]][:4] == [
        None,
        {"value": [1, 2]},
        {"unparsed": "{not json"},
        {"value": "just text"},
    ]


async def test_a_row_written_outside_the_schema_fails_the_listing_never_shows_in_it(app: App) -> None:
    """Another program writes an event the published schema cannot describe: list_events answers with
    an error (as validating that row alone does), not with an answer that breaks its outputSchema."""
    await populate(app)
    async with app.db.write() as tx:
        await tx.execute(
            "INSERT INTO mcp_events (instance_id, tool_name, success, metadata) "
            "VALUES ('work-12-a1', 'elsewhere', 'perhaps', '{}')"
        )
    with pytest.raises(ValidationError):
        reference_listing(await reference_rows(app.db), 50)
    async with Client(build_server(app)) as client:
        refused = await client.call_tool("list_events", {})
        assert refused.is_error and refused.structured_content is None
        assert "internal error" in text_of(refused)
        # The other rows still list when the bad one is filtered out.
        fine = ok(await client.call_tool("list_events", {"instance_id": "adhoc-a1"}))
    assert [e["tool_name"] for e in fine["events"]] == ["list_events"]
    assert (await event_rows(app.db, "tool_name = 'list_events'"))[0]["success"] == 0


async def test_metadata_with_a_lone_surrogate_lists_with_a_replacement_character(app: App) -> None:
    """Another program stored ``"\\ud800"`` (valid JSON, not sendable as text): the event lists, the
    lone surrogate replaced by U+FFFD, instead of failing every listing it falls into."""
    async with app.db.write() as tx:
        await tx.execute(
            "INSERT INTO mcp_events (instance_id, tool_name, success, metadata) VALUES (?, 'elsewhere', 1, ?)",
            (app.caller.id if app.caller else "", '{"note": "a\\ud800b", "\\udfff": ["\\ud83d\\ude00"]}'),
        )
    async with Client(build_server(app)) as client:
        listed = ok(await client.call_tool("list_events", {"tool_name": "elsewhere"}))
    assert listed["events"][0]["metadata"] == {"note": "a\ufffdb", "\ufffd": ["\U0001f600"]}


async def test_every_answer_is_its_structured_content_as_compact_json_text(app: App) -> None:
    """An agent's client shows it the text: the same data as the structured content, without the
    two-space indents the SDK would add (40 % of a listing's characters). The structured content still
    matches the published output schema: the SDK's client checks it with jsonschema on every call."""
    await populate(app)
    async with Client(build_server(app)) as client:
        ok(await client.call_tool("query_instances", {}))
        results = {
            "query_instances": await client.call_tool("query_instances", {"status": "all"}),
            "get_instance": await client.call_tool("get_instance", {"instance_id": "work-12-a1"}),
            "list_events": await client.call_tool("list_events", {}),
            "list_issues": await client.call_tool("list_issues", {}),
            "get_issue": await client.call_tool("get_issue", {"number": 12}),
        }
    for name, result in results.items():
        structured = ok(result)
        assert len(result.content) == 1, name
        text = text_of(result)
        assert json.loads(text) == structured, name
        assert "\n" not in text, (name, text[:200])  # compact: indented JSON breaks lines
    assert ok(results["list_events"])["count"] >= 2


# ------------------------------------------------------------------------------------ caller identity


async def test_explicit_instance_is_the_caller(repo: Path, env: dict[str, str], db: Database) -> None:
    async with db.write() as tx:
        await instances_store.insert(tx, new_instance("work-5-a1", repo / "elsewhere", issue_number=5))
    caller = await resolve_caller(Settings.load(env, cwd=repo, instance="work-5-a1"), db)
    assert (caller.id, caller.source) == ("work-5-a1", "explicit")
    from_env = await resolve_caller(Settings.load({**env, "CODEX_MCP_INSTANCE": "work-5-a1"}, cwd=repo), db)
    assert (from_env.id, from_env.source) == ("work-5-a1", "explicit")

    with pytest.raises(ConfigError) as raised:
        await resolve_caller(Settings.load(env, cwd=repo, instance="work-6-a1"), db)
    assert "work-6-a1" in str(raised.value) and "codex-mcp ls --all" in str(raised.value)
    # Nothing was registered on the way.
    assert [i.id for i in await instances_store.list_dashboard(db, status=None)] == ["work-5-a1"]


async def test_cwd_inside_a_running_worktree_is_that_instance(
    repo: Path, env: dict[str, str], db: Database
) -> None:
    worktree = repo.parent / "worktrees" / "work-6-a1"
    git(repo, "worktree", "add", "-q", "-b", "codex/work-6-a1", str(worktree))
    (worktree / "src" / "deep").mkdir(parents=True)
    async with db.write() as tx:
        await instances_store.insert(tx, new_instance("work-6-a1", worktree.resolve(), issue_number=6))
    nested = Settings.load(env, cwd=worktree / "src" / "deep")
    assert nested.require_db_path() == db.path  # every worktree shares the repository's database
    caller = await resolve_caller(nested, db)
    assert (caller.id, caller.source) == ("work-6-a1", "worktree")

    # A terminated instance no longer owns its folder: whoever works there is registered as adhoc.
    async with db.write() as tx:
        await instances_store.mark_terminated(tx, "work-6-a1")
    adhoc = await resolve_caller(nested, db)
    assert (adhoc.id, adhoc.source) == ("adhoc-a1", "registered")
    assert adhoc.instance.worktree_path == str(worktree.resolve())
    assert adhoc.instance.branch_name == "codex/work-6-a1"


async def test_otherwise_an_adhoc_instance_is_registered_once(
    repo: Path, env: dict[str, str], db: Database
) -> None:
    git(repo, "checkout", "-q", "-b", "feature/odd-name")
    (repo / "sub").mkdir()
    caller = await resolve_caller(Settings.load(env, cwd=repo / "sub"), db)
    assert (caller.id, caller.source) == ("adhoc-a1", "registered")
    row = caller.instance
    assert (row.type, row.status, row.agent_number) == ("adhoc", "running", 1)
    assert row.worktree_path == str(repo)
    assert row.branch_name == "feature/odd-name"
    assert row.tmux_session == NOT_IN_TMUX == "(not in tmux)"
    assert row.issue_number is None

    again = await resolve_caller(Settings.load(env, cwd=repo), db)
    assert again.id == "adhoc-a1" and again.source in ("worktree", "reused")
    assert [i.id for i in await instances_store.list_dashboard(db, status=None)] == ["adhoc-a1"]


# --------------------------------------------------------------------------------- real stdio servers


def serve_params(repo: Path, cli_env: dict[str, str], *args: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "codex_mcp", "serve", *args], cwd=repo, env=cli_env
    )


@pytest.mark.slow
async def test_servers_started_at_once_share_one_adhoc_instance(repo: Path, cli_env: dict[str, str]) -> None:
    servers = 6
    answers: list[dict[str, Any]] = []

    async def one() -> None:
        async with Client(serve_params(repo, cli_env)) as client:
            answers.append(ok(await client.call_tool("query_instances", {})))

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            for _ in range(servers):
                tg.start_soon(one)

    assert len(answers) == servers
    assert {a["caller_instance_id"] for a in answers} == {"adhoc-a1"}
    settings = Settings.load(cli_env, cwd=repo)
    db = await open_database(settings.require_db_path())
    try:
        rows = await instances_store.list_dashboard(db, status=None)
        assert [(r.id, r.type, r.worktree_path, r.branch_name) for r in rows] == [
            ("adhoc-a1", "adhoc", str(repo), "main")
        ]
        recorded = await event_rows(db)
        assert len(recorded) == servers
        assert all(
            r["instance_id"] == "adhoc-a1" and r["tool_name"] == "query_instances" and r["success"] == 1
            for r in recorded
        )
    finally:
        await db.close()
    # The servers' event rows waited their turn in the database's append queue (store/append_queue.py),
    # in a file only its owner can read: a ticket each (fewer only if one found the queue's guard taken
    # for long, and went ahead out of turn).
    assert 1 <= tickets_taken(settings.require_db_path()) <= servers
    assert queue_path(settings.require_db_path()).stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
async def test_stdio_stdout_carries_only_the_protocol(repo: Path, cli_env: dict[str, str]) -> None:
    requests: list[dict[str, Any]] = [
        *HANDSHAKE,
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": "query_instances", "arguments": {}},
        },
    ]
    lines: list[dict[str, Any]] = []
    with anyio.fail_after(60):
        async with await anyio.open_process(
            [sys.executable, "-m", "codex_mcp", "serve"],
            cwd=repo,
            env=cli_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        ) as process:
            assert process.stdin is not None and process.stdout is not None and process.stderr is not None
            buffer = b""
            for request in requests:
                await process.stdin.send(json.dumps(request).encode() + b"\n")
                if "id" not in request:
                    continue
                # Read until the answer to this request arrives; every line must be JSON-RPC.
                while not any(m.get("id") == request["id"] for m in lines):
                    chunk = await process.stdout.receive()
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    for raw in complete:
                        if raw.strip():
                            message = json.loads(raw)
                            assert message.get("jsonrpc") == "2.0", raw
                            lines.append(message)
            await process.stdin.aclose()
            rest = b"".join([chunk async for chunk in process.stdout])
            stderr = b"".join([chunk async for chunk in process.stderr]).decode()
            await process.wait()
    for raw in (buffer + rest).split(b"\n"):
        if raw.strip():
            assert json.loads(raw).get("jsonrpc") == "2.0", raw
    answers = {m["id"]: m for m in lines if "id" in m}
    assert answers[1]["result"]["serverInfo"]["name"] == "codex"
    assert {t["name"] for t in answers[2]["result"]["tools"]} == EXPECTED_TOOLS
    called = answers[3]["result"]
    assert called.get("isError") is not True
    assert called["structuredContent"]["caller_instance_id"] == "adhoc-a1"
    assert "adhoc-a1" in stderr  # the log goes to stderr
    assert process.returncode == 0


# What a stdio server loads: Claude Code starts one per agent, so its start leaves out every command group
# but serve's, the diff and landing engine, lifecycle's chapters and each tool's module (a tool is built at
# its first call). Idle after the handshake, it builds its tools (serve.py, warmed_up), which load no
# chapter, and a first read, whose agents are all alive, loads no chapter either.
OTHER_COMMANDS = tuple(f"codex_mcp.cli.{m}" for m in ("actions", "care", "instances", "landing", "person"))
CHAPTERS = tuple(
    f"codex_mcp.lifecycle.{m}"
    for m in ("workspace", "spawn", "feedback", "terminate", "resume", "reconcile", "diff", "merge", "clean")
)
NEVER_SO_SOON = ("codex_mcp.git.supervision", "codex_mcp.github", "githubkit", *OTHER_COMMANDS, *CHAPTERS)
SHARED = {"codex_mcp.outcomes", "codex_mcp.tools.spec", "codex_mcp.lifecycle"}
TOOL_MODULES = set(MODULES.values())


@pytest.mark.parametrize("moment", ["start", "idle", "first read"])
def test_a_stdio_server_loads_only_what_it_serves(
    repo: Path, cli_env: dict[str, str], tmp_path: Path, moment: str
) -> None:
    loaded = tmp_path / "modules.txt"
    lines = [*HANDSHAKE, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    if moment == "first read":
        call = {"name": "query_instances", "arguments": {"status": "all"}}
        lines.append({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": call})
    server = subprocess.Popen(
        [sys.executable, "-c", MODULES_PROBE, str(loaded), "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=repo,
        env=cli_env,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    server.stdin.write("".join(json.dumps(line) + "\n" for line in lines))
    server.stdin.flush()
    answers = [json.loads(server.stdout.readline()) for _ in range(len(lines) - 1)]  # one is a notification
    if moment == "idle":
        time.sleep(1.0)  # the agent has not called anything yet
    stdout, stderr = server.communicate(timeout=120)  # stdin closed: the server ends
    assert server.returncode == 0, stderr
    by_id = {m["id"]: m for m in answers + [json.loads(x) for x in stdout.splitlines()] if "id" in m}
    assert {t["name"] for t in by_id[2]["result"]["tools"]} == EXPECTED_TOOLS  # it served
    modules = set(loaded.read_text(encoding="utf-8").split())
    assert {"codex_mcp.serve", "codex_mcp.cli.serve", "codex_mcp.git"} <= modules  # the probe saw it start
    assert sorted(m for m in modules if m.startswith(NEVER_SO_SOON)) == []
    if moment == "start":
        assert "codex_mcp.tools.instances" not in modules and "codex_mcp.store.relationships" not in modules
        # Recording (and the event store) waits for the first call, or the warm-up.
        assert "codex_mcp.recording" not in modules and "codex_mcp.store.events" not in modules
    if moment == "idle":
        assert modules >= SHARED | TOOL_MODULES
    if moment == "first read":
        read = by_id[3]["result"]
        assert not read.get("isError") and read["structuredContent"]["caller_instance_id"] == "adhoc-a1"
        assert {"codex_mcp.tools.instances", "codex_mcp.lifecycle.liveness"} <= modules


async def test_a_server_builds_its_tools_and_models_before_the_first_call(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warm-up registers every tool and builds every deferred model while the agent has called
    nothing; a call arriving in the middle of it is answered, and builds nothing twice."""
    from codex_mcp import serve
    from codex_mcp.outcomes import Outcome, QueryInstancesResult
    from codex_mcp.store.rows import Row

    def models() -> list[type[Any]]:
        found, pending = [], [Row, Outcome]
        while pending:
            subs = pending.pop().__subclasses__()
            found += subs
            pending += subs
        return found

    monkeypatch.setattr(serve, "WARM_UP_DELAY", 0)
    server = build_server(app)
    assert isinstance(server, LazyToolServer)
    added = count_registrations(server)
    async with Client(server) as client:
        async with serve.warmed_up(server):
            # Answered whether or not the warm-up has reached this tool yet.
            read = ok(await client.call_tool("query_instances", {}))
            with anyio.fail_after(30):
                while server.unregistered() or not all(m.__pydantic_complete__ for m in models()):
                    await anyio.sleep(0.01)
        assert app.caller is not None
        assert QueryInstancesResult.model_validate(read).caller_instance_id == app.caller.id
    assert sorted(added) == sorted(EXPECTED_TOOLS)  # each once
    assert len(models()) > 20


async def test_a_tool_the_warm_up_cannot_build_leaves_the_server_serving(
    app: App, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from codex_mcp import serve

    monkeypatch.setattr(serve, "WARM_UP_DELAY", 0)
    server = build_server(app)
    assert isinstance(server, LazyToolServer)
    register_tool = server.register_tool
    broken = ["list_events"]

    def failing(name: str) -> None:
        if name in broken:
            raise RuntimeError(f"cannot build {name}")
        register_tool(name)

    server.register_tool = failing  # type: ignore[method-assign]
    async with Client(server) as client, serve.warmed_up(server):
        with anyio.fail_after(30):
            while server.unregistered() != ["list_events"]:
                await anyio.sleep(0.01)
        assert "could not build the tool list_events" in caplog.text
        ok(await client.call_tool("query_instances", {}))  # the others were built, and serve
        assert (await client.call_tool("list_events", {})).is_error  # the first call tries again
        broken.clear()
        ok(await client.call_tool("list_events", {}))


@pytest.mark.slow
@pytest.mark.parametrize("instance", ["work-1-a1", "not-an-id"])
def test_serve_with_an_unusable_instance_fails_with_one_line(
    repo: Path, cli_env: dict[str, str], instance: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "codex_mcp", "serve", "--instance", instance],
        cwd=repo,
        env=cli_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert instance in lines[0] and lines[0].startswith("codex-mcp: error:")
    assert "Traceback" not in done.stderr
