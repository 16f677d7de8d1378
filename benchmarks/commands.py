"""Everyday commands through the real CLI: start-up, and session start/get/list as the store grows.

    python benchmarks/commands.py                                  # 1k, 10k, 100k; every backend
    python benchmarks/commands.py --sizes 100000 --backends sqlite --runs 3 --starts 0

Start-up is a ratio against ``python -c "import click"`` (target: at most 1.5). For each size
and backend (json, sqlite, postgres) it times, best of --runs, each a fresh process:
``session start`` (a new session), ``session get`` (the middle record), ``session list --task``
(one task's sessions) and ``session list`` (all of them, output discarded), with the peak RSS of
the slowest kind of run. At the largest size it also checks that ``list --task`` uses the
task_id index in SQLite and PostgreSQL, and has 8 processes make --starts PostgreSQL session
starts together, all of which must succeed.

Stores come from the cached dataset (see migrate.py); JSON and SQLite stores are copied first,
since ``session start`` writes to them. Writes benchmarks/results/commands.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    HERE,
    MINSKY,
    Databases,
    bench_env,
    dataset,
    load,
    machine,
    measure,
    migrate_cmd,
    sqlite_source,
    store_env,
)

BACKENDS = ["json", "sqlite", "postgres"]
COMMANDS = ["start", "get", "list --task", "list"]


def best_of(cmd: list[str] | None, env: dict[str, str], runs: int, make: Any = None) -> dict[str, float]:
    """Fastest wall time of ``runs`` fresh processes, and the largest peak RSS among them."""
    times, peaks = [], []
    for i in range(runs):
        run = measure(make(i) if make else cmd, env)
        times.append(run.seconds)
        peaks.append(run.peak_mb)
    return {"s": round(min(times), 4), "mb": round(max(peaks), 1)}


def startup(env: dict[str, str], runs: int) -> dict[str, Any]:
    click = best_of([sys.executable, "-c", "import click"], env, runs)["s"]
    out: dict[str, Any] = {"import_click_s": click}
    for label, argv in (("version", ["--version"]), ("help", ["--help"])):
        took = best_of([*MINSKY, *argv], env, runs)["s"]
        out[f"{label}_s"], out[f"{label}_ratio"] = took, round(took / click, 2)
    return out


def store_for(backend: str, n: int, work: Path, env: dict[str, str], dbs: Databases) -> str:
    if backend == "json":
        return str(shutil.copyfile(dataset(n), work / f"store-{n}.json"))
    if backend == "sqlite":
        return str(shutil.copyfile(sqlite_source(n, env), work / f"store-{n}.db"))
    url = dbs.fresh()
    measure(migrate_cmd("json", str(dataset(n)), "postgres", url), env)
    return url


def session_commands(backend: str, n: int, location: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    run_env = {**env, **store_env(backend, location)}
    middle = n // 2
    return {
        "start": best_of(
            None,
            run_env,
            runs,
            make=lambda i: [*MINSKY, "session", "start", f"bench-{backend}-{n}-{i}", "--repo", "https://h/a/b"],
        ),
        "get": best_of([*MINSKY, "session", "get", f"task-md#{middle}"], run_env, runs),
        "list --task": best_of([*MINSKY, "session", "list", "--task", str(middle)], run_env, runs),
        "list": best_of([*MINSKY, "session", "list"], run_env, runs),
    }


def plans(db: str, url: str) -> dict[str, str]:
    import psycopg

    with sqlite3.connect(db) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM sessions WHERE task_id IN (?, ?, ?)", ("md#1", "#1", "1")
        ).fetchall()
    with psycopg.connect(url) as pg:
        rows = pg.execute("EXPLAIN SELECT * FROM sessions WHERE task_id = ANY(%s)", (["md#1", "#1", "1"],)).fetchall()
    return {
        "sqlite_list_task_plan": " ".join(str(row[-1]) for row in plan),
        "postgres_list_task_plan": " ".join(row[0].strip() for row in rows),
    }


def concurrent_starts(url: str, env: dict[str, str], total: int) -> dict[str, Any]:
    """8 processes, ``total`` PostgreSQL session starts in all."""
    import psycopg

    per = total // 8
    code = (
        "import sys\nfrom minsky.cli import cli\nfor i in range(int(sys.argv[2])):\n"
        "    cli.main(['session','start',f'c{sys.argv[1]}-{i}','--repo','https://h/a/b'], standalone_mode=False)"
    )
    pg_env = {**env, **store_env("postgres", url)}
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(k), str(per)],
            env={**os.environ, **pg_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for k in range(8)
    ]
    failures = [p.communicate()[1] for p in procs if p.wait() != 0]
    took = round(time.perf_counter() - started, 2)
    with psycopg.connect(url) as conn:
        got = conn.execute("SELECT count(*) FROM sessions WHERE session LIKE 'c%%-%%'").fetchone()
    return {
        "postgres_concurrent_starts": per * 8,
        "postgres_concurrent_starts_s": took,
        "postgres_concurrent_failures": len(failures),
        "postgres_concurrent_stored": int(got[0]) if got else 0,
    }


def table(growth: dict[str, dict[str, dict[int, dict[str, float]]]], sizes: list[int]) -> str:
    head = " | ".join(f"{n:,} records" for n in sizes)
    lines = [f"| backend | command | {head} |", "| --- | --- |" + " ---: |" * len(sizes)]
    for backend, commands in growth.items():
        for command, by_size in commands.items():
            cells = [f"{by_size[n]['s']:.3f} s ({by_size[n]['mb']:.0f} MB)" if n in by_size else "—" for n in sizes]
            lines.append(f"| {backend} | `session {command}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--n", type=int, help="(old flag) one size: the same as --sizes N")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--runs", type=int, default=5, help="best of this many runs per command")
    parser.add_argument("--starts", type=int, default=10_000, help="concurrent PostgreSQL starts (0 skips)")
    args = parser.parse_args()
    sizes = [args.n] if args.n else [int(s) for s in args.sizes.split(",")]
    backends = [b for b in args.backends.split(",") if b]
    if unknown := set(backends) - set(BACKENDS):
        raise SystemExit(f"unknown backend: {', '.join(sorted(unknown))}")
    info = machine()
    info["load_start"] = load()
    work = Path(tempfile.mkdtemp(prefix="minsky-cmd-bench-"))
    env = bench_env(work)
    dbs = Databases()
    results: dict[str, Any] = {"sizes": sizes, "startup": startup(env, args.runs)}
    growth: dict[str, dict[str, dict[int, dict[str, float]]]] = {b: {c: {} for c in COMMANDS} for b in backends}
    try:
        for n in sizes:
            locations = {}
            for backend in backends:
                locations[backend] = store_for(backend, n, work, env, dbs)
                for command, figure in session_commands(backend, n, locations[backend], env, args.runs).items():
                    growth[backend][command][n] = figure
                print(f"[{time.strftime('%H:%M:%S')} load {load()}] {backend} {n:,}: done", file=sys.stderr)
            if n == max(sizes) and {"sqlite", "postgres"} <= set(backends):
                results.update(plans(locations["sqlite"], locations["postgres"]))
            if n == max(sizes) and "postgres" in backends and args.starts:
                results.update(concurrent_starts(locations["postgres"], env, args.starts))
            for backend, location in locations.items():  # free the disk before the next size
                if backend == "postgres":
                    dbs.drop(location)
                else:
                    Path(location).unlink()
    finally:
        dbs.close()
        shutil.rmtree(work, ignore_errors=True)
    info["load_end"] = load()
    results["growth"] = {b: {c: {str(n): f for n, f in v.items()} for c, v in cs.items()} for b, cs in growth.items()}
    heading = (
        f"minsky {info['commit']}, {info['date']}, {info['cpus']} CPUs ({info['cpu']}), best of {args.runs}, "
        f"load average {info['load_start']} at start, {info['load_end']} at end"
    )
    s = results["startup"]
    extra = [
        f"- `minsky --version` {s['version_s'] * 1000:.0f} ms, {s['version_ratio']}× `python -c 'import click'` "
        f"({s['import_click_s'] * 1000:.0f} ms); `minsky --help` {s['help_s'] * 1000:.0f} ms, {s['help_ratio']}×"
    ]
    for key in ("sqlite_list_task_plan", "postgres_list_task_plan"):
        if key in results:
            extra.append(f"- {key}: {results[key]}")
    if "postgres_concurrent_starts" in results:
        extra.append(
            f"- {results['postgres_concurrent_starts']:,} PostgreSQL session starts from 8 processes: "
            f"{results['postgres_concurrent_stored']:,} stored, {results['postgres_concurrent_failures']} failed "
            f"processes, {results['postgres_concurrent_starts_s']} s"
        )
    text = heading + "\n\n" + table(growth, sizes) + "\n\n" + "\n".join(extra)
    print(text)
    results["machine"] = info
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "commands.md").write_text(text + "\n")
    (out / "commands.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
