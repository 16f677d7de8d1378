"""SQLite's own backup, restore and integrity check, as operation hooks.

``--backup-format native`` copies the database with SQLite's online backup API:
one consistent snapshot, taken while other processes keep writing (WAL readers
block no writer). The copy is an ordinary SQLite store (journal mode DELETE, so
one file) with a ``minsky_backup`` table recording count and store digest, which
a restore checks before anything is written. Each hook answers only for an
SQLite store or file and returns None otherwise.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from minsky import __version__, hookimpl
from minsky.atomic import TEMP_PREFIX, fsync_dir
from minsky.backend import ReadableStore, Store, VerifyReport
from minsky.codec import StoreDigest
from minsky.errors import StoreError, VerificationError
from minsky.operations import BackupResult
from minsky_backend_sqlite.held import held

if TYPE_CHECKING:
    from minsky_backend_sqlite.store import SqliteStore

SUFFIX = ".db"
META_TABLE = "minsky_backup"
FORMAT = "sqlite-backup-1"
_HEADER = b"SQLite format 3\x00"


def _readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30, isolation_level=None)


@contextlib.contextmanager
def _errors(doing: str, path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {doing}: {exc}") from None
    except OSError as exc:
        raise StoreError(f"{path}: {doing}: {exc.strerror}") from None


def _sqlite_store(store: object) -> bool:
    from minsky_backend_sqlite.store import SqliteStore

    return isinstance(store, SqliteStore)


@hookimpl
def backup(backend: str, store: ReadableStore, stem: Path, backup_format: str) -> BackupResult | None:
    if backup_format != "native" or not _sqlite_store(store):
        return None
    return native_backup(backend, store, Path(f"{stem}{SUFFIX}"))


def native_backup(backend: str, store: ReadableStore, path: Path) -> BackupResult:
    """Snapshot ``store`` into ``path`` (complete or absent, 0600); count and digest it."""
    from minsky_backend_sqlite.store import SqliteStore

    assert isinstance(store, SqliteStore)
    if not store.exists():
        raise StoreError(f"the store {store.location} does not exist: nothing to back up")
    if path.exists():
        raise StoreError(f"backup {path} already exists; try again")
    temp = path.with_name(f"{TEMP_PREFIX}{path.name}")
    try:
        with _errors("backing up", store.path):
            os.close(os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            # the store's own read-only connection: it leaves no -wal/-shm behind
            with store._reader() as source, contextlib.closing(sqlite3.connect(temp, isolation_level=None)) as copy:
                assert source is not None
                source.backup(copy)  # pages=-1: the whole database in one step, one snapshot
                copy.execute("PRAGMA journal_mode = DELETE")
        digest = StoreDigest.of(SqliteStore(temp).read())
        meta = {
            "format": FORMAT,
            "sourceBackend": backend,
            "sourceLocation": store.location,
            "count": str(digest.count),
            "storeDigest": digest.hexdigest,
            "minskyVersion": __version__,
            "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        with _errors("recording the backup's metadata", temp):
            copy = sqlite3.connect(temp)
            try:
                with copy:
                    copy.execute(f"CREATE TABLE {META_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                    copy.executemany(f"INSERT INTO {META_TABLE} VALUES (?, ?)", sorted(meta.items()))
            finally:
                copy.close()
            with temp.open("rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(temp, path)
            fsync_dir(path.parent)
    finally:
        temp.unlink(missing_ok=True)
    return BackupResult(path=path, count=digest.count, digest=digest.hexdigest, format="native")


@hookimpl
def restore(path: Path) -> ReadableStore | None:
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            return None  # never open a FIFO or device just to look: core refuses it
        if held(path):  # an SQLite database, and one not to open aside (``held``)
            return open_native_backup(path)
        with path.open("rb") as handle:
            if handle.read(16) != _HEADER:
                return None
    except OSError:
        return None
    return open_native_backup(path)


def open_native_backup(path: Path) -> ReadableStore:
    """An SQLite backup (or any SQLite store file) as a read-only source, checked first."""
    from minsky_backend_sqlite.store import SqliteStore

    with _errors("reading the backup", path):
        conn = _readonly(path)
        try:
            check = [row[0] for row in conn.execute("PRAGMA quick_check")]
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (META_TABLE,)).fetchone()
            meta = dict(conn.execute(f"SELECT key, value FROM {META_TABLE}").fetchall()) if has_meta else {}
        finally:
            conn.close()
    if check != ["ok"]:
        raise VerificationError(f"backup {path} is damaged: {check[0]}; nothing was restored")
    source = SqliteStore(path)
    if meta:
        digest = StoreDigest.of(source.read())
        if (str(digest.count), digest.hexdigest) != (meta.get("count"), meta.get("storeDigest")):
            raise VerificationError(
                f"backup {path} is damaged: it holds {digest.count} records with digest "
                f"{digest.hexdigest[:12]}…, its metadata says {meta.get('count')} and "
                f"{str(meta.get('storeDigest'))[:12]}…; nothing was restored"
            )
    return source


@hookimpl
def verify(store: Store) -> VerifyReport | None:
    from minsky_backend_sqlite.store import SqliteStore

    return native_verify(store) if isinstance(store, SqliteStore) else None


def native_verify(store: SqliteStore) -> VerifyReport:
    """What SQLite checks beyond the store's own ``verify()`` (which already runs ``integrity_check``:
    page structure and indexes — once per check is enough, it reads the whole file): foreign keys.
    Structural: ``checked`` stays 0 (core's check counts the records)."""
    problems: list[str] = []
    with store._reader() as conn:
        if conn is None:
            return VerifyReport(ok=True, checked=0)
        try:
            for table, rowid, parent, _ in conn.execute("PRAGMA foreign_key_check"):
                problems.append(f"foreign_key_check: {table} row {rowid} refers to a missing {parent} row")
        except sqlite3.DatabaseError as exc:
            problems.append(f"foreign_key_check: {exc}")
    return VerifyReport(ok=not problems, checked=0, problems=tuple(problems))


__all__ = ["backup", "native_backup", "native_verify", "open_native_backup", "restore", "verify"]
