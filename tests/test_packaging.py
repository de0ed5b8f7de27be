"""The wheel ships schema.sql and migrations/, and the installed package finds them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_schema_and_migrations_and_uses_them(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("codex_mcp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(p.name for p in (ROOT / "migrations").glob("*.sql"))
    assert "codex_mcp/_sql/schema.sql" in names
    for name in migrations:
        assert f"codex_mcp/_sql/migrations/{name}" in names
    entry_points = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
        .decode()
    )
    assert "codex-mcp = codex_mcp.entry:main" in entry_points

    # Installed from the wheel (not this checkout), the runner must find the packaged files.
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    probe = (
        "import codex_mcp.store.migrations as m; d = m.sql_dir(); "
        "print(d); print([x.name for x in m.load_migrations()]); print((d / 'schema.sql').is_file())"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    )
    folder, listed, has_schema = done.stdout.splitlines()
    assert Path(folder).is_relative_to(target)
    assert listed == repr(migrations)
    assert has_schema == "True"
