"""``codex-mcp hook EVENT``: a Claude Code hook recording what the agent is doing.

Claude Code runs it for each hook event (EVENT is its own event name, the hook JSON comes on stdin)
beside the agent's turn, so it is fast and silent: the cheap part of the standard library only (not
json, re or datetime; the notify machinery loads only when needed; ``entry`` leaves through
``os._exit``), exit status 0 whatever happens, never a byte on stdout or stderr (a failing hook shows
"hook failed" in the agent's screen). Failures go to one line in ``hook.log``
beside the database (bounded), else in ``$XDG_STATE_HOME/codex-mcp/``.

Which instance: ``CODEX_MCP_INSTANCE`` (every spawned agent has it), else the running instance whose
worktree holds the working folder. Which database: ``CODEX_MCP_DB``, else
``<git common dir>/codex-mcp/codex.db`` found by reading ``.git`` (no git process: too slow here).

Events: ``UserPromptSubmit``, ``PreToolUse``, ``PostToolUse`` -> working (PostToolUse too: after a
permission dialog is answered, the tool runs and the model goes on with no other event until the next
tool or the end of the turn); ``PermissionRequest`` -> waiting ("permission: <tool>"); ``Notification``
-> waiting with its message, except the idle reminder (see ``_notification``); ``Stop`` -> idle with the
last answer, unless background tasks are still running (another turn starts by itself: working);
``SessionEnd`` -> the detail notes it, the status is reconcile's business. Anything else is ignored.

On a change to waiting, or from working to idle, ``notify.command`` (user_config) is started detached.
"""

from __future__ import annotations

import os
import sys
import time

from codex_mcp.store import activity as store

BUSY_TIMEOUT = 1.5  # seconds: the hook is async, but must not pile up behind a long writer
LOG_NAME = "hook.log"
LOG_MAX_BYTES = 256 * 1024  # then it is moved to hook.log.1 (one generation kept)
DETAIL_MAX = 300
NOTIFY_PLACEHOLDERS = ("instance_id", "activity", "message")  # as userconfig checks them

# Notification types (Claude Code 2.1) that mean a person must act. Others (auth_success, agent_completed,
# push_notification, computer_use_*, ...) say nothing about waiting and are ignored.
WAITING_NOTIFICATIONS = frozenset(
    {
        "permission_prompt",
        "elicitation_dialog",
        "elicitation_url_dialog",
        "agent_needs_input",
        "worker_permission_prompt",
    }
)
IDLE_NOTIFICATION = "idle_prompt"
IDLE_MESSAGE = "waiting for your input"  # "Claude is waiting for your input", when no type is given
WORKING_EVENTS = frozenset({"UserPromptSubmit", "PreToolUse", "PostToolUse"})
HANDLED_EVENTS = WORKING_EVENTS | {"PermissionRequest", "Notification", "Stop", "SessionEnd"}
Payload = dict[str, object]
KEEP = "(keep the detail recorded)"  # a detail that leaves the recorded one as it is


class _Log:
    """One line per failure, appended to a file: never stdout or stderr (the agent's screen)."""

    def __init__(self) -> None:
        self.folder: str | None = None
        self.context = "-"

    def write(self, message: str) -> None:
        try:
            folder = self.folder or _state_folder()
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, LOG_NAME)
            try:
                if os.path.getsize(path) > LOG_MAX_BYTES:
                    os.replace(path, path + ".1")
            except OSError:
                pass
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
            line = " ".join(f"{stamp} {self.context}: {message}".split())  # one line, whatever it holds
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line[:2000] + "\n").encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except Exception:  # noqa: S110 - nowhere left to report to; the agent must not see it
            pass


def _state_folder() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "codex-mcp")


def main(argv: list[str]) -> int:
    """Record one hook event; always 0."""
    log = _Log()
    try:
        _run(argv, log)
    except BaseException as exc:  # even KeyboardInterrupt/SystemExit: the agent must never see a failure
        log.write(f"{type(exc).__name__}: {exc}")
    return 0


