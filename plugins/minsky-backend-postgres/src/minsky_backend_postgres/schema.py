"""The ``sessions`` table in whatever layout it has: the original Minsky's snake_case
eras (TIMESTAMPTZ ``created_at``, varchar limits, ``project_id`` with a foreign key,
``short_id`` unique) or minsky's own. Columns are mapped by rule (``minsky.original``);
minsky adds only ``record`` (canonical JSON text — not JSONB, which would reorder keys
and refuse ``\\u0000``), ``record_digest`` (a digest of the cells it wrote) and
``minsky_seq`` (the order records arrived in). Additive only: never a rebuild, never a
DROP. Versions are rows of ``minsky_schema_migrations``, applied under an advisory lock
so that clients starting at once apply each exactly once. Every identifier is composed
with ``psycopg.sql``."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any, Final

import psycopg
from psycopg import sql
from psycopg.adapt import Loader
from psycopg.types.string import StrDumperUnknown, TextLoader

from minsky import original
from minsky.backend import MovedMark
from minsky.codec import canonical_text, record_to_dict
from minsky.errors import StoreError
from minsky.model import SessionRecord

SCHEMA_VERSION = 2
TABLE = sql.Identifier("sessions")
MIGRATIONS = sql.Identifier("minsky_schema_migrations")
STAGING = sql.Identifier("minsky_staging")
LOCK_KEY = 0x6D696E736B79  # "minsky": the advisory lock for schema changes
STEP_KEY = LOCK_KEY + 1  # held by a migration's last step: writers past their lock wait wait on
LOCK_WAIT = "30s"  # how long a writer queues behind a migration's table lock (as SQLite's busy timeout)
LOCK_TIMEOUT = sql.SQL("SET LOCAL lock_timeout = {w}").format(w=sql.Literal(LOCK_WAIT))
METADATA = sql.Identifier("minsky_metadata")  # minsky's key/value table: the moved marker, never in sessions
MOVED_KEY = "moved"

# A new table: the original's columns; created_at may be NULL (a createdAt the type
# cannot hold lives in the record only).
CREATE_TABLE = sql.SQL("""
CREATE TABLE IF NOT EXISTS {table} (
  session       TEXT PRIMARY KEY,
  repo_name     TEXT NOT NULL,
  repo_url      TEXT NOT NULL,
  created_at    TIMESTAMP WITH TIME ZONE,
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
]
V2 = [sql.SQL("ALTER TABLE {t} ADD COLUMN IF NOT EXISTS record_digest TEXT").format(t=TABLE)]
# The table's change token (``PostgresStore.change_token``): its row versions and its definition.
CHANGE_TOKEN = sql.SQL(
    "SELECT count(*), coalesce(sum(hashtextextended(t.ctid::text || ' ' || t.xmin::text, 0)), 0),"
    " (SELECT xmin::text FROM pg_class WHERE oid = to_regclass('sessions')),"
    " (SELECT string_agg(xmin::text, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = to_regclass('sessions'))"
    " FROM {t} AS t"
).format(t=TABLE)
INDEXED_KEYS = {"taskId": "idx_sessions_task_id", "createdAt": "idx_sessions_created_at"}

COLUMNS_QUERY = (
    "SELECT column_name, udt_name, is_nullable, character_maximum_length FROM information_schema.columns "
    "WHERE table_name = 'sessions' AND table_schema = current_schema() ORDER BY ordinal_position"
)
_KINDS: dict[str, original.Kind] = {
    **dict.fromkeys(("text", "varchar", "bpchar", "name", "citext"), "text"),
    **dict.fromkeys(("int2", "int4", "int8"), "integer"),
    **dict.fromkeys(("float4", "float8"), "real"),
    **dict.fromkeys(("timestamptz", "timestamp"), "timestamp"),
    **dict.fromkeys(("json", "jsonb"), "json"),
    "bool": "boolean",
    "uuid": "uuid",
}
_BITS = {"int2": 16, "int4": 32, "int8": 64}
# Loaded as text, so that no read depends on decoding a typed column (a timestamp past
# year 9999 is valid in PostgreSQL and no Python datetime).
TEXT_TYPES = ("timestamptz", "timestamp", "date", "time", "timetz", "interval", "numeric", "uuid", "bytea")


