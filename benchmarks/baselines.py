"""The raw baseline for each direction: the fastest straightforward driver code that
moves the same records into the same tables, with no model, digests or checks.

Run as ``python baselines.py DIRECTION SOURCE TARGET`` (a subprocess, so that its
time and peak RSS are measured like minsky's).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator
from typing import Any

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
SQLITE_DDL = """CREATE TABLE sessions (session TEXT PRIMARY KEY, repo_name TEXT NOT NULL, repo_url TEXT NOT NULL,
  created_at TEXT NOT NULL, task_id TEXT, branch TEXT, pr_branch TEXT, pr_approved TEXT, pr_state TEXT,
  backend_type TEXT, github TEXT, remote TEXT, pull_request TEXT, record TEXT);
CREATE INDEX idx_task ON sessions(task_id); CREATE INDEX idx_created ON sessions(created_at);"""
PG_DDL = """CREATE TABLE sessions (session TEXT PRIMARY KEY, repo_name TEXT NOT NULL, repo_url TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL, task_id TEXT, branch TEXT, pr_branch TEXT, pr_approved TEXT, pr_state TEXT,
  backend_type TEXT, github TEXT, remote TEXT, pull_request TEXT, record TEXT);
CREATE INDEX idx_task ON sessions(task_id); CREATE INDEX idx_created ON sessions(created_at);"""


def _j(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def row(r: dict[str, Any]) -> tuple[Any, ...]:
    return (
        r["session"],
        r.get("repoName", ""),
        r.get("repoUrl", ""),
        r.get("createdAt", ""),
        r.get("taskId"),
        r.get("branch"),
        r.get("prBranch"),
        _j(r.get("prApproved")),
        _j(r.get("prState")),
        r.get("backendType"),
        _j(r.get("github")),
        _j(r.get("remote")),
        _j(r.get("pullRequest")),
        json.dumps(r),
    )


def read_json(path: str) -> list[dict[str, Any]]:
    with open(path, "rb") as handle:
        sessions: list[dict[str, Any]] = json.load(handle)["sessions"]
    return sessions


def read_sqlite(path: str) -> Iterator[dict[str, Any]]:
    conn = sqlite3.connect(path)
    for (text,) in conn.execute("SELECT record FROM sessions"):
        yield json.loads(text)


def read_pg(url: str) -> Iterator[dict[str, Any]]:
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor(name="raw") as cur:
        cur.itersize = 2000
        cur.execute("SELECT record FROM sessions")
        for (text,) in cur:
            yield json.loads(text)


def write_json(path: str, records: Iterable[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump({"sessions": list(records)}, out)


def write_sqlite(path: str, records: Iterable[dict[str, Any]]) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(SQLITE_DDL)
    conn.execute("BEGIN")
    conn.executemany(f"INSERT INTO sessions VALUES ({', '.join('?' * len(COLUMNS))})", (row(r) for r in records))
    conn.execute("COMMIT")
    conn.close()


def write_pg(url: str, records: Iterable[dict[str, Any]]) -> None:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS sessions")
        conn.execute(PG_DDL)
        with conn.cursor() as cur, cur.copy(f"COPY sessions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for r in records:
                copy.write_row(row(r))


READERS = {"json": read_json, "sqlite": read_sqlite, "postgres": read_pg}
WRITERS = {"json": write_json, "sqlite": write_sqlite, "postgres": write_pg}

if __name__ == "__main__":
    direction, source, target = sys.argv[1:4]
    src, dst = direction.split("->")
    WRITERS[dst](target, READERS[src](source))
