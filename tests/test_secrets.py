"""Encrypted user_config values and the key file: real SQLite files, real files on disk, real processes."""

from __future__ import annotations

import base64
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import uuid
from functools import partial
from pathlib import Path

import pytest

from codex_mcp import secrets
from codex_mcp.errors import ConfigError, InputError
from codex_mcp.settings import Settings
from codex_mcp.store import Database, open_database
from codex_mcp.userconfig import KNOWN_KEYS, MASK, UserConfig


@pytest.fixture
def key_path(env: dict[str, str]) -> Path:
    return Path(env["CODEX_MCP_SECRET_KEY_FILE"])


@pytest.fixture
def uc(db: Database, key_path: Path) -> UserConfig:
    return UserConfig(db, key_path)


def canary() -> str:
    return "canary-" + uuid.uuid4().hex


def database_files(path: Path) -> dict[str, bytes]:
    """The bytes of the database and of its -wal and -shm files (those that exist)."""
    found = {}
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(str(path) + suffix)
        if candidate.exists():
            found[suffix or "db"] = candidate.read_bytes()
    return found


def write_key(path: Path, key: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64encode(key) + b"\n")
    path.chmod(mode)


# ------------------------------------------------------------------------------------ set / get


async def test_secret_round_trip_and_masking(uc: UserConfig) -> None:
    value = canary()
    entry = await uc.set("github.token", value, secret=True)
    assert entry.is_encrypted is True
    assert entry.value == MASK
    assert entry.source == "database"
    assert await uc.get("github.token") == value
    assert (await uc.entry("github.token")).value == MASK
    listed = {e.key: e for e in await uc.entries()}
    assert listed["github.token"].value == MASK
    assert listed["github.token"].is_encrypted is True
    assert value not in repr(await uc.entries())


async def test_non_ascii_secret_round_trips(uc: UserConfig) -> None:
    value = "pässwörd-🔑-" + uuid.uuid4().hex
    await uc.set("service.password", value, secret=True)
    assert await uc.get("service.password") == value


async def test_stored_value_is_ciphertext_not_plaintext(uc: UserConfig, db: Database) -> None:
    value = canary()
    await uc.set("github.token", value, secret=True)
    row = await db.fetchone("SELECT value, is_encrypted FROM user_config WHERE key = 'github.token'")
    assert row is not None
    assert row["is_encrypted"] == 1
    assert value not in row["value"]
    assert row["value"].startswith("v1:")
    # the same value encrypted twice gives different ciphertexts (a fresh nonce each time)
    first = row["value"]
    await uc.set("github.token", value, secret=True)
    row = await db.fetchone("SELECT value FROM user_config WHERE key = 'github.token'")
    assert row is not None and row["value"] != first
    assert await uc.get("github.token") == value


async def test_plain_values_are_stored_as_given(uc: UserConfig) -> None:
    entry = await uc.set("editor.command", "vim")
    assert entry.is_encrypted is False and entry.value == "vim"
    assert await uc.get("editor.command") == "vim"


async def test_secret_never_reaches_database_wal_or_shm(settings: Settings, key_path: Path) -> None:
    path = settings.require_db_path()
    value = canary()
    db = await open_database(path)
    try:
        uc = UserConfig(db, key_path)
        await uc.set("github.token", value, secret=True)
        await uc.set("other.secret", value, secret=True)
        assert await uc.get("github.token") == value
        while_open = database_files(path)
        assert "db" in while_open and "-wal" in while_open  # WAL mode: the write sits in the -wal file
        for name, data in while_open.items():
            assert value.encode() not in data, f"secret in clear in the {name} file"
    finally:
        await db.close()
    after_close = database_files(path)
    assert after_close, "the database file disappeared"
    for name, data in after_close.items():
        assert value.encode() not in data, f"secret in clear in the {name} file after close"
    # the key itself never goes into the database either
    key_b64 = key_path.read_bytes().strip()
    for name, data in after_close.items():
        assert key_b64 not in data, f"the key is in the {name} file"
        assert base64.b64decode(key_b64) not in data
    # and the value can still be read after reopening
    db = await open_database(path)
    try:
        assert await UserConfig(db, key_path).get("github.token") == value
    finally:
        await db.close()


# ------------------------------------------------------------------------------------- key file