def table_of(conn: psycopg.Connection[Any]) -> original.Table | None:
    rows = conn.execute(COLUMNS_QUERY).fetchall()
    if not rows:
        return None
    if any(name == original.KEY and udt == "bpchar" for name, udt, *_ in rows):
        # char(n) pads every name with spaces: each row read back names another session than its
        # record, and a name written is found under no name given (adversary helper-35).
        raise StoreError(
            "table 'sessions', column 'session' is of type char(n), which pads every name with spaces",
            hint="ALTER TABLE sessions ALTER COLUMN session TYPE text (then rtrim the names if it held any)",
        )
    return original.Table(
        [
            original.Column(name, _KINDS.get(udt, "other"), nullable == "NO", length, _BITS.get(udt, 64))
            for name, udt, nullable, length in rows
        ]
    )


# Columns only the original's later schema has (shared/fixtures/original: pg-head).
_HEAD_COLUMNS = frozenset({"last_activity_at", "short_id", "project_id", "interface_binding"})


def layout_of(columns: set[str]) -> tuple[str, bool]:
    """A ``sessions`` table's era, from its column names, and whether only the original writes
    that layout (``repo_path`` and the liveness columns are the original's; minsky's own table
    has neither)."""
    adopted = " + minsky's record column" if "record" in columns else ""
    if columns & _HEAD_COLUMNS:
        return f"pg-head (snake_case, no branch column, liveness and project columns){adopted}", True
    if "repo_path" in columns and "pr_branch" in columns:
        return f"pg-2025-08-08 (snake_case + PR columns){adopted}", True
    if "repo_path" in columns:
        return f"pg-2025-06-22 (snake_case, the original's first schema){adopted}", True
    return "minsky (snake_case + record column)", False


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
    existing = table_of(conn)  # a foreign table (no session column, a jsonb record) is refused before any change
    if version >= SCHEMA_VERSION and existing is not None:
        return
    # (A sessions table dropped by hand while the version table stayed is created again.)
    for statement in (V1 if version < 1 or existing is None else []) + V2:
        conn.execute(statement)
    table = table_of(conn)
    assert table is not None
    for key, index in INDEXED_KEYS.items():
        column = table.column_of.get(key)
        if column is not None:
            conn.execute(
                sql.SQL("CREATE INDEX IF NOT EXISTS {i} ON {t} ({c})").format(
                    i=sql.Identifier(index), t=TABLE, c=sql.Identifier(column)
                )
            )
    conn.execute(
        sql.SQL(
            "INSERT INTO {m} (version) SELECT v FROM generate_series(%s::int, %s::int) v ON CONFLICT DO NOTHING"
        ).format(m=MIGRATIONS),
        (version + 1, SCHEMA_VERSION),
    )


def refuse_newer(version: int) -> None:
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the sessions schema is at version {version}, written by a newer minsky (this one knows "
            f"{SCHEMA_VERSION}); upgrade minsky-backend-postgres. Nothing was changed."
        )


def ident_list(names: Any) -> sql.Composed:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def select(table: original.Table) -> sql.Composed:
    return sql.SQL("SELECT {cols} FROM {t}").format(cols=ident_list(table.names), t=TABLE)


@functools.lru_cache(maxsize=64)  # per table (hashed by identity): to_row runs once per record
def write_columns(table: original.Table) -> tuple[str, ...]:
    return tuple(n for n in table.names if n != "minsky_seq")


NAME_BYTES: Final = 63  # what a column of type name keeps (NAMEDATALEN - 1)


def name_typed(conn: psycopg.Connection[Any], table: original.Table) -> tuple[tuple[int, str], ...]:
    """The written columns of type ``name``, by position in ``write_columns``. Their text input
    cuts a value past ``NAME_BYTES`` without a word (where varchar(n) refuses one): the record
    would read back changed, so ``refuse_cut`` refuses it before it is written."""
    types = {name: udt for name, udt, *_ in conn.execute(COLUMNS_QUERY).fetchall()}
    return tuple((i, column) for i, column in enumerate(write_columns(table)) if types.get(column) == "name")


