"""A source nothing wrote to is not read a second time (issue 16), and a write is never missed.

After the copy the engine must tell what changed in the source while it was read. A store
with a change token (``ChangeTokenStore``) answers without reading it again: the token taken
just before the copy's read equals the one taken after. The file stores' tokens are their
files' stat, which cannot tell a file written within ``minsky.atomic.RACY_NS`` of the look
(then the source is read again, as before); these tests move that clock ahead, so that the
token comparison itself is what finds (or rules out) a write. Writers are real processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Invoke, run_minsky
from live import Place, place, seed_record, write_json_store
from test_original_postgres import LAYOUTS, build, fresh_db  # noqa: F401 (a fixture)

SEEDED = 1500  # more than one batch: the writer runs while the copy is still reading
AHEAD = 60 * 10**9
TARGET = {"json": "sqlite", "sqlite": "json", "postgres": "sqlite"}
STORE_CLASS = {
    "json": "minsky_backend_json.store.JsonStore",
    "sqlite": "minsky_backend_sqlite.store.SqliteStore",
    "postgres": "minsky_backend_postgres.store.PostgresStore",
}


@pytest.fixture
def clock_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file tokens' "now" a minute ahead: files this test wrote are old enough to be told apart."""
    from minsky import atomic

    monkeypatch.setattr(atomic, "clock", lambda: time.time_ns() + AHEAD)


def aged(path: Path) -> None:
    """The timestamps of a file last written an hour ago (its ctime stays now: the clock is ahead),
    so that a write in this same clock tick still moves its mtime."""
    past = time.time() - 3600
    os.utime(path, (past, past))


def store_class(backend: str) -> Any:
    module, _, name = STORE_CLASS[backend].rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


def counted_reads(monkeypatch: pytest.MonkeyPatch, backend: str, when: Callable[[], bool] = lambda: True) -> Counter:  # type: ignore[type-arg]
    """Calls of the source's ``read`` and ``read_canonical`` (the ones ``when()`` allows)."""
    counts: Counter[str] = Counter()
    cls = store_class(backend)
    for name in ("read", "read_canonical"):
        original = getattr(cls, name)

        def counted(self: Any, *args: Any, _original: Any = original, _name: str = name) -> Any:
            if when():
                counts[_name] += 1
            return _original(self, *args)

        monkeypatch.setattr(cls, name, counted)
    return counts


def tokens_taken(monkeypatch: pytest.MonkeyPatch, backend: str) -> list[Any]:
    """Every change token the source's store hands out, in order."""
    taken: list[Any] = []
    cls = store_class(backend)
    original = cls.change_token

    def spied(self: Any) -> Any:
        taken.append(original(self))
        return taken[-1]

    monkeypatch.setattr(cls, "change_token", spied)
    return taken


def seeded_source(backend: str, tmp_path: Path, minsky: Invoke, url: str | None) -> Place:
    source = place(backend, tmp_path, url, "source")
    records = [seed_record(i) for i in range(SEEDED)]
    if backend == "json":
        assert source.path is not None
        write_json_store(source.path, records)
    else:
        staging = tmp_path / "seed.json"
        write_json_store(staging, records)
        seeded = minsky(
            "sessiondb", "migrate", "to", backend, "--from", "json", "--json-path", str(staging), *source.flags()
        )
        assert seeded.exit_code == 0, seeded.output
    if source.path is not None:
        aged(source.path)
    return source


def env_for(where: Place) -> dict[str, str]:
    if where.path is None:
        return {"MINSKY_SESSIONDB_BACKEND": "postgres", "MINSKY_POSTGRES_URL": str(where.url)}
    return {"MINSKY_SESSIONDB_BACKEND": where.backend, "MINSKY_SESSIONDB_DB_PATH": str(where.path)}


def start_in(where: Place, name: str) -> None:
    """A writer process starts a session in ``where``."""
    started = run_minsky("session", "start", name, "--repo", "https://h/late/repo", env=env_for(where))
    assert started.returncode == 0, started.stderr


