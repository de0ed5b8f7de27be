"""The dashboard's routes: HTML pages, their JSON twins, the live stream and the terminal.

JSON is keyed by the database's column names, exactly as ``ls --all --json``, ``show --json`` and
``events --json`` print it. Actions are POSTs (the guard in auth.py checked Host, Origin and the
cookie before any of this runs); a form post answers with a redirect to the page to show next, a
JSON post with the result. ``read_only`` is enforced here, whatever the page offers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from codex_mcp import git, unrecorded
from codex_mcp.errors import (
    CodexError,
    ConfigError,
    DatabaseError,
    InputError,
    NotFoundError,
    PermissionDenied,
    StateError,
)
from codex_mcp.identity import person_root, require_agent
from codex_mcp.ids import InstanceType, validate_instance_id
from codex_mcp.lifecycle.merge import landed, merged_write
from codex_mcp.pulls import poll_pull_requests
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database, relationships
from codex_mcp.store import dashboard as dashboard_store
from codex_mcp.store import events as events_store
from codex_mcp.store import instances as instances_store
from codex_mcp.store import issues as issues_store
from codex_mcp.timeutil import parse_since
from codex_mcp.ui import supervise, terminal, views
from codex_mcp.ui.stream import Hub

if TYPE_CHECKING:
    from pydantic import BaseModel

    from codex_mcp.lifecycle import Lifecycle
    from codex_mcp.outcomes import (
        CreatePullRequestResult,
        FeedbackType,
        ForkResult,
        MergeResult,
        MergeStrategy,
        Priority,
        SendFeedbackResult,
        SpawnReviewResult,
        SyncResult,
        TerminateResult,
    )
    from codex_mcp.recording import ToolCall
    from codex_mcp.store.instances import NewInstance

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
READ_ONLY_MESSAGE = "this dashboard runs with --read-only: it shows instances but changes nothing"


ModelT = TypeVar("ModelT", bound="BaseModel")


@dataclass
class Ui:
    """What every route needs: settings, the open database, the stream, the mode."""

    settings: Settings
    db: Database
    hub: Hub
    read_only: bool
    templates: Environment

    @property
    def lifecycle(self) -> Lifecycle:
        from codex_mcp.lifecycle import Lifecycle

        return Lifecycle(self.settings, self.db)

    async def as_person(
        self, name: str, arguments: dict[str, Any], body: Callable[[ToolCall], Awaitable[ModelT]]
    ) -> ModelT:
        """Run ``body`` as the person's action ``name``, recorded like a tool call (via "ui")."""
        from codex_mcp.app import App
        from codex_mcp.identity import person_caller
        from codex_mcp.recording import run_person_action

        try:
            person = await person_caller(self.settings, self.db)
        except DatabaseError as exc:
            # Refused before it did anything, like an action refused by its own check: counted, so
            # the pages say that actions are going unrecorded until the database takes rows again.
            unrecorded.note(self.db, None, name, exc, refused=True)
            raise
        app = App(settings=self.settings, db=self.db)
        return await run_person_action(app, person, name, arguments, body, via="ui")


def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["hunks"] = views.hunks
    return env


def _ui(request: Request | WebSocket) -> Ui:
    return cast(Ui, request.app.state.ui)