def _run(argv: list[str], log: _Log) -> None:
    order = _started_at()
    event = argv[0] if argv else ""
    log.context = event or "(no event)"
    raw = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read()
    if event not in HANDLED_EVENTS:
        return  # not ours to interpret (SessionStart, SubagentStop, ...): quietly nothing
    cwd = os.getcwd()
    db_path = _database(cwd)
    if db_path is None:
        log.write(f"no database: set CODEX_MCP_DB, or run inside a git repository ({cwd})")
        return
    db_folder = os.path.dirname(db_path)
    if os.path.isdir(db_folder):
        log.folder = db_folder
    payload = {} if event in WORKING_EVENTS else _payload(raw, log)
    report = _report(event, payload)
    if report is None:
        return
    activity, detail = report
    keep_detail = detail is KEEP
    try:
        conn = store.connect(db_path, busy_timeout=BUSY_TIMEOUT)
    except store.Error as exc:
        log.write(f"cannot open the database {db_path}: {exc}")
        return
    try:
        instance_id = (os.environ.get("CODEX_MCP_INSTANCE") or "").strip()
        if not instance_id:
            instance_id = store.find_running_containing(conn, os.path.realpath(cwd)) or ""
        if not instance_id:
            log.write(f"no instance: CODEX_MCP_INSTANCE is unset and no running instance holds {cwd}")
            return
        log.context = f"{event} {instance_id}"
        change = store.record(
            conn,
            instance_id,
            activity,
            None if detail is KEEP else detail,
            order=order,
            keep_detail=keep_detail,
        )
        if change is not None and _worth_telling(change):
            setting = store.notify_command(conn)
            if setting is not None:
                _notify(setting, instance_id, change, log)
    except store.UnknownInstance:
        log.write(f"instance {instance_id!r} is not in {db_path}; nothing recorded")
    except store.Error as exc:
        log.write(f"database {db_path}: {exc}")
    finally:
        conn.close()


