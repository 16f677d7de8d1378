"""A writer never fails (exit 8) because a migration is finishing (issue 12): when its own lock
wait runs out while a migration's last step holds the store's lock, it waits on; when anything
else holds the lock that long, it fails as before. Each backend, with real processes: the lock
is held in a forked child for longer than the writer's (shortened) wait.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reliability import fork, wait_ok

HELD = 4.0  # seconds the child holds the lock: past a JSON writer's give-way (5 waits) and its own wait
WAIT = 0.5


def record(name: str) -> Any:
    from minsky.codec import record_from_dict

    return record_from_dict({"session": name, "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00Z"})


def held_in_child(tmp_path: Path, hold: Callable[[], contextlib.AbstractContextManager[Any]]) -> int:
    """Fork a child that holds ``hold()`` for ``HELD`` seconds; return once it holds it."""
    ready = tmp_path / "ready"

    def work() -> None:
        with hold():
            ready.touch()
            time.sleep(HELD)

    pid = fork(work)
    while not ready.exists():
        time.sleep(0.01)
    return pid


def outcome(pid: int, write: Callable[[], None]) -> str:
    from minsky.errors import LockedError

    try:
        write()
        result = "written"
    except LockedError:
        result = "locked"
    wait_ok(pid)
    return result


@pytest.mark.parametrize("by_migration", [True, False])
def test_json_writer(tmp_path: Path, by_migration: bool) -> None:
    import filelock

    from minsky_backend_json.store import JsonStore

    path = tmp_path / "s.json"
    JsonStore(path).insert(record("a"))

    def hold() -> contextlib.AbstractContextManager[Any]:
        if by_migration:
            return JsonStore(path).write_lock()
        return filelock.FileLock(f"{path}.lock")

    pid = held_in_child(tmp_path, hold)
    assert outcome(pid, lambda: JsonStore(path, lock_timeout=WAIT).insert(record("b"))) == (
        "written" if by_migration else "locked"
    )


@pytest.mark.parametrize("by_migration", [True, False])
def test_sqlite_writer(tmp_path: Path, by_migration: bool) -> None:
    from minsky_backend_sqlite.store import SqliteOptions, SqliteStore

    path = tmp_path / "s.db"
    SqliteStore(path).insert(record("a"))

    @contextlib.contextmanager
    def raw_lock() -> Iterator[None]:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    pid = held_in_child(tmp_path, lambda: SqliteStore(path).write_lock() if by_migration else raw_lock())
    writer = SqliteStore(path, SqliteOptions(busy_timeout_ms=int(WAIT * 1000)))
    assert outcome(pid, lambda: writer.insert(record("b"))) == ("written" if by_migration else "locked")


@pytest.mark.parametrize("by_migration", [True, False])
def test_postgres_writer(
    tmp_path: Path, postgres_url: str, by_migration: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg
    from psycopg import sql

    from minsky_backend_postgres import schema
    from minsky_backend_postgres.store import PostgresStore

    PostgresStore(postgres_url).insert(record("a"))

    @contextlib.contextmanager
    def raw_lock() -> Iterator[None]:
        with psycopg.connect(postgres_url) as conn, conn.transaction():
            conn.execute("LOCK TABLE sessions IN EXCLUSIVE MODE")
            yield

    pid = held_in_child(tmp_path, lambda: PostgresStore(postgres_url).write_lock() if by_migration else raw_lock())
    wait = sql.SQL("SET LOCAL lock_timeout = {w}").format(w=sql.Literal(f"{int(WAIT * 1000)}ms"))
    monkeypatch.setattr(schema, "LOCK_TIMEOUT", wait)
    assert outcome(pid, lambda: PostgresStore(postgres_url).insert(record("b"))) == (
        "written" if by_migration else "locked"
    )
