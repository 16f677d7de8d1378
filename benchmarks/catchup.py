"""How long writers wait while ``migrate to --set-default`` finishes (issue 12).

    python benchmarks/catchup.py --n 100000 [--directions json->sqlite,...] [--writers 2]

For each direction: a source of N realistic records, ``--writers`` processes running
``minsky session start`` in a loop throughout, and ``migrate to TARGET --set-default``.
It prints the locked step minsky reports (``catchUp.lockedSeconds``: re-read the source,
copy what changed, mark it moved, switch the default), how many late changes it copied,
and the longest single ``session start`` any writer saw (its wait included). Results go to
``benchmarks/results/catchup-<n>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from dataset import write_json_store  # noqa: E402
from migrate import DEFAULT_PG, Databases, flags, run  # noqa: E402

DIRECTIONS = ["json->sqlite", "sqlite->postgres", "postgres->json"]
MIGRATE = [sys.executable, "-m", "minsky", "sessiondb", "migrate", "to"]


def config_for(backend: str, location: str) -> str:
    key = "connectionString" if backend == "postgres" else "dbPath"
    return f'[sessiondb]\nbackend = "{backend}"\n{key} = "{location}"\n'


def writer(env: dict[str, str], stop: Path, log: Path, prefix: str) -> int:
    """A forked process timing each ``session start`` until ``stop`` exists."""
    pid = os.fork()
    if pid:
        return pid
    os.environ.update(env)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from minsky.cli import cli

    with log.open("w") as out:
        i = 0
        while not stop.exists():
            i += 1
            started = time.perf_counter()
            code = cli.main(["session", "start", f"{prefix}-{i}", "--repo", "https://h/a/b"], standalone_mode=False)
            out.write(f"{time.perf_counter() - started:.4f} {code or 0}\n")
            out.flush()
    os._exit(0)


def one(direction: str, n: int, writers: int, work: Path, sources: dict[str, str], dbs: Databases) -> dict[str, Any]:
    src, dst = direction.split("->")
    case = work / direction.replace("->", "-to-")
    case.mkdir()
    env = {
        "XDG_STATE_HOME": str(case / "state"),
        "XDG_CONFIG_HOME": str(case / "config"),
        "HOME": str(case),
    }
    (case / "config" / "minsky").mkdir(parents=True)
    (case / "config" / "minsky" / "config.toml").write_text(config_for(src, sources[src]), "utf-8")
    target = dbs.fresh() if dst == "postgres" else str(case / f"target.{'db' if dst == 'sqlite' else 'json'}")
    if dst == "postgres":  # set-default does not write a connection string (it may hold a password)
        env["MINSKY_POSTGRES_URL"] = target
    stop = case / "stop"
    logs = [case / f"writer-{k}.log" for k in range(writers)]
    pids = [writer(env, stop, logs[k], f"{direction}-{k}") for k in range(writers)]
    try:
        seconds, rss, out = run(
            [
                sys.executable,
                "-m",
                "minsky",
                *["sessiondb", "migrate", "to"],
                dst,
                *flags(dst, target),
                "--set-default",
                "--json",
            ],
            env,
        )
    finally:
        stop.touch()
        for pid in pids:
            os.waitpid(pid, 0)
    report = json.loads(out)
    waits = [float(line.split()[0]) for log in logs for line in log.read_text().splitlines()]
    codes = sorted({line.split()[1] for log in logs for line in log.read_text().splitlines()})
    result = {
        "direction": direction,
        "n": n,
        "migrationSeconds": round(seconds, 2),
        "peakRssMb": round(rss),
        "lockedSeconds": report["catchUp"]["lockedSeconds"],
        "lateWritten": report["catchUp"]["written"],
        "lateDeleted": report["catchUp"]["deleted"],
        "writerCalls": len(waits),
        "writerExitCodes": codes,
        "longestWriterCallSeconds": round(max(waits), 3) if waits else None,
    }
    print(
        f"{direction:18} n={n:,}: migration {seconds:.1f}s, locked step {result['lockedSeconds']:.2f}s "
        f"({result['lateWritten']} late sessions copied), longest writer call {result['longestWriterCallSeconds']}s, "
        f"writer exit codes {codes}"
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--writers", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minsky-bench-catchup-"))
    dbs = Databases(os.environ.get("MINSKY_BENCH_POSTGRES_URL", DEFAULT_PG))
    env = {"XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config")}
    results = []
    try:
        print(f"generating {args.n:,} records…", file=sys.stderr)
        sources = {"json": str(work / "source.json"), "sqlite": str(work / "source.db"), "postgres": dbs.fresh()}
        write_json_store(Path(sources["json"]), args.n)
        for backend in ("sqlite", "postgres"):
            run(
                [
                    *MIGRATE,
                    backend,
                    "--from",
                    "json",
                    *flags("json", sources["json"]),
                    *flags(backend, sources[backend]),
                ],
                env,
            )
        for direction in args.directions.split(","):
            results.append(one(direction, args.n, args.writers, work, sources, dbs))
    finally:
        dbs.close()
    out = HERE / "results" / f"catchup-{args.n}.json"
    out.parent.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n", "utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
