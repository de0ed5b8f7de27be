"""What a tool is: the ``@tool`` decorator, the annotation presets, and registration on a server.

A tool is written as ``async def name(call: ToolCall, <params>) -> OutputModel`` and decorated with
:func:`tool`, which

* checks at import that the tool is complete (async, first parameter ``ToolCall``, a pydantic output
  model, a docstring, a description on every parameter, a title and all four annotation hints);
* publishes the signature MCP sees (``call`` replaced by the SDK's ``Context``);
* runs each call through :func:`codex_mcp.recording.run_recorded`, which leaves its ``mcp_events`` row;
* answers with the result's JSON dump, made once (:func:`answer`).

This is the MCP SDK's side of recording, apart from :mod:`codex_mcp.recording` so that a person's
action from the command line (recorded the same way, without MCP) does not import the SDK: its types
alone cost the CLI most of a second.
"""

from __future__ import annotations

import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic_core
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, ContentBlock, TextContent, ToolAnnotations
from mcp_types import Tool as MCPTool
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from codex_mcp.recording import ToolCall, run_recorded

if TYPE_CHECKING:
    from codex_mcp.app import App

log = logging.getLogger(__name__)

OutputT = TypeVar("OutputT", bound=BaseModel)

# Annotation presets. Hints are what a client shows a person before a call; each preset says why.
# Queries read the store only (the event row they leave is bookkeeping, not a change to the world).
READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False
)
# Creating instances or writing feedback adds things (a new instance each call) and removes nothing;
# everything happens on this machine.
ADDITIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
)
# Terminating kills an agent's session (and, per the cleanup policy, may remove a clean worktree).
DESTRUCTIVE = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False
)


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    annotations: ToolAnnotations
    handler: Callable[..., Awaitable[Any]]
    output_model: type[BaseModel]


def _check_tool(
    fn: Callable[..., Any], title: str, annotations: ToolAnnotations
) -> tuple[inspect.Signature, type[BaseModel]]:
    where = f"{fn.__module__}.{fn.__qualname__}"
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"@tool: {where} must be an `async def` function")
    if not (fn.__doc__ or "").strip():
        raise TypeError(f"@tool: {where} needs a docstring written for the model")
    if not title.strip():
        raise TypeError(f"@tool: {where} needs a title")
    missing = [
        h
        for h in ("read_only_hint", "destructive_hint", "idempotent_hint", "open_world_hint")
        if getattr(annotations, h) is None
    ]
    if missing:
        raise TypeError(f"@tool: {where} must set every annotation hint; missing {missing}")
    hints = typing.get_type_hints(fn, include_extras=True)
    sig = inspect.signature(fn)
    params = list(sig.parameters.values())
    if not params or hints.get(params[0].name) is not ToolCall:
        raise TypeError(f"@tool: {where} must take `call: ToolCall` as its first parameter")
    for p in params[1:]:
        hint = hints.get(p.name)
        info = [m for m in getattr(hint, "__metadata__", ()) if isinstance(m, FieldInfo)]
        if not info or not (info[0].description or "").strip():
            raise TypeError(
                f"@tool: parameter {p.name!r} of {where} needs Annotated[..., Field(description=...)]"
            )
        if p.kind not in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY):
            raise TypeError(f"@tool: parameter {p.name!r} of {where} must be a plain named parameter")
    output = hints.get("return")
    if not (inspect.isclass(output) and issubclass(output, BaseModel)):
        raise TypeError(f"@tool: {where} must return a pydantic model (its output schema)")
    published = [p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY) for p in params[1:]]
    published.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    return sig.replace(parameters=published, return_annotation=output), output


def tool(
    *, title: str, annotations: ToolAnnotations
) -> Callable[[Callable[..., Awaitable[OutputT]]], ToolSpec]:
    """Make ``fn`` a recorded MCP tool; register the result with :func:`register`."""

    def decorate(fn: Callable[..., Awaitable[OutputT]]) -> ToolSpec:
        signature, output_model = _check_tool(fn, title, annotations)
        name = fn.__name__

        read_only = bool(annotations.read_only_hint)

        async def handler(ctx: Context[Any, Any], **arguments: Any) -> CallToolResult:
            app: App = ctx.request_context.lifespan_context
            result, note = await run_recorded(
                app, ctx, name, fn, arguments, output_model, read_only=read_only
            )
            return answer(result, note)

        handler.__name__ = name
        handler.__qualname__ = fn.__qualname__
        handler.__module__ = fn.__module__
        handler.__doc__ = inspect.cleandoc(fn.__doc__ or "")
        handler.__signature__ = signature  # type: ignore[attr-defined]
        handler.__annotations__ = {
            **{p.name: p.annotation for p in signature.parameters.values()},
            "return": output_model,
        }
        return ToolSpec(
            name=name, title=title, annotations=annotations, handler=handler, output_model=output_model
        )

    return decorate


