"""Hostile text in prompts, reviewer prompts and feedback: it arrives verbatim and executes nothing.

A corpus of payloads (shell metacharacters, tmux key names and command separators, tmux formats,
leading dashes, control bytes, ANSI escapes, unicode, long strings), each carrying a command that
would create its own canary file if a shell or tmux ever ran it. They travel every route text takes:
`codex-mcp start --prompt` (to a fake `claude` that records its argv), spawn_review_instance,
fork_instance and send_feedback (through stand-in agents over stdio, and through in-process clients
acting as the instances). At the end no canary exists and tmux has exactly the sessions we made.

Also: a byte-exact round trip of text pasted with ``Tmux.paste`` into a raw-mode terminal program.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from support import ok, read_standin_log, run_cli, tmux_sessions, wait_for
from test_agents import FakeAgents, argv_bytes, make_fake_agents

from codex_mcp.agents import AgentFiles
from codex_mcp.app import App, open_app
from codex_mcp.identity import Caller
from codex_mcp.server import build_server
from codex_mcp.settings import Settings
from codex_mcp.store import instances as instances_store
from codex_mcp.tmux import Tmux

# ------------------------------------------------------------------------------------------- the corpus

# "@CMD@" becomes `touch <canary>` (absolute path), "@N@" the payload's number.
BASES = [
    "$(@CMD@)",
    "`@CMD@`",
    "; @CMD@",
    "&& @CMD@",
    "|| @CMD@",
    "| sh -c '@CMD@'",
    "\n@CMD@\n",
    "\r\n@CMD@\r\n",
    "'; @CMD@; '",
    '"; @CMD@; "',
    '"$(@CMD@)"',
    "'$(@CMD@)'",
    "\\; run-shell '@CMD@'",
    '; run-shell "@CMD@"',
    "\\; new-session -d -s injected-@N@ '@CMD@'",
    "; new-window -d '@CMD@' ;",
    "#(@CMD@)",
    "#{pane_pid} #{session_name} #{?pane_dead,x,$(@CMD@)}",
    "C-c @CMD@ Enter",
    "Enter\n@CMD@\nEnter",
    "C-d C-c C-z Escape M-x BSpace @CMD@ C-m",
    "send-keys -t work-1-a1 '@CMD@' Enter",
    "-e @CMD@",
    "--@CMD@",
    "-- @CMD@",
    "--help; @CMD@",
    "%% %s %1 %n @CMD@",
    "${IFS}$(@CMD@)${IFS}",
    "~/$(@CMD@) * ? [a-z] {a,b}",
    "$'\\x41' $((1+1)) <(@CMD@) >(@CMD@)",
    "!!; !-1; @CMD@",
    "\\\n@CMD@",
    "\\`@CMD@\\`",
    "\t@CMD@\t",
    "#!/bin/sh\n@CMD@\nexit 0",
    "\x1b[201~\r@CMD@\r\x1b[200~",
    "\x1b]0;title\x07\x1b[2J\x1b[31m$(@CMD@)\x1b[0m",
    "\x03\x04\x1a\x7f\x08@CMD@\r",
    "é ✓ 𝄞 中文 \u202e$(@CMD@)\u202c \u200b",
    "{instance_id} {prompt_file} {mcp_config} {worktree} $(@CMD@)",
]
WRAPPERS: list[Callable[[str], str]] = [
    lambda body: body,
    lambda body: "-" + body,  # a leading dash
    lambda body: "Please review: " + body + " ;end",
]
LONG = "A" * 8000 + " $(@CMD@) " + "B" * 2000


def build_corpus(canaries: Path) -> list[str]:
    payloads: list[str] = []
    for wrap in WRAPPERS:
        for base in BASES:
            payloads.append(wrap(base))
    payloads.append(LONG)
    out = []
    for number, payload in enumerate(payloads):
        command = f"touch {canaries / f'canary-{number}'}"
        out.append(payload.replace("@CMD@", command).replace("@N@", str(number)))
    return out


def batch(payloads: list[str]) -> str:
    return "\n==== payload ====\n".join(payloads)


def assert_nothing_ran(tmp_path: Path, socket: str, expected_sessions: set[str]) -> None:
    assert sorted(tmp_path.rglob("canary-*")) == []
    assert tmux_sessions(socket) == expected_sessions


@pytest.fixture
def canaries(tmp_path: Path) -> Path:
    path = tmp_path / "canaries"
    path.mkdir()
    return path


def test_the_corpus_is_large_and_hostile(canaries: Path) -> None:
    corpus = build_corpus(canaries)
    assert len(corpus) >= 100
    assert len(set(corpus)) == len(corpus)
    assert all("touch " + str(canaries) in p for p in corpus)
    assert sum(p.startswith("-") for p in corpus) >= len(BASES)
    for needle in ("$(", "`", "'", '"', ";", "\n", "C-c", "Enter", "\\;", "#{", "#(", "\x1b[", "𝄞", "--"):
        assert any(needle in p for p in corpus), needle
    assert len(batch(corpus)) < 100_000  # fits the reviewer_prompt limit


# ------------------------------------------------------------------------------ start --prompt (the CLI)


async def test_start_prompts_arrive_verbatim_at_claude(
    repo: Path,
    cli_env: dict[str, str],
    tmux_socket: str,
    tmp_path: Path,
    canaries: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents = make_fake_agents(tmp_path, monkeypatch)
    env = {
        **cli_env,
        "PATH": f"{agents.bin}:{cli_env.get('PATH', '')}",
        "HOME": str(tmp_path / "home"),
        "CODEX_MCP_TMUX_SOCKET": tmux_socket,
    }
    corpus = build_corpus(canaries)
    # One prompt carrying the whole corpus, then single prompts for the leading-dash cases.
    dashes = [p for p in corpus if p.startswith("-") and "\n" not in p][:5]
    prompts = [batch(corpus), *dashes]
    ids = []
    for prompt in prompts:
        done = run_cli("start", "--json", "--prompt", prompt, cwd=repo, env=env)
        assert done.returncode == 0, done.stderr
        row = json.loads(done.stdout)
        ids.append(row["id"])
        # The stored prompt starts with the text exactly (the footer follows after a blank line).
        assert row["prompt"].startswith(prompt + "\n\n---\nYou are codex-mcp instance " + row["id"])
        files = AgentFiles(Path(row["worktree_path"]))
        assert files.prompt.read_bytes().decode("utf-8") == row["prompt"]
        record = await agents.wait_record(row["id"])
        assert argv_bytes(record)[-1] == row["prompt"].encode("utf-8")
        assert record["argv"][-2] == "--"
    # adhoc-a1 is the person's own identity (the main checkout), registered by the first recorded start.
    assert ids == [f"adhoc-a{n}" for n in range(2, len(prompts) + 2)]
    await anyio.sleep(0.3)  # anything that would run has had its chance
    assert_nothing_ran(tmp_path, tmux_socket, {"_keep", *ids})


# ---------------------------------------------------------------- through stand-in agents over stdio


NOTICE = re.compile(
    r"^\[codex\] Review feedback from (?P<sender>review-\d+-a\d+) \((?P<type>\w+), priority (?P<priority>\w+)\): "
    r"read \.codex/feedback/(?P<file>[^ /]+\.md) and act on it\.$"
)


def feedback_bodies(worktree: Path) -> dict[str, str]:
    """File name -> the feedback text as written (after the header)."""
    out = {}
    for path in sorted((worktree / ".codex" / "feedback").glob("*.md")):
        text = path.read_bytes().decode("utf-8")  # no newline translation: "\r" stays "\r"
        header, sep, body = text.partition("\n\n---\n\n")
        assert sep and header.startswith("# Review feedback from "), text[:200]
        assert body.endswith("\n")
        out[path.name] = body[:-1]
    return out


async def test_reviewer_prompts_and_feedback_through_stand_in_agents(
    lifecycle_settings: Callable[..., Settings], tmux_socket: str, tmp_path: Path, canaries: Path
) -> None:
    corpus = build_corpus(canaries)
    reviewer_prompt = batch(corpus)
    singles = [p for p in corpus if p.startswith("-")][:6] + [
        p for p in corpus if "\x1b[201~" in p or "C-c" in p or "\\;" in p
    ][:6]
    feedbacks = [batch(corpus), *singles]
    review_steps: list[dict[str, Any]] = [
        {
            "call": "send_feedback",
            "args": {"feedback": text, "feedback_type": "needs_work", "priority": "high"},
        }
        for text in feedbacks
    ]
    settings = lifecycle_settings(
        {
            "work": [{"call": "spawn_review_instance", "args": {"reviewer_prompt": reviewer_prompt}}],
            "review": review_steps,
        }
    )
    async with open_app(settings) as app:
        work = await app.lifecycle.commit(
            await app.lifecycle.prepare_work(issue_number=5, base=None, prompt=batch(corpus[:20]))
        )
        work_tree = Path(work.worktree_path)

        def review_done() -> list[dict[str, Any]] | None:
            log = read_standin_log(work_tree.parent / "review-5-a1")
            calls = [e for e in log if e.get("event") == "call"]
            return calls if len(calls) == len(feedbacks) else None

        calls = await wait_for(review_done, timeout=60)
        assert [c["is_error"] for c in calls] == [False] * len(feedbacks), [c.get("text") for c in calls]
        assert {c["result"]["delivery_status"] for c in calls} == {"delivered"}
        review = await instances_store.require(app.db, "review-5-a1")

    # The work agent's own prompt and the reviewer prompt arrive verbatim.
    assert work.prompt is not None and batch(corpus[:20]) in work.prompt
    assert review.prompt is not None
    assert f"## What the author asks you to look at\n\n{reviewer_prompt}\n\n## How to answer" in review.prompt
    review_files = AgentFiles(Path(review.worktree_path))
    assert review_files.prompt.read_bytes().decode("utf-8") == review.prompt

    # Every feedback is written verbatim, one file each.
    bodies = feedback_bodies(work_tree)
    assert sorted(bodies.values()) == sorted(feedbacks)
    assert {c["result"]["feedback_id"] + ".md" for c in calls} == set(bodies)

    # The work agent's terminal received exactly one single-line notice per feedback, nothing else.
    def notices() -> list[str] | None:
        lines = [e["text"] for e in read_standin_log(work_tree) if e.get("event") == "input"]
        return lines if len(lines) >= len(feedbacks) else None

    lines = await wait_for(notices, timeout=20)
    await anyio.sleep(0.3)
    lines = [e["text"] for e in read_standin_log(work_tree) if e.get("event") == "input"]
    matches = [NOTICE.match(line) for line in lines]
    assert all(matches), lines
    assert {m["file"] for m in matches if m} == set(bodies)
    assert len(lines) == len(feedbacks)
    assert {(m["sender"], m["type"], m["priority"]) for m in matches if m} == {
        ("review-5-a1", "needs_work", "high")
    }
    assert_nothing_ran(tmp_path, tmux_socket, {"_keep", "work-5-a1", "review-5-a1"})


# ------------------------------------------------------------- in-process clients acting as instances


async def as_instance(settings: Settings, app: App, instance_id: str) -> App:
    instance = await instances_store.require(app.db, instance_id)
    return App(settings=settings, db=app.db, caller=Caller(instance, "explicit"))


async def test_review_and_fork_prompts_reach_claude_and_feedback_files_verbatim(
    repo: Path,
    env: dict[str, str],
    tmux_socket: str,
    tmp_path: Path,
    canaries: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents: FakeAgents = make_fake_agents(tmp_path, monkeypatch)
    settings = Settings.load({**env, "CODEX_MCP_TMUX_SOCKET": tmux_socket}, cwd=repo)
    corpus = build_corpus(canaries)
    async with open_app(settings) as app:
        work = await app.lifecycle.commit(
            await app.lifecycle.prepare_work(issue_number=6, base=None, prompt=corpus[0])
        )
        (Path(work.worktree_path) / "change.txt").write_text("uncommitted $(work)\n")
        async with Client(build_server(await as_instance(settings, app, work.id))) as client:
            spawned = ok(await client.call_tool("spawn_review_instance", {"reviewer_prompt": batch(corpus)}))
            forked = ok(await client.call_tool("fork_instance", {"prompt": batch(corpus[::-1])}))
        assert spawned["review_instance_id"] == "review-6-a1" and forked["instance_id"] == "work-6-a2"

        review = await instances_store.require(app.db, "review-6-a1")
        fork = await instances_store.require(app.db, "work-6-a2")
        assert review.prompt is not None and batch(corpus) in review.prompt
        assert fork.prompt is not None and batch(corpus[::-1]) in fork.prompt
        for instance in (review, fork):
            record = await agents.wait_record(instance.id)
            assert argv_bytes(record)[-1] == (instance.prompt or "").encode("utf-8")
            assert record["pid"] == instance.claude_pid

        singles = [*[p for p in corpus if p.startswith("-")][:10], corpus[-1]]
        async with Client(build_server(await as_instance(settings, app, review.id))) as client:
            for text in singles:
                sent = ok(
                    await client.call_tool(
                        "send_feedback", {"feedback": text, "feedback_type": "suggestions", "priority": "low"}
                    )
                )
                assert sent["delivery_status"] == "delivered" and sent["target_instance_id"] == work.id
    assert sorted(feedback_bodies(Path(work.worktree_path)).values()) == sorted(singles)
    await anyio.sleep(0.3)
    assert_nothing_ran(tmp_path, tmux_socket, {"_keep", "work-6-a1", "review-6-a1", "work-6-a2"})


# ------------------------------------------------------------------------------- paste: byte for byte

READER = """\
import os, sys, tty
out, sentinel, bracketed = sys.argv[1], sys.argv[2].encode(), sys.argv[3] == "1"
tty.setraw(0)
if bracketed:
    os.write(1, b"\\x1b[?2004h")  # ask the terminal for bracketed paste
