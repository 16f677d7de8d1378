"""The moved mark through the CLI: a writer of the old store refuses (exit 13), `migrate status`
shows the mark, moving back clears it; the original's tables are not touched by it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import Invoke


@pytest.fixture
def old_json(state_dir: Path, minsky: Invoke) -> Path:
    for name in ("a", "b"):
        assert minsky("session", "start", name, "--repo", "https://h/a/b").exit_code == 0
    return state_dir / "session-db.json"


def test_move_marks_the_old_store_and_moving_back_clears_it(
    minsky: Invoke, old_json: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "new.db"
    moved = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--set-default", "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["catchUp"]["markedMoved"] is True
    before = old_json.read_bytes()
    # A writer still configured for the old store (here: through the environment).
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(old_json))
    for command in (
        ["session", "start", "c", "--repo", "https://h/a/b"],
        ["session", "end", "a"],
        ["session", "delete", "b"],
    ):
        refused = minsky(*command)
        assert refused.exit_code == 13
        assert (
            f"migrated to sqlite ({db})" in refused.stderr
            and "minsky config set sessiondb.backend sqlite" in refused.stderr
        )
        assert len(refused.stderr.strip().splitlines()) == 1
    assert old_json.read_bytes() == before, "a refused writer changed the old store"
    status = json.loads(minsky("sessiondb", "migrate", "status", "--json").stdout)
    assert status["movedTo"]["backend"] == "sqlite" and status["movedTo"]["location"] == str(db)
    monkeypatch.delenv("MINSKY_SESSIONDB_BACKEND")
    monkeypatch.delenv("MINSKY_SESSIONDB_DB_PATH")
    assert minsky("session", "start", "c", "--repo", "https://h/a/b").exit_code == 0  # into the new store
    back = minsky(
        "sessiondb",
        "migrate",
        "to",
        "json",
        "--json-path",
        str(old_json),
        "--on-conflict",
        "overwrite",
        "--set-default",
    )
    assert back.exit_code == 0, back.output
    assert not Path(f"{old_json}.moved").exists()
    names = [s["session"] for s in json.loads(minsky("session", "list", "--json").stdout)["sessions"]]
    assert sorted(names) == ["a", "b", "c"]
    assert minsky("session", "start", "d", "--repo", "https://h/a/b").exit_code == 0
    with sqlite3.connect(db) as conn:  # the SQLite store it left is marked, beside its sessions table
        assert conn.execute("SELECT key FROM minsky_metadata").fetchall() == [("moved",)]
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 3


def test_a_json_store_in_any_layout_is_compared_by_content(minsky: Invoke, state_dir: Path, tmp_path: Path) -> None:
    """One record per line after the streamed layout's first line, but not in canonical form and
    with ``baseDir`` on the closing line: nothing changed, and none is counted as changed."""
    state_dir.mkdir(parents=True)
    items = [
        {"session": f"s{i}", "repoName": "r", "repoUrl": "u", "createdAt": "2025-01-01T00:00:00Z"} for i in range(3)
    ]
    lines = ",\n".join(json.dumps(item, indent=None, separators=(", ", ": ")) for item in items)
    (state_dir / "session-db.json").write_text('{"sessions": [\n' + lines + '\n], "baseDir": "/x"}\n', "utf-8")
    moved = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "s.db"), "--json")
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["changedInSource"] == 0
