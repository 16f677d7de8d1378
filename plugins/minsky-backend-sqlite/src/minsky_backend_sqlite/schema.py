"""The ``sessions`` table: the original Minsky's columns, so its clients can still
read what minsky writes, plus ``record`` (the whole record as canonical JSON),
which is what minsky reads back, so nothing is lost.

Schema versions live in ``PRAGMA user_version``:
  0  a database of the original Minsky (or empty);
  1  minsky's: ``record`` column, indexes on task_id and created_at.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from minsky import original
from minsky.backend import MovedMark
from minsky.codec import canonical, loads, record_from_dict
from minsky.model import SessionRecord

SCHEMA_VERSION = 1

COLUMNS = ("session", *original.COLUMNS, "record")

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
  record        TEXT
)"""

INDEXES = (
    "CREATE INDEX IF NOT EXISTS idx_sessions_task_id ON sessions(task_id)",
    "CREATE INDEX IF NOT EXISTS idx_sessions_created_at ON sessions(created_at)",
)

# The original's early layout kept these keys in camelCase columns.
_CAMEL_TEXT = ("repoName", "repoUrl", "createdAt", "taskId", "branch", "repoPath")

UPSERT = (
    f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT(session) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)
INSERT_IF_ABSENT = (
    f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT(session) DO NOTHING"
)
INSERT = f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def columns_of(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]


def to_row(record: SessionRecord) -> tuple[Any, ...]:
    values = original.project(record)
    return (record.session, *(values[c] for c in original.COLUMNS), canonical(record).decode("utf-8", "surrogatepass"))


def select_sql(columns: list[str]) -> str:
    """A SELECT that works on every layout; ``from_row`` decodes its rows."""
    return f"SELECT {', '.join(columns)} FROM sessions"


def from_row(columns: list[str], row: tuple[Any, ...], where: str) -> SessionRecord:
    values = dict(zip(columns, row, strict=True))
    if values.get("record"):
        return record_from_dict(loads(values["record"]), where=where)
    data = original.rebuild(values["session"], values)
    for key in _CAMEL_TEXT:  # the original's early camelCase layout
        if values.get(key) is not None:
            data[key] = values[key]
    return record_from_dict(data, where=where)


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
