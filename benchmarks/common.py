"""What every benchmark here shares: timing a subprocess with its peak RSS, fresh PostgreSQL
databases, the cached dataset, and a description of the machine and the code measured."""

from __future__ import annotations

import compileall
import contextlib
import hashlib
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from dataset import VERSION as DATASET_VERSION  # noqa: E402
from dataset import write_bare_array, write_json_store  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
MINSKY = [sys.executable, "-m", "minsky"]
# The built-in backends only: the audit example appends a line per record in its write hook.
PLUGINS = "json,sqlite,postgres"
LOCATION_FLAG = {"json": "--json-path", "sqlite": "--sqlite-path", "postgres": "--connection-string"}


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_mb: float
    out: str
    code: int = 0
    err: str = ""


_BYTE_COMPILED: list[bool] = []


def byte_compile() -> None:
    """Byte-compile minsky and its backends once, as pip does for a package it installs. An
    editable install run with PYTHONDONTWRITEBYTECODE=1 (set on this machine) compiled ~55 modules
    from source in every measured command, ~0.1 s each time, which no installed copy pays; what
    the baselines and peers import (the standard library, psycopg) was compiled when installed."""
    if _BYTE_COMPILED:
        return
    _BYTE_COMPILED.append(True)
    for name in ("minsky", "minsky_backend_json", "minsky_backend_sqlite", "minsky_backend_postgres"):
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)


def measure(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> Run:
    """Wall time and peak RSS of one subprocess.

    The RSS comes from ``wait4`` on the process spawned: Linux reports the largest peak of that
    process and of the descendants it waited for — not the sum of processes running at once, and
    nothing for what a server (PostgreSQL) spends on the client's behalf.
    Output goes to a temporary file, not a pipe: a pipe nobody drains would stall a chatty child.
    """
    byte_compile()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if check and proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}\n{stderr[-4000:]}")
    return Run(seconds, usage.ru_maxrss / 1024, stdout, proc.returncode, stderr)


def bench_env(work: Path) -> dict[str, str]:
    """A private state and config directory, and only the built-in backends loaded."""
    return {
        "XDG_STATE_HOME": str(work / "state"),
        "XDG_CONFIG_HOME": str(work / "config"),
        "MINSKY_LOAD_PLUGINS": os.environ.get("MINSKY_LOAD_PLUGINS", PLUGINS),
    }


def store_env(backend: str, location: str) -> dict[str, str]:
    """Environment that makes ``location`` the configured store."""
    if backend == "postgres":
        return {"MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": location}
    return {"MINSKY_SESSIONDB_BACKEND": backend, "MINSKY_SESSIONDB_DB_PATH": location}


def migrate_cmd(src: str, src_at: str, dst: str, dst_at: str, *extra: str) -> list[str]:
    return [
        *MINSKY,
        "sessiondb",
        "migrate",
        "to",
        dst,
        "--from",
        src,
        LOCATION_FLAG[src],
        src_at,
        LOCATION_FLAG[dst],
        dst_at,
        *extra,
    ]


class Databases:
    """Fresh PostgreSQL databases for one run, all dropped at the end."""

    def __init__(self, base: str | None = None) -> None:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        self.base = base or os.environ.get("MINSKY_BENCH_POSTGRES_URL", DEFAULT_PG)
        self.admin = psycopg.connect(self.base, autocommit=True)
        self._make, self._parse = make_conninfo, conninfo_to_dict
        self.names: list[str] = []

    def fresh(self) -> str:
        name = f"minsky_bench_{uuid.uuid4().hex[:10]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return str(self._make(self.base, dbname=name))

    def uri(self, conninfo: str) -> str:
        """The URI form (pgloader takes nothing else); a password, if any, stays in it, unprinted."""
        from urllib.parse import quote

        p = self._parse(conninfo)
        auth = quote(str(p.get("user", "postgres")))
        if p.get("password"):
            auth += ":" + quote(str(p["password"]))
        return f"postgresql://{auth}@{p.get('host', '127.0.0.1')}:{p.get('port', 5432)}/{p['dbname']}"

    def drop(self, conninfo: str) -> None:
        name = self._parse(conninfo)["dbname"]
        self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.names.remove(name)

    def close(self) -> None:
        for name in self.names:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


def cache_root() -> Path:
    return Path(os.environ.get("MINSKY_BENCH_CACHE", Path(tempfile.gettempdir()) / "minsky-bench-cache"))


def code_key() -> str:
    """A digest of the code that writes stores (core and the SQLite backend): a SQLite source
    written by other code is rebuilt rather than trusted."""
    digest = hashlib.sha256()
    for top in (ROOT / "core" / "src", ROOT / "plugins" / "minsky-backend-sqlite" / "src"):
        for path in sorted(top.rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _publish(build: Path, final: Path) -> Path:
    """Rename a finished file into the cache, so a killed run never leaves half a dataset."""
    build.replace(final)
    return final


def dataset(n: int, log: bool = True) -> Path:
    """The JSON store of ``n`` records from dataset.py, generated once per (version, n)."""
    folder = cache_root() / f"v{DATASET_VERSION}-n{n}"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / "source.json"
    if not final.exists():
        if log:
            print(f"generating {n:,} records into {final}…", file=sys.stderr)
        build = folder / f".source.json.{os.getpid()}"
        write_json_store(build, n)
        _publish(build, final)
    return final


def bare_array(n: int) -> Path:
    """The same records as a bare JSON array (what ``sqlite-utils insert`` takes)."""
    final = dataset(n).parent / "sessions-array.json"
    if not final.exists():
        build = final.with_name(f".{final.name}.{os.getpid()}")
        write_bare_array(build, n)
        _publish(build, final)
    return final


def sqlite_source(n: int, env: dict[str, str]) -> Path:
    """A SQLite store minsky wrote from the dataset, cached per (dataset, n, code)."""
    final = dataset(n).parent / f"source-{code_key()}.db"
    if not final.exists():
        print(f"writing the SQLite source {final}…", file=sys.stderr)
        build = final.with_name(f".build-{os.getpid()}.db")
        run = measure(migrate_cmd("json", str(dataset(n)), "sqlite", str(build)), env)
        print(f"  took {run.seconds:.1f} s, {run.peak_mb:,.0f} MB peak", file=sys.stderr)
        for stale in final.parent.glob("source-*.db"):  # other code's copies: 1 GB each at 1M
            stale.unlink()
        _publish(build, final)
    return final


def clean_cache() -> None:
    shutil.rmtree(cache_root(), ignore_errors=True)


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "core", "plugins")
    return head + ("+local changes" if dirty else "")


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "commit": commit(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())