def answer(result: BaseModel, note: str | None = None) -> CallToolResult:
    """A tool's answer: its result as structured content, and the same JSON as text (then ``note``, a
    second text, when recording has something to add: an action done but not recorded).

    The dump is made once and the text is its compact JSON. The SDK, handed the model, would validate
    it again, dump it, and write the text separately with two-space indents: 40 % more characters for
    the agent to read (its client shows it the text), and on a 50-event ``list_events`` more time than
    the query.

    A field whose value is null is left out: the agent reads only what is known. Most fields of a row
    are null most of the time (no pull request yet, not merged, no activity reported): ten
    ``query_instances`` rows take 4.6 KB instead of 11 KB, the tokens an agent pays to read them and the
    time a server takes to write them (figure 6). A left-out field still means null: every nullable
    field of a published output schema has the default null and is not required
    (``tests/test_published_tools.py`` checks it), so the answer validates against the schema. Free-form
    JSON inside a field (an event's metadata) is answered as it was recorded, nulls included.
    """
    structured = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    content: list[ContentBlock] = [TextContent(type="text", text=pydantic_core.to_json(structured).decode())]
    if note is not None:
        content.append(TextContent(type="text", text=note))
    return CallToolResult(content=content, structured_content=structured)


def register(server: Any, *specs: ToolSpec, published: Mapping[str, MCPTool] | None = None) -> None:
    """Register each tool on ``server``.

    With its ``published`` listing entry (``published_tools.json``), a tool's output schema is taken
    from there instead of being derived: the SDK deriving it (an output type adapter and its JSON
    schema) is two thirds of building a tool, and a server builds each tool at the first call of it
    (figure 6: 32 servers whose first calls arrive together). The entry is trusted only while what
    the SDK does build -- the input schema and the description -- matches it; otherwise the file is
    stale, and the tool is built the SDK's way. ``tests/test_server.py`` checks the file against the
    derived listing.

    Either way the SDK does not validate each answer against the output model again: ours is always
    the dump of an instance of that model (:func:`answer`, after ``recording`` checked the type). The
    schema stays published (clients validate).
    """
    for spec in specs:
        entry = published.get(spec.name) if published is not None else None
        if entry is not None and entry.output_schema is not None:
            server.add_tool(spec.handler, **_listed(spec), structured_output=False)
            built = _registered(server, spec.name)
            if (
                built is not None
                and built.parameters == entry.input_schema
                and built.description == entry.description
            ):
                built.fn_metadata.output_schema = entry.output_schema
                continue
            if built is not None:  # (None: the SDK's tool manager moved; nothing to say of the file)
                log.warning(
                    "the published listing of %s is stale; its schemas are derived instead", spec.name
                )
            server.remove_tool(spec.name)
        server.add_tool(spec.handler, **_listed(spec), structured_output=True)
        _trust_structured_content(server, spec.name)


def _listed(spec: ToolSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "title": spec.title,
        "annotations": spec.annotations.model_copy(update={"title": spec.title}),
    }


def _registered(server: Any, name: str) -> Any:
    """The SDK's record of a registered tool, reached through its tool manager (a private attribute:
    should it move, None, and tools are built the SDK's way)."""
    get_tool = getattr(getattr(server, "_tool_manager", None), "get_tool", None)
    return get_tool(name) if get_tool is not None else None


def _trust_structured_content(server: Any, name: str) -> None:
    """Keep the SDK from checking each answer's structured content against the output model: a second
    walk of the whole answer, which cannot fail (see :func:`register`). ``FuncMetadata`` reads
    ``output_model`` at each call and validates only when it is set; should the tool not be reachable,
    the SDK's check simply stays.
    """
    metadata = getattr(_registered(server, name), "fn_metadata", None)
    if metadata is not None and metadata.output_schema is not None:
        metadata.output_model = None
