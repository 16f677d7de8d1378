"""How long writers wait while ``migrate to --set-default`` finishes (issue 12).

    python benchmarks/catchup.py --n 100000 [--directions json->sqlite,...] [--writers 2]
        [--json-writers 1] [--keep DIR]

For each direction: a fresh copy of a source of N realistic records, ``--writers`` processes
running ``minsky session start`` in a loop throughout (``--json-writers`` for a JSON source:
each of its calls parses and rewrites the whole document, ~6 GB at 1M), and ``migrate to
TARGET --set-default``. It prints the locked step minsky reports (``catchUp.lockedSeconds``:
re-read the source, copy what changed since the last unlocked pass, mark it moved, switch
the default), how many late changes the whole catch-up copied, the longest single
``session start`` any writer saw (its wait included), the writers' exit codes, and the
machine's 1-minute load average during the migration (mean and highest, sampled each
second). The sources are generated once into ``--keep DIR`` (and a PostgreSQL template
database) and reused by later runs, so 1,000,000 records can be measured one direction at a
time. Results are appended to ``benchmarks/results/catchup-<n>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import LOCATION_FLAG, MINSKY, PLUGINS, Databases, measure  # noqa: E402
from dataset import write_json_store  # noqa: E402

DIRECTIONS = [f"{a}->{b}" for a in ("json", "sqlite", "postgres") for b in ("json", "sqlite", "postgres") if a != b]
MIGRATE = [*MINSKY, "sessiondb", "migrate", "to"]


def flags(backend: str, location: str) -> list[str]:
    return [LOCATION_FLAG[backend], location]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    done = measure(cmd, env)
    return done.seconds, done.peak_mb, done.out


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
            began, started = time.time(), time.perf_counter()
            code = cli.main(["session", "start", f"{prefix}-{i}", "--repo", "https://h/a/b"], standalone_mode=False)
            out.write(f"{time.perf_counter() - started:.4f} {code or 0} {began:.3f}\n")
            out.flush()
    os._exit(0)


def fresh_source(backend: str, pristine: dict[str, str], case: Path, dbs: Databases) -> str:
    """A copy of the generated source: each direction marks the one it leaves as moved."""
    from psycopg.conninfo import make_conninfo

    if backend == "postgres":
        name = f"minsky_bench_{os.urandom(5).hex()}"
        dbs.admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pristine["postgres"]}"')
        dbs.names.append(name)
        return str(make_conninfo(dbs.base, dbname=name))
    copy = case / f"source.{'db' if backend == 'sqlite' else 'json'}"
    shutil.copyfile(pristine[backend], copy)
    return str(copy)


class LoadSampler:
    """The 1-minute load average, sampled each second on a thread while the migration runs."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> LoadSampler:
        self.samples.append(os.getloadavg()[0])
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.samples.append(os.getloadavg()[0])