def migrate_from(minsky: Invoke, source: Place, target: Place, *extra: str) -> dict[str, Any]:
    done = minsky(
        *["sessiondb", "migrate", "to", target.backend, *target.flags(), "--from", source.backend],
        *(["--json-path", str(source.path)] if source.backend == "json" else []),
        *(["--sqlite-path", str(source.path)] if source.backend == "sqlite" else []),
        *(["--connection-string", str(source.url)] if source.backend == "postgres" else []),
        *extra,
        "--json",
    )
    assert done.exit_code == 0, done.output
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def url_for(backend: str, request: pytest.FixtureRequest) -> str | None:
    return str(request.getfixturevalue("postgres_url")) if backend == "postgres" else None


# -- the plain migration: counting what changed meanwhile ----------------------------------------


@pytest.mark.parametrize("backend", ["json", "sqlite", "postgres"])
def test_a_source_nothing_wrote_to_is_read_once(
    backend: str,
    minsky: Invoke,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    clock_ahead: None,
) -> None:
    source = seeded_source(backend, tmp_path, minsky, url_for(backend, request))
    target = place(TARGET[backend], tmp_path, None, "target")
    reads = counted_reads(monkeypatch, backend)
    report = migrate_from(minsky, source, target)
    assert report["counts"]["written"] == SEEDED
    assert report["changedInSource"] == 0
    assert reads == {"read": 1}, f"the source was read again after the copy: {reads}"


@pytest.mark.parametrize("backend", ["json", "sqlite", "postgres"])
def test_a_write_during_the_copy_is_counted_by_the_token_comparison(
    backend: str,
    minsky: Invoke,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    clock_ahead: None,
) -> None:
    from minsky import hooks

    source = seeded_source(backend, tmp_path, minsky, url_for(backend, request))
    target = place(TARGET[backend], tmp_path, None, "target")
    stage, wrote = hooks.stage, []

    def staged(store: Any, writer: Any, records: Any) -> None:
        stage(store, writer, records)
        if not wrote:  # the copy's read is under way: a writer process starts a session
            start_in(source, "late-1")
            wrote.append(True)

    monkeypatch.setattr(hooks, "stage", staged)
    tokens = tokens_taken(monkeypatch, backend)
    report = migrate_from(minsky, source, target)
    assert wrote and report["changedInSource"] == 1
    assert "late-1" not in target.read()
    assert len(tokens) == 2 and None not in tokens and tokens[0] != tokens[1], tokens


# -- what a file token tells ----------------------------------------------------------------------


def wait_for_a_tick(after_ns: int, probe: Path) -> None:
    """Until the file clock has moved past ``after_ns`` (a few milliseconds)."""
    while True:
        probe.write_bytes(b"")
        if probe.stat().st_ctime_ns > after_ns:
            return
        time.sleep(0.001)


def test_a_file_written_just_now_cannot_be_told(tmp_path: Path) -> None:
    from minsky.atomic import file_token

    path = tmp_path / "f"
    path.write_bytes(b"[]")
    assert file_token(path) is None  # written within the racy margin of this look
    aged(path)
    assert file_token(path) is None  # its ctime is still now
    assert file_token(tmp_path / "absent") is None
    assert file_token(tmp_path / "absent", absent=()) == ()


def test_an_in_place_rewrite_of_the_same_size_changes_the_token(tmp_path: Path, clock_ahead: None) -> None:
    """As the original Minsky writes its JSON file: truncated and written again, same inode."""
    from minsky_backend_json.store import JsonStore

    path = tmp_path / "session-db.json"
    path.write_text(json.dumps([seed_record(1)], indent=2), "utf-8")
    aged(path)
    store = JsonStore(path)
    before = store.change_token()
    assert before is not None
    text = path.read_text("utf-8")
    with path.open("r+", encoding="utf-8") as handle:  # same length, another task
        handle.write(text.replace('"md#1"', '"md#7"'))
    assert path.stat().st_size == before[2]
    assert store.change_token() != before


