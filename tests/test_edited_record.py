"""A ``record`` edited by hand (SQLite's ``json_set``: still canonical text) while its cells and
``record_digest`` stay as minsky wrote them: the reader lets the record win, and a copy's
cells are made from that record, not taken from the source row. The digest covers the cells
alone, so it cannot tell the row's cells still match its record (helper-37 against a writer
that took the source's cells: the target's task_id stayed stale, ``session list --task`` missed
the session and ``sessiondb check`` failed on the target)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import ORIGINAL, Invoke

EDITED = "task#002"
ORIGINAL_JSON = ORIGINAL / "json" / "sessions.json"  # the original's store, its records in their own key order


def _edited_sqlite(minsky: Invoke, tmp_path: Path) -> Path:
    db = tmp_path / "source.db"
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--from", "json", "--json-path", str(ORIGINAL_JSON),
                    "--sqlite-path", str(db))  # fmt: skip
    assert result.exit_code == 0, result.output
    with sqlite3.connect(db) as conn:
        changed = conn.execute(
            "UPDATE sessions SET record = json_set(record, '$.taskId', '#777', '$.repoName', 'edited/repo') "
            "WHERE session = ?",
            (EDITED,),
        ).rowcount
    assert changed == 1
    return db


@pytest.mark.parametrize("target", ["sqlite", "postgres"])
def test_a_hand_edited_record_is_copied_with_cells_made_from_it(
    minsky: Invoke, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, request: pytest.FixtureRequest
) -> None:
    source = _edited_sqlite(minsky, tmp_path)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")  # the source, as the current store
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
    if target == "sqlite":
        to = ["--sqlite-path", str(tmp_path / "target.db")]
    else:
        url = request.getfixturevalue("postgres_url")
        to = ["--connection-string", url]
        monkeypatch.setenv("MINSKY_POSTGRES_URL", url)
    result = minsky("sessiondb", "migrate", "to", target, "--from", "current", *to)
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", target)
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(tmp_path / "target.db"))
    check = minsky("sessiondb", "check")
    assert check.exit_code == 0, check.output  # the target's cells hold its records' values
    found = minsky("session", "list", "--task", "#777", "--json")
    assert found.exit_code == 0, found.output
    assert [s["session"] for s in json.loads(found.stdout)["sessions"]] == [EDITED]
    assert json.loads(minsky("session", "get", EDITED, "--json").stdout)["repoName"] == "edited/repo"
