"""A ``sessions`` table with a column of type ``name`` (PostgreSQL's identifier type), as a team
may have made by hand. Its text input cuts a value at 63 bytes without a word, where varchar(n)
refuses one: a long branch came back cut, and `sessiondb check` said ok. Now a value that does
not fit is refused, naming session and column, and nothing is written. A ``char(n)`` key, which
pads every name, is refused outright."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from minsky.codec import record_from_dict
from minsky.errors import StoreError
from minsky.testing.records import generated_records
from minsky_backend_json.store import JsonStore
from minsky_backend_postgres.store import PostgresStore

COLUMNS = (
    "repo_name TEXT NOT NULL, repo_url TEXT NOT NULL, created_at TIMESTAMPTZ, task_id TEXT, {branch}, "
    "pr_branch TEXT, pr_approved TEXT, pr_state TEXT, backend_type TEXT, github TEXT, remote TEXT, pull_request TEXT"
)
LONG = "é" * 40  # 40 characters, 80 bytes: more than a name keeps


def _table(url: str, *, key: str = "TEXT", branch: str = "NAME") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        columns = COLUMNS.format(branch=f"branch {branch}")
        conn.execute(f"CREATE TABLE sessions (session {key} PRIMARY KEY, {columns})")


def _record(name: str, branch: str) -> Any:
    return record_from_dict(
        {"session": name, "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00Z", "branch": branch}
    )


@pytest.mark.parametrize("where", ["this process", "a forked child"])
def test_a_migration_refuses_a_value_the_column_would_cut(
    postgres_url: str, tmp_path: Path, minsky: Any, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _table(postgres_url)
    source = JsonStore(tmp_path / "s.json")
    with source.bulk_writer() as writer:
        writer.write([*generated_records(3), _record("long", LONG)])
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source.path))
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "off" if where == "this process" else "0")
    for rule in ("fail", "skip"):
        moved = minsky(
            "sessiondb", "migrate", "to", "postgres", "--connection-string", postgres_url, "--on-conflict", rule
        )
        assert moved.exit_code == 4, moved.output
        assert "session 'long', column 'branch'" in moved.stderr and "63 bytes" in moved.stderr
        assert "Traceback" not in moved.output
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)


def test_a_value_that_fits_is_kept_and_a_long_one_refused_on_every_write(postgres_url: str) -> None:
    _table(postgres_url)
    store = PostgresStore(postgres_url)
    fits = "é" * 31 + "a"  # 63 bytes: what the column keeps
    with store.bulk_writer() as writer:
        writer.write([_record("a", fits)])
    got = store.get("a")
    assert got is not None and got.branch == fits
    with pytest.raises(StoreError, match=r"column 'branch'.*type name"):
        store.insert(_record("b", LONG))
    with pytest.raises(StoreError, match=r"column 'branch'.*type name"):
        store.update("a", lambda r: _record("a", LONG))
    assert [(r.session, r.branch) for r in store.read()] == [("a", fits)]


def test_a_name_typed_key_refuses_a_long_session_name(postgres_url: str) -> None:
    """Two long names with the same first 63 bytes would have become one key."""
    _table(postgres_url, key="NAME", branch="TEXT")
    store = PostgresStore(postgres_url)
    prefix = "n" * 63
    with pytest.raises(StoreError, match="column 'session'"), store.bulk_writer(on_conflict="skip") as writer:
        writer.write([_record(prefix + "1", "b"), _record(prefix + "2", "b")])
    assert list(store.read()) == []


def test_a_char_key_is_refused_before_anything_is_read_or_written(
    postgres_url: str, tmp_path: Path, minsky: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adversary helper-35 (F7): with session of type char(40), a migration reported every
    session skipped as present while it inserted them all, and a read named the padded name."""
    _table(postgres_url, key="CHAR(40)", branch="TEXT")
    source = JsonStore(tmp_path / "s.json")
    with source.bulk_writer() as writer:
        writer.write(generated_records(3))
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source.path))
    moved = minsky("sessiondb", "migrate", "to", "postgres", "--connection-string", postgres_url)
    assert moved.exit_code == 4, moved.output
    assert "column 'session' is of type char(n)" in moved.stderr and "Traceback" not in moved.output
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone() == (0,)
    with pytest.raises(StoreError, match="char"):
        list(PostgresStore(postgres_url).read())


@pytest.mark.postgres
def test_a_check_constraint_refusal_names_the_constraint_not_a_column(postgres_url: str) -> None:
    # A table CHECK (someone else's rule) names no column: the refusal says "constraint", where
    # it said "column 'no_long_branch'", a column the table does not have.
    store = PostgresStore(postgres_url)
    try:
        store.insert(_record("seed", "b"))  # creates minsky's table
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE sessions ADD CONSTRAINT no_long_branch CHECK (length(branch) < 5)")
        with pytest.raises(StoreError) as info:
            store.insert(_record("long", "a-long-branch"))
        message = str(info.value).split(" (")[0]
        assert "session 'long', constraint 'no_long_branch': the server refused the row" in message, message
        assert "column" not in message
        assert [r.session for r in store.read()] == ["seed"]
    finally:
        store.close()
