"""The SQLite store. Every write runs in ``BEGIN IMMEDIATE`` under a busy timeout,
so writers from many processes queue instead of failing; reads never create or
change the file; a new database for a bulk load is built under a temporary name
beside the target and appears under its final name only when complete."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from minsky import original
from minsky.atomic import TEMP_PREFIX, ensure_private_dir, file_token, fsync_dir, refuse_foreign_sqlite
from minsky.backend import MovedMark, OnConflict, SessionFilter, VerifyReport, conflict_at_commit
from minsky.codec import canonical, check, premade
from minsky.errors import ConflictError, LockedError, NotFoundError, StoreError
from minsky.filters import matches, normalize_task_id, page
from minsky.model import SessionRecord
from minsky.quarantine import write_quarantine
from minsky_backend_sqlite import schema, step
from minsky_backend_sqlite.held import Connection, held
from minsky_backend_sqlite.rows import KEY_IS, bound, fetched, lenient_text

_HEADER = b"SQLite format 3\x00"
log = logging.getLogger("minsky.backend.sqlite")  # under minsky's handler: redacted, on stderr
_LOCK_POLL_MS = 100  # how long one wait for a lock lasts before Python can see a signal
_PRAGMA_WORD = re.compile(r"^[A-Za-z]+$")
_STORE_TABLES = frozenset({"sessions", "__drizzle_migrations"})  # minsky's and the original's
_KEYS = "SELECT session FROM sessions ORDER BY rowid"
_KEYS_BY_INDEX = "SELECT session FROM sessions ORDER BY +rowid"  # (+: not the table's own order)
_SPLIT_BATCH = 250  # rows a batch of ``read_split``: one message of a forked read


@attrs.frozen
class SqliteOptions:
    journal_mode: str = "WAL"
    synchronous: str = "NORMAL"
    cache_size: int = -16000
    busy_timeout_ms: int = 30000


class SqliteStore:
    def __init__(self, path: Path, options: SqliteOptions | None = None) -> None:
        self.path = path
        self.schema_backup: Path | None = None  # where the file was copied before minsky changed its schema
        self.options = options or SqliteOptions()
        for word in (self.options.journal_mode, self.options.synchronous):
            if not _PRAGMA_WORD.match(word):
                raise StoreError(f"invalid SQLite option value {word!r}")

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    # -- connections ---------------------------------------------------------

    def _check_file(self) -> None:
        if held(self.path):  # a descriptor opened and closed beside a connection drops its locks
            return
        try:
            with self.path.open("rb") as handle:
                header = handle.read(16)
        except FileNotFoundError:
            return
        except IsADirectoryError:
            raise StoreError(f"{self.path} is a directory, not an SQLite database") from None
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        if header and header != _HEADER:
            raise StoreError(f"{self.path} is not an SQLite database (left untouched)")

    def _connect(self, path: Path, *, readonly: bool) -> sqlite3.Connection:
        conn: Connection | None = None
        try:
            if readonly:
                conn = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=self.options.busy_timeout_ms / 1000,
                    isolation_level=None,
                    factory=Connection,
                )
            else:
                ensure_private_dir(path.parent)
                if not path.exists():  # created 0600; SQLite gives -wal/-shm the same mode
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
                conn = sqlite3.connect(
                    path, timeout=self.options.busy_timeout_ms / 1000, isolation_level=None, factory=Connection
                )
            conn.hold(path)
            conn.text_factory = lenient_text  # a stray byte another program wrote: minsky_backend_sqlite.rows
            conn.execute(f"PRAGMA busy_timeout = {int(self.options.busy_timeout_ms)}")
            conn.execute(f"PRAGMA cache_size = {int(self.options.cache_size)}")
            if not readonly:
                # Refuse a newer schema before anything (even the journal mode) changes the file.
                self._refuse_newer(conn.execute("PRAGMA user_version").fetchone()[0])
                refuse_foreign_sqlite(conn, path, _STORE_TABLES)
                self._table(conn)  # and a foreign table (no session column)
                conn.execute(f"PRAGMA journal_mode = {self.options.journal_mode}")
                conn.execute(f"PRAGMA synchronous = {self.options.synchronous}")
            return conn
        except (sqlite3.Error, OSError, StoreError) as exc:
            if conn is not None:  # now: left to the collector it holds its file (``held``) meanwhile
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            if isinstance(exc, sqlite3.Error):
                raise self._error(exc) from None
            if isinstance(exc, OSError):
                raise StoreError(f"cannot open {path}: {exc.strerror}") from None
            raise

    def _error(self, exc: BaseException) -> StoreError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return LockedError(
                f"{self.path}: database is locked (still busy after {self.options.busy_timeout_ms / 1000:g}s)",
                hint=f"see `minsky session list --active`, and `lsof {self.path}` for what holds it",
            )
        if "not a database" in text or "malformed" in text:
            return StoreError(f"{self.path} is not a usable SQLite database: {text} (left untouched)")
        return StoreError(f"{self.path}: {text}")

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection, or None when there is no database yet."""
        self._check_file()
        if not self.path.exists() or self.path.stat().st_size == 0:
            yield None
            return
        aux = [Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm")]
        had_aux = any(p.exists() for p in aux)
        conn = self._connect(self.path, readonly=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_newer(version)
            yield conn
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()
            if not had_aux and any(p.exists() for p in aux):
                self._tidy_wal()

    def _tidy_wal(self) -> None:
        """A reader of a WAL database leaves -wal/-shm behind; the last writable
        connection to close removes them, so a read (or a dry run) leaves no trace."""
        with contextlib.suppress(sqlite3.Error, OSError):
            conn = sqlite3.connect(self.path, timeout=0.1)
            try:
                conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
            finally:
                conn.close()

    def _refuse_newer(self, version: int) -> None:
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer minsky (schema {version}; this one knows "
                f"{schema.SCHEMA_VERSION}); upgrade minsky-backend-sqlite. The file was not changed."
            )

    @contextlib.contextmanager
    def _writer(
        self, path: Path | None = None, *, check_moved: bool = True, upgrade: bool = True, aside: bool = False
    ) -> Iterator[sqlite3.Connection]:
        """A connection inside ``BEGIN IMMEDIATE`` on an up-to-date schema; commits on success.

        The moved marker is read once the lock is ours: a writer that queued behind a
        migration sees the marker it left, and writes nothing."""
        self._check_file()
        conn = self._connect(path or self.path, readonly=False)
        if aside:
            # A new database built under a temporary name, removed on any failure and fsynced
            # before it is linked into place: no rollback journal and no syncs while it is built
            # (with WAL every page was written twice, into the log and then the file).
            conn.execute("PRAGMA journal_mode = OFF")
            conn.execute("PRAGMA synchronous = OFF")
        try:
            if upgrade:
                self._backup_if_upgrading(conn, path or self.path)
            self._begin_immediate(conn)
            if check_moved:
                mark = schema.moved_mark(conn, str(self.path))
                if mark is not None:
                    raise mark.refusal(str(self.path))
            if upgrade:
                self._migrate(conn, path or self.path)
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise self._error(exc) from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        finally:
            conn.close()

    def _begin_immediate(self, conn: sqlite3.Connection) -> None:
        """``BEGIN IMMEDIATE``, waiting for a lock in short busy timeouts rather than one long
        one: SQLite's wait is a C call that no signal interrupts, so Ctrl-C (or SIGTERM)
        takes effect within one poll instead of after the whole busy timeout."""
        total_ms = int(self.options.busy_timeout_ms)
        poll_ms = min(total_ms, _LOCK_POLL_MS)
        deadline = time.monotonic() + total_ms / 1000
        conn.execute(f"PRAGMA busy_timeout = {poll_ms}")
        try:
            while True:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    if time.monotonic() >= deadline and not step.active(self.path):
                        raise  # (while a migration's last step holds the lock, writers wait on)
        finally:
            conn.execute(f"PRAGMA busy_timeout = {total_ms}")

    def _migrate(self, conn: sqlite3.Connection, path: Path) -> None:
        """Additive only: a table of the original keeps its layout, rows and columns; minsky
        adds its two columns and two indexes, after backing the file up."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        self._refuse_newer(version)
        if version == schema.SCHEMA_VERSION:
            return
        table = self._table(conn)
        if table is None:
            conn.execute(schema.CREATE_TABLE)
        else:
            for column in (original.RECORD, original.DIGEST):
                if column not in table.names:
                    conn.execute(f"ALTER TABLE sessions ADD COLUMN {column} TEXT")
        table = self._table(conn)
        assert table is not None
        for statement in schema.index_statements(table):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION}")

    def _backup_if_upgrading(self, conn: sqlite3.Connection, path: Path) -> None:
        """Copy a database whose schema minsky is about to change (SQLite cannot copy from a
        connection inside a write transaction, so this runs just before it begins)."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version < schema.SCHEMA_VERSION and self._table(conn) is not None:
            self.schema_backup = _backup_before_change(conn, path)
            log.warning(
                "%s: minsky adds its columns to this table; the file as it was is in %s", path, self.schema_backup
            )

    def _table(self, conn: sqlite3.Connection) -> original.Table | None:
        try:
            return schema.table_of(conn)
        except StoreError as exc:
            raise StoreError(f"{self.path}: {exc}", hint=exc.hint) from None

    def _decode(self, table: original.Table, row: tuple[object, ...]) -> SessionRecord:
        return original.row_reader(table)(row, str(self.path), None)

    # -- the moved marker and the write lock -------------------------------------

    def moved(self) -> MovedMark | None:
        with self._reader() as conn:
            return None if conn is None else schema.moved_mark(conn, str(self.path))

    @contextlib.contextmanager
    def write_lock(self) -> Iterator[_SqliteLock]:
        # No schema upgrade: locking (and marking) an original's database leaves its tables alone.
        with step.claim(self.path), self._writer(check_moved=False, upgrade=False) as conn:
            yield _SqliteLock(conn)

    # -- reading -------------------------------------------------------------

    def _select(
        self, conn: sqlite3.Connection, tail: str = "", params: Sequence[object] = ()
    ) -> Iterator[SessionRecord]:
        table = self._table(conn)
        if table is None:
            return
        decode = self._decode  # every reader's way from a row to its record (tests replace it)
        # Batches of a split read's size: a row's error and a later fetch error then come in the
        # same order from either read.
        for rows in fetched(conn, f"{schema.select_sql(table)} {tail}", params, size=_SPLIT_BATCH):
            for row in rows:
                yield decode(table, row)

    def source_rows(self) -> Iterator[tuple[original.Table, Mapping[str, object]]]:
        """Every row's raw cells, in ``read()``'s order: what coverage checks are made against."""
        with self._reader() as conn:
            table = self._table(conn) if conn is not None else None
            if conn is None or table is None:
                return
            conn.execute("BEGIN")
            for rows in fetched(conn, f"{schema.select_sql(table)} ORDER BY rowid"):
                for row in rows:
                    yield table, schema.as_mapping(table, row)

    def fork_reader(self) -> SqliteStore:
        """A read opens its own connection: ``self`` reads as well in a forked child."""
        return self

    def read(self) -> Iterator[SessionRecord]:
        with self._reader() as conn:
            if conn is not None:
                conn.execute("BEGIN")  # one snapshot for the whole stream
                yield from self._select(conn, "ORDER BY rowid")

    def read_split(self) -> tuple[Callable[[Any], SessionRecord], Iterator[Sequence[Any]]] | None:
        """``read()`` as fetched rows and their decoder (``SplitReadStore``): a forked read
        decodes them on another core too. None when a subclass changed ``read()``."""
        if type(self).read is not SqliteStore.read:
            return None
        tables: list[original.Table] = []  # the table the read found, once its first batch is fetched
        decode = self._decode  # as ``_select`` does (tests replace it)

        def batches() -> Iterator[Sequence[Any]]:
            with self._reader() as conn:
                if conn is None:
                    return
                conn.execute("BEGIN")  # one snapshot for the whole stream
                table = self._table(conn)
                if table is None:
                    return
                tables.append(table)
                yield from fetched(conn, f"{schema.select_sql(table)} ORDER BY rowid", size=_SPLIT_BATCH)

        return (lambda row: decode(tables[0], row)), batches()

    def read_canonical(self) -> Iterator[bytes]:
        """Verification's fast path: the canonical forms as stored in the record column (minsky
        writes exactly ``canonical(record)`` there), without decoding them, for every row whose
        cells are still as minsky wrote them; other rows are decoded."""
        with self._reader() as conn:
            table = self._table(conn) if conn is not None else None
            if conn is None or table is None:
                return
            conn.execute("BEGIN")
            for rows in fetched(conn, f"{schema.select_sql(table)} ORDER BY rowid"):
                for row in rows:
                    values = schema.as_mapping(table, row)
                    text, digest = values.get(original.RECORD), values.get(original.DIGEST)
                    if (
                        isinstance(text, str)
                        and text
                        and (not digest or digest == original.cells_digest(table, values))
                    ):
                        yield text.encode("utf-8", "surrogateescape")  # a stray byte read leniently: that byte again
                    else:
                        yield canonical(self._decode(table, row))

    def count(self) -> int:
        with self._reader() as conn:
            if conn is None or self._table(conn) is None:
                return 0
            return int(conn.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def keys(self) -> Iterator[str]:
        """The names in ``read()``'s order. Read from an index on the names when the table has
        one, sorted by rowid there: a scan of the table itself reads every row's pages (200 MB
        a 100k-record store), the index a hundredth of that."""
        with self._reader() as conn:
            if conn is not None and self._table(conn) is not None:
                plan = conn.execute(f"EXPLAIN QUERY PLAN {_KEYS_BY_INDEX}").fetchall()
                by_index = any("COVERING INDEX" in str(step[-1]) for step in plan)
                conn.execute("BEGIN")  # one snapshot: ``fetched`` may have to run it again
                for names in fetched(conn, _KEYS_BY_INDEX if by_index else _KEYS):
                    for (name,) in names:
                        yield name

    def get(self, name: str) -> SessionRecord | None:
        with self._reader() as conn:
            if conn is None:
                return None
            return next(self._select(conn, f"WHERE {KEY_IS}", (bound(name),)), None)

    def list(self, where: SessionFilter) -> Iterator[SessionRecord]:
        with self._reader() as conn:
            if conn is None:
                return
            tail, params = "ORDER BY rowid", []
            conn.execute("BEGIN")  # one snapshot: ``fetched`` may have to run it again
            table = self._table(conn)
            column = table.column_of.get("taskId") if table is not None else None
            if where.task_id is not None and column is not None:
                variants = _task_variants(where.task_id)
                tail = f"WHERE {schema.quote(column)} IN ({', '.join('?' * len(variants))}) ORDER BY rowid"
                params = variants
            records = (r for r in self._select(conn, tail, params) if matches(r, where))
            yield from page(records, where)

    def change_token(self) -> tuple[object, ...] | None:
        """The database file's and its WAL's identity, size and timestamps (``file_token``): a
        commit writes one of them (the WAL, or the file itself in a rollback-journal mode), a
        checkpoint the file. An empty WAL is as good as none (a connection opening the database
        makes one; SQLite empties or removes it only after a checkpoint has written the file).
        Not the -shm, which readers write too, nor the WAL's ctime: SQLite running as root
        fchowns the WAL each time a connection opens it, writing nothing. A read leaves both as
        they were (a WAL it made is removed again, ``_tidy_wal``). Without the ctime, a WAL
        started over at the same size with its mtime put back would look the same: its header's
        checkpoint sequence and salts, new at every restart, are in the token too. SQLite keeps
        the WAL beside the file a symbolic link names, so the WAL is looked for there."""
        db = file_token(self.path)
        wal_path = Path(f"{os.path.realpath(self.path)}-wal")
        wal = file_token(wal_path, ctime=False, absent=())
        if db is None or wal is None:
            return None
        if not wal:
            return (db, wal)
        restarts = _wal_restarts(wal_path)
        return None if restarts is None else (db, wal, restarts)

    def size_bytes(self) -> int | None:
        total = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(OSError):
                total += Path(f"{self.path}{suffix}").stat().st_size
        return total if self.path.exists() else None

    def verify(self) -> VerifyReport:
        problems: list[str] = []
        checked = 0
        with self._reader() as conn:
            if conn is None:
                return VerifyReport(ok=True, checked=0)
            try:
                result = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            except sqlite3.DatabaseError as exc:
                return VerifyReport(ok=False, checked=0, problems=(f"integrity_check: {exc}",))
            if result != ["ok"]:
                problems.extend(f"integrity_check: {line}" for line in result)
            table = self._table(conn)
            if table is not None:
                for row in conn.execute(schema.select_sql(table)):
                    checked += 1
                    try:
                        check(self._decode(table, row))
                    except (ValueError, StoreError) as exc:
                        problems.append(str(exc))
        if checked and not problems:
            problems.extend(original.store_coverage(self))
        return VerifyReport(ok=not problems, checked=checked, problems=tuple(problems))

    def quarantine_unreadable(self, directory: Path) -> tuple[Path | None, Sequence[str]]:
        """Move rows whose record cannot be decoded into a quarantine file, then out of the table."""
        if not self.exists():
            return None, []
        with self._writer() as conn:
            table = self._table(conn)
            bad_rowids, entries, notes = [], [], []
            assert table is not None
            for rowid, *row in conn.execute(f"SELECT rowid, {schema.select_sql(table)[7:]}"):
                try:
                    check(self._decode(table, tuple(row)))
                except (ValueError, StoreError) as exc:
                    bad_rowids.append(rowid)
                    entries.append(dict(schema.as_mapping(table, tuple(row))))
                    notes.append(f"session {row[table.names.index(original.KEY)]!r}: {exc}")
            if not entries:
                return None, []
            path = write_quarantine(directory, backend="sqlite", location=str(self.path), entries=entries)
            conn.executemany("DELETE FROM sessions WHERE rowid = ?", [(r,) for r in bad_rowids])
        return path, notes

    # -- writing -------------------------------------------------------------

    @contextlib.contextmanager
    def bulk_writer(self, on_conflict: OnConflict = "overwrite") -> Iterator[_SqliteBulkWriter]:
        # A migration may write into a store marked as moved (moving back): no marker check.
        self._check_file()
        # A build killed after its link into place leaves its temp beside a complete database:
        # swept on both paths, not only when the database is new.
        _remove_dead_temps(self.path)
        if self.path.exists():  # a zero-byte file is an empty database: written in place
            with self._writer(check_moved=False) as conn:
                writer = _SqliteBulkWriter(self, conn, on_conflict)
                yield writer
                writer.finish(str(self.path))
            return
        # A new database: build it aside, then move it into place whole.
        temp = self.path.parent / f"{TEMP_PREFIX}{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}"
        try:
            with self._writer(temp, check_moved=False, aside=True) as conn:
                writer = _SqliteBulkWriter(self, conn, on_conflict, unjournaled=True)
                yield writer
                writer.finish(str(self.path))  # a name given twice: nothing is moved into place
            conn.close()
            _set_journal_mode(temp, self.options.journal_mode)  # what the store's own writers use
            _fsync_file(temp)
            try:
                os.link(temp, self.path)  # never replaces a database that appeared meanwhile
            except FileExistsError:
                # Another writer created it meanwhile: merge into it under the conflict rule.
                writer.conflicts += self._merge_built(temp, on_conflict)
            fsync_dir(self.path.parent)
        finally:
            for suffix in ("", "-wal", "-shm", "-journal"):
                # Cleaning up never hides why the build failed (a read-only directory refuses this too).
                with contextlib.suppress(OSError):
                    Path(f"{temp}{suffix}").unlink(missing_ok=True)

    def _merge_built(self, temp: Path, on_conflict: OnConflict) -> Sequence[str]:
        """Copy a database built aside into the one that appeared at our path, in one transaction."""
        source = self._connect(temp, readonly=True)
        try:
            with self._writer(check_moved=False) as conn:
                writer = _SqliteBulkWriter(self, conn, on_conflict)
                records = self._select(source, "ORDER BY rowid")
                while batch := [record for _, record in zip(range(1000), records, strict=False)]:
                    writer.write(batch)
                writer.finish(str(self.path))
                return writer.conflicts
        finally:
            source.close()

    def _refuse_clash(self, conn: sqlite3.Connection, name: str, *, existing_ok: bool) -> None:
        """A name the table's key already holds: a conflict, or (under a case-folding key such
        as the original's ``COLLATE NOCASE``) another session that would be overwritten."""
        found = conn.execute("SELECT session FROM sessions WHERE session = CAST(? AS TEXT)", (bound(name),)).fetchall()
        for (other,) in found:
            if other != name:
                raise ConflictError(
                    f"{self.path}: table 'sessions', column 'session': {name!r} and {other!r} are one key "
                    "there (the column ignores case); refusing to overwrite one with the other",
                    hint="rename one of the two sessions before writing into this table",
                )
            if not existing_ok:
                raise ConflictError(f"session {name!r} already exists in {self.path}")

    def _refused(self, name: str, exc: sqlite3.Error) -> StoreError:
        return StoreError(
            f"{self.path}: table 'sessions', session {name!r}: the database refused the row ({exc})",
            hint="a constraint or trigger of the table refused it; see `sqlite3 FILE .schema sessions`",
        )

    def insert(self, record: SessionRecord) -> None:
        with self._writer() as conn:
            table = self._table(conn)
            assert table is not None
            self._refuse_clash(conn, record.session, existing_ok=False)
            try:
                conn.execute(schema.insert_sql(table), schema.to_row(table, record))
            except sqlite3.IntegrityError as exc:  # a CHECK, a trigger, a NOT NULL: not a conflict
                raise self._refused(record.session, exc) from None

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        with self._writer() as conn:
            table = self._table(conn)
            assert table is not None
            current = next(self._select(conn, f"WHERE {KEY_IS}", (bound(name),)), None)
            if current is None:
                raise NotFoundError(f"no session named {name!r} in {self.path}")
            updated = change(current)
            if updated.session != name:
                self._refuse_clash(conn, updated.session, existing_ok=False)
            try:
                conn.execute(schema.upsert_sql(table), schema.to_row(table, updated))
            except sqlite3.IntegrityError as exc:
                raise self._refused(name, exc) from None
            return updated

    def delete(self, name: str) -> bool:
        if not self.exists():
            return False
        with self._writer() as conn:
            return conn.execute(f"DELETE FROM sessions WHERE {KEY_IS}", (bound(name),)).rowcount > 0

    def close(self) -> None:
        pass


class _SqliteLock:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def mark_moved(self, mark: MovedMark | None) -> None:
        schema.set_moved_mark(self.conn, mark)


class _SqliteBulkWriter:
    """Upserts, or — for ``skip``/``fail`` — inserts what is absent, inside the ``BEGIN IMMEDIATE``
    transaction that commits them: the names found present are the conflicts at commit time."""

    def __init__(
        self,
        store: SqliteStore,
        conn: sqlite3.Connection,
        on_conflict: OnConflict = "overwrite",
        *,
        unjournaled: bool = False,
    ) -> None:
        self.store, self.conn, self.on_conflict = store, conn, on_conflict
        # A new database built aside with no journal: ROLLBACK TO would not undo anything there.
        self.unjournaled = unjournaled
        self.conflicts: list[str] = []
        table = store._table(conn)
        assert table is not None
        self.table = table
        self.statement = schema.upsert_sql(table) if on_conflict == "overwrite" else schema.insert_if_absent_sql(table)
        self.folds_case = schema.key_folds_case(conn)
        self.make_row = functools.partial(schema.to_row, table)

    def row_maker(self) -> Callable[[SessionRecord], tuple[Any, ...]]:
        return self.make_row

    def write(self, batch: Sequence[SessionRecord]) -> None:
        make_row = self.make_row
        rows = [row if (row := premade(r, make_row)) is not None else make_row(r) for r in batch]
        if not rows:
            return
        if self.on_conflict != "overwrite":
            batch, rows = self._first_copies(batch, rows)
            if self.unjournaled:
                self._write_unjournaled(batch, rows)
                return
        if self.on_conflict != "overwrite" and not self.folds_case:
            # The common case first: no name of the batch is present. The INSERT ... DO NOTHING
            # says how many rows it inserted; all of them, and no other change (a trigger's),
            # means none was present, and the batch is written with no lookup of its names
            # (1.3 us a name). Otherwise it is undone and written as below, the names found
            # present before it the conflicts.
            self.conn.execute("SAVEPOINT minsky_batch")
            before = self.conn.total_changes
            inserted = self.conn.executemany(self.statement, rows).rowcount
            clean = inserted == len(rows) == self.conn.total_changes - before
            if not clean:
                self.conn.execute("ROLLBACK TO minsky_batch")
            self.conn.execute("RELEASE minsky_batch")
            if clean:
                return
        if self.on_conflict != "overwrite":
            # We hold the write lock: what this finds present stays so until the commit.
            names = [r.session for r in batch]
            query = f"SELECT session FROM sessions WHERE session IN ({', '.join('?' * len(names))})"
            present = {name for (name,) in self.conn.execute(query, names)}
            self.conflicts.extend(name for name in names if name in present)
        if not self.folds_case:
            self.conn.executemany(self.statement, rows)
            return
        for record, row in zip(batch, rows, strict=True):  # one by one: two names of one key are caught
            self.store._refuse_clash(self.conn, record.session, existing_ok=True)
            self.conn.execute(self.statement, row)

    def _first_copies(
        self, batch: Sequence[SessionRecord], rows: list[tuple[Any, ...]]
    ) -> tuple[Sequence[SessionRecord], list[tuple[Any, ...]]]:
        """A name given twice in one batch: its later copies are conflicts, never sent to the
        INSERT (which would drop them unseen, as present)."""
        names = [r.session for r in batch]
        if len(set(names)) == len(names):
            return batch, rows
        seen: set[str] = set()
        keep = []
        for i, name in enumerate(names):
            if name in seen:
                self.conflicts.append(name)
            else:
                seen.add(name)
                keep.append(i)
        return [batch[i] for i in keep], [rows[i] for i in keep]

    def _write_unjournaled(self, batch: Sequence[SessionRecord], rows: list[tuple[Any, ...]]) -> None:
        """Into a table this write created and alone wrote, with no rollback to lean on: a row
        already there was written by an earlier batch, at a rowid up to the one before this one."""
        (last,) = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM sessions").fetchone()
        if self.conn.executemany(self.statement, rows).rowcount == len(rows):
            return
        names = [r.session for r in batch]
        query = f"SELECT session FROM sessions WHERE rowid <= ? AND session IN ({', '.join('?' * len(names))})"
        present = {name for (name,) in self.conn.execute(query, [last, *names])}
        self.conflicts.extend(name for name in names if name in present)

    def finish(self, location: str) -> None:
        """Raise (so the transaction rolls back) if ``fail`` met records that exist."""
        if self.conflicts and self.on_conflict == "fail":
            raise conflict_at_commit(location, self.conflicts)


def _wal_restarts(wal: Path) -> bytes | None:
    """A WAL header's checkpoint sequence number and salts (bytes 12-24): SQLite writes new ones
    each time it starts the WAL over. None if it cannot be read (then nothing can be told)."""
    try:
        with wal.open("rb") as handle:
            header = handle.read(24)
    except OSError:
        return None
    return header[12:24] if len(header) == 24 else None


def _task_variants(task: str) -> list[str]:
    normal = normalize_task_id(task)
    if normal.startswith("md#") and normal[3:].isdigit():
        return [normal, f"#{normal[3:]}", normal[3:]]
    return [normal]


def _set_journal_mode(path: Path, mode: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute(f"PRAGMA journal_mode = {mode}")
    finally:
        conn.close()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_dead_temps(path: Path) -> None:
    """Remove temp databases whose writing process no longer runs (killed mid-build)."""
    for temp in path.parent.glob(f"{TEMP_PREFIX}{path.name}.*"):
        parts = temp.name[len(TEMP_PREFIX) + len(path.name) + 1 :].split(".")
        if parts and parts[0].isdigit() and not _alive(int(parts[0])):
            temp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _backup_before_change(conn: sqlite3.Connection, path: Path) -> Path:
    """Copy the database to ``<file>.before-minsky-<UTC time>.bak`` beside it, created
    exclusively (never over another backup), mode 0600."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for n in range(1000):
        target = path.with_name(f"{path.name}.before-minsky-{stamp}{f'-{n}' if n else ''}.bak")
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            continue
        copy = sqlite3.connect(target)
        try:
            conn.backup(copy)
        finally:
            copy.close()
        return target
    raise StoreError(f"{path}: cannot name a backup beside it; nothing was changed")
