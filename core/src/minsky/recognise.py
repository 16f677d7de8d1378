"""Recognising stores the original Minsky wrote, for ``sessiondb migrate status``.

Read-only and by shape alone: a JSON file's top level (the original's bare array,
or the ``{"sessions", "baseDir"}`` object) and an SQLite file's ``sessions`` columns,
which tell the original's layout era apart (see shared/fixtures/original/README.md).
Nothing here opens a store through a backend, and nothing is written.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from minsky.paths import state_dir

# Where the original kept its stores (its state directory is minsky's default one).
ORIGINAL_FILES = ("session-db.json", "sessions.json", "sessions.db")
SQLITE_MAGIC = b"SQLite format 3\x00"


@attrs.frozen
class Found:
    path: Path | str  # a file, or a server store's (redacted) location
    backend: str  # "json" | "sqlite" | a server backend that describes its table
    layout: str
    original: bool  # a layout only the original writes (minsky keeps it when writing into it)
    sessions: int
    repeated: dict[str, int] = attrs.field(factory=dict)  # name -> copies

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "backend": self.backend,
            "layout": self.layout,
            "original": self.original,
            "sessions": self.sessions,
            "repeatedNames": self.repeated,
        }


def sqlite_layout(columns: set[str]) -> tuple[str, bool] | None:
    """The layout era of a ``sessions`` table, from its column names; whether only the original writes it."""
    if "repoName" in columns:  # camelCase: what real sessions.db files have
        if "last_activity_at" in columns:
            return "sqlite-2026-04-20-liveness (camelCase + snake_case liveness columns)", True
        if "branch" not in columns:
            return "sqlite-2025-08-14-drizzle (camelCase, no branch column)", True
        if "prBranch" in columns:
            return "sqlite-2025-08-06-camel-pr (camelCase + PR columns)", True
        return "sqlite-2025-06-23-camel (camelCase)", True
    if "repo_name" in columns:
        if "record" in columns:
            return "minsky (snake_case + record column)", False
        return "sqlite-2025-06-21-snake (snake_case, the original's first day)", True
    return None


def _json_store(path: Path) -> Found | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(value, list):
        layout, original, items = "the original's bare array", True, value
    elif isinstance(value, dict) and isinstance(value.get("sessions"), list):
        layout, original, items = '{"sessions": [...], "baseDir"} object', False, value["sessions"]
    else:
        return None
    names = Counter(item.get("session") for item in items if isinstance(item, dict))
    repeated = {str(name): count for name, count in sorted(names.items(), key=str) if count > 1}
    return Found(path, "json", layout, original, len(items), repeated)


def _sqlite_store(path: Path) -> Found | None:
    # Never while this process has a connection on the file (a migration's locked step): closing
    # this descriptor would drop that connection's POSIX locks (minsky_backend_sqlite.held).
    try:
        with path.open("rb") as handle:
            if handle.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
                return None
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except (OSError, sqlite3.Error):
        return None
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
        layout = sqlite_layout(columns)
        if layout is None:
            return None
        count = conn.execute("SELECT count(*) FROM sessions").fetchone()[0]
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return Found(path, "sqlite", layout[0], layout[1], int(count))


def recognise(path: Path) -> Found | None:
    """What kind of session store ``path`` is, if it is one."""
    if not path.is_file():
        return None
    return _sqlite_store(path) or _json_store(path)


def survey(configured: Path | None) -> list[Found]:
    """The configured file store, and the original's files in the state directory, as recognised."""
    candidates = [configured] if configured is not None else []
    candidates += [state_dir() / name for name in ORIGINAL_FILES]
    seen: set[Path] = set()
    found = []
    for path in candidates:
        key = path.resolve()
        if key in seen:
            continue
        seen.add(key)
        item = recognise(path)
        if item is not None:
            found.append(item)
    return found
