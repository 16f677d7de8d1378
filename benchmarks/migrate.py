"""Migration benchmark: minsky through its real CLI against a raw-driver baseline, same run.

    python benchmarks/migrate.py --n 100000 [--directions json->sqlite,...] [--verify]

For each direction it prints records/s for minsky and the baseline, the time ratio
(minsky / baseline; the target is at most 1.5) and both peak RSS figures, and writes
``benchmarks/results/migrate-<n>.json``. PostgreSQL comes from MINSKY_BENCH_POSTGRES_URL
(default: the local server); each run uses fresh databases and drops them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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

DIRECTIONS = [
    "json->sqlite",
    "sqlite->postgres",
    "postgres->json",
    "json->postgres",
    "sqlite->json",
    "postgres->sqlite",
]
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Wall time (s) and peak RSS (MB) of one subprocess."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else ""
    err = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{err}")
    return seconds, usage.ru_maxrss / 1024, out


class Databases:
    def __init__(self, base: str) -> None:
        import psycopg
        from psycopg.conninfo import make_conninfo

        self.admin = psycopg.connect(base, autocommit=True)
        self.base, self.make = base, make_conninfo
        self.names: list[str] = []

    def fresh(self) -> str:
        name = f"minsky_bench_{uuid.uuid4().hex[:10]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return str(self.make(self.base, dbname=name))

    def close(self) -> None:
        for name in self.names:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


def flags(backend: str, location: str) -> list[str]:
    return {"json": ["--json-path"], "sqlite": ["--sqlite-path"], "postgres": ["--connection-string"]}[backend] + [
        location
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--directions", default=",".join(DIRECTIONS))
    parser.add_argument("--verify", action="store_true", help="also time minsky with --verify")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="minsky-bench-"))
    dbs = Databases(os.environ.get("MINSKY_BENCH_POSTGRES_URL", DEFAULT_PG))
    env = {"XDG_STATE_HOME": str(work / "state"), "XDG_CONFIG_HOME": str(work / "config")}
    results: list[dict[str, Any]] = []
    try:
        print(f"generating {args.n:,} records…", file=sys.stderr)
        sources = {"json": str(work / "source.json")}
        write_json_store(Path(sources["json"]), args.n)
        minsky = [sys.executable, "-m", "minsky"]
        sources["sqlite"] = str(work / "source.db")
        run(
            [
                *minsky,
                "sessiondb",
                "migrate",
                "to",
                "sqlite",
                "--from",
                "json",
                "--json-path",
                sources["json"],
                "--sqlite-path",
                sources["sqlite"],
            ],
            env,
        )
        sources["postgres"] = dbs.fresh()
        run(
            [
                *minsky,
                "sessiondb",
                "migrate",
                "to",
                "postgres",
                "--from",
                "json",
                "--json-path",
                sources["json"],
                "--connection-string",
                sources["postgres"],
            ],
            env,
        )
        for direction in args.directions.split(","):
            src, dst = direction.split("->")
            targets = {
                "json": lambda tag: str(work / f"{tag}.json"),
                "sqlite": lambda tag: str(work / f"{tag}.db"),
                "postgres": lambda tag: dbs.fresh(),
            }
            raw_s, raw_mb, _ = run(
                [sys.executable, str(HERE / "baselines.py"), direction, sources[src], targets[dst](f"raw-{src}")]
            )
            cmd = [*minsky, "sessiondb", "migrate", "to", dst, "--from", src, *flags(src, sources[src])]
            m_s, m_mb, _ = run([*cmd, *flags(dst, targets[dst](f"minsky-{src}"))], env)
            row: dict[str, Any] = {
                "direction": direction,
                "n": args.n,
                "minsky_s": round(m_s, 3),
                "raw_s": round(raw_s, 3),
                "ratio": round(m_s / raw_s, 2),
                "minsky_rps": round(args.n / m_s),
                "raw_rps": round(args.n / raw_s),
                "minsky_peak_mb": round(m_mb, 1),
                "raw_peak_mb": round(raw_mb, 1),
            }
            if args.verify:
                v_s, v_mb, _ = run([*cmd, *flags(dst, targets[dst](f"verify-{src}")), "--verify"], env)
                row.update(
                    {
                        "verify_s": round(v_s, 3),
                        "verify_overhead": round(v_s / m_s - 1, 2),
                        "verify_peak_mb": round(v_mb, 1),
                    }
                )
            results.append(row)
            print(json.dumps(row), file=sys.stderr)
    finally:
        dbs.close()
        shutil.rmtree(work, ignore_errors=True)
    header = f"{'direction':18} {'minsky rec/s':>13} {'raw rec/s':>11} {'ratio':>6} {'minsky MB':>10} {'raw MB':>7}"
    print(header + ("  verify +%" if args.verify else ""))
    for r in results:
        line = (
            f"{r['direction']:18} {r['minsky_rps']:>13,} {r['raw_rps']:>11,} {r['ratio']:>6.2f} "
            f"{r['minsky_peak_mb']:>10.1f} {r['raw_peak_mb']:>7.1f}"
        )
        if args.verify:
            line += f"  {100 * r['verify_overhead']:>8.0f}%"
        print(line)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    machine = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    (out_dir / f"migrate-{args.n}.json").write_text(json.dumps({"machine": machine, "results": results}, indent=2))


if __name__ == "__main__":
    main()