def refuse_cut(where: str, columns: tuple[tuple[int, str], ...], session: str, row: tuple[Any, ...]) -> None:
    """Raise if a cell of ``row`` is longer than its ``name``-typed column keeps (``name_typed``)."""
    for i, column in columns:
        cell = row[i]
        if isinstance(cell, str) and (size := len(cell.encode("utf-8", "surrogatepass"))) > NAME_BYTES:
            shown = session if len(session) <= 60 else session[:60] + f"… ({len(session)} characters)"
            raise StoreError(
                f"{where}: table 'sessions', session {shown!r}, column {column!r}: the column is of type "
                f"name, which keeps {NAME_BYTES} bytes and would cut this {size}-byte value; nothing was written",
                hint=f"widen the column: ALTER TABLE sessions ALTER COLUMN {column} TYPE text",
            )


def insert(table: original.Table) -> sql.Composed:
    cols = write_columns(table)
    return sql.SQL("INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT (session) DO NOTHING").format(
        t=TABLE, cols=ident_list(cols), vals=sql.SQL(", ").join(sql.Placeholder() * len(cols))
    )


def update(table: original.Table) -> sql.Composed:
    sets = sql.SQL(", ").join(
        sql.SQL("{c} = %s").format(c=sql.Identifier(c)) for c in write_columns(table) if c != original.KEY
    )
    return sql.SQL("UPDATE {t} SET {sets} WHERE session = %s").format(t=TABLE, sets=sets)


def upsert_from_staging(table: original.Table) -> sql.Composed:
    cols = write_columns(table)
    updates = sql.SQL(", ").join(
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in cols if c != original.KEY
    )
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} ORDER BY ord ON CONFLICT (session) DO UPDATE SET {updates}"
    ).format(t=TABLE, s=STAGING, cols=ident_list(cols), updates=updates)


def insert_from_staging(table: original.Table) -> sql.Composed:
    cols = ident_list(write_columns(table))
    return sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {cols} FROM {s} ORDER BY ord "
        "ON CONFLICT (session) DO NOTHING RETURNING session"
    ).format(t=TABLE, s=STAGING, cols=cols)


@functools.lru_cache(maxsize=64)
def _row_writer(table: original.Table) -> Callable[[Mapping[str, Any], str], tuple[Any, ...]]:
    return original.row_writer(table, write_columns(table))


def to_row(table: original.Table, record: SessionRecord) -> tuple[Any, ...]:
    """``original.row_for`` in ``write_columns`` order."""
    return _row_writer(table)(record_to_dict(record), canonical_text(record))


_COPY_SPECIAL: Final = ("\\", "\t", "\n", "\r", "\x00")  # what COPY escapes, and the NUL it refuses
_COPY_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def copy_line(table: original.Table, record: SessionRecord) -> bytes | None:
    """``to_row`` as one line of text-format COPY data (what ``Copy.write_row`` would send for it),
    or None when a cell is not text or NULL (``write_row`` then formats the row by its type).
    Made in a forked reader (``RowMakingWriter``), where it costs the parent nothing."""
    row = to_row(table, record)
    return _copy_liner(len(row))(row)


@functools.lru_cache(maxsize=16)
def _copy_liner(width: int) -> Callable[[tuple[Any, ...]], bytes | None]:
    """``_copy_line_of`` for rows of ``width`` cells, as straight-line code: every cell text or
    NULL (``type`` exactly ``str``, as there), none holding a character COPY escapes (looked for
    once, in all the cells' text at once: five ``in`` of one string, no loop of five per cell),
    is joined as it is; any other row is ``_copy_line_of``'s. The same bytes, at half the cost
    (1.2 us a row of 15 cells where the loop took 2.2)."""
    cells = [f"c{i}" for i in range(width)]
    typed = " and ".join(f"(type({c}) is str or {c} is None)" for c in cells)
    whole = "".join(f'"" if {c} is None else {c}, ' for c in cells)
    line = "\\t".join(f"{{NULL if {c} is None else {c}}}" for c in cells)
    source = "\n".join(
        [
            "def copy_line_of(row):",
            f"    {', '.join(cells)}, = row",
            f"    if {typed}:",
            f"        whole = JOIN(({whole}))",
            f"        if not ({' or '.join(f'{c!r} in whole' for c in _COPY_SPECIAL)}):",
            f'            return f"{line}\\n".encode("utf-8")',
            "    return SLOW(row)",
        ]
    )
    namespace: dict[str, Any] = {"JOIN": "".join, "NULL": "\\N", "SLOW": _copy_line_of}
    exec(compile(source, f"<minsky COPY line of {width} cells>", "exec"), namespace)  # noqa: S102
    liner: Callable[[tuple[Any, ...]], bytes | None] = namespace["copy_line_of"]
    return liner


