"""The ``sessions`` table, compatible with the original Minsky's PostgreSQL
schema, plus ``record`` (the whole record as canonical JSON text — not JSONB,
which would reorder keys and refuse ``\\u0000``) and ``minsky_seq`` (the order
records arrived in). Versions are rows of ``minsky_schema_migrations``, applied
under an advisory lock so that clients starting at once apply each exactly once.
Every identifier is composed with ``psycopg.sql``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from minsky import original
from minsky.backend import MovedMark
from minsky.codec import canonical, loads, record_from_dict
from minsky.errors import StoreError
from minsky.model import SessionRecord

SCHEMA_VERSION = 1
TABLE = sql.Identifier("sessions")
MIGRATIONS = sql.Identifier("minsky_schema_migrations")
STAGING = sql.Identifier("minsky_staging")
LOCK_KEY = 0x6D696E736B79  # "minsky": the advisory lock for schema changes
LOCK_WAIT = "30s"  # how long a writer queues behind a migration's table lock (as SQLite's busy timeout)
LOCK_TIMEOUT = sql.SQL("SET LOCAL lock_timeout = {w}").format(w=sql.Literal(LOCK_WAIT))
METADATA = sql.Identifier("minsky_metadata")  # minsky's key/value table: the moved marker, never in sessions
MOVED_KEY = "moved"

COLUMNS = ("session", *original.COLUMNS, "record")
# Binary COPY (no text escaping on either side): the staging row is ord + COLUMNS.
COPY_TYPES = ["int8", "text", "text", "text", "timestamptz", *["text"] * (len(COLUMNS) - 4)]
COLS = sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS)

CREATE_TABLE = sql.SQL("""
CREATE TABLE IF NOT EXISTS {table} (
  session       TEXT PRIMARY KEY,
  repo_name     TEXT NOT NULL,
  repo_url      TEXT NOT NULL,
  created_at    TIMESTAMP WITH TIME ZONE NOT NULL,
  task_id       TEXT,
  branch        TEXT,
  pr_branch     TEXT,
  pr_approved   TEXT,
  pr_state      TEXT,
  backend_type  TEXT,
  github        TEXT,
  remote        TEXT,
  pull_request  TEXT
)""").format(table=TABLE)

V1 = [
    CREATE_TABLE,
    sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS record TEXT").format(t=TABLE),
    sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS minsky_seq BIGSERIAL").format(t=TABLE),
    sql.SQL("CREATE INDEX IF NOT EXISTS idx_sessions_task_id ON {t} (task_id)").format(t=TABLE),
    sql.SQL("CREATE INDEX IF NOT EXISTS idx_sessions_created_at ON {t} (created_at)").format(t=TABLE),
]

UPSERT_FROM_STAGING = sql.SQL(
    "INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} ORDER BY ord ON CONFLICT (session) DO UPDATE SET {updates}"
).format(
    t=TABLE,
    s=STAGING,
    cols=COLS,
    updates=sql.SQL(", ").join(sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in COLUMNS[1:]),
)
INSERT_FROM_STAGING = sql.SQL(
    "INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} ORDER BY ord ON CONFLICT (session) DO NOTHING RETURNING session"
).format(t=TABLE, s=STAGING, cols=COLS)
INSERT = sql.SQL("INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (session) DO NOTHING").format(
    t=TABLE, cols=COLS, vals=sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))
)
UPDATE = sql.SQL("UPDATE {t} SET ({cols}) = ({vals}) WHERE session = %s").format(
    t=TABLE,
    cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[1:]),
    vals=sql.SQL(", ").join(sql.Placeholder() * (len(COLUMNS) - 1)),
)
SELECT = sql.SQL("SELECT {cols} FROM {t}").format(cols=COLS, t=TABLE)
LEGACY_SELECT = sql.SQL("SELECT {cols} FROM {t}").format(
    cols=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS[:-1]), t=TABLE
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def migrate(conn: psycopg.Connection[Any]) -> None:
    """Bring the schema to SCHEMA_VERSION; refuse a newer one. Run inside a transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {m} (version INTEGER PRIMARY KEY, "
            "applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT now())"
        ).format(m=MIGRATIONS)
    )
    row = conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {m}").format(m=MIGRATIONS)).fetchone()
    version = int(row[0]) if row else 0
    refuse_newer(version)
    if version < 1:
        for statement in V1:
            conn.execute(statement)
        conn.execute(sql.SQL("INSERT INTO {m} (version) VALUES (1)").format(m=MIGRATIONS))


def refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the sessions schema is at version {version}, written by a newer minsky (this one knows "
            f"{SCHEMA_VERSION}); upgrade minsky-backend-postgres. Nothing was changed."
        )


def _timestamp(value: Any) -> datetime:
    """created_at for the original's TIMESTAMPTZ column; the exact string lives in ``record``."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    return _EPOCH


def to_row(record: SessionRecord) -> tuple[Any, ...]:
    values = original.project(record)
    values["created_at"] = _timestamp(values["created_at"])
    return (record.session, *(values[c] for c in original.COLUMNS), canonical(record).decode("utf-8", "surrogatepass"))


def from_row(row: tuple[Any, ...], where: str) -> SessionRecord:
    values = dict(zip(COLUMNS, row, strict=False))
    if values.get("record"):
        return record_from_dict(loads(values["record"]), where=where)
    # A row written by the original Minsky: rebuild what its columns hold.
    created = values.get("created_at")
    if isinstance(created, datetime):
        values["created_at"] = created.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return record_from_dict(original.rebuild(values["session"], values), where=where)


def moved_mark(conn: psycopg.Connection[Any], where: str) -> MovedMark | None:
    found = conn.execute("SELECT to_regclass('minsky_metadata') IS NOT NULL").fetchone()
    if not (found and found[0]):
        return None
    row = conn.execute(sql.SQL("SELECT value FROM {m} WHERE key = %s").format(m=METADATA), (MOVED_KEY,)).fetchone()
    return MovedMark.from_json(row[0], where) if row else None


def set_moved_mark(conn: psycopg.Connection[Any], mark: MovedMark | None) -> None:
    if mark is None:
        if moved_mark(conn, "") is not None:
            conn.execute(sql.SQL("DELETE FROM {m} WHERE key = %s").format(m=METADATA), (MOVED_KEY,))
        return
    conn.execute(
        sql.SQL("CREATE TABLE IF NOT EXISTS {m} (key TEXT PRIMARY KEY, value TEXT NOT NULL)").format(m=METADATA)
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {m} (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
        ).format(m=METADATA),
        (MOVED_KEY, mark.to_json()),
    )
