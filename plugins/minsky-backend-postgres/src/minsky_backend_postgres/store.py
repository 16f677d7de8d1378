"""The PostgreSQL store.

Reads run in one ``REPEATABLE READ, READ ONLY`` transaction through a named
(server-side) cursor: one consistent snapshot while others write, and flat
memory however many rows there are. Bulk writes COPY into a temporary staging
table and publish it with one set-based upsert, all in one transaction, so a
failed or killed migration leaves nothing. Single-record writes are row-level.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from minsky import original
from minsky.backend import MovedMark, OnConflict, SessionFilter, VerifyReport, conflict_at_commit
from minsky.codec import canonical, premade, record_problem
from minsky.errors import ConfigError, ConflictError, MinskyError, NotFoundError, StoreError
from minsky.filters import matches, normalize_task_id, page
from minsky.model import SessionRecord
from minsky.quarantine import write_quarantine
from minsky.redact import redact_text, remember_secret
from minsky_backend_postgres import copybinary, schema
from minsky_backend_postgres.errors import describe_target, translate

# Rows a server-side cursor fetches per round trip. 2,000 held ~13 MB (libpq's result and the
# tuples made of it) at a migration's peak; 500 hold a quarter of that, for 2,000 round trips
# a million rows (each well under a millisecond on a local server).
ITERSIZE = 500
COPY_ROWS = 10_000  # records one COPY into an empty table carries (_DirectCopyWriter)


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
                conn = psycopg.connect(**self.params)
                schema.settle_encoding(conn)
                loader = schema.text_loader(conn)
                for name in schema.TEXT_TYPES:  # no read depends on decoding a typed column
                    conn.adapters.register_loader(name, loader)
                conn.execute("SET TIME ZONE 'UTC'")  # timestamps as text in UTC, as the original read them
                conn.commit()
                self._conn = conn
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
        except UnicodeEncodeError as exc:  # encoded here, in the database's own encoding
            shown = exc.object if len(exc.object) <= 60 else exc.object[:60] + "…"
            encoding = conn.info.parameter_status("server_encoding")
            raise StoreError(
                f"PostgreSQL {self.location}: {exc.object[exc.start]!r} in {shown!r} has no equivalent in the "
                f"database's encoding {encoding}, so nothing was written while {doing}",
                hint="minsky keeps every character exactly: use a database created with ENCODING 'UTF8'",
            ) from None

    def _table(self, conn: psycopg.Connection[Any]) -> original.Table | None:
        try:
            return schema.table_of(conn)
        except StoreError as exc:
            raise StoreError(f"PostgreSQL {self.location}: {exc}", hint=exc.hint) from None

    def _decode(self, table: original.Table, row: Any) -> SessionRecord:
        return original.row_reader(table)(row, f"PostgreSQL {self.location}", self.location)

    def _row_error(self, exc: psycopg.Error, name: str, doing: str) -> MinskyError:
        """A row the server refused: a constraint, a trigger, a limit. Not a conflict, and
        not a lost connection: name the table, the row and the column."""
        if isinstance(exc, psycopg.errors.IntegrityError | psycopg.errors.RaiseException) or (
            exc.sqlstate and exc.sqlstate[:2] in ("22", "23", "54", "P0")
        ):
            diag = exc.diag
            shown = name if len(name) <= 60 else name[:60] + f"… ({len(name)} characters)"
            if exc.sqlstate == "22P05":  # untranslatable_character: the database's encoding lacks one
                return StoreError(
                    f"PostgreSQL {self.location}: session {shown!r} holds a character the database's "
                    f"encoding cannot store, so nothing was written ({' '.join(str(exc).split())[:200]})",
                    hint="minsky keeps every character exactly: use a database created with ENCODING 'UTF8'",
                )
            # Where the server says it was refused: a column, else a constraint (a table CHECK
            # names no column), else nothing more than the row.
            at = f", column {diag.column_name!r}" if diag.column_name else ""
            if exc.sqlstate == "54000":  # an index row too big: the key's
                at = f", column {original.KEY!r}"
            elif not at and diag.constraint_name:
                at = f", constraint {diag.constraint_name!r}"
            return StoreError(
                f"PostgreSQL {self.location}: table 'sessions', session {shown!r}{at}: "
                f"the server refused the row while {doing} ({' '.join(str(exc).split())[:200]})",
                hint="a constraint, trigger or limit of the table refused it: see \\d sessions in psql",
            )
        return translate(exc, self.params, doing)

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
                schema.lock_for_writing(conn)
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
            schema.settle_encoding(conn)
        except psycopg.Error as exc:
            raise translate(exc, self.params, "connecting") from None
        try:
            with conn.transaction():
                conn.execute(schema.LOCK_TIMEOUT)
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema.STEP_KEY,))  # writers see a step under way
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
    ) -> Iterator[tuple[original.Table, tuple[Any, ...]]]:
        with self._tx(doing, snapshot=True) as conn:
            self._check_version(conn)
            table = self._table(conn)
            if table is None:
                return
            order = (
                sql.SQL(" ORDER BY minsky_seq, session")
                if "minsky_seq" in table.names
                else sql.SQL(" ORDER BY session")
            )
            with conn.cursor(name=f"minsky_read_{id(self)}") as cursor:
                cursor.itersize = ITERSIZE
                cursor.execute(sql.Composed([schema.select(table), sql.SQL(" "), tail or sql.SQL(""), order]), params)
                for row in cursor:
                    yield table, row

    def _select(
        self, tail: sql.Composable | None = None, params: Sequence[Any] = (), doing: str = "reading sessions"
    ) -> Iterator[SessionRecord]:
        where, location = f"PostgreSQL {self.location}", self.location  # (``_decode``) once, not per row
        read, read_for = None, None
        for table, row in self._rows(tail, params, doing):
            if table is not read_for:
                read, read_for = original.row_reader(table), table
            assert read is not None
            yield read(row, where, location)

    def source_rows(self) -> Iterator[tuple[original.Table, Mapping[str, Any]]]:
        """Every row's raw cells, in ``read()``'s order: what coverage checks are made against.
        On a connection of its own, so that it can be read alongside ``read()``."""
        other = copy.copy(self)
        other._conn = None
        try:
            for table, row in other._rows():
                yield table, schema.as_mapping(table, row)
        finally:
            other.close()

    def read_canonical(self) -> Iterator[bytes]:
        """Verification's fast path: the canonical forms as stored in the record column (minsky
        writes exactly ``canonical(record)`` there), not decoded, for every row whose cells are
        still as minsky wrote them; other rows are decoded."""
        for table, row in self._rows():
            values = schema.as_mapping(table, row)
            text, digest = values.get(original.RECORD), values.get(original.DIGEST)
            if isinstance(text, str) and text and (not digest or digest == original.cells_digest(table, values)):
                yield text.encode("utf-8", "surrogatepass")
            else:
                yield canonical(self._decode(table, row))

    def fork_reader(self) -> PostgresStore:
        """This store without its connection: a forked child opens its own (two processes must
        never talk over one socket). This one's is closed meanwhile (it is idle between
        transactions, and reopened when next needed), so that a role limited to one connection
        can still be read."""
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None
        return copy.copy(self)

    def read(self) -> Iterator[SessionRecord]:
        return self._select()

    def count(self) -> int:
        with self._tx("counting sessions", snapshot=True) as conn:
            if self._table(conn) is None:
                return 0
            row = conn.execute("SELECT count(*) FROM sessions").fetchone()
            return int(row[0]) if row else 0

    def keys(self) -> Iterator[str]:
        with self._tx("reading session names", snapshot=True) as conn:
            if self._table(conn) is None:
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
            with self._tx("reading sessions", snapshot=True) as conn:
                table = self._table(conn)
            column = table.column_of.get("taskId") if table is not None else None
            if column is not None:
                normal = normalize_task_id(where.task_id)
                variants = [normal, f"#{normal[3:]}", normal[3:]] if normal.startswith("md#") else [normal]
                tail, params = sql.SQL("WHERE {c} = ANY(%s)").format(c=sql.Identifier(column)), [variants]
        records = (r for r in self._select(tail, params) if matches(r, where))
        return page(records, where)

    def change_token(self) -> tuple[int, str, str, str] | None:
        """How many row versions the table shows and a hash of where each lies and which
        transaction wrote it (``ctid``, ``xmin``), with the transactions that last wrote the
        table's catalog rows (``pg_class``, ``pg_attribute``: a column added, dropped, renamed
        or retyped). Every INSERT or UPDATE writes a row version with a transaction id never
        seen before, so a change made and undone between two looks (A -> B -> A: a session
        deleted and put back, a TRUNCATE and reload) still shows. A hash of the rows' text
        would not: it says the table is as it was, not that a read in between saw that. Only
        tuple headers are read (no row text), and nothing else on the server moves it:
        ANALYZE and VACUUM update the catalog in place. None without a table."""
        with self._tx("taking the sessions table's change token", snapshot=True) as conn:
            exists = conn.execute("SELECT to_regclass('sessions') IS NOT NULL").fetchone()
            if not (exists and exists[0]):
                return None
            row = conn.execute(schema.CHANGE_TOKEN).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]), str(row[3]))

    def size_bytes(self) -> int | None:
        with self._tx("measuring the table", snapshot=True) as conn:
            # pg_total_relation_size of the regclass itself: NULL in, NULL out. Written with the
            # literal 'sessions' the cast happens at plan time and fails on a database without the table.
            row = conn.execute("SELECT pg_total_relation_size(to_regclass('sessions'))").fetchone()
            return int(row[0]) if row and row[0] is not None else None

    def verify(self) -> VerifyReport:
        problems: list[str] = []
        checked = 0
        for table, row in self._rows():
            checked += 1
            try:
                reason = record_problem(self._decode(table, row))
                if reason is not None:
                    problems.append(f"session {row[table.names.index(original.KEY)]!r}: {reason}")
            except (ValueError, MinskyError) as exc:
                problems.append(str(exc))
        if checked and not problems:
            problems.extend(original.store_coverage(self))
        with self._tx("checking the schema", snapshot=True) as conn:
            indexes = {
                row[0]
                for row in conn.execute(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'sessions' AND schemaname = current_schema()"
                )
            }
        if checked and "record" in self._columns_now() and not {"idx_sessions_task_id"} <= indexes:
            problems.append("index idx_sessions_task_id is missing")
        return VerifyReport(ok=not problems, checked=checked, problems=tuple(problems))

    def quarantine_unreadable(self, directory: Path) -> tuple[Path | None, Sequence[str]]:
        """Move rows whose record cannot be decoded into a quarantine file, then out of the table."""
        if not self.exists():
            return None, []
        with self._writer("repairing sessions") as conn:
            table = self._table(conn)
            assert table is not None
            names, entries, notes = [], [], []
            for row in conn.execute(schema.select(table)).fetchall():
                try:
                    reason = record_problem(self._decode(table, row))
                    if reason is not None:
                        raise ValueError(reason)
                except (ValueError, MinskyError) as exc:
                    values = schema.as_mapping(table, row)
                    names.append(values[original.KEY])
                    entries.append(values)
                    notes.append(f"session {values[original.KEY]!r}: {exc}")
            if not entries:
                return None, []
            path = write_quarantine(directory, backend="postgres", location=self.location, entries=entries)
            conn.execute("DELETE FROM sessions WHERE session = ANY(%s)", (names,))
        return path, notes

    def _columns_now(self) -> tuple[str, ...]:
        with self._tx("reading the schema", snapshot=True) as conn:
            table = self._table(conn)
        return table.names if table is not None else ()

    def layout(self) -> tuple[str, bool] | None:
        """The table's layout era and whether only the original writes it (``migrate status``)."""
        with self._tx("reading the schema", snapshot=True) as conn:
            table = self._table(conn)
        return None if table is None else schema.layout_of(set(table.names))

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
    def bulk_writer(self, on_conflict: OnConflict = "overwrite") -> Iterator[_CopyWriter | _DirectCopyWriter]:
        # A migration may write into a store marked as moved (moving back): no marker check.
        with self._writer("writing sessions", check_moved=False) as conn:
            table = self._table(conn)
            assert table is not None
            if on_conflict == "fail" and _empty(conn):
                # Nothing to conflict with but what another writer adds meanwhile, which the
                # unique key refuses (aborting the whole transaction: "fail" writes nothing).
                # So COPY straight into the table: no staging, no INSERT ... SELECT.
                direct = _DirectCopyWriter(self, conn, table)
                try:
                    yield direct
                except BaseException:
                    direct.abort()
                    raise
                direct.finish()
                return
            # The staging table copies the target's column types (an original table may use
            # varchar, uuid) but no defaults: no sequence is drawn per staged row.
            conn.execute(
                sql.SQL("CREATE TEMPORARY TABLE {s} ON COMMIT DROP AS SELECT {cols} FROM {t} WITH NO DATA").format(
                    s=schema.STAGING, t=schema.TABLE, cols=schema.ident_list(schema.write_columns(table))
                )
            )
            conn.execute(sql.SQL("ALTER TABLE {s} ADD COLUMN ord BIGINT").format(s=schema.STAGING))
            writer = _CopyWriter(self, conn, table, on_conflict)
            yield writer
            if writer.conflicts and on_conflict == "fail":
                raise conflict_at_commit(self.location, writer.conflicts)

    def insert(self, record: SessionRecord) -> None:
        with self._writer("adding a session") as conn:
            table = self._table(conn)
            assert table is not None
            row = schema.to_row(table, record)
            if cut := schema.name_typed(conn, table):
                schema.refuse_cut(f"PostgreSQL {self.location}", cut, record.session, row)
            try:
                with conn.transaction():
                    inserted = conn.execute(schema.insert(table), row).rowcount
            except psycopg.Error as exc:
                raise self._row_error(exc, record.session, "adding a session") from None
        if inserted == 0:
            raise ConflictError(f"session {record.session!r} already exists in {self.location}")

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        with self._writer("updating a session") as conn:
            table = self._table(conn)
            assert table is not None
            row = conn.execute(
                sql.Composed([schema.select(table), sql.SQL(" WHERE session = %s FOR UPDATE")]), (name,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no session named {name!r} in {self.location}")
            updated = change(self._decode(table, row))
            cells = schema.to_row(table, updated)
            if cut := schema.name_typed(conn, table):
                schema.refuse_cut(f"PostgreSQL {self.location}", cut, updated.session, cells)
            try:
                with conn.transaction():
                    conn.execute(schema.update(table), (*cells[1:], name))
            except psycopg.Error as exc:
                raise self._row_error(exc, name, "updating a session") from None
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
    def __init__(
        self,
        store: PostgresStore,
        conn: psycopg.Connection[Any],
        table: original.Table,
        on_conflict: OnConflict = "overwrite",
    ) -> None:
        self.store, self.conn, self.table = store, conn, table
        self.on_conflict = on_conflict
        self.conflicts: list[str] = []
        # Text COPY: the server parses each value into the column's own type (varchar, uuid,
        # timestamptz, jsonb...), whatever layout the table has.
        self.copy_sql = sql.SQL("COPY {s} (ord, {cols}) FROM STDIN").format(
            s=schema.STAGING, cols=schema.ident_list(schema.write_columns(table))
        )
        self.upsert = schema.upsert_from_staging(table)
        self.insert_absent = schema.insert_from_staging(table)
        self.ord = 0  # arrival order, so that the table keeps the source's order
        self.lines = _Lines(conn, table)

    def row_maker(self) -> Callable[[SessionRecord], bytes | None] | None:
        return self.lines.offer()

    def write(self, batch: Sequence[SessionRecord]) -> None:
        """COPY the batch into staging, then move it into the table with one set-based upsert.

        All inside the bulk writer's transaction: nothing is visible before the commit.
        Moving each batch (rather than all at the end) lets the server index batch N while
        minsky reads batch N+1.
        """
        with self.conn.cursor() as cursor, cursor.copy(self.copy_sql + self.lines.copy_options()) as copy:
            if not self.lines.offered:
                for record in batch:
                    self.ord += 1
                    row = schema.to_row(self.table, record)
                    if self.lines.cut:
                        schema.refuse_cut(f"PostgreSQL {self.store.location}", self.lines.cut, record.session, row)
                    copy.write_row((self.ord, *row))
            else:
                staged, first = self.lines.staged, self.ord + 1
                self.ord += len(batch)
                rows = b"".join(staged(n, r) for n, r in enumerate(batch, first))
                copy.write(copybinary.SIGNATURE + rows + copybinary.TRAILER if self.lines.binary else rows)
        try:
            with self.conn.transaction():
                if self.on_conflict == "overwrite":
                    self.conn.execute(self.upsert)
                else:
                    # ON CONFLICT DO NOTHING in the transaction that commits: a row committed before
                    # this statement is seen and kept; one inserted after it waits for our commit.
                    inserted = {row[0] for row in self.conn.execute(self.insert_absent).fetchall()}
                    for record in batch:  # a name given twice in the batch was inserted once
                        if record.session in inserted:
                            inserted.discard(record.session)
                        else:
                            self.conflicts.append(record.session)
        except psycopg.Error as exc:
            raise self.store._row_error(exc, _offender(exc, [r.session for r in batch]), "writing sessions") from None
        self.conn.execute(sql.SQL("TRUNCATE {s}").format(s=schema.STAGING))


class _Lines:
    """A writer's COPY rows made elsewhere (``row_maker``, in a forked reader): binary rows
    (``copybinary.copy_row``) when every column written takes text or a timestamp, else text
    lines (``schema.copy_line``) when each takes text, a timestamp or JSON.

    Once offered, every row of the writer goes out as made (``Copy.write``): ``write_row``
    holds rows back in a buffer while ``write`` sends at once, so mixing them would reorder the
    rows (the table's order, and the COPY line a refusal names). Offered only when the
    connection sends UTF-8 (a typed column's value is formatted by its dumper)."""

    def __init__(self, conn: psycopg.Connection[Any], table: original.Table) -> None:
        # A column of type name: every row is made here, where refuse_cut sees its cells.
        self.cut = schema.name_typed(conn, table)
        written = set(schema.write_columns(table))
        text_only = all(c.kind in ("text", "timestamp", "json") for c in table.columns if c.name in written)
        # UTF-8 bytes as made here: what a UTF-8 connection sends, and what SQL_ASCII stores as sent.
        utf8 = conn.info.encoding == "utf-8" or conn.info.parameter_status("server_encoding") == "SQL_ASCII"
        # Binary rows when every column takes text or a timestamp (minsky's own table): the
        # server's cheapest parse (``copybinary``); text lines for a table with a JSON column.
        self.binary = utf8 and copybinary.fits(conn, table)
        self.make: Callable[[SessionRecord], bytes | None] | None = None
        if self.cut:
            self.binary = False
        elif self.binary:
            self.make = functools.partial(copybinary.copy_row, table)
        elif text_only and utf8:
            self.make = functools.partial(schema.copy_line, table)
        self.table = table
        self.offered = False
        fields = len(schema.write_columns(table))
        self.head, self.staged_head = copybinary.count(fields), copybinary.count(fields + 1)  # binary rows

    def copy_options(self) -> sql.Composable:
        """What the COPY statement ends with: binary when the rows offered are."""
        return sql.SQL(" (FORMAT binary)" if self.offered and self.binary else "")

    def offer(self) -> Callable[[SessionRecord], bytes | None] | None:
        self.offered = self.make is not None
        return self.make

    def line_of(self, record: SessionRecord) -> bytes:
        """The record's COPY line, or its binary row (its field count in front)."""
        row = self._made(record)
        return self.head + row if self.binary else row

    def staged(self, n: int, record: SessionRecord) -> bytes:
        """``line_of`` for the staging table: ``n`` (its ``ord``) first."""
        row = self._made(record)
        return self.staged_head + copybinary.bigint(n) + row if self.binary else b"%d\t%b" % (n, row)

    def _made(self, record: SessionRecord) -> bytes:
        assert self.make is not None
        row: bytes | None = premade(record, self.make)
        if row is None:  # a renamed copy, or none was made for it: made here, as it would have been
            row = self.make(record)
        if row is None:  # a NUL in a cell (admitted records have none): what write_row would raise
            if any(type(cell) is str and "\x00" in cell for cell in schema.to_row(self.table, record)):
                raise psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
            raise StoreError(  # a cell binary COPY cannot carry (none known: ``copybinary``)
                f"session {record.session!r}: its row cannot be sent as binary COPY",
                hint="rerun with MINSKY_FORKED_READ_MIN=off (rows are then sent as text), and report it",
            )
        return row


def _empty(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {t})").format(t=schema.TABLE)).fetchone()
    return bool(row and row[0])


class _DirectCopyWriter:
    """``fail`` into an empty table: the batches are COPYed into the table itself. A name another
    writer committed meanwhile violates the unique key, which aborts the transaction: nothing
    is written, and the name the server reports is the conflict.

    One COPY spans ``COPY_ROWS`` records (several batches): the server parses and indexes rows
    while minsky encodes the next ones, instead of both waiting at the end of every batch. The
    names in flight are kept to name the one a failure reports."""

    def __init__(self, store: PostgresStore, conn: psycopg.Connection[Any], table: original.Table) -> None:
        self.store, self.conn, self.table = store, conn, table
        self.conflicts: list[str] = []
        self.copy_sql = sql.SQL("COPY {t} ({cols}) FROM STDIN").format(
            t=schema.TABLE, cols=schema.ident_list(schema.write_columns(table))
        )
        self._open: contextlib.ExitStack | None = None
        self._copy: psycopg.Copy | None = None
        self._names: list[str] = []
        self.lines = _Lines(conn, table)

    def row_maker(self) -> Callable[[SessionRecord], bytes | None] | None:
        return self.lines.offer()

    def write(self, batch: Sequence[SessionRecord]) -> None:
        head = b""  # what a new COPY's data opens with: binary data's signature
        if self._copy is None:
            stack = contextlib.ExitStack()
            try:
                cursor = stack.enter_context(self.conn.cursor())
                self._copy = stack.enter_context(cursor.copy(self.copy_sql + self.lines.copy_options()))
            except psycopg.Error as exc:
                stack.close()
                raise self.store._row_error(
                    exc, _offender(exc, [r.session for r in batch]), "writing sessions"
                ) from None
            self._open = stack
            head = copybinary.SIGNATURE if self.lines.offered and self.lines.binary else b""
        try:
            if not self.lines.offered:
                write_row, to_row, table, cut = self._copy.write_row, schema.to_row, self.table, self.lines.cut
                for record in batch:
                    row = to_row(table, record)
                    if cut:
                        schema.refuse_cut(f"PostgreSQL {self.store.location}", cut, record.session, row)
                    write_row(row)
            else:  # one write a batch: each Copy.write is a round through libpq
                self._copy.write(head + b"".join(map(self.lines.line_of, batch)))
        except psycopg.Error as exc:
            self._fail(exc, [*self._names, *(r.session for r in batch)])
        except BaseException:
            self.abort()
            raise
        self._names += [r.session for r in batch]
        if len(self._names) >= COPY_ROWS:
            self.finish()

    def finish(self) -> None:
        """End the COPY in flight (if any): the server has then checked every row sent."""
        stack, names, open_copy = self._open, self._names, self._copy
        self._open, self._copy, self._names = None, None, []
        if stack is None:
            return
        try:
            if open_copy is not None and self.lines.offered and self.lines.binary:
                open_copy.write(copybinary.TRAILER)
            stack.close()
        except psycopg.Error as exc:
            self._fail(exc, names)

    def abort(self) -> None:
        """End the COPY in flight with an error: nothing of it is written."""
        stack = self._open
        self._open, self._copy, self._names = None, None, []
        if stack is not None:
            # On a lost connection psycopg logs that it could not end the COPY: the error raised
            # says so once, in one line; its log record would be a second line on stderr.
            psycopg_log = logging.getLogger("psycopg")
            disabled, psycopg_log.disabled = psycopg_log.disabled, True
            try:
                with contextlib.suppress(psycopg.Error):
                    stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            finally:
                psycopg_log.disabled = disabled

    def _fail(self, exc: psycopg.Error, names: Sequence[str]) -> NoReturn:
        self.abort()
        # The server names the COPY line it refused: with ``names`` (all this COPY sent, in
        # order) that is the session, exactly — a name found in the detail text may be another
        # column's value that happens to equal some session's name.
        line = _COPY_LINE.search(exc.diag.context or "")
        offender = names[int(line[1]) - 1] if line and 0 < int(line[1]) <= len(names) else _offender(exc, names)
        if isinstance(exc, psycopg.errors.UniqueViolation):
            if not (exc.diag.message_detail or "").startswith(f"Key ({original.KEY})="):  # another unique column
                raise self.store._row_error(exc, offender, "writing sessions") from None
            raise conflict_at_commit(self.store.location, [offender]) from None
        raise self.store._row_error(exc, offender, "writing sessions") from None


_COPY_LINE = re.compile(r"\bCOPY \S+, line (\d+)")


def _offender(exc: psycopg.Error, names: Sequence[str]) -> str:
    """The session a set-based write failed on (of ``names``, those sent), when the server's
    detail names it."""
    if exc.sqlstate == "54000":  # an index row too big: the longest name
        return max(names, key=len)
    detail = exc.diag.message_detail or ""
    return next((name for name in names if f"({name})" in detail), "(one of a batch)")