def test_a_rewrite_that_puts_the_mtime_back_changes_the_token(tmp_path: Path, clock_ahead: None) -> None:
    """A copy that keeps timestamps (cp -p, rsync -t) cannot keep the ctime."""
    from minsky.atomic import file_token

    path = tmp_path / "store.json"
    path.write_bytes(b'{"sessions": [1]}')
    aged(path)
    before, stat = file_token(path), path.stat()
    wait_for_a_tick(stat.st_ctime_ns, tmp_path / "probe")
    path.write_bytes(b'{"sessions": [2]}')
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    assert file_token(path) != before


def test_an_sqlite_read_and_write_lock_leave_the_token_as_it_was(
    tmp_path: Path, minsky: Invoke, clock_ahead: None
) -> None:
    """A read makes a WAL and removes it; the migration's lock opens one, empty: neither is a write."""
    from minsky_backend_sqlite.store import SqliteStore

    source = seeded_source("sqlite", tmp_path, minsky, None)
    assert source.path is not None
    store = SqliteStore(source.path)
    before = store.change_token()
    assert before is not None
    assert sum(1 for _ in store.read()) == SEEDED
    assert store.change_token() == before
    with store.write_lock():
        assert Path(f"{source.path}-wal").exists()
        assert store.change_token() == before
    start_in(source, "late-1")
    assert store.change_token() != before


def test_an_sqlite_commit_still_in_the_wal_changes_the_token(tmp_path: Path, minsky: Invoke, clock_ahead: None) -> None:
    """With another connection open, a writer's commit is not checkpointed when it closes: the
    database file is as it was, and only the WAL tells."""
    import sqlite3

    from minsky_backend_sqlite.store import SqliteStore

    source = seeded_source("sqlite", tmp_path, minsky, None)
    assert source.path is not None
    holder = sqlite3.connect(source.path)  # another process's connection, say
    try:
        holder.execute("SELECT count(*) FROM sessions").fetchall()
        store = SqliteStore(source.path)
        before, db = store.change_token(), source.path.stat()
        assert before is not None
        start_in(source, "late-1")
        now = source.path.stat()
        assert (now.st_size, now.st_mtime_ns) == (db.st_size, db.st_mtime_ns), "the commit reached the file"
        assert store.change_token() != before
    finally:
        holder.close()


def test_an_sqlite_wal_started_over_at_the_same_size_changes_the_token(tmp_path: Path, clock_ahead: None) -> None:
    """The WAL's ctime is not in the token (SQLite as root fchowns it on every open): a WAL started
    over after a checkpoint, as long as before, its mtime put back (``touch -d``, ``rsync -t``),
    is told by its header's salts."""
    import sqlite3

    from minsky_backend_sqlite.store import SqliteStore

    path = tmp_path / "s.db"
    holder = sqlite3.connect(path, isolation_level=None)  # keeps the WAL from being removed
    try:
        holder.execute("PRAGMA journal_mode = WAL")
        holder.execute("CREATE TABLE t (v TEXT)")
        holder.execute("INSERT INTO t VALUES (?)", ("a" * 3000,))
        holder.execute("PRAGMA wal_checkpoint(PASSIVE)")
        wal = Path(f"{path}-wal")
        aged(path)
        aged(wal)
        store = SqliteStore(path)
        before, size, stamps = store.change_token(), wal.stat().st_size, wal.stat()
        assert before is not None
        holder.execute("UPDATE t SET v = ?", ("b" * 3000,))  # starts the WAL over from its header
        os.utime(wal, ns=(stamps.st_atime_ns, stamps.st_mtime_ns))
        assert wal.stat().st_size == size, "the WAL grew: this test no longer restarts it in place"
        assert store.change_token() != before
    finally:
        holder.close()


