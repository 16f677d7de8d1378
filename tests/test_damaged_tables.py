"""Foreign and damaged ``sessions`` tables (SQLite and PostgreSQL): every failure is one clean
line naming the table, the row's key and the column, exit 4 with a hint; nothing is
written over another session, and a name the key column cannot tell apart is refused."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

REPO = "https://github.com/acme/widgets.git"
COPY_BETA_INTO_ALPHA = (
    "UPDATE sessions SET record = (SELECT record FROM sessions WHERE session = 'beta') WHERE session = 'alpha'"
)


def sqlite_env(monkeypatch: pytest.MonkeyPatch, db: Path) -> None:
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))


def sql(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def clean_error(result: Any, *words: str) -> None:
    assert result.exit_code == 4, result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert result.stderr.startswith("minsky: error: ")
    for word in words:  # `check` lists its problems on stdout, then fails on stderr
        assert word in result.output, (word, result.output)
    assert "hint" in result.stderr.lower()


def test_a_table_without_a_session_column(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "foreign.db"
    sql(db, "CREATE TABLE sessions (name TEXT PRIMARY KEY, repoName TEXT)", "INSERT INTO sessions VALUES ('a', 'r')")
    before = db.read_bytes()
    sqlite_env(monkeypatch, db)
    for args in (["session", "list"], ["session", "start", "x", "--repo", REPO], ["sessiondb", "check"]):
        clean_error(minsky(*args), "'sessions'", "'session'", str(db))
    assert db.read_bytes() == before


@pytest.fixture
def two_sessions(minsky, tmp_path: Path, monkeypatch) -> Path:  # type: ignore[no-untyped-def]
    db = tmp_path / "s.db"
    sqlite_env(monkeypatch, db)
    for name in ("alpha", "beta"):
        assert minsky("session", "start", name, "--repo", REPO).exit_code == 0
    return db


def test_a_record_cell_that_is_not_json(minsky, two_sessions: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sql(two_sessions, "UPDATE sessions SET record = '{broken' WHERE session = 'alpha'")
    for args in (
        ["session", "list"],
        ["session", "get", "alpha"],
        ["sessiondb", "migrate", "to", "json", "--json-path", str(tmp_path / "o.json")],
        ["sessiondb", "check"],
    ):
        clean_error(minsky(*args), "'sessions'", "'alpha'", "'record'")


def test_a_record_naming_another_session_is_found_and_never_written_over_it(minsky, two_sessions: Path) -> None:  # type: ignore[no-untyped-def]
    sql(two_sessions, COPY_BETA_INTO_ALPHA)
    conn = sqlite3.connect(two_sessions)
    beta = conn.execute("SELECT * FROM sessions WHERE session = 'beta'").fetchone()
    conn.close()
    clean_error(minsky("sessiondb", "check"), "'alpha'", "'record'", "'beta'")
    clean_error(minsky("session", "end", "alpha"), "'alpha'", "'record'")
    conn = sqlite3.connect(two_sessions)
    assert conn.execute("SELECT * FROM sessions WHERE session = 'beta'").fetchone() == beta
    conn.close()


def test_a_triggers_error_is_not_a_conflict(minsky, two_sessions: Path) -> None:  # type: ignore[no-untyped-def]
    sql(
        two_sessions,
        "CREATE TRIGGER no_x BEFORE INSERT ON sessions WHEN NEW.session LIKE 'x%' "
        "BEGIN SELECT RAISE(ABORT, 'no x sessions here'); END",
    )
    result = minsky("session", "start", "x1", "--repo", REPO)
    clean_error(result, "'x1'", "no x sessions here")
    assert "already exists" not in result.stderr


def test_a_zero_byte_target_is_an_empty_database(minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "empty.db"
    target.touch()
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"sessions": [{"session": "a", "repoName": "r"}]}), "utf-8")
    flags = ["--sqlite-path", str(target), "--from", "json", "--json-path", str(seed), "--verify"]
    for _ in range(2):  # and again: a rerun finds the records it wrote
        report = minsky_json("sessiondb", "migrate", "to", "sqlite", *flags, "--on-conflict", "overwrite")
        assert report["verificationResult"]["ok"] is True


def test_names_one_nocase_key_cannot_tell_apart_are_refused_by_name(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "nocase.db"
    sql(
        db,
        "CREATE TABLE sessions (session TEXT PRIMARY KEY COLLATE NOCASE, repoName TEXT NOT NULL, "
        "createdAt TEXT NOT NULL)",
        "INSERT INTO sessions VALUES ('Alpha', 'kept', '2025-01-01T00:00:00.000Z')",
    )
    seed = tmp_path / "seed.json"
    for names in (["alpha"], ["Beta", "beta"]):
        seed.write_text(json.dumps({"sessions": [{"session": n, "repoName": n} for n in names]}), "utf-8")
        source = ["--from", "json", "--json-path", str(seed)]
        result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), *source)
        assert result.exit_code != 0 and "Traceback" not in result.output
        assert all(repr(n) in result.stderr for n in (names if len(names) == 2 else ["alpha", "Alpha"]))
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT session, repoName FROM sessions").fetchall() == [("Alpha", "kept")]
    conn.close()


# -- PostgreSQL ---------------------------------------------------------------------


@pytest.fixture
def pg(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", postgres_url)
    return postgres_url


def pg_sql(url: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def test_postgres_table_without_a_session_column(minsky, pg: str) -> None:  # type: ignore[no-untyped-def]
    pg_sql(pg, "CREATE TABLE sessions (name text PRIMARY KEY)", "INSERT INTO sessions VALUES ('a')")
    for args in (["session", "list"], ["session", "start", "x", "--repo", REPO]):
        clean_error(minsky(*args), "'sessions'", "'session'")


def test_postgres_record_column_turned_jsonb(minsky, pg: str) -> None:  # type: ignore[no-untyped-def]
    assert minsky("session", "start", "alpha", "--repo", REPO).exit_code == 0
    pg_sql(pg, "ALTER TABLE sessions ALTER COLUMN record TYPE jsonb USING record::jsonb")
    for args in (["session", "list"], ["session", "start", "x", "--repo", REPO], ["sessiondb", "check"]):
        clean_error(minsky(*args), "'sessions'", "'record'")


def test_postgres_record_naming_another_session(minsky, pg: str) -> None:  # type: ignore[no-untyped-def]
    for name in ("alpha", "beta"):
        assert minsky("session", "start", name, "--repo", REPO).exit_code == 0
    pg_sql(pg, COPY_BETA_INTO_ALPHA)
    clean_error(minsky("sessiondb", "check"), "'alpha'", "'record'", "'beta'")
    clean_error(minsky("session", "end", "alpha"), "'alpha'", "'record'")
    assert "endedAt" not in json.loads(minsky("session", "get", "beta", "--json").stdout)


def test_postgres_trigger_error_is_not_a_conflict(minsky, pg: str) -> None:  # type: ignore[no-untyped-def]
    assert minsky("session", "start", "alpha", "--repo", REPO).exit_code == 0
    pg_sql(
        pg,
        "CREATE FUNCTION no_x() RETURNS trigger AS $$ BEGIN IF NEW.session LIKE 'x%' THEN "
        "RAISE EXCEPTION 'no x sessions here'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER no_x BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION no_x()",
    )
    result = minsky("session", "start", "x1", "--repo", REPO)
    clean_error(result, "'sessions'", "'x1'", "no x sessions here")
    assert "already exists" not in result.stderr


def test_postgres_a_10000_character_name_names_the_row(minsky, pg: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed = tmp_path / "seed.json"
    # Hex digits do not compress: the key's index entry really is 10,000 bytes (past btree's limit).
    name = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(157))[:10_000]
    seed.write_text(json.dumps({"sessions": [{"session": "ok"}, {"session": name}]}), "utf-8")
    result = minsky("sessiondb", "restore", "--backup", str(seed), "--to", "postgres")
    clean_error(result, "'sessions'", "'session'", "10000 characters")
    assert "connection" not in result.stderr


def test_postgres_foreign_key_names_the_column(minsky, pg: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg_sql(
        pg,
        "DROP TABLE IF EXISTS projects CASCADE",
        "CREATE TABLE projects (id uuid PRIMARY KEY)",
        "CREATE TABLE sessions (session varchar(255) PRIMARY KEY, repo_name varchar(255) NOT NULL, "
        "repo_url varchar(1000) NOT NULL, created_at timestamptz NOT NULL, project_id uuid REFERENCES projects(id))",
    )
    seed = tmp_path / "seed.json"
    record = {"session": "p", "repoName": "r", "projectId": "4b0e8c4e-0f43-4b0e-9c1a-1b2c3d4e5f60"}
    seed.write_text(json.dumps({"sessions": [record]}), "utf-8")
    result = minsky("sessiondb", "restore", "--backup", str(seed), "--to", "postgres")
    clean_error(result, "'sessions'", "project_id")
    pg_sql(pg, "DROP TABLE sessions", "DROP TABLE projects")
