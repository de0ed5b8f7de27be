"""The benchmark suite: ``./dev bench [--quick] [--only KEYS]`` (or ``.venv/bin/python benchmarks/run.py``).

Every figure is measured against a baseline taken in the same run (A/B alternated, medians of at
least 5 runs) or against an absolute target where the issue gives no baseline; the table goes to
stdout and the full data to ``benchmarks/results/<timestamp>.json`` and ``results/latest.json``.
Targets are checked here, never as timed assertions in the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, Row, clean_environment, error_row, loadavg, machine

Figure = Callable[[Path, dict[str, str], bool], Awaitable[list[Row]]]


FIGURES: dict[str, tuple[str, str, str]] = {
    "cold": ("1+2. stdio cold start and idle RSS", "fig_stdio", "cold_start_and_rss"),
    "latency": ("3. recorded read latency over stdio", "fig_stdio", "recorded_latency"),
    "spawn": ("4. spawn_review_instance on a large repository", "fig_spawn", "spawn_review"),
    "store": ("5. read tools on a big database", "fig_store", "big_database"),
    "concurrency": ("6. many servers writing one database", "fig_concurrency", "many_servers"),
    "http": ("7. HTTP mode memory per agent", "fig_http", "memory_per_agent"),
    "sync": ("8. issue sync from the loopback GitHub", "fig_sync", "issue_sync"),
    "supervision": ("9. diff and merge engine on a large repository", "fig_supervision", "supervision"),
    "hook": ("10. the activity hook's wall time", "fig_hook", "hook_wall_time"),
    "ui": ("11. the web dashboard", "fig_ui", "ui_dashboard"),
}


def load(key: str) -> tuple[str, Figure]:
    import importlib

    title, module, name = FIGURES[key]
    return title, getattr(importlib.import_module(module), name)


def table(rows: list[Row]) -> str:
    headers = ["figure", "measured", "baseline", "ratio / diff", "target", "result"]
    body = [[r.figure, r.measured, r.baseline, r.compare, r.target, r.verdict] for r in rows]
    widths = [max(len(h), *(len(line[i]) for line in body)) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(cells) for cells in body]
    notes = [f"- {r.figure}: {r.note}" for r in rows if r.note]
    return "\n".join(out + (["", *notes] if notes else []))


async def run(
    keys: list[str], quick: bool, tmp: Path, keep: bool = False
) -> tuple[list[Row], dict[str, float]]:
    # Our own handler first: the SDK's MCPServer() (built in-process by some figures) would otherwise install
    # a rich INFO handler on the root logger, and every HTTP request of the clients would be logged.
    logging.basicConfig(
        level=logging.WARNING, format="bench: %(levelname)s %(name)s: %(message)s", force=True
    )
    env = clean_environment(tmp)
    # In-process parts (the SDK's in-memory client, the store) read os.environ too: the same clean one.
    os.environ.clear()
    os.environ.update(env)
    rows: list[Row] = []
    durations: dict[str, float] = {}
    for key in keys:
        title = FIGURES[key][0]
        print(f"bench: {title} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        folder = tmp / key
        folder.mkdir(parents=True, exist_ok=True)
        try:
            _, fn = load(key)
            got = await fn(folder, dict(env), quick)
        except Exception as exc:
            traceback.print_exc()
            got = [error_row(key, title, exc)]
        durations[key] = round(time.perf_counter() - started, 1)
        for row in got:
            print(f"bench:   {row.figure}: {row.measured} | {row.compare} -> {row.verdict}", file=sys.stderr)
        rows.extend(got)
        # The next figure starts on a machine the last one has left: its files deleted (figure 5's database
        # is 342 MiB), this process's garbage collected, the disk written.
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        gc.collect()
        os.sync()
    return rows, durations


def main(argv: list[str] | None = None) -> int:
    names = list(FIGURES)
    parser = argparse.ArgumentParser(prog="./dev bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer repetitions, smaller data")
    parser.add_argument(
        "--only", default=",".join(names), help=f"comma-separated subset of {','.join(names)}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed at the end)")
    parser.add_argument("--no-save", action="store_true", help="do not write benchmarks/results/*.json")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in names]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {names}")

    tmp = Path(tempfile.mkdtemp(prefix="codex-bench-"))
    load_before = loadavg()
    started = time.perf_counter()
    saved_env = dict(os.environ)
    try:
        rows, durations = asyncio.run(run(keys, args.quick, tmp, args.keep))
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        if args.keep:
            print(f"bench: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    total = time.perf_counter() - started
    load_after = loadavg()

    print()
    print(table(rows))
    print()
    print(
        f"{'quick' if args.quick else 'full'} run, {total:.0f} s; load average before {load_before[0]:.2f}, "
        f"after {load_after[0]:.2f} on {os.cpu_count()} CPUs (other work on the machine skews absolute "
        "figures; ratios are taken against baselines measured alternately in the same run)"
    )
    print("time per figure: " + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items()))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    report = {
        "timestamp": stamp,
        "mode": "quick" if args.quick else "full",
        "figures": keys,
        "duration_s": round(total, 1),
        "figure_durations_s": durations,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "machine": machine(),
        "results": [
            {
                "key": r.key,
                "figure": r.figure,
                "measured": r.measured,
                "baseline": r.baseline,
                "compare": r.compare,
                "target": r.target,
                "result": r.verdict,
                "passed": r.passed,
                "note": r.note,
                "data": r.data,
            }
            for r in rows
        ],
    }
    if not args.no_save:
        results = BENCH / "results"
        results.mkdir(exist_ok=True)
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        (results / f"{stamp}{'-quick' if args.quick else ''}.json").write_text(text, encoding="utf-8")
        (results / "latest.json").write_text(text, encoding="utf-8")
        print(
            f"written: benchmarks/results/{stamp}{'-quick' if args.quick else ''}.json and results/latest.json"
        )
    errors = [r for r in rows if r.measured == "ERROR"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