def test_an_sqlite_store_named_through_a_symlink_sees_its_wal(
    tmp_path: Path, minsky: Invoke, clock_ahead: None
) -> None:
    """SQLite keeps the WAL beside the file a link points to, not beside the link."""
    import sqlite3

    from minsky_backend_sqlite.store import SqliteStore

    source = seeded_source("sqlite", tmp_path, minsky, None)
    assert source.path is not None
    link = tmp_path / "link.db"
    link.symlink_to(source.path)
    holder = sqlite3.connect(source.path)  # the commit below stays in the WAL
    try:
        holder.execute("SELECT count(*) FROM sessions").fetchall()
        store = SqliteStore(link)
        before = store.change_token()
        assert before is not None
        start_in(source, "late-1")
        assert store.change_token() != before
    finally:
        holder.close()


# -- PostgreSQL: the table's row versions and definition -----------------------------------------


def pg_tokens_move(url: str, statements: list[str]) -> None:
    import psycopg

    from minsky_backend_postgres.store import PostgresStore

    store = PostgresStore(url)
    try:
        token = store.change_token()
        assert token is not None and store.change_token() == token, "no write, yet the token moved"
        for statement in statements:
            with psycopg.connect(url, autocommit=True) as conn:
                assert conn.execute(statement).rowcount == 1, statement
            now = store.change_token()
            assert now is not None and now != token, f"the token missed: {statement}"
            token = now
    finally:
        store.close()


def test_postgres_insert_update_and_delete_each_change_the_token(
    postgres_url: str, minsky: Invoke, tmp_path: Path
) -> None:
    from minsky_backend_postgres.store import PostgresStore

    assert PostgresStore(postgres_url).change_token() is None  # no table yet
    seeded_source("postgres", tmp_path, minsky, postgres_url)
    pg_tokens_move(
        postgres_url,
        [
            "INSERT INTO sessions (session, repo_name, repo_url) VALUES ('late-1', 'r', 'u')",
            "UPDATE sessions SET branch = 'other' WHERE session = 's-00001'",
            "UPDATE sessions SET record = replace(record, 'seed/repo', 'seed/rep0') WHERE session = 's-00002'",
            "DELETE FROM sessions WHERE session = 's-00003'",
        ],
    )