def _started_at() -> float:
    """When this process started (Unix seconds): the order Claude Code fired the events in.

    Taken from the kernel's record of the fork rather than the clock now, because interpreter start-up
    is the part that varies under load, and it comes before any code of ours runs.
    """
    try:
        with open("/proc/self/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return time.time()


def _database(cwd: str) -> str | None:
    configured = (os.environ.get("CODEX_MCP_DB") or "").strip()
    if configured:
        return os.path.join(cwd, os.path.expanduser(configured))
    common = _git_common_dir(cwd)
    return os.path.join(common, "codex-mcp", "codex.db") if common else None


def _git_common_dir(start: str) -> str | None:
    """The repository's common git folder, read from ``.git`` (a folder, or a worktree's ``gitdir:`` file
    whose folder names the common one in ``commondir``), the way git finds it."""
    folder = os.path.realpath(start)
    while True:
        dotgit = os.path.join(folder, ".git")
        gitdir = None
        if os.path.isdir(dotgit):
            gitdir = dotgit
        elif os.path.isfile(dotgit):
            with open(dotgit, encoding="utf-8") as fh:
                text = fh.read().strip()
            if not text.startswith("gitdir:"):
                return None
            gitdir = os.path.join(folder, text[len("gitdir:") :].strip())
        if gitdir is not None:
            common = gitdir
            try:
                with open(os.path.join(gitdir, "commondir"), encoding="utf-8") as fh:
                    common = os.path.join(gitdir, fh.read().strip())
            except FileNotFoundError:
                pass
            return os.path.realpath(common)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _payload(raw: bytes, log: _Log) -> Payload:
    if not raw.strip():
        return {}
    try:
        data = _loads(raw)
    except ValueError as exc:
        # The event name (argv) is what matters; the JSON only adds details.
        log.write(f"stdin is not JSON ({exc}); recording the event without its details")
        return {}
    return data if isinstance(data, dict) else {}


class _JsonContext:
    """What CPython's C JSON scanner reads from a ``json.JSONDecoder``: the defaults of ``json.loads``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    array_hook = None  # read from Python 3.15 on
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity


JSON_WHITESPACE = " \t\n\r"


def _loads(raw: bytes) -> object:
    """``json.loads`` without importing ``json``: that imports ``re`` and ``enum``, which cost the hook
    about half of a bare interpreter start. The parsing is done by the C scanner ``json`` itself uses;
    where it is missing (not CPython), by ``json``. ``ValueError`` for anything that is not one JSON
    value in UTF-8."""
    text = raw.decode("utf-8")
    try:
        from _json import make_scanner

        scan = make_scanner(_JsonContext())  # type: ignore[arg-type]  # it reads the attributes only
    except (ImportError, AttributeError, TypeError):
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(JSON_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration:
        raise ValueError(f"expecting a JSON value at character {start}") from None
    if text[end:].strip(JSON_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def _report(event: str, payload: Payload) -> tuple[str | None, str | None] | None:
    """(activity, detail) for an event; activity None keeps the current one; None: nothing to record."""
    if event in WORKING_EVENTS:
        return "working", None
    if event == "PermissionRequest":
        return "waiting", _clip(f"permission: {payload.get('tool_name') or 'a tool'}")
    if event == "Notification":
        return _notification(payload)
    if event == "Stop":
        if payload.get("background_tasks"):
            return "working", "background tasks running"
        return "idle", _clip(payload.get("last_assistant_message"))
    if event == "SessionEnd":
        return None, _clip(f"session ended: {payload.get('reason') or 'unknown reason'}")
    return None


def _notification(payload: Payload) -> tuple[str | None, str | None] | None:
    """Claude Code sends the idle reminder ("Claude is waiting for your input") 60 s after a turn ended
    with nobody typing: the agent is done and waits for its next instruction, which is idle, not a
    question for a person (a person who wants to hear about finished turns gets notified on idle). Every
    other notification of a kind that needs a person -- chiefly "Claude needs your permission" -- is
    waiting, with its message."""
    kind = payload.get("notification_type")
    message = str(payload.get("message") or "")
    if kind == IDLE_NOTIFICATION or (kind is None and IDLE_MESSAGE in message.lower()):
        return "idle", KEEP  # the last answer, when Stop recorded it, stays the detail
    if kind is None or kind in WAITING_NOTIFICATIONS:
        return "waiting", _clip(message) or "needs your attention"
    return None


def _clip(value: object) -> str | None:
    if not value:
        return None
    text = " ".join(str(value).split())
    return text if len(text) <= DETAIL_MAX else text[: DETAIL_MAX - 1] + "…"


def _worth_telling(change: store.Change) -> bool:
    """A person hears when an agent starts waiting for them, or finishes a turn."""
    if change.after == "waiting":
        return change.before != "waiting"
    return change.after == "idle" and change.before == "working"


def _notify(setting: tuple[str, bool], instance_id: str, change: store.Change, log: _Log) -> None:
    """Start ``notify.command`` detached: split like a shell would, placeholders replaced inside each
    argument, no shell; the hook does not wait for it."""
    command, encrypted = setting
    if encrypted:
        log.write(f"{store.NOTIFY_KEY} is stored encrypted; set it again without --secret")
        return
    import re
    import shlex
    import subprocess

    values = {"instance_id": instance_id, "activity": change.after or "", "message": change.detail or ""}
    try:
        template = shlex.split(command)
    except ValueError as exc:
        log.write(f"{store.NOTIFY_KEY} cannot be split into arguments ({exc}); fix its quoting")
        return
    if not template:
        return
    # One pass per word: a substituted message holding "{activity}" is never expanded again.
    pattern = re.compile(r"\{(" + "|".join(NOTIFY_PLACEHOLDERS) + r")\}")
    argv = [pattern.sub(lambda m: values[m.group(1)], word) for word in template]
    try:
        subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        log.write(f"{store.NOTIFY_KEY} did not start ({argv[0]!r}: {exc})")