async def test_key_file_created_0600_in_a_private_folder(uc: UserConfig, key_path: Path) -> None:
    assert not key_path.exists()
    await uc.set("github.token", canary(), secret=True)
    mode = stat.S_IMODE(key_path.stat().st_mode)
    assert mode == 0o600
    folder_mode = stat.S_IMODE(key_path.parent.stat().st_mode)
    assert folder_mode & 0o007 == 0, f"key folder is world-accessible: {folder_mode:04o}"
    assert len(base64.b64decode(key_path.read_bytes().strip(), validate=True)) == 32
    # no temporary file is left behind
    assert sorted(p.name for p in key_path.parent.iterdir()) == [key_path.name]


async def test_plain_values_do_not_create_a_key_file(uc: UserConfig, key_path: Path) -> None:
    await uc.set("editor.command", "vim")
    assert await uc.get("editor.command") == "vim"
    assert not key_path.exists()


async def test_key_file_readable_by_others_is_refused(uc: UserConfig, key_path: Path) -> None:
    value = canary()
    await uc.set("github.token", value, secret=True)
    key_path.chmod(0o644)
    with pytest.raises(ConfigError) as info:
        await uc.get("github.token")
    message = str(info.value)
    assert "chmod 600" in message
    assert str(key_path) in message
    assert "0644" in message
    # refused for writing a new secret as well
    with pytest.raises(ConfigError, match="chmod 600"):
        await uc.set("other.secret", canary(), secret=True)
    # after following the advice it works again
    key_path.chmod(0o600)
    assert await uc.get("github.token") == value


def test_key_file_mode_0640_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secret.key"
    write_key(path, os.urandom(32), 0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        secrets.KeyFile(path).load(create=False)


async def test_wrong_key_file_gives_a_clear_error(uc: UserConfig, key_path: Path) -> None:
    value = canary()
    await uc.set("github.token", value, secret=True)
    original = key_path.read_bytes()
    other = os.urandom(32)
    assert base64.b64encode(other) not in original
    key_path.unlink()
    write_key(key_path, other)  # another valid key
    with pytest.raises(ConfigError) as info:
        await uc.get("github.token")
    message = str(info.value)
    assert "github.token" in message  # which value
    assert str(key_path) in message  # which key file
    assert "restore the original key file" in message  # what to do
    assert "config set github.token" in message
    assert value not in message
    assert "\n" not in message
    # restoring the original key file restores the value
    key_path.write_bytes(original)
    assert await uc.get("github.token") == value


async def test_ciphertext_copied_to_another_key_fails_to_decrypt(
    uc: UserConfig, db: Database, key_path: Path
) -> None:
    await uc.set("github.token", canary(), secret=True)
    await uc.set("service.password", "the-real-password", secret=True)
    # copy github.token's ciphertext over service.password's, behind the application's back
    with sqlite3.connect(db.path, timeout=15) as raw:
        changed = raw.execute(
            "UPDATE user_config SET value = (SELECT value FROM user_config WHERE key = 'github.token') "
            "WHERE key = 'service.password'"
        ).rowcount
        assert changed == 1
        raw.execute(
            "INSERT INTO user_config (key, value, is_encrypted) "
            "SELECT 'copied.token', value, 1 FROM user_config WHERE key = 'github.token'"
        )
    raw.close()
    for key in ("service.password", "copied.token"):
        with pytest.raises(ConfigError) as info:
            await uc.get(key)
        assert key in str(info.value)
        assert "copied from another key" in str(info.value)
    # the original still decrypts
    assert (await uc.get("github.token") or "").startswith("canary-")


async def test_tampered_ciphertext_fails_cleanly(uc: UserConfig, db: Database) -> None:
    await uc.set("github.token", canary(), secret=True)
    row = await db.fetchone("SELECT value FROM user_config WHERE key = 'github.token'")
    assert row is not None
    stored = row["value"]
    # Flip a character in the middle: near the end, base64 padding bits may be unused and a flip
    # there would not change a single decoded byte.
    middle = len(stored) // 2
    flipped = stored[:middle] + ("A" if stored[middle] != "A" else "B") + stored[middle + 1 :]
    for bad in (flipped, "not-encrypted", "v1:!!!", "v1:AAAA"):
        with sqlite3.connect(db.path, timeout=15) as raw:
            raw.execute("UPDATE user_config SET value = ? WHERE key = 'github.token'", (bad,))
        raw.close()
        with pytest.raises(ConfigError, match=r"cannot decrypt config value 'github\.token'"):
            await uc.get("github.token")


async def test_missing_key_file_when_reading_a_secret(uc: UserConfig, key_path: Path) -> None:
    await uc.set("github.token", canary(), secret=True)
    key_path.unlink()
    with pytest.raises(ConfigError) as info:
        await uc.get("github.token")
    message = str(info.value)
    assert str(key_path) in message
    assert "missing" in message
    assert "CODEX_MCP_SECRET_KEY_FILE" in message
    assert not key_path.exists()  # reading never creates a new key (that would orphan every secret)
    # the masked entry is still listed without the key
    assert (await uc.entry("github.token")).value == MASK


def test_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secret.key"
    path.parent.mkdir()
    for content in (b"hello world\n", base64.b64encode(os.urandom(16)) + b"\n", b""):
        path.write_bytes(content)
        path.chmod(0o600)
        with pytest.raises(ConfigError) as info:
            secrets.KeyFile(path).load(create=True)
        assert "not a codex-mcp key file" in str(info.value)
        assert path.read_bytes() == content  # never overwritten


def test_key_file_that_is_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        secrets.KeyFile(path).load(create=True)


def test_key_file_under_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError) as info:
        secrets.KeyFile(blocker / "secret.key").load(create=True)
    assert str(blocker / "secret.key") in str(info.value)
    assert "CODEX_MCP_SECRET_KEY_FILE" in str(info.value)  # what to do
    assert blocker.read_text() == "x"


