"""A byte that is not UTF-8 in a SQLite text cell, as another program may write one.

SQLite keeps whatever bytes it is given as TEXT, and Python's driver refused such a cell in the
middle of a fetch: one Latin-1 byte made `session list`, every migration and `check --repair`
(the remedy the error names) fail on the whole store, and `session end --all` an internal
error. Now the byte is kept as a lone surrogate, as the JSON reader and the PostgreSQL backend
keep one: that record is refused by name, the others are read, and the repair moves it aside.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from minsky.testing.records import generated_records
from minsky_backend_sqlite.rows import fetched, lenient_text
from minsky_backend_sqlite.store import SqliteStore

ROWS = 1300  # past a first fetch of 1,000 rows, and past several split-read batches of 250
BAD_CELL, BAD_NAME = 2, 1200  # rowids: a stray byte in a repo name, and in a session name


def _damaged(path: Path) -> Path:
    store = SqliteStore(path)
    with store.bulk_writer() as writer:
        writer.write(generated_records(ROWS))
    conn = sqlite3.connect(path)
    with conn:  # as another program would write them: the bytes themselves
        conn.execute("UPDATE sessions SET repo_name = CAST(X'636166E9' AS TEXT) WHERE rowid = ?", (BAD_CELL,))
        conn.execute(
            "UPDATE sessions SET session = CAST(X'6E616D65E9' AS TEXT), record = NULL WHERE rowid = ?", (BAD_NAME,)
        )
    conn.close()
    return path


BAD = {f"gen-{BAD_CELL - 1:06d}", "name\udce9"}
GOOD = [f"gen-{i:06d}" for i in range(ROWS) if i not in (BAD_CELL - 1, BAD_NAME - 1)]


@pytest.fixture
def damaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> Path:
    path = _damaged(tmp_path / "s.db")
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))
    return path


def test_the_other_sessions_are_listed_and_the_damaged_ones_named(damaged: Path, minsky: Any) -> None:
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["session"] for r in json.loads(listed.stdout)["sessions"]] == GOOD
    assert "skipped session 'gen-000001'" in listed.stderr and "skipped session 'name\\udce9'" in listed.stderr
    got = minsky("session", "get", "gen-000001")
    assert got.exit_code == 11 and "U+DCE9" in got.stderr and len(got.stderr.splitlines()) == 1, got.output


@pytest.mark.parametrize("where", ["this process", "a forked reader and decoders"])
def test_a_migration_writes_the_others_and_rejects_the_damaged_ones_by_name(
    damaged: Path, minsky: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "off" if where == "this process" else "0")
    monkeypatch.setenv("MINSKY_READ_DECODERS", "2")
    before = damaged.read_bytes()
    target = tmp_path / "t.json"
    moved = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(target), "--json")
    assert moved.exit_code == 11, moved.output
    report = json.loads(moved.stdout)
    assert {r["session"] for r in report["rejected"]} == BAD and report["counts"]["written"] == len(GOOD)
    assert [s["session"] for s in json.loads(target.read_text("utf-8"))["sessions"]] == GOOD
    assert damaged.read_bytes() == before


@pytest.mark.parametrize("column", ["agrees", "disagrees"])
def test_a_stray_byte_in_the_record_column_is_rejected_and_nothing_else_is_said(
    tmp_path: Path, minsky: Any, monkeypatch: pytest.MonkeyPatch, isolated_home: Path, column: str
) -> None:
    """The byte inside the record's own JSON: the record is rejected by name (exit 11) and that
    is all. It was also counted as changed in the source while the migration ran (the fast
    re-read gave back other bytes than it read), and where its repo_name column still held the
    old name, failed --verify (the cells of a record that was never written)."""
    path = tmp_path / "s.db"
    with SqliteStore(path).bulk_writer() as writer:
        writer.write(generated_records(5))
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            f"UPDATE sessions SET {'repo_name' if column == 'agrees' else 'branch'} = CAST(X'636166E9' AS TEXT),"
            " record_digest = NULL,"
            " record = CAST(replace(CAST(record AS BLOB), CAST('acme/widgets' AS BLOB), X'636166E9') AS TEXT)"
            " WHERE session = 'gen-000002'"
        )
    conn.close()
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))
    moved = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(tmp_path / "t.json"), "--verify", "--json")
    assert moved.exit_code == 11, moved.output
    report = json.loads(moved.stdout)
    assert [r["session"] for r in report["rejected"]] == ["gen-000002"] and report["counts"]["written"] == 4
    assert report["verificationResult"]["ok"] is True, report["verificationResult"]
    assert report["changedInSource"] == 0


def test_end_all_ends_the_others_and_repair_moves_the_damaged_ones_aside(damaged: Path, minsky: Any) -> None:
    ended = minsky("session", "end", "--all")
    assert ended.exit_code == 0, ended.output
    assert "not ended: session 'gen-000001'" in ended.stderr and "not ended: session 'name\\udce9'" in ended.stderr
    assert minsky("sessiondb", "check").exit_code == 4
    repaired = minsky("sessiondb", "check", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    entries = json.loads(Path(json.loads(repaired.stdout)["quarantined"]["file"]).read_text())["entries"]
    assert {e["session"] for e in entries} == BAD
    assert [e["repo_name"] for e in entries if e["session"] == "gen-000001"] == ["caf\udce9"]
    assert minsky("sessiondb", "check").exit_code == 0
    listed = json.loads(minsky("session", "list", "--json").stdout)["sessions"]
    assert [r["session"] for r in listed] == GOOD and all("endedAt" in r for r in listed)


def test_a_fetch_that_falls_back_gives_every_row_once_in_its_place(tmp_path: Path) -> None:
    path = _damaged(tmp_path / "s.db")
    conn = sqlite3.connect(path)
    conn.text_factory = lenient_text
    try:
        conn.execute("BEGIN")
        rows = [row for batch in fetched(conn, "SELECT rowid, session FROM sessions ORDER BY rowid") for row in batch]
        assert [rowid for rowid, _ in rows] == list(range(1, ROWS + 1))
        assert rows[BAD_NAME - 1][1] == "name\udce9" and rows[BAD_NAME][1] == f"gen-{BAD_NAME:06d}"
        conn.execute("COMMIT")
        # Outside a transaction a second run might not hold the rows given in the same places.
        with pytest.raises(sqlite3.OperationalError, match="Could not decode"):
            list(fetched(conn, "SELECT rowid, session FROM sessions ORDER BY rowid"))
    finally:
        conn.close()
