"""The dashboard in a real browser (Playwright driving Debian's chromium), with real instances.

What a person sees and does: a new instance appears without reloading; text printed in a pane
shows in the browser's terminal; after "Take over" what they type reaches the agent; "Kill" ends
the instance in the database and in tmux. Controls are found by role and name, as a person finds
them. The run takes the README's screenshots; with ``CODEX_MCP_UPDATE_SCREENSHOTS=1`` it saves them to
docs/ (otherwise to the test's temporary folder, so a test run leaves the checkout clean).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import git, read_standin_log, run_cli, tmux_sessions, wait_for
from ui_server import Dashboard

from codex_mcp.store import issues as issues_store
from codex_mcp.store import open_database
from codex_mcp.store.issues import Issue

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
# Read at import, as test_server's UPDATE_SNAPSHOTS: the clean_environment fixture drops CODEX_MCP_* variables.
UPDATE_SCREENSHOTS = os.environ.get("CODEX_MCP_UPDATE_SCREENSHOTS") == "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install -y chromium)"
    ),
]
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
# The agent prints this a moment after it started: after the browser attached, in a real run.
LATE_TEXT = "printed-later.txt"


@pytest.fixture
def ui_script() -> dict[str, Any]:
    return {
        "adhoc": [{"call": "query_instances"}, {"sleep": 3}, {"write": {"path": LATE_TEXT, "text": "x"}}],
        # A work agent asks for a review at once (the graph has a review under its work).
        "work": [{"call": "spawn_review_instance", "args": {"reviewer_prompt": "Check the wording."}}],
    }


@pytest.fixture
async def page(dashboard: Dashboard) -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1500, "height": 900})
            tab = await context.new_page()
            await tab.goto(dashboard.login_url)
            yield tab
        finally:
            await browser.close()


NOTIFICATIONS = """
window.notifications = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.notifications.push({ title, body: options.body }); }
};
"""


def row_of(repo: Path, instance_id: str) -> dict[str, Any]:
    conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
    conn.row_factory = sqlite3.Row
    try:
        return dict(conn.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchone())
    finally:
        conn.close()


def set_activity(repo: Path, instance_id: str, activity: str, detail: str | None = None) -> None:
    """What `codex-mcp hook` writes (migration 0007's columns, added here when this tree predates them)."""
    conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
    try:
        with conn:
            columns = {r[1] for r in conn.execute("PRAGMA table_info(instances)")}
            if "activity" not in columns:
                conn.execute("ALTER TABLE instances ADD COLUMN activity TEXT")
                conn.execute("ALTER TABLE instances ADD COLUMN activity_at DATETIME")
            conn.execute(
                "UPDATE instances SET activity = ?, activity_at = datetime('now'), activity_detail = ? WHERE id = ?",
                (activity, detail, instance_id),
            )
    finally:
        conn.close()


def window_size(socket: str, session: str) -> str:
    argv = [
        "tmux",
        "-L",
        socket,
        "display-message",
        "-p",
        "-t",
        f"={session}:",
        "#{window_width}x#{window_height}",
    ]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()


async def test_a_new_instance_appears_without_reload(page: Any, repo: Path, ui_env: dict[str, str]) -> None:
    from playwright.async_api import expect

    assert page.url.endswith("/")  # the login link redirected: no token left in the address bar
    # The browser's notifications, as a person who allowed them sees them (recorded, not shown).
    await page.add_init_script(NOTIFICATIONS)
    await page.reload()
    await expect(page.get_by_role("heading", name="Instances")).to_be_visible()
    await expect(page.get_by_text("No running instances.")).to_be_visible()
    await page.evaluate("window.notReloaded = true")
    # adhoc-a1 is the person's own identity (the main checkout), under which the start is recorded.
    done = run_cli("start", "--prompt", "from the command line", cwd=repo, env=ui_env)
    assert done.returncode == 0, done.stderr
    link = page.get_by_role("link", name="adhoc-a2", exact=True)
    await expect(link).to_be_visible(timeout=30_000)
    row = page.get_by_role("row").filter(has=link)
    await expect(row).to_contain_text("running")
    await expect(row).to_contain_text("codex/adhoc-a2")
    assert await page.evaluate("window.notReloaded") is True
    await expect(page).to_have_title("Instances · codex-mcp")
    await expect(page.get_by_role("status", name="waiting for you")).to_have_text("0 waiting")

    # The agent's hook reports it needs a person: the badge, the title and the row say so, live.
    set_activity(repo, "adhoc-a2", "waiting", "Allow Bash?")
    await expect(page.get_by_role("status", name="waiting for you")).to_have_text("1 waiting", timeout=30_000)
    await expect(page).to_have_title("(1) Instances · codex-mcp")
    await expect(row).to_contain_text("waiting for you")
    # The badge can come first with a list refresh already under way; the notification rides on the
    # stream's instance event, which may arrive a tick later.
    await page.wait_for_function("window.notifications.length > 0", timeout=30_000)
    shown = await page.evaluate("window.notifications")
    assert shown == [{"title": "adhoc-a2 is waiting for you", "body": "Allow Bash?"}]
    set_activity(repo, "adhoc-a2", "working")
    await expect(row).to_contain_text("working", timeout=30_000)
    await expect(page).to_have_title("Instances · codex-mcp")
    assert await page.evaluate("window.notReloaded") is True


async def test_start_watch_take_over_and_kill(page: Any, repo: Path, tmux_socket: str) -> None:
    from playwright.async_api import expect

    await page.get_by_role("link", name="Start", exact=True).click()
    await page.get_by_role("textbox", name="What do you want to work on?").fill("Tidy the README")
    await expect(page.get_by_role("combobox", name="Base branch")).to_have_value("main")
    await page.get_by_role("button", name="Start", exact=True).click()
    # adhoc-a1 is the person's own identity (the main checkout): the start is recorded under it.
    await expect(page.get_by_role("heading", name="adhoc-a2")).to_be_visible(timeout=60_000)
    assert page.url.endswith("/instances/adhoc-a2")
    row = row_of(repo, "adhoc-a2")
    assert row["status"] == "running" and "Tidy the README" in row["prompt"]
    size = window_size(tmux_socket, row["tmux_session"])

    terminal = page.get_by_role("region", name="Terminal of adhoc-a2")
    await expect(terminal).to_contain_text('"event": "start"', timeout=30_000)
    # Printed by the agent while the page watches.
    await expect(terminal).to_contain_text(LATE_TEXT, timeout=30_000)
    # The recorded tool call shows in the page as it arrives.
    await expect(page.get_by_role("cell", name="query_instances")).to_be_visible(timeout=30_000)
    await expect(page.get_by_role("button", name="Copy branch")).to_be_visible()

    await page.get_by_role("button", name="Take over").click()
    await expect(page.get_by_text("you are typing into this terminal")).to_be_visible(timeout=30_000)
    await page.keyboard.type("hello-from-the-browser")
    await page.keyboard.press("Enter")
    worktree = Path(row["worktree_path"])
    typed = lambda: [e for e in read_standin_log(worktree) if e.get("text") == "hello-from-the-browser"]  # noqa: E731
    await wait_for(typed)
    await expect(terminal).to_contain_text('"text": "hello-from-the-browser"')
    assert window_size(tmux_socket, row["tmux_session"]) == size

    await page.get_by_role("button", name="Kill").click()
    await expect(page.locator("#status")).to_contain_text("terminated", timeout=30_000)
    await expect(page.get_by_role("button", name="Resume")).to_be_visible()
    assert row_of(repo, "adhoc-a2")["status"] == "terminated"
    assert row["tmux_session"] not in tmux_sessions(tmux_socket)


def landing_state(repo: Path) -> dict[str, Any]:
    """What a refused merge must leave as it was: every ref, the worktrees, their HEADs and status."""
    state: dict[str, Any] = {
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "stash": git(repo, "stash", "list"),
    }
    for line in state["worktrees"].splitlines():
        if line.startswith("worktree "):
            tree = Path(line.removeprefix("worktree "))
            status = git(tree, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all")
            state[str(tree)] = (git(tree, "rev-parse", "HEAD"), status)
    return state


async def test_the_diff_the_merge_check_and_feedback_from_a_person(
    page: Any, dashboard: Dashboard, repo: Path, ui_env: dict[str, str]
) -> None:
    from playwright.async_api import expect

    done = run_cli("start", "--issue", "3", "--prompt", "Greet the user", cwd=repo, env=ui_env)
    assert done.returncode == 0, done.stderr
    worktree = Path(row_of(repo, "work-3-a1")["worktree_path"])
    await page.goto(dashboard.base + "/instances/work-3-a1")
    changes = page.get_by_role("region", name="Changes")
    await expect(changes).to_contain_text("0 file(s) changed")

    # The agent edits a file and commits nothing: the page shows the edit, live.
    (worktree / "greeting.txt").write_text("hello from the agent\n", encoding="utf-8")
    await expect(changes).to_contain_text("greeting.txt", timeout=30_000)
    await expect(changes).to_contain_text("uncommitted")
    await changes.get_by_text("greeting.txt", exact=True).click()
    await expect(changes).to_contain_text("+hello from the agent")
    check = page.get_by_role("status", name="Merge check")
    await expect(check).to_contain_text("uncommitted work", timeout=30_000)

    # Committed there, and main changed the same file meanwhile: a conflict, said in words.
    git(worktree, "add", "greeting.txt")
    git(worktree, "commit", "-q", "-m", "Greet from the agent")
    (repo / "greeting.txt").write_text("hello from main\n", encoding="utf-8")
    git(repo, "add", "greeting.txt")
    git(repo, "commit", "-q", "-m", "Greet from main")
    await expect(check).to_contain_text("conflicts with main in 1 file(s): greeting.txt", timeout=30_000)
    before = landing_state(repo)
    await page.get_by_role("button", name="Merge", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("conflicts with main in 1 file(s): greeting.txt")
    await expect(page.get_by_role("alert")).to_contain_text("nothing was changed")
    assert landing_state(repo) == before
    assert row_of(repo, "work-3-a1")["merged_into"] is None

    # A person's review reaches the agent: the file, the notice in its pane, the thread in the page.
    await page.get_by_role("link", name="Back to work-3-a1").click()
    await page.get_by_role("textbox", name="Feedback to the agent").fill("Say hello to <main> too")
    await page.get_by_role("button", name="Send feedback").click()

    def announced() -> list[dict[str, Any]]:
        return [
            e
            for e in read_standin_log(worktree)
            if e.get("event") == "input" and "Review feedback from a person" in e.get("text", "")
        ]

    await wait_for(announced)
    await expect(page.get_by_role("region", name="Terminal of work-3-a1")).to_contain_text(
        "Review feedback from a person", timeout=30_000
    )
    await expect(page.locator("#feedback")).to_contain_text("Say hello to <main> too")
    written = list((worktree / ".codex" / "feedback").glob("*.md"))
    assert len(written) == 1 and "Say hello to <main> too" in written[0].read_text(encoding="utf-8")


async def test_several_instances_for_the_readme_screenshot(
    page: Any, dashboard: Dashboard, repo: Path, ui_env: dict[str, str], tmp_path: Path
) -> None:
    """Work, its review and a fork, one waiting for a person: the README's screenshots."""
    from playwright.async_api import expect

    shots = ROOT / "docs" if UPDATE_SCREENSHOTS else tmp_path

    db = await open_database(repo / ".git" / "codex-mcp" / "codex.db")
    try:
        async with db.write() as tx:
            issue = Issue(number=4, title="Make the widget spin", state="open", repo_owner="o", repo_name="r")
            await issues_store.upsert_many(tx, [issue])
    finally:
        await db.close()
    done = run_cli("start", "--issue", "4", "--prompt", "Make the widget spin", cwd=repo, env=ui_env)
    assert done.returncode == 0, done.stderr
    await wait_for(lambda: row_of_or_none(repo, "review-4-a1"))
    worktree = Path(row_of(repo, "work-4-a1")["worktree_path"])
    (worktree / "widget.py").write_text("def spin() -> str:\n    return 'whee'\n", encoding="utf-8")
    (worktree / "README.md").write_text("hello\n\nThe widget spins.\n", encoding="utf-8")

    await page.goto(dashboard.base + "/instances/work-4-a1")
    await page.get_by_role("button", name="Fork", exact=True).click()
    await expect(page.get_by_role("heading", name="work-4-a2")).to_be_visible(timeout=60_000)
    set_activity(repo, "work-4-a1", "waiting", "Claude needs your permission to use Bash")
    set_activity(repo, "work-4-a2", "working")
    set_activity(repo, "review-4-a1", "idle")

    await page.get_by_role("link", name="Instances").click()
    for name in ("work-4-a1", "review-4-a1", "work-4-a2"):
        await expect(page.get_by_role("link", name=name, exact=True)).to_be_visible(timeout=30_000)
    await expect(page.get_by_role("status", name="waiting for you")).to_have_text("1 waiting", timeout=30_000)
    await expect(page.get_by_text("Claude needs your permission to use Bash")).to_be_visible()
    shots.mkdir(exist_ok=True)
    await page.screenshot(path=str(shots / "dashboard.png"))

    await page.get_by_role("link", name="work-4-a1", exact=True).click()
    changes = page.get_by_role("region", name="Changes")
    await expect(changes).to_contain_text("widget.py", timeout=30_000)
    await changes.get_by_text("widget.py", exact=True).click()
    await expect(page.get_by_role("region", name="Terminal of work-4-a1")).to_contain_text(
        '"event": "start"', timeout=30_000
    )
    await changes.scroll_into_view_if_needed()
    await page.screenshot(path=str(shots / "dashboard-instance.png"))
    for name in ("dashboard.png", "dashboard-instance.png"):
        assert (shots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def row_of_or_none(repo: Path, instance_id: str) -> dict[str, Any] | None:
    conn = sqlite3.connect(repo / ".git" / "codex-mcp" / "codex.db")
    conn.row_factory = sqlite3.Row
    try:
        found = conn.execute("SELECT * FROM instances WHERE id = ?", (instance_id,)).fetchone()
        return dict(found) if found else None
    finally:
        conn.close()
