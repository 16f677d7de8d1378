"""The ``sessions`` table in whatever layout it has: the original Minsky's camelCase
files, its snake_case first day, its mixed liveness era, or minsky's own. Columns are
mapped by rule (``minsky.original``); minsky adds only ``record`` (the whole record as
canonical JSON) and ``record_digest`` (a digest of the cells it wrote), never a rebuild.

Schema versions live in ``PRAGMA user_version``:
  0  a database of the original Minsky (or empty);
  1  minsky's: ``record`` column, indexes on the task and creation-time columns;
  2  ``record_digest``, so that a row the original changed later is read with its changes.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

from minsky import original
from minsky.backend import MovedMark
from minsky.codec import canonical_text, record_to_dict
from minsky.model import SessionRecord

SCHEMA_VERSION = 2

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS sessions (
  session       TEXT PRIMARY KEY,
  repo_name     TEXT NOT NULL,
  repo_url      TEXT NOT NULL,
  created_at    TEXT NOT NULL,
  task_id       TEXT,
  branch        TEXT,
  pr_branch     TEXT,
  pr_approved   TEXT,
  pr_state      TEXT,
  backend_type  TEXT,
  github        TEXT,
  remote        TEXT,
  pull_request  TEXT,
  record        TEXT,
  record_digest TEXT
)"""

INDEXED_KEYS = {"taskId": "idx_sessions_task_id", "createdAt": "idx_sessions_created_at"}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _kind(declared: str) -> original.Kind:
    """SQLite's type affinity rules (https://sqlite.org/datatype3.html#determination_of_column_affinity)."""
    upper = declared.upper()
    if "INT" in upper:
        return "integer"
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return "text"
    if not upper or "BLOB" in upper:
        return "any"
    return "real"


def table_of(conn: sqlite3.Connection) -> original.Table | None:
    """The ``sessions`` table's columns, or None when there is no such table."""
    rows = conn.execute("PRAGMA table_info(sessions)").fetchall()
    if not rows:
        return None
    return original.Table(
        [original.Column(name, _kind(declared or ""), bool(notnull)) for _, name, declared, notnull, *_ in rows]
    )


def key_folds_case(conn: sqlite3.Connection) -> bool:
    """Whether the unique index on ``session`` compares names with a collation other than
    BINARY (the original's ``COLLATE NOCASE`` tables): then two names may be one key."""
    for _, index, unique, *_ in conn.execute("PRAGMA index_list(sessions)"):
        if not unique:
            continue
        keys = [row for row in conn.execute(f"PRAGMA index_xinfo({quote(index)})") if row[5]]
        if len(keys) == 1 and keys[0][2] == original.KEY and str(keys[0][4]).upper() != "BINARY":
            return True
    return False


def select_sql(table: original.Table) -> str:
    return f"SELECT {', '.join(quote(n) for n in table.names)} FROM sessions"


@functools.lru_cache(maxsize=64)  # per table (hashed by identity): to_row runs once per record
def write_columns(table: original.Table) -> tuple[str, ...]:
    return tuple(n for n in table.names if n != "minsky_seq")


def insert_sql(table: original.Table) -> str:
    cols = write_columns(table)
    return f"INSERT INTO sessions ({', '.join(map(quote, cols))}) VALUES ({', '.join('?' * len(cols))})"


def insert_if_absent_sql(table: original.Table) -> str:
    return f"{insert_sql(table)} ON CONFLICT({quote(original.KEY)}) DO NOTHING"


def upsert_sql(table: original.Table) -> str:
    cols = write_columns(table)
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in cols if c != original.KEY)
    return f"{insert_sql(table)} ON CONFLICT({quote(original.KEY)}) DO UPDATE SET {updates}"


@functools.lru_cache(maxsize=64)
def _row_writer(table: original.Table) -> Callable[[Mapping[str, Any], str], tuple[Any, ...]]:
    return original.row_writer(table, write_columns(table))


def to_row(table: original.Table, record: SessionRecord) -> tuple[Any, ...]:
    """``original.row_for`` in ``write_columns`` order."""
    return _row_writer(table)(record_to_dict(record), canonical_text(record))


def as_mapping(table: original.Table, row: tuple[Any, ...]) -> Mapping[str, Any]:
    return dict(zip(table.names, row, strict=True))


def index_statements(table: original.Table) -> list[str]:
    statements = []
    for key, index in INDEXED_KEYS.items():
        column = table.column_of.get(key)
        if column is not None:
            statements.append(f"CREATE INDEX IF NOT EXISTS {index} ON sessions({quote(column)})")
    return statements


# minsky's own key/value table: the moved marker lives here, never in the sessions table.
CREATE_METADATA = "CREATE TABLE IF NOT EXISTS minsky_metadata (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
MOVED_KEY = "moved"


def moved_mark(conn: sqlite3.Connection, where: str) -> MovedMark | None:
    try:
        row = conn.execute("SELECT value FROM minsky_metadata WHERE key = ?", (MOVED_KEY,)).fetchone()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return None
        raise
    return MovedMark.from_json(row[0], where) if row else None


def set_moved_mark(conn: sqlite3.Connection, mark: MovedMark | None) -> None:
    if mark is None:
        if moved_mark(conn, "") is not None:
            conn.execute("DELETE FROM minsky_metadata WHERE key = ?", (MOVED_KEY,))
        return
    conn.execute(CREATE_METADATA)
    conn.execute(
        "INSERT INTO minsky_metadata (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (MOVED_KEY, mark.to_json()),
    )