os.write(1, b"READY")  # tmux handles pane output in order: once this shows, the request was seen
data = b""
while not data.endswith(sentinel + b"\\r") and not data.endswith(sentinel + b"\\x1b[201~\\r"):
    chunk = os.read(0, 65536)
    if not chunk:
        break
    data += chunk
with open(out + ".tmp", "wb") as fh:
    fh.write(data)
os.replace(out + ".tmp", out)
sys.stdin.read()
"""


async def pasted_bytes(
    tmp_path: Path, socket: str, name: str, text: str, *, bracketed: bool = False
) -> bytes:
    """Run the raw-mode reader in a new session, paste ``text`` (+ Enter) into it, return what it read."""
    reader = tmp_path / "reader.py"
    reader.write_text(READER, encoding="utf-8")
    out = tmp_path / f"{name}.bin"
    sentinel = f"END-OF-PASTE-{name}"
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", "-s", name, "--", sys.executable, str(reader), str(out),
         sentinel, "1" if bracketed else "0"],
        check=True,
    )  # fmt: skip
    tmux = Tmux(socket)

    async def ready() -> bool:
        return "READY" in await tmux.capture(name)

    await wait_for(ready, timeout=15)
    await tmux.paste(name, text + sentinel)
    data: bytes = await wait_for(lambda: out.read_bytes() if out.exists() else None, timeout=15)
    return data


PASTE_TEXT = (
    "C-c Enter Escape C-d M-x \\; ; 'single' \"double\" $(touch CANARY) `touch CANARY` "
    "#{pane_pid} #(touch CANARY) -- -x %% ~ * é ✓ 𝄞 中文 \u202e \t \x1b[31mred\x1b[0m \x03 \x1b[201~ "
)


async def test_paste_is_byte_for_byte_followed_by_enter(tmp_path: Path, tmux_socket: str) -> None:
    text = PASTE_TEXT.replace("CANARY", str(tmp_path / "canary-paste")) + "x" * 20_000
    got = await pasted_bytes(tmp_path, tmux_socket, "reader", text)
    # The reader did not ask for bracketed paste, so there are no markers: exactly the bytes, then Enter.
    expected = (text + "END-OF-PASTE-reader").encode("utf-8") + b"\r"
    assert got == expected
    assert_nothing_ran(tmp_path, tmux_socket, {"_keep", "reader"})


async def test_paste_of_several_lines(tmp_path: Path, tmux_socket: str) -> None:
    # tmux paste-buffer (without -r) turns each LF into CR, as a terminal paste would: a raw-mode
    # program reads "\r" where the text had "\n" (and "\r\r" for "\r\n"). The product only pastes a
    # one-line notice, so this is the documented behaviour rather than something it relies on.
    text = "first line $(x)\nsecond C-c\r\nthird \\;\n"
    got = await pasted_bytes(tmp_path, tmux_socket, "lines", text)
    assert got == b"first line $(x)\rsecond C-c\r\rthird \\;\rEND-OF-PASTE-lines\r"


async def test_paste_is_bracketed_when_the_program_asks(tmp_path: Path, tmux_socket: str) -> None:
    # -p: a program that enabled bracketed paste (as Claude Code does) gets the text between markers,
    # so a multi-line notice could not submit early; the Enter comes after the closing marker.
    text = "notice 'q' $(x) C-c\nline two "
    got = await pasted_bytes(tmp_path, tmux_socket, "bracketed", text, bracketed=True)
    assert got == b"\x1b[200~notice 'q' $(x) C-c\rline two END-OF-PASTE-bracketed\x1b[201~\r"