async def _page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    ui = _ui(request)
    waiting = await dashboard_store.waiting_count(ui.db)
    html = ui.templates.get_template(template).render(
        read_only=ui.read_only,
        waiting=waiting,
        path=request.url.path,
        unrecorded=unrecorded.current(ui.db),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def _with_unrecorded_header(ui: Ui, response: Response) -> Response:
    """An action's JSON answer says when this dashboard holds actions it could not record (the
    page says it in a banner): ``X-Codex-Not-Recorded`` counts them."""
    gap = unrecorded.current(ui.db)
    if gap is not None:
        response.headers["x-codex-not-recorded"] = str(gap.count)
    return response


# A ConfigError (GitHub not set up, no repository) is the server's setup, not the request: 503.
_STATUS = {
    NotFoundError: 404,
    InputError: 400,
    StateError: 409,
    PermissionDenied: 403,
    ConfigError: 503,
}


def _error_status(exc: CodexError) -> int:
    for kind, status in _STATUS.items():
        if isinstance(exc, kind):
            return status
    return 502


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get(
        "content-type", ""
    ) or "application/json" in request.headers.get("accept", "")


def guarded(
    handler: Callable[[Request], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """Our errors as answers: JSON for programs, a page for people; never a traceback."""

    async def run(request: Request) -> Response:
        try:
            return await handler(request)
        except CodexError as exc:
            status = _error_status(exc)
            if request.url.path.startswith("/api/") and not (
                request.method == "POST" and not _wants_json(request)
            ):
                return _with_unrecorded_header(
                    _ui(request), JSONResponse({"error": str(exc)}, status_code=status)
                )
            instance_id = request.path_params.get("instance_id")
            back = (
                f"/instances/{instance_id}"
                if isinstance(instance_id, str) and request.method == "POST"
                else None
            )
            return await _page(request, "error.html", status=status, message=str(exc), back=back)

    return run


# ------------------------------------------------------------------------------------------ JSON
@guarded
async def api_instances(request: Request) -> Response:
    ui = _ui(request)
    # As `ls --all --json`: agents, not the person's own identity (GET /api/instances/{id} has it).
    rows = await instances_store.list_dashboard(ui.db, status=None, person_root=person_root(ui.settings))
    return JSONResponse([r.model_dump(mode="json") for r in rows])


async def _show(db: Database, instance_id: str) -> dict[str, Any]:
    validate_instance_id(instance_id)
    inst = await instances_store.require(db, instance_id)
    root, edges = await relationships.tree_of(db, instance_id)
    return {
        "tree": {"root": root, "edges": [e.model_dump(mode="json") for e in edges]},
        "instance": inst.model_dump(mode="json"),
        "parents": [p.model_dump(mode="json") for p in await relationships.parents_of(db, instance_id)],
        "children": [c.model_dump(mode="json") for c in await relationships.children_of(db, instance_id)],
        "events": [
            e.model_dump(mode="json")
            for e in await events_store.list_recent(db, instance_id=instance_id, limit=20)
        ],
    }


@guarded
async def api_instance(request: Request) -> Response:
    return JSONResponse(await _show(_ui(request).db, request.path_params["instance_id"]))


@guarded
async def api_diff(request: Request) -> Response:
    """The instance's work against its base, uncommitted and untracked changes included (`diff --json`)."""
    ui = _ui(request)
    instance_id = request.path_params["instance_id"]
    validate_instance_id(instance_id)
    instance = await instances_store.require(ui.db, instance_id)
    diff = await ui.lifecycle.diff(instance, request.query_params.get("base") or None)
    return JSONResponse(diff.model_dump(mode="json"))


@guarded
async def api_events(request: Request) -> Response:
    ui = _ui(request)
    query = request.query_params
    instance_id = query.get("instance_id") or None
    if instance_id is not None:
        validate_instance_id(instance_id)
    since = parse_since(query["since"]) if query.get("since") else None
    try:
        limit = int(query.get("limit", "100"))
    except ValueError as exc:
        raise InputError(f"limit must be a whole number, not {query.get('limit')!r}") from exc
    rows = await events_store.list_recent(
        ui.db, since=since, instance_id=instance_id, limit=max(1, min(limit, 100_000))
    )
    return JSONResponse([r.model_dump(mode="json") for r in rows])


@guarded
async def api_issues(request: Request) -> Response:
    rows = await issues_store.search(_ui(request).db, limit=10_000)
    return JSONResponse([r.model_dump(mode="json") for r in rows])


async def api_stream(request: Request) -> Response:
    return StreamingResponse(
        _ui(request).hub.subscribe(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


# --------------------------------------------------------------------------------------- actions
def _refuse_read_only(ui: Ui) -> None:
    if ui.read_only:
        raise PermissionDenied(READ_ONLY_MESSAGE)


async def _form(request: Request) -> dict[str, str]:
    if "application/json" in request.headers.get("content-type", ""):
        try:
            data = await request.json()
        except ValueError as exc:
            raise InputError("the request body is not valid JSON") from exc
        if not isinstance(data, dict):
            raise InputError("send a JSON object")
        return {k: "" if v is None else str(v) for k, v in data.items()}
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@guarded
async def start_instance(request: Request) -> Response:
    ui = _ui(request)
    _refuse_read_only(ui)
    form = await _form(request)
    issue_text = form.get("issue", "").strip()
    try:
        issue = int(issue_text) if issue_text else None
    except ValueError as exc:
        raise InputError(f"issue must be an issue number, not {issue_text!r}") from exc
    if issue is not None and issue < 1:
        raise InputError(f"issue must be a positive number, not {issue}")
    base = form.get("base", "").strip() or None
    prompt = form.get("prompt", "").strip() or None
    kind: InstanceType = "work" if issue is not None else "adhoc"

    async def body(call: ToolCall) -> NewInstance:
        prepared = await ui.lifecycle.prepare_work(issue_number=issue, base=base, prompt=prompt, type=kind)
        call.stage(prepared.write, compensation=prepared.compensate)
        return prepared.new

    arguments = {"issue": issue, "base": base, "prompt": prompt}
    new = await ui.as_person("start", arguments, body)
    instance = await instances_store.require(ui.db, new.id)
    ui.hub.nudge()
    if _wants_json(request):
        return _with_unrecorded_header(ui, JSONResponse(instance.model_dump(mode="json"), status_code=201))
    return RedirectResponse(f"/instances/{instance.id}", status_code=303)


@guarded
async def instance_action(request: Request) -> Response:
    ui = _ui(request)
    _refuse_read_only(ui)
    instance_id = request.path_params["instance_id"]
    action = request.path_params["action"]
    validate_instance_id(instance_id)
    if action not in ACTIONS:
        raise NotFoundError(f"no action {action!r}; this dashboard offers: {', '.join(sorted(ACTIONS))}")
    # The person's own identity is refused (its page offers none of these): see identity.require_agent.
    target = await require_agent(ui.settings, ui.db, instance_id)
    result = await ACTIONS[action](ui, target, await _form(request))
    ui.hub.nudge()
    if _wants_json(request):
        return _with_unrecorded_header(ui, JSONResponse(result))
    return RedirectResponse(result.get("open") or f"/instances/{instance_id}", status_code=303)


def _arguments(target: instances_store.Instance, **fields: Any) -> dict[str, Any]:
    return {"instance_id": target.id, **fields}


async def _kill(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    async def body(call: ToolCall) -> TerminateResult:
        # Row first, then the session and the cleanup (terminate_now): a failed write destroys nothing.
        return await ui.lifecycle.terminate_now(target)

    outcome = await ui.as_person("kill", _arguments(target), body)
    return outcome.model_dump(mode="json")


async def _resume(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    async def body(call: ToolCall) -> instances_store.Instance:
        await ui.lifecycle.reconcile_quietly()
        return await ui.lifecycle.resume(await instances_store.require(ui.db, target.id))

    instance = await ui.as_person("resume", _arguments(target), body)
    return instance.model_dump(mode="json")


async def _current(ui: Ui, target: instances_store.Instance) -> instances_store.Instance:
    # The row as it is now: the page that posted may be older than the instance's last change.
    return await instances_store.require(ui.db, target.id)


async def _review(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    """A reviewer of the work instance's work, asked for by a person (as spawn_review_instance does)."""
    reviewer_prompt = form.get("reviewer_prompt", "").strip() or None

    async def body(call: ToolCall) -> SpawnReviewResult:
        work = await _current(ui, target)
        prepared = await ui.lifecycle.prepare_review(work, reviewer_prompt, progress=None)
        call.stage(prepared.write, compensation=prepared.compensate)
        call.relate(work.id, prepared.new.id, "spawned_review")
        return prepared.review_result()

    result = await ui.as_person("review", _arguments(target, reviewer_prompt=reviewer_prompt), body)
    return {**result.model_dump(mode="json"), "open": f"/instances/{result.review_instance_id}"}


async def _fork(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    """Another agent on a snapshot of this one's worktree (as fork_instance does)."""
    prompt = form.get("prompt", "").strip() or None

    async def body(call: ToolCall) -> ForkResult:
        parent = await _current(ui, target)
        prepared = await ui.lifecycle.prepare_fork(parent, prompt, progress=None)
        call.stage(prepared.write, compensation=prepared.compensate)
        call.relate(parent.id, prepared.new.id, "created_fork")
        return prepared.fork_result()

    result = await ui.as_person("fork", _arguments(target, prompt=prompt), body)
    return {**result.model_dump(mode="json"), "open": f"/instances/{result.instance_id}"}


def _checked(form: dict[str, str], name: str) -> bool:
    return form.get(name, "").strip().lower() in ("1", "true", "on", "yes")


async def _pull_request(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    """Push the instance's branch and open its pull request (the code create_pull_request runs)."""
    from codex_mcp.pulls import open_pull_request

    title = form.get("title", "").strip()
    description = form.get("description", "")
    base = form.get("base", "").strip() or None
    draft = _checked(form, "draft")

    async def body(call: ToolCall) -> CreatePullRequestResult:
        opened = await open_pull_request(
            ui.settings,
            ui.db,
            await _current(ui, target),
            title=title,
            description=description,
            base_branch=base,
            draft=draft,
        )
        call.stage(opened.record, done=opened.done)
        call.notes["base_branch"] = opened.base_branch
        return opened.result

    arguments = _arguments(target, title=title, description=description, base_branch=base, draft=draft)
    result = await ui.as_person("pull_request", arguments, body)
    return result.model_dump(mode="json")


STRATEGIES = ("merge", "squash", "rebase")


async def _merge(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    """Land the instance's branch (as `merge ID [--into] [--strategy] [--to-agent]`); refusals change nothing."""
    into = form.get("into", "").strip() or None
    strategy = form.get("strategy", "").strip() or "merge"
    if strategy not in STRATEGIES:
        raise InputError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    to_agent = _checked(form, "to_agent")

    async def body(call: ToolCall) -> MergeResult:
        instance = await _current(ui, target)
        result = await ui.lifecycle.merge(
            instance,
            into=into,
            strategy=cast("MergeStrategy", strategy),
            to_agent=to_agent,
            sender=f"a person ({call.caller.id})",
        )
        if (write := merged_write(instance.id, result)) is not None:
            call.stage(write, done=landed(result))
        return result

    arguments = _arguments(target, into=into, strategy=strategy, to_agent=to_agent)
    result = await ui.as_person("merge", arguments, body)
    return result.model_dump(mode="json")


FEEDBACK_TYPES = ("needs_work", "suggestions", "clarification", "approved")


async def _feedback(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    """A person's review feedback: the file under .codex/feedback/ and the notice in the agent's pane."""
    text = form.get("feedback", "")
    kind = form.get("feedback_type", "").strip() or "needs_work"
    if kind not in FEEDBACK_TYPES:
        raise InputError(f"feedback_type must be one of {', '.join(FEEDBACK_TYPES)}, not {kind!r}")
    priority = form.get("priority", "").strip() or "medium"
    if priority not in ("low", "medium", "high"):
        raise InputError(f"priority must be low, medium or high, not {priority!r}")

    async def body(call: ToolCall) -> SendFeedbackResult:
        # The CLI's `feedback`: refuses review, terminated and foreign instances, in words.
        sent = await ui.lifecycle.person_feedback(
            target.id, _login(), text, cast("FeedbackType", kind), cast("Priority", priority)
        )
        call.notes["feedback_file"] = str(sent.file)
        return sent.result

    arguments = _arguments(target, feedback=text, feedback_type=kind, priority=priority)
    result = await ui.as_person("feedback", arguments, body)
    return result.model_dump(mode="json")


def _login() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name (a container without a passwd entry)
        return "?"


async def _open(ui: Ui, target: instances_store.Instance, form: dict[str, str]) -> dict[str, Any]:
    """Open the worktree with editor.command (as `codex-mcp open`), started detached: the dashboard has
    no terminal, so a terminal editor is refused with what to do instead."""
    from codex_mcp import editor
    from codex_mcp.outcomes import OpenResult

    async def body(call: ToolCall) -> OpenResult:
        instance = await _current(ui, target)
        path = Path(instance.worktree_path)
        if not path.is_dir():
            raise StateError(
                f"the worktree of {instance.id} ({path}) is gone (removed by clean or the cleanup policy); "
                "there is nothing to open"
            )
        template = await ui.lifecycle.workspace.user_config.get(editor.KEY) or editor.DEFAULT_COMMAND
        launch = editor.plan(template, path, wait=False, interactive=False)
        if Path(launch.argv[0]).name in editor.TERMINAL_EDITORS:
            raise ConfigError(
                f"{editor.KEY} is {template!r}, an editor that draws in a terminal, and the dashboard has "
                f"none: run `codex-mcp open {instance.id}` in a terminal, or set a windowed editor "
                f'(codex-mcp config set {editor.KEY} "code {{path}}")'
            )
        process = await anyio.to_thread.run_sync(editor.start, launch, path)
        return OpenResult(
            instance_id=instance.id,
            worktree_path=str(path),
            command=launch.argv,
            foreground=False,
            pid=process.pid,
        )

    result = await ui.as_person("open", _arguments(target), body)
    return result.model_dump(mode="json")


# The route table of POST /api/instances/{id}/{action}: one entry each, a handler getting the posted
# fields (JSON or form); _instance_details.html offers a button (or a small form) per entry. A
# handler may answer "open": the page to show next (a new instance), else the instance's own page.
Action = Callable[[Ui, instances_store.Instance, dict[str, str]], Awaitable[dict[str, Any]]]
ACTIONS: dict[str, Action] = {
    "kill": _kill,
    "resume": _resume,
    "review": _review,
    "fork": _fork,
    "pull-request": _pull_request,
    "merge": _merge,
    "feedback": _feedback,
    "open": _open,
}


@guarded
async def sync_issues(request: Request) -> Response:
    """Refresh the issue cache from GitHub (the CLI's `issues sync`), as the person's action."""
    from codex_mcp.issue_cache import sync

    ui = _ui(request)
    _refuse_read_only(ui)

    async def body(call: ToolCall) -> SyncResult:
        return await sync(ui.settings, ui.db)

    result = await ui.as_person("issues_sync", {}, body)
    ui.hub.nudge()
    if _wants_json(request):
        return _with_unrecorded_header(ui, JSONResponse(result.model_dump(mode="json")))
    return RedirectResponse("/issues", status_code=303)


async def terminal_socket(websocket: WebSocket) -> None:
    ui = _ui(websocket)
    instance_id = websocket.path_params["instance_id"]
    wants_write = websocket.query_params.get("mode") == "write"
    try:
        validate_instance_id(instance_id)
        instance = await instances_store.require(ui.db, instance_id)
        if instance.status != "running":
            raise StateError(f"{instance_id} is terminated; resume it to watch its terminal")
        if instance.id in await instances_store.person_ids(ui.db, person_root(ui.settings)):
            # Its session (if any) is the terminal the person ran codex-mcp in, not an agent's.
            raise StateError(f"{instance_id} is you (the main checkout): there is no agent terminal to watch")
        if wants_write and ui.read_only:
            raise PermissionDenied(READ_ONLY_MESSAGE)
    except CodexError as exc:
        await websocket.close(code=4403 if isinstance(exc, PermissionDenied) else 4404, reason=str(exc)[:120])
        return
    await websocket.accept()
    try:
        await terminal.bridge(websocket, instance, writable=wants_write)
    except CodexError as exc:
        with contextlib.suppress(Exception):
            await websocket.close(code=4409, reason=str(exc)[:120])


# ----------------------------------------------------------------------------------------- pages
@guarded
async def index(request: Request) -> Response:
    ui = _ui(request)
    view = request.query_params.get("view", "active")
    if view not in views.VIEWS:
        raise InputError(f"view must be one of {', '.join(views.VIEWS)}, not {view!r}")
    limit_text = request.query_params.get("limit") or str(views.PAGE)
    try:
        limit = int(limit_text)
    except ValueError as exc:
        raise InputError(f"limit must be a whole number of rows, not {limit_text!r}") from exc
    limit = max(1, min(limit, 100_000))
    root = person_root(ui.settings)
    listing = await views.instance_rows(ui.db, view, person_root=root, limit=limit)
    you = sorted(await instances_store.person_ids(ui.db, root))
    cap = await ui.lifecycle.workspace.user_config.get("reviews.max_iterations") or "3"
    template = "_instances.html" if request.query_params.get("fragment") else "index.html"
    return await _page(
        request,
        template,
        listing=listing,
        rows=listing.rows,
        view=view,
        views=views.VIEWS,
        cap=cap,
        page=views.PAGE,
        you=you,
    )


# The parts of an instance's page that refresh on their own (``?fragment=``), and their templates.
FRAGMENTS = {
    "1": "_instance_details.html",
    "details": "_instance_details.html",
    "feedback": "_feedback.html",
    "diff": "_diff.html",
    "merge": "_merge_check.html",
}


@guarded
async def instance_page(request: Request) -> Response:
    ui = _ui(request)
    fragment = request.query_params.get("fragment")
    if fragment is not None and fragment not in FRAGMENTS:
        raise InputError(f"fragment must be one of {', '.join(FRAGMENTS)}, not {fragment!r}")
    data = await _show(ui.db, request.path_params["instance_id"])
    inst = data["instance"]
    activity = (await dashboard_store.activities(ui.db)).get(inst["id"], dashboard_store.Activity())
    row = await instances_store.require(ui.db, inst["id"])
    # The person's own identity: its page lists what they did; it has no agent, terminal or work to land.
    you = row.id in await instances_store.person_ids(ui.db, person_root(ui.settings))
    context: dict[str, Any] = {
        "show": data,
        "inst": inst,
        "activity": activity,
        "actions": [] if you else sorted(ACTIONS),
        "you": you,
    }
    if fragment in (None, "feedback"):
        context["feedback"] = await anyio.to_thread.run_sync(views.feedback_thread, Path(row.worktree_path))
    if fragment in (None, "diff") and not you:
        context["diff"], context["diff_error"] = await _diff_or_words(ui, row)
    if fragment in (None, "merge") and row.type != "review" and not you:
        into = request.query_params.get("into") or None
        context["merge"] = await supervise.merge_preview(ui.lifecycle.main_root, row, into)
    template = FRAGMENTS[fragment] if fragment is not None else "instance.html"
    return await _page(request, template, **context)


async def _diff_or_words(ui: Ui, row: instances_store.Instance) -> tuple[Any, str | None]:
    try:
        return await ui.lifecycle.diff(row), None
    except CodexError as exc:
        return None, str(exc)


@guarded
async def start_page(request: Request) -> Response:
    ui = _ui(request)
    issues = await issues_store.search(ui.db, state="open", limit=1000)
    branches: list[str] = []
    current: str | None = None
    if ui.settings.repo is not None:
        root = ui.lifecycle.main_root
        done = await git.run(root, "for-each-ref", "--format=%(refname:short)", "refs/heads/", check=False)
        branches = [b for b in done.stdout.splitlines() if b and not b.startswith("codex/")]
        current = await git.head_branch(ui.settings.repo.toplevel)
    return await _page(request, "start.html", issues=issues, branches=branches, current=current)


@guarded
async def issues_page(request: Request) -> Response:
    ui = _ui(request)
    issues = await issues_store.search(ui.db, limit=10_000)
    working: dict[int, list[Any]] = {}
    for row in await instances_store.list_dashboard_summaries(ui.db, status=None):
        if row.issue_number is not None:
            working.setdefault(row.issue_number, []).append(row)
    return await _page(request, "issues.html", issues=issues, working=working)


def build_app(
    settings: Settings, *, read_only: bool, db_path: Path | None = None, poll: float = 0.25
) -> Starlette:
    """The ASGI app (without the guard; ``serve`` wraps it). The database opens with the server."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await open_database(db_path or settings.require_db_path())
        try:
            holder: dict[str, Ui] = {}

            async def reconcile() -> None:
                await holder["ui"].lifecycle.reconcile_quietly()

            hub = Hub(db, interval=poll, reconcile=reconcile)
            ui = Ui(settings=settings, db=db, hub=hub, read_only=read_only, templates=_templates())
            holder["ui"] = ui
            app.state.ui = ui
            async with anyio.create_task_group() as tg:
                tg.start_soon(hub.run)
                # Pull requests of running instances: merged or closed on GitHub shows here (a quiet
                # no-op while GitHub is not configured).
                tg.start_soon(partial(poll_pull_requests, settings, db))
                yield
                tg.cancel_scope.cancel()
        finally:
            await db.close()

    routes = [
        Route("/", index),
        Route("/start", start_page),
        Route("/issues", issues_page),
        Route("/instances/{instance_id}", instance_page),
        Route("/api/instances", api_instances, methods=["GET"]),
        Route("/api/instances", start_instance, methods=["POST"]),
        Route("/api/instances/{instance_id}", api_instance),
        Route("/api/instances/{instance_id}/diff", api_diff, methods=["GET"]),
        Route("/api/instances/{instance_id}/{action}", instance_action, methods=["POST"]),
        Route("/api/events", api_events),
        Route("/api/issues", api_issues),
        Route("/api/issues/sync", sync_issues, methods=["POST"]),
        Route("/api/stream", api_stream),
        WebSocketRoute("/api/instances/{instance_id}/terminal", terminal_socket),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
