"""Migration benchmark: minsky through its real CLI against a raw-driver baseline and the peers
users would pick instead, all in the same run.

    python benchmarks/migrate.py --n 1000000                 # everything: the issue-16 table
    python benchmarks/migrate.py --n 100000 --directions json->sqlite --variants plain --peers none
    python benchmarks/migrate.py --growth 10000,100000,1000000 --variants plain   # growth table

Rows (each selectable, "none" skips a group):
  --directions  the six migrations (default all), each run as --variants plain,verify,backup
                (``--verify`` alone, the old flag, is accepted and adds the verify variant);
  --restore-to  ``sessiondb restore`` of a backup of N records into each backend;
  --export-from ``sessiondb export`` of each backend's store of N records;
  --peers       pgloader (SQLite → PostgreSQL) and sqlite-utils (JSON → SQLite), when installed.

The baseline of a migration is benchmarks/baselines.py for that direction; of a restore, the
JSON → target baseline (a backup holds the same records as the JSON store); of an export, the
source → JSON baseline. Targets: ratio (minsky / baseline time) ≤ 1.0 for plain migrations,
restores, exports and against each peer; peak RSS ≤ 150 MB for every minsky row. --verify and
--backup rows carry work the baseline does not, so only their memory is a target (the table
shows what they add to the plain run). Peak RSS is wait4's figure for the process spawned and
the descendants it waited for (the largest of them, not their sum; a server's memory is not in
it).

The dataset (dataset.py) is generated once per N and dataset version and kept under
$MINSKY_BENCH_CACHE (default: <tmp>/minsky-bench-cache; --clean-cache removes it), with the
SQLite source minsky wrote from it (rebuilt when core or the SQLite backend change). PostgreSQL
comes from MINSKY_BENCH_POSTGRES_URL (default: the local server); each run creates fresh
databases and drops them. Writes benchmarks/results/migrate-<n>.{json,md} (growth-….{json,md}).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common import (
    HERE,
    MINSKY,
    Databases,
    Run,
    bare_array,
    bench_env,
    clean_cache,
    dataset,
    load,
    machine,
    measure,
    migrate_cmd,
    sqlite_source,
    store_env,
)

DIRECTIONS = [
    "json->sqlite",
    "sqlite->postgres",
    "postgres->json",
    "json->postgres",
    "sqlite->json",
    "postgres->sqlite",
]
BACKENDS = ["json", "sqlite", "postgres"]
VARIANTS = ["plain", "verify", "backup"]
PEERS = ["pgloader", "sqlite-utils"]
TARGET_RATIO = 1.0
TARGET_MB = 150.0
NAMES = {"json": "JSON", "sqlite": "SQLite", "postgres": "PostgreSQL"}


def arrow(direction: str) -> str:
    src, dst = direction.split("->")
    return f"{NAMES[src]} → {NAMES[dst]}"


@dataclass
class Row:
    what: str
    against: str
    n: int
    minsky_s: float | None = None
    minsky_mb: float | None = None
    other_s: float | None = None
    other_mb: float | None = None
    ratio_target: bool = True  # whether ratio ≤ 1.0 is a target for this row
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.minsky_s is None or not self.other_s:
            return None
        return self.minsky_s / self.other_s

    def verdict(self) -> str:
        if self.minsky_s is None:
            return "not measured"
        misses = []
        if self.ratio_target:
            if self.ratio is None:
                return "not measured"
            if self.ratio > TARGET_RATIO:
                misses.append(f"ratio > {TARGET_RATIO:.1f}")
        if self.minsky_mb is not None and self.minsky_mb > TARGET_MB:
            misses.append(f"RSS > {TARGET_MB:.0f} MB")
        return "MISSED: " + ", ".join(misses) if misses else "met"

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(ratio=None if self.ratio is None else round(self.ratio, 3), verdict=self.verdict())
        return out


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _rps(n: int, seconds: float | None) -> str:
    return "—" if not seconds else f"{n / seconds:,.0f}"


def table(rows: list[Row]) -> str:
    lines = [
        "| what | against | minsky s | other s | ratio | minsky rec/s | other rec/s | minsky MB | other MB | targets |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        other = r.note if r.other_s is None and r.note else _fmt(r.other_s, ".2f")
        lines.append(
            f"| {r.what} | {r.against} | {_fmt(r.minsky_s, '.2f')} | {other} | {_fmt(r.ratio, '.2f')} | "
            f"{_rps(r.n, r.minsky_s)} | {_rps(r.n, r.other_s)} | {_fmt(r.minsky_mb, ',.0f')} | "
            f"{_fmt(r.other_mb, ',.0f')} | {r.verdict()} |"
        )
    return "\n".join(lines)


def growth_table(rows: list[Row]) -> str:
    sizes = sorted({r.n for r in rows})
    head = " | ".join(f"{n:,}: minsky s / MB (raw s / MB)" for n in sizes)
    lines = [f"| direction | {head} |", "| --- |" + " ---: |" * len(sizes)]
    for what in dict.fromkeys(r.what for r in rows):
        cells = []
        for n in sizes:
            r = next((r for r in rows if r.what == what and r.n == n), None)
            cells.append(
                "—"
                if r is None
                else f"{_fmt(r.minsky_s, '.1f')} / {_fmt(r.minsky_mb, ',.0f')} "
                f"({_fmt(r.other_s, '.1f')} / {_fmt(r.other_mb, ',.0f')})"
            )
        lines.append(f"| {what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class Bench:
    """One run at one N: sources, fresh targets (removed after use), and the rows measured."""

    def __init__(self, n: int, dbs: Databases, work: Path, repeat: int = 1) -> None:
        self.n, self.dbs, self.work, self.repeat = n, dbs, work, repeat
        self.env = bench_env(work)
        self.rows: list[Row] = []
        self.baselines: dict[str, Run] = {}
        self.plain: dict[str, Run] = {}
        self._count = 0
        self._sources: dict[str, str] = {}

    def source(self, backend: str) -> str:
        """The store of N records each backend reads from, made when first needed."""
        if backend not in self._sources:
            if backend == "json":
                self._sources[backend] = str(dataset(self.n))
            elif backend == "sqlite":
                self._sources[backend] = str(sqlite_source(self.n, self.env))
            else:
                print("writing the PostgreSQL source…", file=sys.stderr)
                url = self.dbs.fresh()
                run = measure(migrate_cmd("json", self.source("json"), "postgres", url), self.env)
                print(f"  took {run.seconds:.1f} s, {run.peak_mb:,.0f} MB peak", file=sys.stderr)
                self._sources[backend] = url
        return self._sources[backend]

    def target(self, backend: str) -> str:
        self._count += 1
        if backend == "postgres":
            return self.dbs.fresh()
        return str(self.work / f"t{self._count}.{ {'json': 'json', 'sqlite': 'db'}.get(backend, 'dir') }")

    def discard(self, backend: str, location: str) -> None:
        """Targets go as soon as they are measured: at 1M each is a gigabyte."""
        if backend == "export":
            shutil.rmtree(location, ignore_errors=True)
            return
        if backend == "postgres":
            self.dbs.drop(location)
            return
        for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
            Path(location + suffix).unlink(missing_ok=True)

    def timed(self, backend: str, make: Callable[[str], list[str]], env: dict[str, str] | None = None) -> Run:
        """Best of --repeat runs into fresh targets: the fastest time, the largest peak RSS."""
        runs = []
        for _ in range(self.repeat):
            location = self.target(backend)
            try:
                runs.append(measure(make(location), {**self.env, **(env or {})}))
            finally:
                self.discard(backend, location)
        fastest = min(runs, key=lambda r: r.seconds)
        return Run(fastest.seconds, max(r.peak_mb for r in runs), fastest.out)

    def log(self, row: Row) -> None:
        self.rows.append(row)
        print(f"[{time.strftime('%H:%M:%S')} load {load()}] " + json.dumps(row.to_json()), file=sys.stderr)

    @staticmethod
    def pair(mine: Run, other: Run) -> tuple[float, float, float, float]:
        return mine.seconds, mine.peak_mb, other.seconds, other.peak_mb

    def baseline(self, direction: str, source: str | None = None) -> Run:
        if direction not in self.baselines:
            src, dst = direction.split("->")
            at = source or self.source(src)
            self.baselines[direction] = self.timed(
                dst, lambda to: [sys.executable, str(HERE / "baselines.py"), direction, at, to]
            )
        return self.baselines[direction]

    def direction(self, direction: str, variants: list[str]) -> None:
        src, dst = direction.split("->")
        raw = self.baseline(direction)
        for variant in variants:
            extra: list[str] = []
            backups = self.work / "backups"
            if variant == "verify":
                extra = ["--verify"]
            elif variant == "backup":
                extra = ["--backup", str(backups)]
            run = self.timed(dst, lambda to, extra=extra: migrate_cmd(src, self.source(src), dst, to, *extra))
            shutil.rmtree(backups, ignore_errors=True)
            label = arrow(direction) + ("" if variant == "plain" else f" --{variant}")
            row = Row(label, "raw", self.n, *self.pair(run, raw))
            if variant == "plain":
                self.plain[direction] = run
            else:
                row.ratio_target = False
                plain = self.plain.get(direction)
                if plain:
                    row.extra["adds_to_plain"] = round(run.seconds / plain.seconds - 1, 3)
                    row.what += f" ({100 * (run.seconds / plain.seconds - 1):+.0f}%)"
            self.log(row)

    def backup_file(self) -> Path:
        """A JSON backup of the N records (exported from the JSON store, untimed unless exported)."""
        folder = self.work / "restore-from"
        found = sorted(folder.glob("session-backup-*.json")) if folder.exists() else []
        if not found:
            measure(
                [*MINSKY, "sessiondb", "export", "--output", str(folder)],
                {**self.env, **store_env("json", self.source("json"))},
            )
            found = sorted(folder.glob("session-backup-*.json"))
        return found[-1]

    def export(self, backend: str) -> None:
        raw = self.baseline(f"{backend}->json")
        run = self.timed(
            "export",
            lambda to: [*MINSKY, "sessiondb", "export", "--output", to],
            store_env(backend, self.source(backend)),
        )
        self.log(Row(f"export from {NAMES[backend]}", "raw", self.n, *self.pair(run, raw)))

    def restore(self, backend: str) -> None:
        backup = str(self.backup_file())
        raw = self.baseline(f"json->{backend}")
        flag = {"json": "--json-path", "sqlite": "--sqlite-path", "postgres": "--connection-string"}[backend]
        run = self.timed(
            backend, lambda to: [*MINSKY, "sessiondb", "restore", "--backup", backup, "--to", backend, flag, to]
        )
        self.log(Row(f"restore into {NAMES[backend]}", "raw", self.n, *self.pair(run, raw)))

    def count(self, backend: str, location: str) -> int | None:
        """Rows in the target's sessions table, or None if it has none."""
        try:
            if backend == "postgres":
                import psycopg

                with psycopg.connect(location) as conn:
                    got = conn.execute("SELECT count(*) FROM sessions").fetchone()
            else:
                with closing(sqlite3.connect(location)) as db:
                    got = db.execute("SELECT count(*) FROM sessions").fetchone()
        except Exception:  # any failure to read it means "not loaded"
            return None
        return int(got[0]) if got else None

    def minsky_plain(self, direction: str) -> Run:
        if direction not in self.plain:
            src, dst = direction.split("->")
            self.plain[direction] = self.timed(dst, lambda to: migrate_cmd(src, self.source(src), dst, to))
        return self.plain[direction]

    def peer(self, name: str) -> None:
        if name == "pgloader":
            direction, against = "sqlite->postgres", "pgloader: copies the columns, no verification"
            exe = shutil.which("pgloader")
            cmd: Callable[[str], list[str]] | None = None
            if exe:
                source = self.source("sqlite")
                # pgloader's default prefetch (100,000 rows) exhausts its 1 GB SBCL heap on this data
                # at 100k records ("Heap exhausted, game over"; dimitri/pgloader#962): 10,000 is the
                # documented knob users turn, and it loads every row.
                cmd = lambda to: [  # noqa: E731
                    *(exe, "--on-error-stop", "--with", "prefetch rows = 10000"),
                    *(f"sqlite://{source}", self.dbs.uri(to)),
                ]
        else:
            direction, against = "json->sqlite", "sqlite-utils: inserts rows, no verification"
            exe = shutil.which("sqlite-utils") or shutil.which("sqlite-utils", path=str(Path(sys.executable).parent))
            prefix = [exe] if exe else None
            if prefix is None and importlib.util.find_spec("sqlite_utils"):
                prefix = [sys.executable, "-m", "sqlite_utils"]
            cmd = None
            if prefix:
                array = str(bare_array(self.n))
                cmd = lambda to: [*prefix, "insert", to, "sessions", array, "--pk", "session"]  # noqa: E731
        row = Row(f"{arrow(direction)} vs {name}", against, self.n)
        if cmd is None:
            row.note = "not installed"
            self.log(row)
            return
        mine = self.minsky_plain(direction)
        row.minsky_s, row.minsky_mb = mine.seconds, mine.peak_mb
        dst = direction.split("->")[1]
        best: Run | None = None
        for _ in range(self.repeat):
            location = self.target(dst)
            try:
                run = measure(cmd(location), check=False)
                loaded = self.count(dst, location) if run.code == 0 else None
            finally:
                self.discard(dst, location)
            if run.code != 0:
                last = (run.err.strip().splitlines() or run.out.strip().splitlines() or [""])[-1]
                row.note = f"failed (exit {run.code}): {last[:120]}"
                break
            if loaded != self.n:  # a peer's time counts only if it carried every record
                row.note = f"loaded {loaded} of {self.n} records"
                break
            if best is None or run.seconds < best.seconds:
                best = Run(run.seconds, max(run.peak_mb, best.peak_mb if best else 0), "")
        else:
            if best is not None:
                row.other_s, row.other_mb = best.seconds, best.peak_mb
        self.log(row)