def _copy_line_of(row: tuple[Any, ...]) -> bytes | None:
    """A row as one line of text-format COPY data, or None when a cell is not text or NULL."""
    cells = []
    for value in row:
        if value is None:
            cells.append("\\N")
        elif type(value) is str:
            if "\x00" in value:  # refused by write_row, in its own words
                return None
            if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
                value = value.translate(_COPY_ESCAPES)
            cells.append(value)
        else:
            return None
    return ("\t".join(cells) + "\n").encode("utf-8")


def as_mapping(table: original.Table, row: Any) -> dict[str, Any]:
    return dict(zip(table.names, row, strict=True))


def settle_encoding(conn: psycopg.Connection[Any]) -> None:
    """Text crosses as UTF-8 to a UTF-8 database, as raw bytes to a SQL_ASCII one, and in the
    database's own encoding to any other, encoded and decoded here by Python's codec — never
    converted by the server, whose tables are not all round trips (EUC_JP turns U+00A6 into
    U+FFE4). A character the encoding lacks is then refused here, by name (``_tx``).

    SQL_ASCII stores whatever bytes it is sent. Read with a UTF-8 client, the server checks
    each value on the way out, so one byte another program wrote that is not UTF-8 (a Latin-1
    name) failed every read of the table; read as SQL_ASCII, psycopg hands back bytes, decoded
    here as UTF-8 with each stray byte kept as a lone surrogate, as a JSON store's reader does:
    that record is refused by name, the others read. minsky's own writes stay UTF-8."""
    server = conn.info.parameter_status("server_encoding")
    want = "UTF8" if server in (None, "UTF8") else server
    if conn.info.parameter_status("client_encoding") != want:
        conn.execute(sql.SQL("SET client_encoding TO {}").format(sql.Literal(want)))
        conn.commit()
    if server == "SQL_ASCII":
        for name in _TEXTUAL:
            conn.adapters.register_loader(name, _BytesAsUtf8Loader)
        for name in ("json", "jsonb"):
            conn.adapters.register_loader(name, _JsonAsUtf8Loader)
        # A name read with a stray byte goes back as those bytes (``session delete``, `check
        # --repair`'s DELETE): strict UTF-8 refused it, and every command naming it failed.
        conn.adapters.register_dumper(str, _StrAsUtf8Dumper)


# What psycopg loads as text (0: every type it does not know: information_schema's domains, citext).
_TEXTUAL: Final = (0, "text", "varchar", "bpchar", "name", '"char"')


def _text(data: Any) -> str:
    return bytes(data).decode("utf-8", "surrogateescape")


class _BytesAsUtf8Loader(Loader):
    def load(self, data: Any) -> str:
        return _text(data)


class _JsonAsUtf8Loader(Loader):
    """psycopg's JSON loading (``json.loads``) of the text as decoded here: a stray byte is a
    lone surrogate in the value, refused by name, where a strict decode failed the read."""

    def load(self, data: Any) -> Any:
        return json.loads(_text(data))


class _StrAsUtf8Dumper(StrDumperUnknown):
    def dump(self, obj: str) -> bytes:
        if "\x00" in obj:
            raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
        return obj.encode("utf-8", "surrogateescape")


def text_loader(conn: psycopg.Connection[Any]) -> type[Loader]:
    """The loader for a column minsky reads as text (``TEXT_TYPES``) on this connection."""
    return _BytesAsUtf8Loader if conn.info.parameter_status("server_encoding") == "SQL_ASCII" else TextLoader


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


def lock_for_writing(conn: psycopg.Connection[Any]) -> None:
    """``ROW EXCLUSIVE`` on the sessions table (what every writer takes), waiting ``LOCK_WAIT``
    at a time. Past it, a writer waits on while a migration's last step holds the table (its
    advisory lock ``STEP_KEY`` is granted): that step is bounded, and the writer must not fail
    because a migration is finishing. Each wait is a savepoint, so a timed-out one is undone."""
    while True:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("LOCK TABLE {t} IN ROW EXCLUSIVE MODE").format(t=TABLE))
            return
        except psycopg.errors.LockNotAvailable:
            if not migration_step_running(conn):
                raise


def migration_step_running(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1)",
        (STEP_KEY >> 32, STEP_KEY & 0xFFFFFFFF),
    ).fetchone()
    return bool(row and row[0])
