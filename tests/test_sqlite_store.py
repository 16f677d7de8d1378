"""The SQLite store: the original's schema, versions, file safety, locking, many processes."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import ORIGINAL, run_minsky
from minsky.codec import record_from_dict
from minsky.errors import LockedError, StoreError
from minsky.model import SessionRecord
from minsky_backend_sqlite import SPEC
from minsky_backend_sqlite.store import SqliteOptions, SqliteStore

REPO = "https://github.com/acme/widgets.git"


def original_db(path: Path, layout: str = "sqlite-2025-08-06-camel-pr") -> Path:
    """A database exactly as the original Minsky left it (camelCase, JSON-text columns)."""
    conn = sqlite3.connect(path)
    conn.executescript((ORIGINAL / "sqlite" / f"{layout}.sql").read_text("utf-8"))
    conn.close()
    return path


def test_reads_an_original_database_without_changing_it(tmp_path: Path) -> None:
    db = original_db(tmp_path / "sessions.db")
    before = db.read_bytes()
    store = SPEC.open({"path": db})
    records = {r.session: r for r in store.read()}
    approved = records["task-md#140"]
    assert approved.pr_approved is True and approved.pr_branch == "pr/task-md#140"
    assert approved.pr_state.merged_at == "2025-08-22T07:59:00.000Z"  # type: ignore[union-attr]
    assert records["task-md#102"].pull_request.github.author == "octocat"  # type: ignore[union-attr]
    assert records["task#064"].backend_type == "local"
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "sessions.db", "work"]


def test_first_write_keeps_the_layout_and_stays_readable_by_the_original(tmp_path: Path) -> None:
    db = original_db(tmp_path / "sessions.db")
    with sqlite3.connect(db) as conn:
        old_rows = conn.execute("SELECT * FROM sessions ORDER BY rowid").fetchall()
        old_columns = [r[1] for r in conn.execute("PRAGMA table_info(sessions)")]
    conn.close()
    store = SPEC.open({"path": db})
    from minsky.codec import record_from_dict

    store.insert(
        record_from_dict(
            {"session": "new", "repoName": "r", "repoUrl": "u", "createdAt": "t", "prApproved": False, "futureField": 1}
        )
    )
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        columns = [r[1] for r in conn.execute("PRAGMA table_info(sessions)")]
        rows = conn.execute(f"SELECT {', '.join(old_columns)} FROM sessions ORDER BY rowid").fetchall()
        new = conn.execute(
            'SELECT "repoName", "repoUrl", "createdAt", "prApproved" FROM sessions WHERE session = ?', ("new",)
        ).fetchone()
    conn.close()
    assert columns == [*old_columns, "record", "record_digest"]  # additive: nothing dropped or renamed
    assert rows[:-1] == old_rows  # the original's rows keep their values
    assert new == ("r", "u", "t", "false")  # the original lists the new row through its own columns
    assert store.get("new").extra == {"futureField": 1}  # type: ignore[union-attr]
    [backup] = tmp_path.glob("sessions.db.before-minsky-*.bak")
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    with sqlite3.connect(backup) as conn:  # the table as it was before minsky changed its schema
        assert conn.execute("SELECT * FROM sessions ORDER BY rowid").fetchall() == old_rows
        assert [r[1] for r in conn.execute("PRAGMA table_info(sessions)")] == old_columns
    conn.close()


def test_early_camelcase_layout_is_read_and_upgraded(tmp_path: Path) -> None:
    db = tmp_path / "early.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE sessions (session TEXT PRIMARY KEY, repoName TEXT NOT NULL, repoUrl TEXT, "
            "createdAt TEXT NOT NULL, taskId TEXT, branch TEXT, repoPath TEXT)"
        )
        conn.execute("INSERT INTO sessions VALUES ('e', 'r', NULL, '2025-01-01', '#3', 'b', '/p')")
    conn.close()
    store = SPEC.open({"path": db})
    expected = {
        "session": "e",
        "repoName": "r",
        "createdAt": "2025-01-01",
        "taskId": "#3",
        "branch": "b",
        "repoPath": "/p",
    }
    from minsky.codec import record_to_dict

    assert [record_to_dict(r) for r in store.read()] == [expected]
    store.delete("nothing")  # a write: upgrades the layout
    assert [record_to_dict(r) for r in store.read()] == [expected]


def test_newer_schema_is_refused_and_left_alone(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "future.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    conn.close()
    before = db.read_bytes()
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    for args in (["session", "list"], ["session", "start", "x", "--repo", REPO]):
        result = minsky(*args)
        assert result.exit_code == StoreError.exit_code and "newer minsky" in result.stderr
    assert db.read_bytes() == before


@pytest.mark.parametrize("content", [b"not a database at all", b"\x00" * 4096, b'{"sessions": []}'])
def test_a_file_that_is_not_sqlite_is_named_and_untouched(minsky, tmp_path: Path, monkeypatch, content: bytes) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "sessions.db"
    db.write_bytes(content)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    for args in (["session", "list"], ["session", "start", "x", "--repo", REPO], ["sessiondb", "check"]):
        result = minsky(*args)
        assert result.exit_code == StoreError.exit_code, result.output
        assert str(db) in result.stderr and "not an SQLite database" in result.stderr
    assert db.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "sessions.db", "work"]


def test_damaged_page_is_reported_by_check(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "sessions.db"
    store = SPEC.open({"path": db, "journal_mode": "DELETE"})
    from minsky.testing.records import generated_records

    with store.bulk_writer() as writer:
        writer.write(generated_records(3000))
    data = bytearray(db.read_bytes())
    data[4096 * 3 : 4096 * 3 + 200] = b"\xff" * 200
    db.write_bytes(bytes(data))
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    result = minsky("sessiondb", "check")
    assert result.exit_code == StoreError.exit_code
    assert "Traceback" not in result.output


def test_files_are_private_including_wal(tmp_path: Path) -> None:
    os.umask(0o022)
    db = tmp_path / "deep" / "dir" / "sessions.db"
    store = SPEC.open({"path": db})
    from minsky.testing.records import sample_records

    store.insert(sample_records()[0])
    reader = sqlite3.connect(db)  # keeps the -wal/-shm files in place
    reader.execute("SELECT 1 FROM sessions").fetchall()
    store.insert(sample_records()[1])
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        assert path.exists(), suffix
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, suffix
    reader.close()
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700


def test_config_options_take_effect(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "s.db"
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    assert minsky("config", "set", "sessiondb.sqliteOptions.journalMode", "DELETE").exit_code == 0
    assert minsky("session", "start", "a", "--repo", REPO).exit_code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    assert minsky("config", "set", "sessiondb.sqliteOptions.journalMode", "WAL").exit_code == 0
    assert minsky("session", "start", "b", "--repo", REPO).exit_code == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_locked_database_is_one_clear_line(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    SPEC.open({"path": db}).delete("x") if db.exists() else None
    store = SqliteStore(db, SqliteOptions(busy_timeout_ms=200))
    from minsky.testing.records import sample_records

    store.insert(sample_records()[0])
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LockedError) as info:
            store.insert(sample_records()[1])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(info.value)
    assert "database is locked" in message and str(db) in message and "\n" not in message
    assert "lsof" in (info.value.hint or "") and "session list --active" in (info.value.hint or "")
    assert LockedError.exit_code == 8
    assert [r.session for r in store.read()] == ["plain"]


def test_many_processes_starting_sessions_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    env = {**os.environ, "MINSKY_SESSIONDB_BACKEND": "sqlite", "MINSKY_SESSIONDB_DB_PATH": str(db)}
    code = (
        "import sys\nfrom minsky.cli import cli\n"
        "for i in range(25):\n"
        f"    cli.main(['session','start',f'p{{sys.argv[1]}}-{{i}}','--repo','{REPO}'], standalone_mode=False)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(n)], env=env, stderr=subprocess.PIPE, text=True)
        for n in range(8)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
        assert "locked" not in err
    listed = run_minsky(
        "session", "list", "--json", env={"MINSKY_SESSIONDB_BACKEND": "sqlite", "MINSKY_SESSIONDB_DB_PATH": str(db)}
    )
    assert len(json.loads(listed.stdout)["sessions"]) == 200


def test_killed_bulk_load_never_leaves_a_partial_database(tmp_path: Path, state_dir: Path) -> None:
    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(
        json.dumps({"sessions": [record_to_dict(r) for r in generated_records(30000)]})
    )
    target = tmp_path / "out" / "sessions.db"
    for delay in (0.4, 0.8, 1.2):
        proc = subprocess.Popen(
            [sys.executable, "-m", "minsky", "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if target.exists():
            with sqlite3.connect(target) as conn:
                assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 30000
            conn.close()
            break
    done = run_minsky(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target), "--on-conflict", "overwrite", "--verify"
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".minsky-tmp")] == []


def test_a_build_killed_after_its_link_leaves_no_temp_for_the_next_run(tmp_path: Path, state_dir: Path) -> None:
    """Killed between linking the built database into place and removing its temp name: the
    database is complete, and the next write into it (no longer a new database) sweeps the temp."""
    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps([record_to_dict(r) for r in generated_records(5)]))
    target = tmp_path / "out" / "sessions.db"
    assert run_minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target)).returncode == 0
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    left = target.parent / f".minsky-tmp-{target.name}.{dead}.0badf00d"
    os.link(target, left)  # what the killed build leaves: a second name for the complete database
    left.with_name(f"{left.name}-wal").write_bytes(b"")
    held = target.parent / f".minsky-tmp-{target.name}.{os.getpid()}.1234abcd"  # a live writer's
    held.write_bytes(b"")
    done = run_minsky(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target), "--on-conflict", "overwrite"
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in target.parent.iterdir() if p.name.startswith(".minsky-tmp")) == [held.name]
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 5
    conn.close()


FULL_DISK = (
    "import resource, signal, sys\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
    "resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, 512 * 1024))\n"
    "from minsky.cli import main\n"
    "sys.argv = ['minsky'] + sys.argv[1:]\n"
    "main()\n"
)


@pytest.mark.parametrize("target", ["sqlite", "json"])
def test_full_disk_fails_cleanly_and_loses_nothing(tmp_path: Path, state_dir: Path, target: str) -> None:
    """A disk that fills up (RLIMIT_FSIZE): one line, exit 4, source intact, no target, no temp file."""
    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True)
    source = state_dir / "session-db.json"
    source.write_text(json.dumps({"sessions": [record_to_dict(r) for r in generated_records(6000)]}))
    before = source.read_bytes()
    out_dir = tmp_path / "out"
    flag = ["--sqlite-path", str(out_dir / "s.db")] if target == "sqlite" else ["--json-path", str(out_dir / "s.json")]
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "sessiondb", "migrate", "to", target, *flag],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == StoreError.exit_code, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2
    assert "too large" in done.stderr or "full" in done.stderr or "space" in done.stderr
    assert source.read_bytes() == before
    left = [p.name for p in out_dir.iterdir()] if out_dir.exists() else []
    assert [name for name in left if not name.endswith(".lock")] == []  # an empty lock file is no data


@pytest.mark.parametrize("key", ["session TEXT PRIMARY KEY", "session TEXT"])
def test_keys_come_in_the_order_read_gives_whether_or_not_an_index_holds_them(tmp_path: Path, key: str) -> None:
    """``keys()`` reads the names from the session index when there is one, sorted by rowid
    there: the order ``read()`` gives, not the index's (names out of alphabetical order, a
    rowid left free by a delete and taken again); without an index, the table in rowid order."""
    db = tmp_path / "sessions.db"
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TABLE sessions ({key}, repo_name TEXT)")
    names = ["task-md#10", "b", "task-md#2", "A", "a", "task-md#1"]
    conn.executemany("INSERT INTO sessions VALUES (?, 'r')", [(n,) for n in names])
    conn.execute("DELETE FROM sessions WHERE session = 'b'")
    conn.execute("INSERT INTO sessions (rowid, session, repo_name) VALUES (2, 'zz', 'r')")
    conn.commit()
    plan = conn.execute("EXPLAIN QUERY PLAN SELECT session FROM sessions ORDER BY +rowid").fetchall()
    conn.close()
    assert any("COVERING INDEX" in str(step[-1]) for step in plan) == ("PRIMARY KEY" in key)
    store = SqliteStore(db)
    expected = ["task-md#10", "zz", "task-md#2", "A", "a", "task-md#1"]
    assert list(store.keys()) == expected == [r.session for r in store.read()]


def _named(name: str, repo: str = "r") -> SessionRecord:
    return record_from_dict({"session": name, "repoName": repo, "repoUrl": REPO, "createdAt": "2025-01-01T00:00:00Z"})


@pytest.mark.parametrize(
    "trigger",
    [
        "",
        "CREATE TABLE log (name TEXT); "
        "CREATE TRIGGER logged AFTER INSERT ON sessions BEGIN INSERT INTO log VALUES (new.session); END;",
        # A trigger that clears the way: the name was present before the batch all the same.
        "CREATE TRIGGER clears BEFORE INSERT ON sessions BEGIN DELETE FROM sessions WHERE session = new.session; END;",
    ],
)
def test_skip_writes_what_is_absent_and_names_what_was_present_before_each_batch(tmp_path: Path, trigger: str) -> None:
    """``skip`` (and ``fail``) write a batch with no lookup of its names when all of them are
    new; a batch with a name present before it (or repeated within it, or a trigger that
    changes more than the rows) is undone and written name by name: the conflicts are exactly
    the names present before their batch and the later copies of a repeated name (its first
    copy is kept), and a trigger fires once per row written."""
    db = tmp_path / "sessions.db"
    store = SqliteStore(db)
    with store.bulk_writer() as writer:
        writer.write([_named("old-1", "before"), _named("old-2", "before")])
    if trigger:
        conn = sqlite3.connect(db)
        conn.executescript(trigger)
        conn.close()
    batches = [
        [_named("new-1"), _named("new-2")],  # all new
        [_named("new-3"), _named("old-2"), _named("new-4"), _named("old-1")],  # two present before
        [_named("new-5"), _named("new-5", "second copy"), _named("new-6")],  # repeated within
        [_named("new-2"), _named("new-7")],  # present since an earlier batch
    ]
    with store.bulk_writer(on_conflict="skip") as writer:
        for batch in batches:
            writer.write(batch)
    assert writer.conflicts == ["old-2", "old-1", "new-5", "new-2"]
    repos = {r.session: r.repo_name for r in store.read()}
    if "clears" in trigger:  # each name written once: the trigger replaced what was there
        assert repos == {**{f"new-{i}": "r" for i in range(1, 8)}, "old-1": "r", "old-2": "r"}
    else:
        assert repos == {**{f"new-{i}": "r" for i in range(1, 8)}, "old-1": "before", "old-2": "before"}
    if "logged" in trigger:
        conn = sqlite3.connect(db)
        logged = [name for (name,) in conn.execute("SELECT name FROM log ORDER BY rowid")]
        conn.close()
        assert logged == ["new-1", "new-2", "new-3", "new-4", "new-5", "new-6", "new-7"]


def test_cleaning_up_a_failed_build_never_hides_why_it_failed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new database is built aside; when that fails on a read-only filesystem, removing the
    temp files fails too (EROFS): the error said must be the build's, not the cleanup's."""
    import contextlib
    import errno

    from minsky.errors import StoreError
    from minsky_backend_sqlite.store import SqliteStore

    store = SqliteStore(tmp_path / "new.db")

    @contextlib.contextmanager
    def refused(*args: object, **kwargs: object) -> Any:
        raise StoreError("cannot open the temp database: Read-only file system")
        yield

    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if ".minsky-tmp-" in self.name:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(SqliteStore, "_writer", refused)
    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(StoreError, match="Read-only file system"), store.bulk_writer("fail"):
        pass
