"""Everyday commands: start-up time, and session get/list/start on a 100,000-record store.

    python benchmarks/commands.py [--n 100000] [--starts 10000]

Start-up is a ratio against ``python -c "import click"`` (target: at most 1.5);
``session get`` on SQLite and PostgreSQL must answer in under 0.3 s; ``list --task``
must use the task_id index; ``session start`` must cost the same on a big store as
on an empty one (it never reads the whole store); and 8 processes together make
``--starts`` PostgreSQL session starts, all of which must succeed.
Writes ``benchmarks/results/commands-<n>.json``.
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
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dataset import write_json_store  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def best_of(cmd: list[str], env: dict[str, str], runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, env={**os.environ, **env}, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--starts", type=int, default=10_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minsky-cmd-bench-"))
    env = {"XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config")}
    py, minsky = sys.executable, [sys.executable, "-m", "minsky"]
    results: dict[str, Any] = {"n": args.n}

    click_s = best_of([py, "-c", "import click"], env)
    for label, argv in (("version", ["--version"]), ("help", ["--help"])):
        took = best_of([*minsky, *argv], env)
        results[f"{label}_s"], results[f"{label}_ratio"] = round(took, 4), round(took / click_s, 2)
    results["import_click_s"] = round(click_s, 4)

    import psycopg
    from psycopg.conninfo import make_conninfo

    base = os.environ.get("MINSKY_BENCH_POSTGRES_URL", DEFAULT_PG)
    admin = psycopg.connect(base, autocommit=True)
    dbname = f"minsky_bench_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{dbname}"')
    url = make_conninfo(base, dbname=dbname)
    try:
        source = work / "source.json"
        write_json_store(source, args.n)
        db = work / "sessions.db"
        subprocess.run(
            [
                *minsky,
                "sessiondb",
                "migrate",
                "to",
                "sqlite",
                "--from",
                "json",
                "--json-path",
                str(source),
                "--sqlite-path",
                str(db),
            ],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *minsky,
                "sessiondb",
                "migrate",
                "to",
                "postgres",
                "--from",
                "json",
                "--json-path",
                str(source),
                "--connection-string",
                url,
            ],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
        )
        backends = {
            "sqlite": {"MINSKY_SESSIONDB_BACKEND": "sqlite", "MINSKY_SESSIONDB_DB_PATH": str(db)},
            "postgres": {"MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": url},
        }
        middle = f"task-md#{args.n // 2}"
        for name, benv in backends.items():
            run_env = {**env, **benv}
            results[f"{name}_get_s"] = round(best_of([*minsky, "session", "get", middle], run_env), 4)
            results[f"{name}_list_task_s"] = round(
                best_of([*minsky, "session", "list", "--task", str(args.n // 2)], run_env), 4
            )
            starts = []
            for i in range(5):
                started = time.perf_counter()
                subprocess.run(
                    [*minsky, "session", "start", f"bench-{name}-{i}", "--repo", "https://h/a/b"],
                    env={**os.environ, **run_env},
                    check=True,
                    capture_output=True,
                )
                starts.append(time.perf_counter() - started)
            results[f"{name}_start_s"] = round(min(starts), 4)
        with sqlite3.connect(db) as conn:
            plan = conn.execute(
                "EXPLAIN QUERY PLAN SELECT * FROM sessions WHERE task_id IN (?, ?, ?)", ("md#1", "#1", "1")
            ).fetchall()
        results["sqlite_list_task_plan"] = " ".join(str(row[-1]) for row in plan)
        with psycopg.connect(url) as conn:
            plan_rows = conn.execute(
                "EXPLAIN SELECT * FROM sessions WHERE task_id = ANY(%s)", (["md#1", "#1", "1"],)
            ).fetchall()
        results["postgres_list_task_plan"] = " ".join(row[0].strip() for row in plan_rows)
        # Empty-store start, for the "never reads the whole store" comparison.
        empty_db = work / "empty.db"
        small_env = {**env, "MINSKY_SESSIONDB_BACKEND": "sqlite", "MINSKY_SESSIONDB_DB_PATH": str(empty_db)}
        starts = []
        for i in range(5):
            started = time.perf_counter()
            subprocess.run(
                [*minsky, "session", "start", f"e-{i}", "--repo", "https://h/a/b"],
                env={**os.environ, **small_env},
                check=True,
                capture_output=True,
            )
            starts.append(time.perf_counter() - started)
        results["sqlite_start_empty_s"] = round(min(starts), 4)
        # 8 processes, args.starts PostgreSQL session starts in all.
        per = args.starts // 8
        code = (
            "import sys\nfrom minsky.cli import cli\nfor i in range(int(sys.argv[2])):\n"
            "    cli.main(['session','start',f'c{sys.argv[1]}-{i}','--repo','https://h/a/b'], standalone_mode=False)"
        )
        pg_env = {**os.environ, **env, **backends["postgres"]}
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                [py, "-c", code, str(k), str(per)], env=pg_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            for k in range(8)
        ]
        failures = [p.communicate()[1] for p in procs if p.wait() != 0]
        results["postgres_concurrent_starts"] = per * 8
        results["postgres_concurrent_starts_s"] = round(time.perf_counter() - started, 2)
        results["postgres_concurrent_failures"] = len(failures)
        with psycopg.connect(url) as conn:
            got = conn.execute("SELECT count(*) FROM sessions WHERE session LIKE 'c%%-%%'").fetchone()
        results["postgres_concurrent_stored"] = int(got[0]) if got else 0
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.close()
        shutil.rmtree(work, ignore_errors=True)
    for key, value in results.items():
        print(f"{key:32} {value}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"commands-{args.n}.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
