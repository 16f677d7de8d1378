"""The SQLite stores the original Minsky left on disk, every layout of the corpus: read to
exactly the expected records through every command, left row-identical by reads, and
written without losing a column, a row or the original's ability to list them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from conftest import ORIGINAL
from minsky.codec import canonical, record_from_dict, record_to_dict
from minsky_backend_sqlite import SPEC

LAYOUTS = sorted(p.stem for p in (ORIGINAL / "sqlite").glob("*.sql")) or ["(corpus missing)"]

# Records no corpus row has: every awkward value a user's store may hold.
AWKWARD: list[dict[str, Any]] = [
    {
        "session": "ünï-✓-🚀",
        "repoName": "",
        "repoUrl": "https://example.com/ü.git",
        "createdAt": "2024-11-02T17:45:12.5+02:00",
        "taskId": "md#9",
        "prApproved": False,
        "prBranch": "",
        "prState": {"exists": False, "commitHash": None, "deep": {"a": [1, {"b": None}]}},
        "commitCount": 2**80,
        "lastActivityAt": "not a time",
        "futureKey": {"nested": [True, False, None, "", 1.5, -0.25]},
    },
    {"session": "minimal", "createdAt": "0001-01-01T00:00:00+14:00"},
    {"session": "nulls", "repoName": None, "taskId": None, "branch": None, "createdAt": "9999-12-31T23:00:00-05:00"},
    {"session": "numbers-as-text", "repoName": "r", "createdAt": "t", "commitCount": "3", "status": 7, "agentId": 0},
]


def expected(layout: str) -> list[str]:
    return sorted((ORIGINAL / "expected" / f"{layout}.jsonl").read_text("utf-8").splitlines())


def build(path: Path, layout: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript((ORIGINAL / "sqlite" / f"{layout}.sql").read_text("utf-8"))
    conn.close()
    return path


def rows(db: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db)
    try:
        columns = [r[1] for r in conn.execute("PRAGMA table_info(sessions)")]
        return [dict(zip(columns, row, strict=True)) for row in conn.execute("SELECT * FROM sessions ORDER BY rowid")]  # type: ignore[misc]
    finally:
        conn.close()


def lines(records: Any) -> list[str]:
    return sorted(canonical(record_from_dict(r) if isinstance(r, dict) else r).decode() for r in records)


def reads_exactly(minsky_json: Any, tmp_path: Path, want: list[str]) -> None:
    """``want`` is what every reading command yields: list, get, migrate --verify, check, export."""
    assert lines(minsky_json("session", "list")["sessions"]) == want
    for line in want:
        assert lines([minsky_json("session", "get", json.loads(line)["session"])]) == [line]
    out = tmp_path / "out.json"
    report = minsky_json("sessiondb", "migrate", "to", "json", "--json-path", str(out), "--verify")
    assert report["verificationResult"]["ok"] is True
    assert lines(json.loads(out.read_text("utf-8"))["sessions"]) == want
    assert minsky_json("sessiondb", "check")["ok"] is True
    exported = Path(minsky_json("sessiondb", "export", "--output", str(tmp_path / "exports"))["backup"])
    assert lines(json.loads(exported.read_text("utf-8"))["sessions"]) == want


def use_db(tmp_path: Path, layout: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if not (ORIGINAL / "sqlite").is_dir():
        pytest.fail(f"the original's corpus is missing at {ORIGINAL}: set MINSKY_SHARED_DIR")
    db = build(tmp_path / "sessions.db", layout)
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    return db


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_command_reads_exactly_the_expected_records(
    minsky, minsky_json, tmp_path: Path, layout: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    db = use_db(tmp_path, layout, monkeypatch)
    want = expected(layout)
    before = db.read_bytes()
    reads_exactly(minsky_json, tmp_path, want)
    assert db.read_bytes() == before, "a read changed the original's file"
    assert [p.name for p in tmp_path.glob("sessions.db*")] == ["sessions.db"], "a read left a file behind"


def original_view(db: Path, tmp_path: Path) -> dict[str, dict[str, Any]]:
    """The records as a reader of the original's columns alone sees them (minsky's columns cut off)."""
    view = tmp_path / "view.db"
    view.write_bytes(db.read_bytes())
    conn = sqlite3.connect(view)
    for column in ("record", "record_digest"):
        conn.execute(f"ALTER TABLE sessions DROP COLUMN {column}")
    conn.commit()
    conn.close()
    return {r.session: record_to_dict(r) for r in SPEC.open({"path": view}).read()}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_writing_keeps_every_column_and_row_and_the_original_lists_new_rows(
    minsky, minsky_json, tmp_path: Path, layout: str, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    db = use_db(tmp_path, layout, monkeypatch)
    old = rows(db)
    old_columns = list(old[0])
    seed = tmp_path / "awkward.json"
    seed.write_text(json.dumps({"sessions": AWKWARD}), "utf-8")
    source = ["--from", "json", "--json-path", str(seed)]
    report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), *source, "--verify")
    assert report["verificationResult"]["ok"] is True
    assert minsky("session", "end", "task#064").exit_code == 0
    assert minsky("session", "start", "fresh", "--repo", "https://github.com/acme/widgets.git").exit_code == 0

    after = rows(db)
    assert list(after[0]) == [*old_columns, "record", "record_digest"]  # additive only
    for before, now in zip(old, after, strict=False):  # the original's cells, untouched (ending included)
        assert {c: now[c] for c in old_columns} == before
    # minsky reads everything back exactly: the corpus records, the awkward ones, the new one.
    got = {s["session"]: s for s in minsky_json("session", "list")["sessions"]}
    want = {json.loads(line)["session"]: json.loads(line) for line in expected(layout)}
    assert lines([got[n] for n in want if n != "task#064"]) == sorted(
        line for line in expected(layout) if json.loads(line)["session"] != "task#064"
    )
    assert {k: v for k, v in got["task#064"].items() if k != "endedAt"} == want["task#064"]
    assert lines([got[r["session"]] for r in AWKWARD]) == lines(AWKWARD)
    assert minsky_json("sessiondb", "check")["ok"] is True
    # The original's own view: every new row listed, its text and JSON-text keys in its columns.
    view = original_view(db, tmp_path)
    # keys the layout keeps as text (an INTEGER column holds only integers; the record keeps the rest)
    keys = {k for line in expected(layout) for k, v in json.loads(line).items() if not isinstance(v, int)}
    for record in AWKWARD:
        seen = view[record["session"]]
        for key, value in record.items():
            if key in keys and value is not None and (isinstance(value, str) or key in ("prApproved", "prState")):
                assert seen[key] == value, (record["session"], key)
    assert view["fresh"]["repoUrl"] == "https://github.com/acme/widgets.git"


@pytest.mark.parametrize(
    ("layout", "repo", "cleared", "key"),
    [
        ("sqlite-2026-04-20-liveness", "repoName", "taskId", "taskId"),
        ("sqlite-2025-08-06-camel-pr", "repoName", "prBranch", "prBranch"),
        ("sqlite-2025-06-21-snake", "repo_name", "repo_path", "repoPath"),
    ],
)
def test_a_row_the_original_changes_later_is_read_with_its_changes(  # type: ignore[no-untyped-def]
    minsky_json, tmp_path: Path, layout: str, repo: str, cleared: str, key: str, monkeypatch
) -> None:
    db = use_db(tmp_path, layout, monkeypatch)
    seed = tmp_path / "awkward.json"
    seed.write_text(json.dumps({"sessions": AWKWARD[:1]}), "utf-8")
    minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--from", "json", "--json-path", str(seed)
    )
    conn = sqlite3.connect(db)
    conn.execute(
        f'UPDATE sessions SET "{repo}" = ?, "{cleared}" = NULL WHERE session = ?',
        ("acme/renamed", AWKWARD[0]["session"]),
    )
    conn.commit()
    conn.close()
    got = minsky_json("session", "get", AWKWARD[0]["session"])
    want = {k: v for k, v in AWKWARD[0].items() if k != key} | {"repoName": "acme/renamed"}
    assert lines([got]) == lines([want])  # the original's change wins; the rest is still exact


def test_a_lossy_reader_fails_verify_and_check_naming_record_and_column(minsky, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The check that would have caught the original column loss: a reader that drops a
    column passes a written-vs-read comparison, and must fail against the source's cells."""
    from minsky import original

    db = use_db(tmp_path, "sqlite-2025-08-06-camel-pr", monkeypatch)
    real = original._read_row  # behind read_row and read_record

    def lossy(table: original.Table, row: Any) -> tuple[dict[str, Any], bytes | None]:
        data = dict(real(table, row)[0])
        data.pop("prBranch", None)  # as minsky's reader of a fixed column list did
        return data, None

    monkeypatch.setattr(original, "_read_row", lossy)
    result = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(tmp_path / "out.json"), "--verify")
    assert result.exit_code == 6, result.output
    assert "'task-md#102'" in result.output and "'prBranch'" in result.output
    check = minsky("sessiondb", "check")
    assert check.exit_code == 4
    assert "'task-md#140'" in check.output and "'prBranch'" in check.output
    assert "Traceback" not in check.output + result.output
    monkeypatch.setattr(original, "_read_row", real)
    assert minsky("sessiondb", "check").exit_code == 0
    del db