def test_key_file_that_is_a_dangling_symlink(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.symlink_to(tmp_path / "gone" / "real.key")
    for create in (True, False):
        with pytest.raises(ConfigError) as info:
            secrets.KeyFile(path).load(create=create)
        assert str(path) in str(info.value)
        assert "CODEX_MCP_SECRET_KEY_FILE" in str(info.value) or "config set" in str(info.value)
    assert path.is_symlink() and not (tmp_path / "gone").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret.key"]  # no temporary file left


def test_existing_key_is_reused_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "k" / "secret.key"
    key = os.urandom(32)
    write_key(path, key)
    assert secrets.KeyFile(path).load(create=True) == key
    assert secrets.KeyFile(path).load(create=False) == key


def test_default_key_file_is_in_the_user_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data_home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(data_home))
    kf = secrets.KeyFile()
    assert kf.path == data_home / "codex-mcp" / "secret.key"
    key = kf.load(create=True)
    assert len(key) == 32
    assert stat.S_IMODE(kf.path.stat().st_mode) == 0o600


def test_concurrent_creation_in_threads_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "race" / "secret.key"
    count = 16
    barrier = threading.Barrier(count)
    results: list[bytes] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def create() -> None:
        try:
            barrier.wait()
            key = secrets.KeyFile(path).load(create=True)
            with lock:
                results.append(key)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == count
    assert len(set(results)) == 1
    assert results[0] == base64.b64decode(path.read_bytes().strip())
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret.key"]


