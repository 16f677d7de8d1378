"""A source whose key keeps each name once, into an empty target: no pass over the names.

Before anything is written a migration reads every name of the source, for names it repeats
and names the target holds. A SQLite table with a unique index on the names, read in one
snapshot, repeats none, and an empty target keyed by names as spelled holds none: that pass
(1.0-1.2 s for a million names, the second core idle) is skipped. Everywhere else it runs as
before: a target with sessions, a case-insensitive target, a table with no unique key.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minsky.migrate import Endpoint, migrate
from minsky.testing.records import generated_records
from minsky_backend_json.store import JsonStore
from minsky_backend_sqlite.store import SqliteStore

RECORDS = generated_records(300)


class Counted(SqliteStore):
    """A SQLite store that counts the passes over its names."""

    passes: list[int]

    def keys(self) -> Iterator[str]:
        self.passes.append(1)
        return super().keys()


def _source(path: Path) -> Counted:
    store = SqliteStore(path)
    with store.bulk_writer() as writer:
        writer.write(RECORDS)
    counted = Counted(path)
    counted.passes = []
    return counted


def test_an_empty_target_needs_no_pass_over_a_unique_key_and_gets_every_record(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.db")
    assert source.names_unique()
    report = migrate(Endpoint("sqlite", source), Endpoint("json", JsonStore(tmp_path / "t.json")), verify=True)
    assert report.ok and report.written == len(RECORDS), report.to_json()
    assert source.passes == []
    written = json.loads((tmp_path / "t.json").read_text("utf-8"))["sessions"]
    assert [s["session"] for s in written] == [r.session for r in RECORDS]


def test_a_target_holding_sessions_still_has_its_conflicts_found_first(tmp_path: Path) -> None:
    source = _source(tmp_path / "s.db")
    target = JsonStore(tmp_path / "t.json")
    with target.bulk_writer() as writer:
        writer.write(RECORDS[5:7])
    with pytest.raises(Exception, match="2 session"):
        migrate(Endpoint("sqlite", source), Endpoint("json", target))
    assert source.passes


class Folding(JsonStore):
    """A target whose key ignores case: two names of the source may be one there."""

    def normalize_key(self, name: str) -> str:
        return name.casefold()


def test_a_case_insensitive_target_still_has_names_that_fold_together_found(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    with store.bulk_writer() as writer:
        writer.write(generated_records(3))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE sessions SET session = 'GEN-000000', record = NULL WHERE rowid = 2")
    conn.close()
    source = Counted(path)
    source.passes = []
    with pytest.raises(Exception, match="more than once"):
        migrate(Endpoint("sqlite", source), Endpoint("json", Folding(tmp_path / "t.json")))
    assert source.passes and not (tmp_path / "t.json").exists()


@pytest.mark.parametrize(
    ("ddl", "unique"),
    [
        ("CREATE TABLE sessions (session TEXT PRIMARY KEY, repo_name TEXT)", True),
        (
            "CREATE TABLE sessions (session TEXT NOT NULL, repo_name TEXT); CREATE UNIQUE INDEX u ON sessions(session)",
            True,
        ),
        ("CREATE TABLE sessions (session TEXT PRIMARY KEY COLLATE NOCASE, repo_name TEXT)", True),
        ("CREATE TABLE sessions (session TEXT, repo_name TEXT)", False),
        ("CREATE TABLE sessions (session TEXT, repo_name TEXT); CREATE INDEX i ON sessions(session)", False),
        (
            "CREATE TABLE sessions (session TEXT, repo_name TEXT); "
            "CREATE UNIQUE INDEX u ON sessions(session, repo_name)",
            False,
        ),
        (
            "CREATE TABLE sessions (session TEXT, repo_name TEXT); "
            "CREATE UNIQUE INDEX u ON sessions(session) WHERE repo_name IS NOT NULL",
            False,
        ),
    ],
)
def test_only_a_unique_index_on_the_names_alone_vouches_for_them(tmp_path: Path, ddl: str, unique: bool) -> None:
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.executescript(ddl)
    conn.close()
    assert SqliteStore(path).names_unique() is unique


def test_a_table_with_no_unique_key_still_has_a_repeated_name_stopped(tmp_path: Path, minsky: Any) -> None:
    path = tmp_path / "s.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE sessions (session TEXT, repo_name TEXT, repo_url TEXT, created_at TEXT);"
        "INSERT INTO sessions VALUES ('a', 'r', 'u', '2025-01-01T00:00:00.000Z');"
        "INSERT INTO sessions VALUES ('a', 'r2', 'u', '2025-01-01T00:00:00.000Z');"
    )
    conn.close()
    args = ["sessiondb", "migrate", "to", "json", "--from", "sqlite", "--sqlite-path", str(path)]
    result = minsky(*args, "--json-path", str(tmp_path / "t.json"))
    assert result.exit_code != 0 and "more than once" in result.output, result.output
    assert not (tmp_path / "t.json").exists()
