"""The PostgreSQL store.

Reads run in one ``REPEATABLE READ, READ ONLY`` transaction through a named
(server-side) cursor: one consistent snapshot while others write, and flat
memory however many rows there are. Bulk writes COPY into a temporary staging
table and publish it with one set-based upsert, all in one transaction, so a
failed or killed migration leaves nothing. Single-record writes are row-level.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from minsky.backend import MovedMark, OnConflict, SessionFilter, VerifyReport, conflict_at_commit
from minsky.codec import canonical, record_problem
from minsky.errors import ConfigError, ConflictError, MinskyError, NotFoundError
from minsky.filters import matches, normalize_task_id, page
from minsky.model import SessionRecord
from minsky.quarantine import write_quarantine
from minsky.redact import redact_text, remember_secret
from minsky_backend_postgres import schema
from minsky_backend_postgres.errors import describe_target, translate

ITERSIZE = 2000


class PostgresStore:
    def __init__(self, conninfo: str, *, connect_timeout: int = 10) -> None:
        redact_text(conninfo)  # learn the password, wherever it was written
        try:
            self.params: dict[str, Any] = conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise ConfigError(f"invalid PostgreSQL connection string: {redact_text(str(exc))}") from None
        remember_secret(str(self.params.get("password") or ""))
        self.params.setdefault("connect_timeout", connect_timeout)
        self.params.setdefault("application_name", "minsky")
        self._conn: psycopg.Connection[Any] | None = None
        self._schema_ready = False

    @property
    def location(self) -> str:
        return f"postgres://{describe_target(self.params)}"

    # -- connections ---------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(**self.params)
            except psycopg.Error as exc:
                raise translate(exc, self.params, "connecting") from None
        return self._conn

    @contextlib.contextmanager
    def _tx(self, doing: str, *, snapshot: bool = False) -> Iterator[psycopg.Connection[Any]]:
        conn = self._connect()
        try:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ if snapshot else None
            conn.read_only = snapshot
            with conn.transaction():
                yield conn
        except psycopg.Error as exc:
            if conn.broken:
                self._conn = None
            raise translate(exc, self.params, doing) from None

    def _columns(self, conn: psycopg.Connection[Any]) -> set[str]:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'sessions' AND table_schema = current_schema()"
        ).fetchall()
        return {row[0] for row in rows}

    def _check_version(self, conn: psycopg.Connection[Any]) -> None:
        exists = conn.execute("SELECT to_regclass('minsky_schema_migrations') IS NOT NULL").fetchone()
        if exists and exists[0]:
            row = conn.execute(
                sql.SQL("SELECT coalesce(max(version), 0) FROM {m}").format(m=schema.MIGRATIONS)
            ).fetchone()
            schema.refuse_newer(int(row[0]) if row else 0)

    @contextlib.contextmanager
    def _writer(self, doing: str, *, check_moved: bool = True) -> Iterator[psycopg.Connection[Any]]:
        with self._tx(doing) as conn:
            if not self._schema_ready:
                schema.migrate(conn)
            if check_moved:
                # Queue behind a migration's table lock, then read the marker it may have left
                # (each statement of READ COMMITTED sees what committed before it).
                conn.execute(schema.LOCK_TIMEOUT)
                conn.execute(sql.SQL("LOCK TABLE {t} IN ROW EXCLUSIVE MODE").format(t=schema.TABLE))
                mark = schema.moved_mark(conn, self.location)
                if mark is not None:
                    raise mark.refusal(self.location)
            yield conn
        self._schema_ready = True

    # -- the moved marker and the write lock -------------------------------------

    def moved(self) -> MovedMark | None:
        with self._tx("reading the moved marker", snapshot=True) as conn:
            return schema.moved_mark(conn, self.location)

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[_PgLock]:
        """``LOCK TABLE sessions IN EXCLUSIVE MODE`` on a connection of its own: writers (even
        the original's, which take ROW EXCLUSIVE) wait; readers, this store's included, go on."""
        try:
            conn = psycopg.connect(**self.params)
        except psycopg.Error as exc:
            raise translate(exc, self.params, "connecting") from None
        try:
            with conn.transaction():
                conn.execute(schema.LOCK_TIMEOUT)
                conn.execute(sql.SQL("LOCK TABLE {t} IN EXCLUSIVE MODE").format(t=schema.TABLE))
                yield _PgLock(conn)
        except psycopg.Error as exc:
            raise translate(exc, self.params, "locking the sessions table") from None
        finally:
            conn.close()

    # -- reading -------------------------------------------------------------

    def exists(self) -> bool:
        with self._tx("checking for the sessions table", snapshot=True) as conn:
            row = conn.execute("SELECT to_regclass('sessions') IS NOT NULL").fetchone()
            return bool(row and row[0])

    def _rows(
        self, tail: sql.Composable | None = None, params: Sequence[Any] = (), doing: str = "reading sessions"
    ) -> Iterator[tuple[Any, ...]]:
        with self._tx(doing, snapshot=True) as conn:
            self._check_version(conn)
            columns = self._columns(conn)
            if not columns:
                return
            query = schema.SELECT if "record" in columns else schema.LEGACY_SELECT
            order = sql.SQL(" ORDER BY minsky_seq") if "minsky_seq" in columns else sql.SQL(" ORDER BY session")
            with conn.cursor(name=f"minsky_read_{id(self)}") as cursor:
                cursor.itersize = ITERSIZE
                cursor.execute(sql.Composed([query, sql.SQL(" "), tail or sql.SQL(""), order]), params)
                yield from cursor

    def _select(
        self, tail: sql.Composable | None = None, params: Sequence[Any] = (), doing: str = "reading sessions"
    ) -> Iterator[SessionRecord]:
        for row in self._rows(tail, params, doing):
            yield schema.from_row(row, f"{self.location}: session {row[0]!r}: ")

    def read_canonical(self) -> Iterator[bytes]:
        """Verification's fast path: the canonical forms as stored in the record column (minsky
        writes exactly ``canonical(record)`` there), fetched alone and not decoded."""
        with self._tx("reading sessions", snapshot=True) as conn:
            self._check_version(conn)
            columns = self._columns(conn)
            if not columns:
                return
            if "record" not in columns:
                legacy = True
            else:
                legacy = False
                with conn.cursor(name=f"minsky_canonical_{id(self)}") as cursor:
                    cursor.itersize = ITERSIZE * 2
                    cursor.execute("SELECT session, record FROM sessions ORDER BY minsky_seq")
                    pending: list[str] = []
                    for name, text in cursor:
                        if text:
                            yield text.encode("utf-8", "surrogatepass")
                        else:
                            pending.append(name)  # rows the original wrote: decoded below
        if legacy:
            for record in self.read():
                yield canonical(record)
            return
        for name in pending:
            found = self.get(name)
            if found is not None:
                yield canonical(found)

    def read(self) -> Iterator[SessionRecord]:
        return self._select()

    def count(self) -> int:
        with self._tx("counting sessions", snapshot=True) as conn:
            if not self._columns(conn):
                return 0
            row = conn.execute("SELECT count(*) FROM sessions").fetchone()
            return int(row[0]) if row else 0

    def keys(self) -> Iterator[str]:
        with self._tx("reading session names", snapshot=True) as conn:
            if not self._columns(conn):
                return
            with conn.cursor(name=f"minsky_keys_{id(self)}") as cursor:
                cursor.itersize = ITERSIZE * 5
                cursor.execute("SELECT session FROM sessions")
                for (name,) in cursor:
                    yield name

    def get(self, name: str) -> SessionRecord | None:
        return next(self._select(sql.SQL("WHERE session = %s"), (name,)), None)

    def list(self, where: SessionFilter) -> Iterator[SessionRecord]:
        tail: sql.Composable = sql.SQL("")
        params: list[Any] = []
        if where.task_id is not None:
            normal = normalize_task_id(where.task_id)
            variants = [normal, f"#{normal[3:]}", normal[3:]] if normal.startswith("md#") else [normal]
            tail, params = sql.SQL("WHERE task_id = ANY(%s)"), [variants]
        records = (r for r in self._select(tail, params) if matches(r, where))
        return page(records, where)

    def size_bytes(self) -> int | None:
        with self._tx("measuring the table", snapshot=True) as conn:
            row = conn.execute(
                "SELECT CASE WHEN to_regclass('sessions') IS NULL THEN NULL ELSE pg_total_relation_size('sessions') END"
            ).fetchone()
            return int(row[0]) if row and row[0] is not None else None

    def verify(self) -> VerifyReport:
        problems: list[str] = []
        checked = 0
        try:
            for record in self.read():
                checked += 1
                reason = record_problem(record)
                if reason is not None:
                    problems.append(f"session {record.session!r}: {reason}")
        except MinskyError as exc:
            problems.append(str(exc))
        with self._tx("checking the schema", snapshot=True) as conn:
            indexes = {
                row[0]
                for row in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'sessions' AND schemaname = current_schema()"
                )
            }
        if checked and not {"idx_sessions_task_id", "idx_sessions_created_at"} <= indexes:
            problems.append("indexes idx_sessions_task_id / idx_sessions_created_at are missing")
        return VerifyReport(ok=not problems, checked=checked, problems=tuple(problems))

    def quarantine_unreadable(self, directory: Path) -> tuple[Path | None, Sequence[str]]:
        """Move rows whose record cannot be decoded into a quarantine file, then out of the table."""
        if not self.exists():
            return None, []
        with self._writer("repairing sessions") as conn:
            columns = self._columns(conn)
            query = schema.SELECT if "record" in columns else schema.LEGACY_SELECT
            names, entries, notes = [], [], []
            for row in conn.execute(query).fetchall():
                try:
                    reason = record_problem(schema.from_row(row, ""))
                    if reason is not None:
                        raise ValueError(reason)
                except (ValueError, MinskyError) as exc:
                    names.append(row[0])
                    entries.append(dict(zip(schema.COLUMNS, row, strict=False)))
                    notes.append(f"session {row[0]!r}: {exc}")
            if not entries:
                return None, []
            path = write_quarantine(directory, backend="postgres", location=self.location, entries=entries)
            conn.execute("DELETE FROM sessions WHERE session = ANY(%s)", (names,))
        return path, notes

    def describe(self) -> dict[str, Any]:
        started = time.perf_counter()
        with self._tx("asking the server", snapshot=True) as conn:
            row = conn.execute("SELECT current_setting('server_version')").fetchone()
            latency = (time.perf_counter() - started) * 1000
            version = None
            exists = conn.execute("SELECT to_regclass('minsky_schema_migrations') IS NOT NULL").fetchone()
            if exists and exists[0]:
                got = conn.execute("SELECT max(version) FROM minsky_schema_migrations").fetchone()
                version = got[0] if got else None
        return {
            "serverVersion": row[0] if row else None,
            "schemaVersion": version,
            "roundTripMs": round(latency, 2),
        }

    # -- writing -------------------------------------------------------------

    @contextlib.contextmanager
    def bulk_writer(self, on_conflict: OnConflict = "overwrite") -> Iterator[_CopyWriter]:
        # A migration may write into a store marked as moved (moving back): no marker check.
        with self._writer("writing sessions", check_moved=False) as conn:
            # The staging table copies the target's column types (an original table may use
            # varchar) but no defaults: no sequence is drawn per staged row.
            conn.execute(
                sql.SQL("CREATE TEMPORARY TABLE {s} ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA").format(
                    s=schema.STAGING, t=schema.TABLE, cols=schema.COLS
                )
            )
            conn.execute(sql.SQL("ALTER TABLE {s} ADD COLUMN ord BIGINT").format(s=schema.STAGING))
            writer = _CopyWriter(conn, on_conflict)
            yield writer
            if writer.conflicts and on_conflict == "fail":
                raise conflict_at_commit(self.location, writer.conflicts)

    def insert(self, record: SessionRecord) -> None:
        with self._writer("adding a session") as conn:
            inserted = conn.execute(schema.INSERT, schema.to_row(record)).rowcount
        if inserted == 0:
            raise ConflictError(f"session {record.session!r} already exists in {self.location}")

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        with self._writer("updating a session") as conn:
            columns = self._columns(conn)
            query = schema.SELECT if "record" in columns else schema.LEGACY_SELECT
            row = conn.execute(sql.Composed([query, sql.SQL(" WHERE session = %s FOR UPDATE")]), (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"no session named {name!r} in {self.location}")
            updated = change(schema.from_row(row, ""))
            conn.execute(schema.UPDATE, (*schema.to_row(updated)[1:], name))
            return updated

    def delete(self, name: str) -> bool:
        with self._writer("deleting a session") as conn:
            return conn.execute("DELETE FROM sessions WHERE session = %s", (name,)).rowcount > 0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class _PgLock:
    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def mark_moved(self, mark: MovedMark | None) -> None:
        schema.set_moved_mark(self.conn, mark)


class _CopyWriter:
    def __init__(self, conn: psycopg.Connection[Any], on_conflict: OnConflict = "overwrite") -> None:
        self.conn = conn
        self.on_conflict = on_conflict
        self.conflicts: list[str] = []
        self.copy_sql = sql.SQL("COPY {s} (ord, {cols}) FROM STDIN (FORMAT BINARY)").format(
            s=schema.STAGING, cols=schema.COLS
        )
        self.ord = 0  # arrival order, so that the table keeps the source's order

    def write(self, batch: Sequence[SessionRecord]) -> None:
        """COPY the batch into staging, then move it into the table with one set-based upsert.

        All inside the bulk writer's transaction: nothing is visible before the commit.
        Moving each batch (rather than all at the end) lets the server index batch N while
        minsky reads batch N+1.
        """
        with self.conn.cursor() as cursor, cursor.copy(self.copy_sql) as copy:
            copy.set_types(schema.COPY_TYPES)
            for record in batch:
                self.ord += 1
                copy.write_row((self.ord, *schema.to_row(record)))
        if self.on_conflict == "overwrite":
            self.conn.execute(schema.UPSERT_FROM_STAGING)
        else:
            # ON CONFLICT DO NOTHING in the transaction that commits: a row committed before this
            # statement is seen and kept; one inserted after it waits for our commit and conflicts.
            inserted = {row[0] for row in self.conn.execute(schema.INSERT_FROM_STAGING).fetchall()}
            self.conflicts.extend(r.session for r in batch if r.session not in inserted)
        self.conn.execute(sql.SQL("TRUNCATE {s}").format(s=schema.STAGING))
