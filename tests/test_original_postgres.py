"""The PostgreSQL tables the original Minsky left behind, every layout of the corpus, on the
real server in a fresh database each: read to exactly the expected records, left
row-identical by reads, written without losing a column, a row or the original's view."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import ORIGINAL
from test_original_sql import AWKWARD, expected, lines, reads_exactly

psycopg = pytest.importorskip("psycopg")

LAYOUTS = sorted(p.stem for p in (ORIGINAL / "postgres").glob("*.sql")) or ["(corpus missing)"]


@pytest.fixture
def fresh_db(postgres_server_url: str) -> Iterator[str]:
    """A database of its own (pg-head brings a schema, a projects table and a foreign key)."""
    from psycopg.conninfo import make_conninfo

    name = f"minsky_orig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(postgres_server_url, dbname=name)
    finally:
        with psycopg.connect(postgres_server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build(url: str, layout: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (ORIGINAL / "postgres").is_dir():
        pytest.fail(f"the original's corpus is missing at {ORIGINAL}: set MINSKY_SHARED_DIR")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute((ORIGINAL / "postgres" / f"{layout}.sql").read_text("utf-8"))
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", url)


def table_rows(url: str) -> list[dict[str, Any]]:
    with psycopg.connect(url) as conn:
        cursor = conn.execute("SELECT *, created_at::text AS created_text FROM sessions ORDER BY session")
        names = [d.name for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_command_reads_exactly_the_expected_records(  # type: ignore[no-untyped-def]
    minsky_json, fresh_db: str, tmp_path: Path, layout: str, monkeypatch
) -> None:
    build(fresh_db, layout, monkeypatch)
    want = expected(layout)
    before = table_rows(fresh_db)
    reads_exactly(minsky_json, tmp_path, want)
    assert table_rows(fresh_db) == before, "a read changed the original's table"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_writing_keeps_every_column_and_row_and_the_original_lists_new_rows(  # type: ignore[no-untyped-def]
    minsky, minsky_json, fresh_db: str, tmp_path: Path, layout: str, monkeypatch
) -> None:
    build(fresh_db, layout, monkeypatch)
    before = table_rows(fresh_db)
    old_columns = list(before[0])
    seed = tmp_path / "awkward.json"
    seed.write_text(json.dumps({"sessions": AWKWARD}), "utf-8")
    report = minsky_json(
        "sessiondb", "migrate", "to", "postgres", "--connection-string", fresh_db,
        "--from", "json", "--json-path", str(seed), "--verify",
    )  # fmt: skip
    assert report["verificationResult"]["ok"] is True
    assert minsky("session", "end", "task#064").exit_code == 0
    assert minsky("session", "start", "fresh", "--repo", "https://github.com/acme/widgets.git").exit_code == 0

    after = {row["session"]: row for row in table_rows(fresh_db)}
    assert set(old_columns) <= set(next(iter(after.values())))  # additive only
    for row in before:  # the original's cells, untouched (the ended one included)
        assert {c: after[row["session"]][c] for c in old_columns} == row
    got = {s["session"]: s for s in minsky_json("session", "list")["sessions"]}
    want = {json.loads(line)["session"]: json.loads(line) for line in expected(layout)}
    for name, record in want.items():
        assert {k: v for k, v in got[name].items() if k != "endedAt"} == record
    assert lines([got[r["session"]] for r in AWKWARD]) == lines(AWKWARD)
    assert minsky_json("sessiondb", "check")["ok"] is True
    # The original's view of the new rows: its own columns, in its own naming and types.
    awkward = after[AWKWARD[0]["session"]]
    assert awkward["repo_url"] == AWKWARD[0]["repoUrl"] and awkward["task_id"] == "md#9"
    assert awkward["created_text"] == "2024-11-02 15:45:12.5+00"
    if "pr_state" in awkward:  # from the 2025-08-08 era on
        assert json.loads(awkward["pr_state"]) == AWKWARD[0]["prState"] and awkward["pr_approved"] == "false"
    # Out of the typed column's range: NULL there (or the NOT NULL filler), exact in the record.
    assert after["minimal"]["created_text"] in (None, "1970-01-01 00:00:00+00")
    assert got["minimal"]["createdAt"] == "0001-01-01T00:00:00+14:00"
    assert got["nulls"]["createdAt"] == "9999-12-31T23:00:00-05:00"
    assert after["fresh"]["repo_url"] == "https://github.com/acme/widgets.git"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_row_the_original_changes_later_is_read_with_its_changes(  # type: ignore[no-untyped-def]
    minsky_json, fresh_db: str, tmp_path: Path, layout: str, monkeypatch
) -> None:
    build(fresh_db, layout, monkeypatch)
    seed = tmp_path / "awkward.json"
    seed.write_text(json.dumps({"sessions": AWKWARD[:1]}), "utf-8")
    minsky_json(
        "sessiondb", "migrate", "to", "postgres", "--connection-string", fresh_db,
        "--from", "json", "--json-path", str(seed),
    )  # fmt: skip
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "UPDATE sessions SET repo_name = 'acme/renamed', created_at = '2030-01-01T00:00:00Z' WHERE session = %s",
            (AWKWARD[0]["session"],),
        )
    got = minsky_json("session", "get", AWKWARD[0]["session"])
    changes = {"repoName": "acme/renamed", "createdAt": "2030-01-01T00:00:00.000Z"}
    want = AWKWARD[0] | changes
    assert lines([got]) == lines([want])  # the original's changes win; the rest stays exact


@pytest.mark.parametrize("layout", LAYOUTS)
def test_migrate_status_recognises_the_originals_table(  # type: ignore[no-untyped-def]
    minsky_json, fresh_db: str, tmp_path: Path, layout: str, monkeypatch
) -> None:
    build(fresh_db, layout, monkeypatch)
    before = table_rows(fresh_db)
    status = minsky_json("sessiondb", "migrate", "status", "--json")
    [found] = [item for item in status["originalStores"] if item["backend"] == "postgres"]
    assert found["layout"].startswith(layout) and found["original"] is True
    assert found["sessions"] == len(before)
    assert any("table the original Minsky wrote" in line for line in status["recommendations"])
    assert table_rows(fresh_db) == before, "status changed the original's table"
    # Once minsky has written into it, the layout is still the original's, with minsky's column beside it.
    seed = tmp_path / "one.json"
    seed.write_text(json.dumps({"sessions": AWKWARD[:1]}), "utf-8")
    minsky_json("sessiondb", "migrate", "to", "postgres", "--connection-string", fresh_db,
                "--from", "json", "--json-path", str(seed))  # fmt: skip
    [found] = [i for i in minsky_json("sessiondb", "migrate", "status", "--json")["originalStores"]]
    assert found["layout"].startswith(layout) and "minsky's record column" in found["layout"]


def test_migrate_status_says_a_table_minsky_created_is_its_own(  # type: ignore[no-untyped-def]
    minsky, minsky_json, fresh_db: str, monkeypatch
) -> None:
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", fresh_db)
    assert minsky_json("sessiondb", "migrate", "status", "--json")["originalStores"] == []  # no table yet
    assert minsky("session", "start", "mine", "--repo", "https://github.com/acme/widgets.git").exit_code == 0
    status = minsky_json("sessiondb", "migrate", "status", "--json")
    assert [(i["backend"], i["original"], i["sessions"]) for i in status["originalStores"]] == [("postgres", False, 1)]
    assert not any("original Minsky" in line for line in status["recommendations"])