def one(direction: str, n: int, writers: int, work: Path, pristine: dict[str, str], dbs: Databases) -> dict[str, Any]:
    src, dst = direction.split("->")
    case = Path(tempfile.mkdtemp(prefix=direction.replace("->", "-to-") + "-", dir=work))
    env = {
        "XDG_STATE_HOME": str(case / "state"),
        "XDG_CONFIG_HOME": str(case / "config"),
        "HOME": str(case),
    }
    source = fresh_source(src, pristine, case, dbs)
    (case / "config" / "minsky").mkdir(parents=True)
    (case / "config" / "minsky" / "config.toml").write_text(config_for(src, source), "utf-8")
    target = dbs.fresh() if dst == "postgres" else str(case / f"target.{'db' if dst == 'sqlite' else 'json'}")
    if dst == "postgres":  # set-default does not write a connection string (it may hold a password)
        env["MINSKY_POSTGRES_URL"] = target
    stop = case / "stop"
    logs = [case / f"writer-{k}.log" for k in range(writers)]
    pids = [writer(env, stop, logs[k], f"{direction}-{k}") for k in range(writers)]
    try:
        with LoadSampler() as load:
            seconds, rss, out = run(
                [*MIGRATE, dst, *flags(dst, target), "--set-default", "--json"],
                env,
            )
        ended = time.time()
    finally:
        stop.touch()
        for pid in pids:
            os.waitpid(pid, 0)
    report = json.loads(out)
    lines = [line.split() for log in logs for line in log.read_text().splitlines()]
    waits = [float(wait) for wait, *_ in lines]
    codes = {code: sum(1 for _, c, _ in lines if c == code) for code in sorted({c for _, c, _ in lines})}
    # Which exit-8 calls gave up while the locked step ran (it ends as the migration does; 2 s
    # allowed for the report): those would be the migration's doing. One that gives up later began
    # after the switch, behind another writer of the new store.
    step = (ended - report["catchUp"]["lockedSeconds"] - 2.0, ended)
    gave_up = [float(b) + float(w) for w, c, b in lines if c == "8"]
    during = sum(1 for e in gave_up if step[0] <= e <= step[1])
    result = {
        "direction": direction,
        "n": n,
        "writers": writers,
        "migrationSeconds": round(seconds, 2),
        "peakRssMb": round(rss),
        "lockedSeconds": report["catchUp"]["lockedSeconds"],
        "lateWritten": report["catchUp"]["written"],
        "lateDeleted": report["catchUp"]["deleted"],
        "writerCalls": len(waits),
        "writerExitCodes": codes,
        "exit8DuringLockedStep": during,
        "longestWriterCallSeconds": round(max(waits), 3) if waits else None,
        "loadAverage": {"mean": round(statistics.fmean(load.samples), 1), "max": round(max(load.samples), 1)},
    }
    print(
        f"{direction:18} n={n:,}: migration {seconds:.1f}s, locked step {result['lockedSeconds']:.2f}s "
        f"({result['lateWritten']} late sessions copied), longest writer call {result['longestWriterCallSeconds']}s, "
        f"writer exit codes {codes} ({during} exit 8 during the step), "
        f"load {result['loadAverage']['mean']} (max {result['loadAverage']['max']})",
        flush=True,
    )
    if "8" in codes:  # the calls' times, to look at
        kept = HERE / "results" / f"catchup-{n}-{direction.replace('->', '-to-')}-writers"
        kept.mkdir(parents=True, exist_ok=True)
        for log in logs:
            shutil.copyfile(log, kept / log.name)
        print(f"  writer logs (seconds, exit code, start time) kept in {kept}", flush=True)
    shutil.rmtree(case, ignore_errors=True)
    return result


def prepare(n: int, keep: Path, dbs: Databases, env: dict[str, str], needed: set[str]) -> dict[str, str]:
    """The sources, generated once into ``keep`` (and a template database) and then reused."""
    keep.mkdir(parents=True, exist_ok=True)
    template = f"minsky_bench_catchup_src_{n}"
    pristine = {"json": str(keep / "source.json"), "sqlite": str(keep / "source.db"), "postgres": template}
    if not Path(pristine["json"]).exists():
        print(f"generating {n:,} records…", file=sys.stderr, flush=True)
        write_json_store(Path(pristine["json"]).with_suffix(".tmp"), n)
        os.replace(Path(pristine["json"]).with_suffix(".tmp"), pristine["json"])
    if "sqlite" in needed and not Path(pristine["sqlite"]).exists():
        building = keep / "building.db"
        building.unlink(missing_ok=True)
        run(
            [*MIGRATE, "sqlite", "--from", "json", *flags("json", pristine["json"]), *flags("sqlite", str(building))],
            env,
        )
        os.replace(building, pristine["sqlite"])
    exists = dbs.admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone()
    if "postgres" in needed and exists is None:
        building_url = dbs.fresh()
        run(
            [
                *MIGRATE,
                "postgres",
                "--from",
                "json",
                *flags("json", pristine["json"]),
                *flags("postgres", building_url),
            ],
            env,
        )
        building_name = dbs.names.pop()
        dbs.admin.execute(f'ALTER DATABASE "{building_name}" RENAME TO "{template}"')
    return pristine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--writers", type=int, default=2)
    parser.add_argument("--json-writers", type=int, default=None, help="writers of a JSON source (default --writers)")
    parser.add_argument("--keep", type=Path, default=None, help="where the generated sources are kept for reuse")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minsky-bench-catchup-"))
    keep = args.keep or work / "sources"
    dbs = Databases()
    # The built-in backends only (the audit example would log every record); writers inherit it.
    os.environ["MINSKY_LOAD_PLUGINS"] = os.environ.get("MINSKY_LOAD_PLUGINS", PLUGINS)
    env = {"XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config")}
    out = HERE / "results" / f"catchup-{args.n}.json"
    out.parent.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    try:
        directions = args.directions.split(",")
        pristine = prepare(args.n, keep, dbs, env, {d.split("->")[0] for d in directions})
        for direction in directions:
            json_source = direction.startswith("json->")
            writers = args.json_writers if json_source and args.json_writers is not None else args.writers
            result = one(direction, args.n, writers, work, pristine, dbs)
            previous = json.loads(out.read_text("utf-8"))["results"] if out.exists() else []
            results = [r for r in previous if r["direction"] != direction] + [result]
            out.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n", "utf-8")
    finally:
        dbs.close()
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