def test_concurrent_creation_in_processes_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "race-proc" / "secret.key"
    code = (
        "import base64, sys\n"
        "from pathlib import Path\n"
        "from codex_mcp.secrets import KeyFile\n"
        "print(base64.b64encode(KeyFile(Path(sys.argv[1])).load(create=True)).decode())\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outputs.append(out.strip())
    assert len(set(outputs)) == 1
    assert outputs[0].encode() == path.read_bytes().strip()


async def test_secrets_written_concurrently_all_decrypt(uc: UserConfig, db: Database, key_path: Path) -> None:
    """Two UserConfig objects creating the key at once must not encrypt with different keys."""
    import anyio

    other = UserConfig(db, key_path)
    values = {f"race.k{i}": canary() for i in range(6)}

    async with anyio.create_task_group() as tg:
        for i, (key, value) in enumerate(values.items()):
            target = uc if i % 2 else other
            tg.start_soon(partial(target.set, key, value, secret=True))
    for key, value in values.items():
        assert await uc.get(key) == value


# ------------------------------------------------------------------------- defaults and validation


async def test_seed_defaults_before_anything_is_set(uc: UserConfig, db: Database) -> None:
    assert await db.fetchall("SELECT * FROM user_config") == []
    assert await uc.get("editor.command") == "code"
    assert await uc.get("worktrees.base_path") == "./worktrees"
    assert await uc.get("terminal.theme") == "dark"
    assert await uc.get("instances.cleanup_policy") == "manual"
    assert await uc.get("github.token") is None
    assert await uc.get("some.unknown_key") is None
    entry = await uc.entry("terminal.theme")
    assert entry.source == "default" and entry.value == "dark"
    listed = {e.key: e.value for e in await uc.entries()}
    assert listed["editor.command"] == "code"
    assert listed["worktrees.base_path"] == "./worktrees"
    assert listed["terminal.theme"] == "dark"
    assert listed["instances.cleanup_policy"] == "manual"
    assert "github.token" not in listed  # no default, not set


async def test_set_overrides_default_and_unset_restores_it(uc: UserConfig) -> None:
    await uc.set("terminal.theme", "light")
    assert await uc.get("terminal.theme") == "light"
    assert (await uc.entry("terminal.theme")).source == "database"
    assert await uc.unset("terminal.theme") is True
    assert await uc.get("terminal.theme") == "dark"
    assert await uc.unset("terminal.theme") is False


async def test_known_key_values_are_validated(uc: UserConfig) -> None:
    with pytest.raises(InputError) as info:
        await uc.set("terminal.theme", "blue")
    assert "'blue'" in str(info.value) and "terminal.theme" in str(info.value)
    assert "dark" in str(info.value) and "light" in str(info.value)
    with pytest.raises(InputError, match="remove_worktree"):
        await uc.set("instances.cleanup_policy", "sometimes")
    with pytest.raises(InputError, match="greater than 0"):
        await uc.set("reviews.max_iterations", "0")
    with pytest.raises(InputError, match="owner/name"):
        await uc.set("github.repo", "nope")
    assert await uc.get("terminal.theme") == "dark"  # nothing was stored
    await uc.set("reviews.max_iterations", "5")
    assert await uc.get("reviews.max_iterations") == "5"


async def test_sensitive_key_requires_secret(uc: UserConfig, db: Database, key_path: Path) -> None:
    value = canary()
    with pytest.raises(InputError) as info:
        await uc.set("github.token", value)
    assert "--secret" in str(info.value)
    assert value not in str(info.value)
    assert await db.fetchall("SELECT * FROM user_config") == []
    assert not key_path.exists()
    assert KNOWN_KEYS["github.token"].secret


@pytest.mark.parametrize(
    "key",
    [
        "nodot",
        "Terminal.theme",
        "terminal.",
        ".theme",
        "a..b",
        "a.b-c",
        "1a.b",
        "a.1b",
        "",
        "a b.c",
        "terminal.theme\n",
        "x.y;drop",
    ],
)
async def test_bad_key_names_are_refused(uc: UserConfig, key: str) -> None:
    with pytest.raises(InputError, match="is not a config key"):
        await uc.get(key)
    with pytest.raises(InputError, match="is not a config key"):
        await uc.set(key, "v")
    with pytest.raises(InputError, match="is not a config key"):
        await uc.unset(key)
    with pytest.raises(InputError, match="is not a config key"):
        await uc.entry(key)


async def test_nul_in_a_value_is_refused(uc: UserConfig) -> None:
    with pytest.raises(InputError, match="NUL"):
        await uc.set("editor.command", "vi\x00m")


async def test_entry_of_an_unset_key_without_default_says_how_to_set_it(uc: UserConfig) -> None:
    with pytest.raises(InputError, match=r"config set some\.key VALUE"):
        await uc.entry("some.key")


def test_encrypt_binds_the_key_name() -> None:
    key = os.urandom(32)
    sealed = secrets.encrypt(key, "a.b", "value")
    assert secrets.decrypt(key, "a.b", sealed, key_path=Path("/k")) == "value"
    with pytest.raises(ConfigError):
        secrets.decrypt(key, "a.c", sealed, key_path=Path("/k"))
    with pytest.raises(ConfigError):
        secrets.decrypt(os.urandom(32), "a.b", sealed, key_path=Path("/k"))
