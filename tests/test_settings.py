"""Settings: every contract variable, flags over variables, the default database, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from support import git, make_repo

from codex_mcp.errors import ConfigError
from codex_mcp.settings import DEFAULT_GITHUB_API_URL, DEFAULT_PORT, Secret, Settings

TOKEN = "ghp_canaryTOKEN0123456789abcdef"


def full_environment(tmp_path: Path) -> dict[str, str]:
    return {
        "CODEX_MCP_DB": str(tmp_path / "elsewhere" / "state.db"),
        "CODEX_MCP_INSTANCE": "work-42-a3",
        "CODEX_MCP_TMUX_SOCKET": "codex-test.sock_1",
        "CODEX_MCP_AGENT_COMMAND": "my-agent --mcp-config {mcp_config} --prompt-file '{prompt_file}' -C {worktree}",
        "CODEX_MCP_WORKTREES": str(tmp_path / "trees"),
        "CODEX_MCP_GITHUB_API_URL": "http://127.0.0.1:8123/api/v3/",
        "CODEX_MCP_GITHUB_REPO": "octo-org/some.repo_name",
        "GITHUB_TOKEN": TOKEN,
        "CODEX_MCP_SECRET_KEY_FILE": str(tmp_path / "keys" / "k.key"),
        "CODEX_MCP_SERVER_URL": "http://127.0.0.1:3999/mcp",
        "CODEX_MCP_PORT": "4555",
        "CODEX_MCP_LOG_LEVEL": "debug",
    }


def test_every_contract_variable_is_read(repo: Path, tmp_path: Path) -> None:
    s = Settings.load(full_environment(tmp_path), cwd=repo)

    assert s.db_path == tmp_path / "elsewhere" / "state.db"
    assert s.instance == "work-42-a3"
    assert s.tmux_socket == "codex-test.sock_1"
    assert s.agent_command == (
        "my-agent",
        "--mcp-config",
        "{mcp_config}",
        "--prompt-file",
        "{prompt_file}",
        "-C",
        "{worktree}",
    )
    assert s.worktrees == tmp_path / "trees"
    assert s.github_api_url == "http://127.0.0.1:8123/api/v3"  # trailing slash dropped
    assert s.github_repo == "octo-org/some.repo_name"
    assert s.github_token == TOKEN
    assert isinstance(s.github_token, Secret)
    assert s.secret_key_file == tmp_path / "keys" / "k.key"
    assert s.server_url == "http://127.0.0.1:3999/mcp"
    assert s.port == 4555
    assert s.log_level == "DEBUG"
    assert s.cwd == repo
    assert s.repo is not None and s.repo.toplevel == repo


def test_defaults_with_an_empty_environment(repo: Path) -> None:
    s = Settings.load({}, cwd=repo)
    assert s.instance is None
    assert s.tmux_socket is None
    assert s.agent_command is None
    assert s.worktrees is None
    assert s.github_api_url == DEFAULT_GITHUB_API_URL == "https://api.github.com"
    assert s.github_repo is None
    assert s.github_token is None
    assert s.secret_key_file is None
    assert s.server_url is None
    assert s.port == DEFAULT_PORT == 3001
    assert s.log_level == "INFO"
    assert s.transport == "stdio"


def test_the_injected_mapping_is_used_instead_of_the_process_environment(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEX_MCP_PORT", "abc")
    monkeypatch.setenv("CODEX_MCP_INSTANCE", "bogus")
    s = Settings.load({"CODEX_MCP_PORT": "4000"}, cwd=repo)
    assert s.port == 4000
    assert s.instance is None
    with pytest.raises(ConfigError, match=r"CODEX_MCP_(PORT|INSTANCE)"):
        Settings.load(cwd=repo)  # no mapping: os.environ


def test_empty_or_blank_variables_count_as_unset(repo: Path) -> None:
    blank = {name: "  " for name in full_environment(repo)}
    s = Settings.load(blank, cwd=repo)
    assert s.port == DEFAULT_PORT
    assert s.log_level == "INFO"
    assert s.instance is None
    assert s.github_token is None
    assert s.db_path == repo / ".git" / "codex-mcp" / "codex.db"


def test_relative_paths_resolve_against_cwd_and_repository_root(repo: Path) -> None:
    sub = repo / "pkg" / "deep"
    sub.mkdir(parents=True)
    s = Settings.load(
        {
            "CODEX_MCP_DB": "data/x.db",
            "CODEX_MCP_WORKTREES": "trees",
            "CODEX_MCP_SECRET_KEY_FILE": "k/secret.key",
        },
        cwd=sub,
    )
    assert s.db_path == sub / "data" / "x.db"
    assert s.secret_key_file == sub / "k" / "secret.key"
    # worktrees are relative to the repository root, not the folder the command runs in
    assert s.worktrees == repo / "trees"


def test_flags_win_over_variables(repo: Path, tmp_path: Path) -> None:
    environ = full_environment(tmp_path) | {"CODEX_MCP_TRANSPORT": "stdio"}
    s = Settings.load(
        environ,
        cwd=repo,
        db=tmp_path / "flag.db",
        instance="review-9-a2",
        tmux_socket="flagsock",
        worktrees=tmp_path / "flag-trees",
        port=0,
        log_level="error",
        transport="http",
    )
    assert s.db_path == tmp_path / "flag.db"
    assert s.instance == "review-9-a2"
    assert s.tmux_socket == "flagsock"
    assert s.worktrees == tmp_path / "flag-trees"
    assert s.port == 0
    assert s.log_level == "ERROR"
    assert s.transport == "http"
    # a flag given as None means "not given": the variable applies
    t = Settings.load(environ, cwd=repo, db=None, port=None, log_level=None)
    assert t.db_path == tmp_path / "elsewhere" / "state.db"
    assert t.port == 4555
    assert t.log_level == "DEBUG"


def test_a_good_flag_overrides_a_bad_variable(repo: Path) -> None:
    s = Settings.load(
        {"CODEX_MCP_PORT": "abc", "CODEX_MCP_LOG_LEVEL": "LOUD"}, cwd=repo, port=8080, log_level="warn"
    )
    assert s.port == 8080
    assert s.log_level == "WARNING"


def test_bad_flag_values_name_the_flag(repo: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({}, cwd=repo, port="abc")
    assert "--port" in str(info.value) and "abc" in str(info.value)
    with pytest.raises(ConfigError) as info:
        Settings.load({}, cwd=repo, log_level="LOUD")
    assert "--log-level" in str(info.value) and "LOUD" in str(info.value)
    with pytest.raises(ConfigError) as info:
        Settings.load({}, cwd=repo, instance="bogus")
    assert "--instance" in str(info.value) and "bogus" in str(info.value)


def test_unknown_flags_are_a_programming_error(repo: Path) -> None:
    with pytest.raises(TypeError, match="github_token"):
        Settings.load({}, cwd=repo, github_token="x")


def test_settings_are_frozen(repo: Path) -> None:
    s = Settings.load({}, cwd=repo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.db_path = None  # type: ignore[misc]
    assert s.port == DEFAULT_PORT


def test_default_database_is_in_the_git_common_dir(repo: Path) -> None:
    s = Settings.load({}, cwd=repo)
    expected = repo / ".git" / "codex-mcp" / "codex.db"
    assert s.db_path == expected
    assert s.require_db_path() == expected


def test_default_database_is_the_same_file_from_a_subdirectory_and_a_linked_worktree(
    repo: Path, tmp_path: Path
) -> None:
    main = Settings.load({}, cwd=repo).require_db_path()

    sub = repo / "src" / "inner"
    sub.mkdir(parents=True)
    from_sub = Settings.load({}, cwd=sub)
    assert from_sub.require_db_path() == main
    assert from_sub.repo is not None and from_sub.repo.toplevel == repo

    linked = tmp_path / "linked-tree"
    git(repo, "worktree", "add", "-q", "-b", "feature", str(linked))
    from_tree = Settings.load({}, cwd=linked)
    assert from_tree.repo is not None
    assert from_tree.repo.toplevel == linked.resolve()  # a different checkout ...
    assert from_tree.require_db_path() == main  # ... but the same database file

    # a subdirectory of the linked worktree too
    (linked / "nested").mkdir()
    assert Settings.load({}, cwd=linked / "nested").require_db_path() == main

    # and it really is one file: a write through one path is seen through the other
    main.parent.mkdir(parents=True, exist_ok=True)
    main.write_bytes(b"marker")
    assert from_tree.require_db_path().read_bytes() == b"marker"


def test_another_repository_gets_another_database(repo: Path, tmp_path: Path) -> None:
    other = make_repo(tmp_path / "other")
    assert Settings.load({}, cwd=other).db_path != Settings.load({}, cwd=repo).db_path


def test_outside_a_git_repository_there_is_no_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "plain" / "folder"
    outside.mkdir(parents=True)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    s = Settings.load({}, cwd=outside)
    assert s.repo is None
    assert s.db_path is None
    with pytest.raises(ConfigError) as info:
        s.require_db_path()
    message = str(info.value)
    assert str(outside) in message
    assert "git repository" in message
    assert "CODEX_MCP_DB" in message  # the next step
    # with CODEX_MCP_DB set it works outside a repository
    t = Settings.load({"CODEX_MCP_DB": str(tmp_path / "x.db")}, cwd=outside)
    assert t.require_db_path() == tmp_path / "x.db"


BAD_VALUES = [
    ("CODEX_MCP_PORT", "abc"),
    ("CODEX_MCP_PORT", "70000"),
    ("CODEX_MCP_PORT", "-1"),
    ("CODEX_MCP_LOG_LEVEL", "LOUD"),
    ("CODEX_MCP_GITHUB_API_URL", "ftp://x"),
    ("CODEX_MCP_GITHUB_API_URL", "not a url"),
    ("CODEX_MCP_SERVER_URL", "ftp://x"),
    ("CODEX_MCP_GITHUB_REPO", "nope"),
    ("CODEX_MCP_GITHUB_REPO", "a/b/c"),
    ("CODEX_MCP_INSTANCE", "bogus"),
    ("CODEX_MCP_INSTANCE", "work-0-a1"),
    ("CODEX_MCP_TMUX_SOCKET", "a/b"),
    ("CODEX_MCP_TMUX_SOCKET", "has space"),
    ("CODEX_MCP_TMUX_SOCKET", "sock\n"),
    ("CODEX_MCP_GITHUB_REPO", "owner/name\n"),
    ("CODEX_MCP_AGENT_COMMAND", "agent --x {nope}"),
    ("CODEX_MCP_AGENT_COMMAND", "agent 'unbalanced"),
    ("CODEX_MCP_TRANSPORT", "carrier-pigeon"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES, ids=[f"{v}={x!r}" for v, x in BAD_VALUES])
def test_bad_value_names_the_variable_and_the_value(repo: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({variable: value}, cwd=repo)
    message = str(info.value)
    assert variable in message
    assert value in message or repr(value) in message
    assert "\n" not in message


def test_agent_command_errors_say_what_to_do(repo: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load({"CODEX_MCP_AGENT_COMMAND": "agent {nope}"}, cwd=repo)
    assert "{nope}" in str(info.value)
    assert "{mcp_config}" in str(info.value)  # lists the known placeholders
    with pytest.raises(ConfigError, match="quot"):
        Settings.load({"CODEX_MCP_AGENT_COMMAND": 'agent "open'}, cwd=repo)


def test_agent_command_is_split_like_a_shell_without_running_one(repo: Path) -> None:
    s = Settings.load(
        {"CODEX_MCP_AGENT_COMMAND": "agent \"two words\" 'x; rm -rf /' $HOME {instance_id}"}, cwd=repo
    )
    assert s.agent_command == ("agent", "two words", "x; rm -rf /", "$HOME", "{instance_id}")


def test_port_bounds(repo: Path) -> None:
    assert Settings.load({"CODEX_MCP_PORT": "0"}, cwd=repo).port == 0
    assert Settings.load({"CODEX_MCP_PORT": "65535"}, cwd=repo).port == 65535
    with pytest.raises(ConfigError, match="65536"):
        Settings.load({"CODEX_MCP_PORT": "65536"}, cwd=repo)


def test_nul_in_a_path_is_refused(repo: Path) -> None:
    with pytest.raises(ConfigError, match="CODEX_MCP_DB"):
        Settings.load({"CODEX_MCP_DB": "a\x00b.db"}, cwd=repo)


def test_token_never_appears_in_repr(repo: Path, tmp_path: Path) -> None:
    s = Settings.load(full_environment(tmp_path), cwd=repo)
    assert s.github_token == TOKEN  # it is there ...
    assert TOKEN not in repr(s)  # ... but never shown
    assert TOKEN not in str(s)
    assert TOKEN not in repr(s.github_token)
    assert TOKEN not in f"{s!r}"
    assert "work-42-a3" in repr(s)  # the repr is still useful
