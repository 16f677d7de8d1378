"""The ``sessions`` table: the original Minsky's columns, so its clients can still
read what minsky writes, plus ``record`` (the whole record as canonical JSON),
which is what minsky reads back, so nothing is lost.

Schema versions live in ``PRAGMA user_version``:
  0  a database of the original Minsky (or empty);
  1  minsky's: ``record`` column, indexes on task_id and created_at.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from minsky.codec import canonical, compact_bytes, record_from_dict, record_to_dict
from minsky.model import SessionRecord

SCHEMA_VERSION = 1

COLUMNS = (
    "session",
    "repo_name",
    "repo_url",
    "created_at",
    "task_id",
    "branch",
    "pr_branch",
    "pr_approved",
    "pr_state",
    "backend_type",
    "github",
    "remote",
    "pull_request",
    "record",
)

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

# Columns of the original's two layouts, mapped to record keys.
_SNAKE_TEXT = {
    "repo_name": "repoName",
    "repo_url": "repoUrl",
    "created_at": "createdAt",
    "task_id": "taskId",
    "branch": "branch",
    "pr_branch": "prBranch",
    "backend_type": "backendType",
}
_SNAKE_JSON = {
    "pr_approved": "prApproved",
    "pr_state": "prState",
    "github": "github",
    "remote": "remote",
    "pull_request": "pullRequest",
}
_CAMEL_TEXT = ("repoName", "repoUrl", "createdAt", "taskId", "branch", "repoPath")

UPSERT = (
    f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    "ON CONFLICT(session) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
)
INSERT = f"INSERT INTO sessions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def columns_of(conn: sqlite3.Connection) -> list[str]:
    return [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _json(value: Any) -> str | None:
    return None if value is None else compact_bytes(value).decode("utf-8", "surrogatepass")


def to_row(record: SessionRecord) -> tuple[Any, ...]:
    data = record_to_dict(record)
    return (
        record.session,
        _text(data.get("repoName")) or "",
        _text(data.get("repoUrl")) or "",
        _text(data.get("createdAt")) or "",
        _text(data.get("taskId")),
        _text(data.get("branch")),
        _text(data.get("prBranch")),
        _json(data.get("prApproved")),
        _json(data.get("prState")),
        _text(data.get("backendType")),
        _json(data.get("github")),
        _json(data.get("remote")),
        _json(data.get("pullRequest")),
        canonical(record).decode("utf-8", "surrogatepass"),
    )


def select_sql(columns: list[str]) -> str:
    """A SELECT that works on every layout; ``from_row`` decodes its rows."""
    return f"SELECT {', '.join(columns)} FROM sessions"


def from_row(columns: list[str], row: tuple[Any, ...], where: str) -> SessionRecord:
    values = dict(zip(columns, row, strict=True))
    if values.get("record"):
        return record_from_dict(json.loads(values["record"]), where=where)
    data: dict[str, Any] = {"session": values["session"]}
    for column, key in _SNAKE_TEXT.items():
        if values.get(column) is not None:
            data[key] = values[column]
    for column, key in _SNAKE_JSON.items():
        if values.get(column) is not None:
            data[key] = json.loads(values[column])
    for key in _CAMEL_TEXT:
        if values.get(key) is not None:
            data[key] = values[key]
    return record_from_dict(data, where=where)
