"""The declared dependencies are honest: what the code imports is declared, what is declared is imported.

Imports are read with `ast` (lazy imports inside functions included) and mapped to the installed
distributions that provide them. codex_mcp/ is held to [project].dependencies both ways; tests/ and
benchmarks/ may import runtime dependencies and the `test` extra, and every `test` entry is used.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Declared on purpose though codex_mcp never imports them; each says why. An entry that becomes imported
# fails the test, so the list cannot go stale.
RUNTIME_NOT_IMPORTED = {
    # A pin of githubkit's own dependency (githubkit 0.16 breaks with hishel 2.x); githubkit imports it.
    "hishel",
}
TEST_NOT_IMPORTED = {
    # pytest plugins, loaded through their entry points: `asyncio_mode = "auto"` and `timeout = 300`
    "pytest-asyncio",
    "pytest-timeout",
    # the build backend test_packaging.py builds the wheel with (no network, no build isolation)
    "hatchling",
    # run as programs by ./dev test and CI, never imported
    "ruff",
    "mypy",
}
# Imported by a benchmark without being a dependency of anything; each says why.
BENCHMARK_ONLY = {
    # benchmarks/libtmux_probe.py measures the tmux library we decided not to use; installed by hand for it
    "libtmux",
}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(spec: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    assert match, f"cannot read a distribution name in {spec!r}"
    return normalize(match.group(1))


def declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = {requirement_name(spec) for spec in project["dependencies"]}
    test = {requirement_name(spec) for spec in project["optional-dependencies"]["test"]}
    return runtime, test


def local_modules(*folders: str) -> set[str]:
    """Modules that live in the given folders (first party, found through sys.path there)."""
    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).iterdir():
            if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").exists()):
                names.add(path.stem)
            elif path.is_dir() and any(path.glob("*.py")):  # a namespace folder such as tests/helpers
                names.add(path.name)
    return names


def third_party_imports(folder: str, first_party: set[str]) -> dict[str, set[str]]:
    """Top-level module -> the files importing it, for every module neither stdlib nor first party."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in first_party:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def distributions(imports: dict[str, set[str]]) -> dict[str, set[str]]:
    """Distribution (normalized) -> the files importing it; a module no distribution provides fails."""
    provided = importlib.metadata.packages_distributions()
    unknown = {module: files for module, files in imports.items() if module not in provided}
    assert not unknown, f"imported, but no installed distribution provides them: {unknown}"
    by_dist: dict[str, set[str]] = {}
    for module, files in imports.items():
        for dist in provided[module]:
            by_dist.setdefault(normalize(dist), set()).update(files)
    return by_dist


def test_the_scan_sees_lazy_and_top_level_imports() -> None:
    # Guards the scanner itself: uvicorn is imported inside a function, mcp at module level.
    imports = third_party_imports("codex_mcp", {"codex_mcp"})
    assert "codex_mcp/serve.py" in imports["uvicorn"]
    assert "codex_mcp/server.py" in imports["mcp"]
    assert "os" not in imports and "codex_mcp" not in imports


def test_codex_mcp_imports_exactly_its_declared_dependencies() -> None:
    runtime, _ = declared()
    used = distributions(third_party_imports("codex_mcp", {"codex_mcp"}))
    undeclared = {dist: sorted(files) for dist, files in used.items() if dist not in runtime}
    assert not undeclared, f"imported by codex_mcp but not in [project].dependencies: {undeclared}"
    unused = runtime - used.keys() - RUNTIME_NOT_IMPORTED
    assert not unused, (
        f"declared in [project].dependencies but imported nowhere in codex_mcp: {sorted(unused)}"
    )
    stale = RUNTIME_NOT_IMPORTED & used.keys()
    assert not stale, f"now imported by codex_mcp: remove from RUNTIME_NOT_IMPORTED: {sorted(stale)}"
    assert runtime >= RUNTIME_NOT_IMPORTED, "RUNTIME_NOT_IMPORTED names a dependency that is not declared"


def test_tests_import_only_declared_distributions_and_use_the_test_extra() -> None:
    runtime, test = declared()
    used = distributions(third_party_imports("tests", {"codex_mcp", *local_modules("tests")}))
    undeclared = {dist: sorted(files) for dist, files in used.items() if dist not in runtime | test}
    assert not undeclared, f"imported by tests but declared nowhere (add to the test extra): {undeclared}"
    unused = test - used.keys() - TEST_NOT_IMPORTED
    assert not unused, f"in the test extra but imported by no test: {sorted(unused)}"
    stale = TEST_NOT_IMPORTED & used.keys()
    assert not stale, f"now imported by tests: remove from TEST_NOT_IMPORTED: {sorted(stale)}"
    assert test >= TEST_NOT_IMPORTED, "TEST_NOT_IMPORTED names a package the test extra does not declare"


def test_benchmarks_import_only_declared_distributions() -> None:
    runtime, test = declared()
    first_party = {"codex_mcp", *local_modules("benchmarks", "tests")}  # benchmarks reuse the stand-ins
    imports = third_party_imports("benchmarks", first_party)
    assert "libtmux" in imports, "the libtmux probe is gone: drop libtmux from BENCHMARK_ONLY"
    undeclared = {
        module: sorted(files)
        for module, files in imports.items()
        if module not in BENCHMARK_ONLY and not {normalize(d) for d in _providers(module)} & (runtime | test)
    }
    assert not undeclared, f"imported by benchmarks but declared nowhere: {undeclared}"


def _providers(module: str) -> list[str]:
    providers = importlib.metadata.packages_distributions().get(module)
    assert providers, f"benchmarks import {module}, which no installed distribution provides"
    return providers