def earlier_results(path: Path, commit: str, measured: set[str]) -> list[dict[str, Any]]:
    """The rows an earlier run of this commit and N left in ``path`` that this run did not measure
    again: a `--variants verify,backup` run after the plain one keeps the plain rows (growth.md
    reads them)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("machine", {}).get("commit") != commit:
        return []
    return [r for r in data.get("results", []) if isinstance(r, dict) and r.get("what") not in measured]


def growth_from_results(out_dir: Path, commit: str) -> str | None:
    """The growth table from every result file of this commit on disk (plain migrations only):
    run --n 10000, --n 100000 and --n 1000000 one after the other and results/growth.md has all three."""
    rows: dict[tuple[str, int], Row] = {}
    for path in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(data, dict) or data.get("machine", {}).get("commit") != commit:
            continue
        for r in data.get("results", []):
            if r.get("against") == "raw" and "→" in r.get("what", "") and "--" not in r["what"]:
                fields = {k: r[k] for k in ("what", "against", "n", "minsky_s", "minsky_mb", "other_s", "other_mb")}
                rows[(r["what"], r["n"])] = Row(**fields)
    if not rows:
        return None
    order = {arrow(d): i for i, d in enumerate(DIRECTIONS)}
    return growth_table(sorted(rows.values(), key=lambda r: (order.get(r.what, 99), r.n)))


def run_one(n: int, args: argparse.Namespace, dbs: Databases) -> Bench:
    work = Path(tempfile.mkdtemp(prefix="minsky-bench-"))
    try:
        bench = Bench(n, dbs, work, args.repeat)
        for direction in args.directions:
            bench.direction(direction, args.variants)
        for backend in args.export_from:
            bench.export(backend)
        for backend in args.restore_to:
            bench.restore(backend)
        for name in args.peers:
            bench.peer(name)
        return bench
    finally:
        shutil.rmtree(work, ignore_errors=True)


def choose(value: str, allowed: list[str], what: str) -> list[str]:
    if value in ("none", ""):
        return []
    chosen = [item.strip() for item in value.split(",")]
    unknown = [item for item in chosen if item not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)}, or none)")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--verify", action="store_true", help="(old flag) also run the verify variant")
    parser.add_argument("--restore-to", default=",".join(BACKENDS))
    parser.add_argument("--export-from", default=",".join(BACKENDS))
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--repeat", type=int, default=1, help="best of this many runs of every command")
    parser.add_argument("--growth", help="comma-separated sizes: only the direction rows, one column per size")
    parser.add_argument("--clean-cache", action="store_true", help="remove the cached datasets and exit")
    args = parser.parse_args()
    if args.clean_cache:
        clean_cache()
        return
    args.directions = choose(args.directions, DIRECTIONS, "direction")
    args.variants = choose(args.variants, VARIANTS, "variant")
    if args.verify and "verify" not in args.variants:
        args.variants.append("verify")
    args.restore_to = choose(args.restore_to, BACKENDS, "backend")
    args.export_from = choose(args.export_from, BACKENDS, "backend")
    args.peers = choose(args.peers, PEERS, "peer")
    sizes = [int(s) for s in args.growth.split(",")] if args.growth else [args.n]
    if args.growth:
        args.restore_to, args.export_from, args.peers = [], [], []
    info = machine()
    info["load_start"] = load()
    dbs = Databases()
    rows: list[Row] = []
    try:
        for n in sizes:
            rows += run_one(n, args, dbs).rows
    finally:
        dbs.close()
    info["load_end"] = load()
    heading = (
        f"minsky {info['commit']}, {info['date']}, {info['cpus']} CPUs ({info['cpu']}), Python {info['python']}, "
        f"load average {info['load_start']} at start, {info['load_end']} at end (1/5/15 min)"
    )
    body = growth_table(rows) if args.growth else table(rows)
    print(heading + "\n\n" + body)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stem = f"growth-{'-'.join(map(str, sizes))}" if args.growth else f"migrate-{args.n}"
    (out_dir / f"{stem}.md").write_text(heading + "\n\n" + body + "\n")
    results = [r.to_json() for r in rows]
    results = earlier_results(out_dir / f"{stem}.json", info["commit"], {r["what"] for r in results}) + results
    (out_dir / f"{stem}.json").write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    growth = growth_from_results(out_dir, info["commit"])
    if growth:
        (out_dir / "growth.md").write_text(f"minsky {info['commit']}: time in s / peak RSS in MB\n\n{growth}\n")
        print(f"\n(growth table of every run of {info['commit']} so far: {out_dir / 'growth.md'})")


if __name__ == "__main__":
    main()
