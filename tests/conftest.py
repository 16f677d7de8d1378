"""Shared fixtures: an isolated home for every test, the CLI, and the shared fixtures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MINSKY_SHARED_DIR", REPO.parent / "shared"))
SAMPLE_STORE = SHARED / "fixtures" / "minsky-store-sample.json"
ORIGINAL = SHARED / "fixtures" / "original"  # the stores the original Minsky left on disk


@pytest.fixture
def shared_sample() -> Path:
    if not SAMPLE_STORE.exists():
        pytest.fail(f"shared fixtures not found at {SHARED}: set MINSKY_SHARED_DIR")
    return SAMPLE_STORE


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config, state and working directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    for var in list(os.environ):
        if var.startswith("MINSKY_") and var not in (
            "MINSKY_TEST_POSTGRES_URL",
            "MINSKY_REQUIRE_POSTGRES",
            "MINSKY_SHARED_DIR",
        ):
            monkeypatch.delenv(var)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture
def state_dir(isolated_home: Path) -> Path:
    return isolated_home / ".local" / "state" / "minsky"


Invoke = Callable[..., Result]


@pytest.fixture
def minsky() -> Invoke:
    """Run the CLI in-process, as a user types it."""
    from minsky.cli import cli

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def minsky_json(minsky: Invoke) -> Callable[..., dict]:  # type: ignore[type-arg]
    def run(*args: str) -> dict:  # type: ignore[type-arg]
        result = minsky(*args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run


def run_minsky(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run minsky as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "minsky", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def use_backend(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def choose(backend: str) -> None:
        monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", backend)

    yield choose


# -- PostgreSQL: a real server, a fresh database per run -------------------------

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("MINSKY_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (MINSKY_REQUIRE_POSTGRES=1) but {reason}")
    pytest.skip(
        f"no PostgreSQL server: {reason}. Set MINSKY_TEST_POSTGRES_URL=postgresql://USER@HOST:PORT/DB "
        "(a user who may CREATE DATABASE), or start a local server on 127.0.0.1:5432"
    )


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A database created for this test run, dropped at its end."""
    import uuid

    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict, make_conninfo
    except ImportError:
        _pg_unavailable("minsky-backend-postgres (psycopg) is not installed")
    base = os.environ.get("MINSKY_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=5)
    except psycopg.Error as exc:
        _pg_unavailable(f"cannot connect to {conninfo_to_dict(base).get('host')}: {str(exc).splitlines()[0]}")
    name = f"minsky_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(base, dbname=name)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """The run's database, emptied for this test."""
    import psycopg

    def reset() -> None:
        with psycopg.connect(postgres_server_url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS sessions, minsky_schema_migrations, minsky_metadata")

    reset()
    yield postgres_server_url
    reset()


@pytest.fixture(scope="session")
def password_server() -> Iterator[tuple[str, int]]:
    """A PostgreSQL cluster that checks passwords: (host, port); user/password in tests/pgserver.py."""
    import shutil
    import tempfile

    from pgserver import password_cluster

    # Not under pytest's tmp root: that is private to root, and the server runs as postgres.
    workdir = Path(tempfile.mkdtemp(prefix="minsky-pg-password-"))
    cluster = password_cluster(workdir)
    try:
        address = cluster.__enter__()
    except (RuntimeError, OSError, subprocess.CalledProcessError) as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        detail = getattr(exc, "stderr", b"") or b""
        _pg_unavailable(f"cannot start a password-checking cluster: {exc} {detail.decode(errors='replace')[-300:]}")
    try:
        yield address
    finally:
        cluster.__exit__(None, None, None)
        shutil.rmtree(workdir, ignore_errors=True)