def test_postgres_a_change_undone_still_moves_the_token(postgres_url: str, minsky: Invoke, tmp_path: Path) -> None:
    """A token equal before and after must mean the read in between saw that same table. A change
    made while the read took its snapshot and undone before the second look (found by an
    adversarial run: a session deleted and put back, a TRUNCATE and reload, which an older
    snapshot reads as empty) leaves the rows as they were, so a hash of them cannot tell."""
    import psycopg

    from minsky_backend_postgres.store import PostgresStore

    seeded_source("postgres", tmp_path, minsky, postgres_url)
    undone = [
        [
            "CREATE TABLE saved AS SELECT * FROM sessions WHERE session = 's-00007'",
            "DELETE FROM sessions WHERE session = 's-00007'",
            "INSERT INTO sessions SELECT * FROM saved",
            "DROP TABLE saved",
        ],
        [
            "CREATE TABLE saved AS SELECT * FROM sessions",
            "TRUNCATE sessions",
            "INSERT INTO sessions SELECT * FROM saved",
            "DROP TABLE saved",
        ],
        ["UPDATE sessions SET branch = 'x' WHERE session = 's-00008'", "UPDATE sessions SET branch = branch"],
        ["ALTER TABLE sessions ALTER COLUMN created_at TYPE text"],  # every createdAt now reads otherwise
        ["ALTER TABLE sessions ADD COLUMN extra_col text DEFAULT 'x'"],  # no row rewritten
        ["ALTER TABLE sessions DROP COLUMN extra_col"],
    ]
    store = PostgresStore(postgres_url)
    try:
        token = store.change_token()
        with psycopg.connect(postgres_url, autocommit=True) as conn:  # what else runs on the server
            conn.execute("VACUUM (FREEZE, ANALYZE) sessions")
            conn.execute("CREATE TABLE elsewhere (v int)")
            conn.execute("INSERT INTO elsewhere VALUES (1)")
            conn.execute("ANALYZE sessions")
        assert store.change_token() == token, "VACUUM, ANALYZE or a write to another table moved the token"
        for statements in undone:
            token = store.change_token()
            assert token is not None and store.change_token() == token
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)
            assert store.change_token() != token, f"the token missed: {statements}"
    finally:
        store.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_postgres_tokens_of_the_originals_tables(
    layout: str,
    fresh_db: str,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    build(fresh_db, layout, monkeypatch)
    pg_tokens_move(
        fresh_db,
        [
            "UPDATE sessions SET repo_name = repo_name || 'x' WHERE session = 'task#064'",
            "DELETE FROM sessions WHERE session = 'task#002'",
        ],
    )


# -- --set-default: the step under the source's lock ----------------------------------------------


@contextlib.contextmanager
def lock_watch(monkeypatch: pytest.MonkeyPatch, before: Callable[[], None] = lambda: None) -> Iterator[list[bool]]:
    """``[True]`` while the migration holds the source's write lock; ``before`` runs just before
    it asks for it (the unlocked passes are done)."""
    from minsky import catchup

    held: list[bool] = []
    source_lock = catchup._source_lock

    @contextlib.contextmanager
    def watched(store: Any) -> Iterator[Any]:
        before()
        with source_lock(store) as lock:
            held.append(True)
            try:
                yield lock
            finally:
                held.clear()

    monkeypatch.setattr(catchup, "_source_lock", watched)
    yield held


@pytest.mark.parametrize("backend", ["json", "sqlite", "postgres"])
def test_the_locked_step_reads_nothing_when_the_source_did_not_change(
    backend: str,
    minsky: Invoke,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    clock_ahead: None,
) -> None:
    source = seeded_source(backend, tmp_path, minsky, url_for(backend, request))
    target = place(TARGET[backend], tmp_path, None, "target")
    with lock_watch(monkeypatch) as held:
        reads = counted_reads(monkeypatch, backend, when=lambda: bool(held))
        report = migrate_from(minsky, source, target, "--set-default")
    assert report["catchUp"]["markedMoved"] is True
    assert report["catchUp"]["written"] == 0 and report["changedInSource"] == 0
    assert reads == Counter(), f"the source was read while its writers waited: {reads}"


@pytest.mark.parametrize("backend", ["json", "sqlite", "postgres"])
def test_a_write_just_before_the_lock_is_copied_under_it(
    backend: str,
    minsky: Invoke,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    clock_ahead: None,
) -> None:
    """The unlocked passes found the source unchanged; a writer process starts a session before
    the lock is taken: the token taken under the lock differs, and the session is copied."""
    source = seeded_source(backend, tmp_path, minsky, url_for(backend, request))
    target = place(TARGET[backend], tmp_path, None, "target")
    tokens = tokens_taken(monkeypatch, backend)
    with lock_watch(monkeypatch, before=lambda: start_in(source, "late-1")):
        report = migrate_from(minsky, source, target, "--set-default")
    assert report["catchUp"]["written"] == 1 and report["catchUp"]["markedMoved"] is True
    assert "late-1" in target.read()
    assert None not in tokens and len(set(map(repr, tokens))) == 2, tokens  # the copy's, then the lock's


def test_a_symlinked_store_pointed_elsewhere_and_back_changes_the_token(tmp_path: Path, clock_ahead: None) -> None:
    from minsky.atomic import file_token

    real, other, link = tmp_path / "real.json", tmp_path / "other.json", tmp_path / "store.json"
    real.write_bytes(b'{"sessions": []}')
    other.write_bytes(b'{"sessions": [{"session": "x"}]}')
    aged(real)
    link.symlink_to(real)
    before = file_token(link)
    assert before is not None and file_token(link, ctime=False) is not None
    link.unlink()
    link.symlink_to(other)  # a reader here sees another store
    link.unlink()
    link.symlink_to(real)
    assert file_token(link) != before
