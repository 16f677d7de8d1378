"""Native operations of the built-in backends: SQLite's online backup (and its restore)
and integrity check, PostgreSQL's index/constraint check."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minsky.codec import canonical, record_from_dict
from minsky.testing.records import generated_records

WRITERS = 8
# One writer process: inserts <prefix>-000000, -000001, … in order, one transaction each, until told to stop.
WRITER = """
import sys, pathlib
from minsky_backend_sqlite import SPEC
from minsky.testing.records import generated_records
db, prefix, stop = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
store = SPEC.open({"path": pathlib.Path(db)})
for record in generated_records(100000, prefix):
    if stop.exists():
        break
    store.insert(record)
"""


def expected(prefix: str, count: int) -> dict[str, bytes]:
    return {r.session: canonical(r) for r in generated_records(count, prefix)}


def json_records(path: Path) -> dict[str, bytes]:
    return {s["session"]: canonical(record_from_dict(s)) for s in json.loads(path.read_text("utf-8"))["sessions"]}


def test_sqlite_native_backup_is_a_consistent_snapshot_while_8_writers_run(  # type: ignore[no-untyped-def]
    minsky_json, use_backend, state_dir: Path, tmp_path: Path
) -> None:
    use_backend("sqlite")
    db = state_dir / "sessions.db"  # the configured store
    generated = generated_records(1, "seed")
    from minsky_backend_sqlite import SPEC

    SPEC.open({"path": db}).insert(generated[0])  # the store exists (WAL) before the writers start
    stop = tmp_path / "stop"
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(db), f"w{n}", str(stop)]) for n in range(WRITERS)]
    try:
        while SPEC.open({"path": db}).count() < 200:  # every writer is under way
            assert all(w.poll() is None for w in writers), "a writer died"
            time.sleep(0.05)
        backups = [
            minsky_json("sessiondb", "export", "--output", str(tmp_path / "b"), "--backup-format", "native")
            for _ in range(3)
        ]
        during = SPEC.open({"path": db}).count()
        assert all(w.poll() is None for w in writers), "the writers kept running through the backups"
    finally:
        stop.touch()
        for w in writers:
            w.wait(timeout=60)
    assert all(w.returncode == 0 for w in writers)
    assert SPEC.open({"path": db}).count() > during >= backups[-1]["count"]
    for n, made in enumerate(backups):
        path = Path(made["backup"])
        assert path.suffix == ".db" and made["format"] == "native"
        restored = tmp_path / f"restored-{n}.json"
        report = minsky_json(
            "sessiondb", "restore", "--backup", str(path), "--to", "json", "--json-path", str(restored), "--verify"
        )
        assert report["ok"] and report["counts"]["written"] == made["count"]
        got = json_records(restored)
        assert len(got) == made["count"]
        # A consistent snapshot: of each writer, an unbroken prefix of what it wrote, byte for byte.
        for w in range(WRITERS):
            mine = {name: blob for name, blob in got.items() if name.startswith(f"w{w}-")}
            assert mine == expected(f"w{w}", len(mine))
        assert got[generated[0].session] == canonical(generated[0])


@pytest.fixture
def sqlite_store(minsky_json, use_backend, state_dir: Path) -> Path:  # type: ignore[no-untyped-def]
    use_backend("sqlite")
    for name in ("one", "two", "three"):
        minsky_json("session", "start", name, "--repo", "https://github.com/acme/widgets.git")
    return state_dir / "sessions.db"


def test_a_damaged_native_backup_restores_nothing(minsky, minsky_json, sqlite_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    made = minsky_json("sessiondb", "export", "--output", str(tmp_path / "b"), "--backup-format", "native")
    with sqlite3.connect(made["backup"]) as conn:
        conn.execute("UPDATE sessions SET record = replace(record, 'widgets', 'gadgets') WHERE session = 'two'")
    conn.close()
    target = tmp_path / "t.json"
    damaged = minsky("sessiondb", "restore", "--backup", made["backup"], "--to", "json", "--json-path", str(target))
    assert damaged.exit_code == 6
    assert damaged.stderr.startswith(f"minsky: error: backup {made['backup']} is damaged: it holds 3 records")
    assert "nothing was restored" in damaged.stderr and not target.exists()


def test_migrate_backs_up_natively_and_json_stays_the_default(minsky_json, sqlite_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    native = minsky_json(
        "sessiondb", "migrate", "to", "json", "--json-path", str(tmp_path / "a.json"),
        "--backup", str(tmp_path / "b"), "--backup-format", "native",
    )  # fmt: skip
    portable = minsky_json(
        "sessiondb", "migrate", "to", "json", "--json-path", str(tmp_path / "c.json"), "--backup", str(tmp_path / "b")
    )
    assert native["backup"].endswith(".db") and portable["backup"].endswith(".json")
    # both restore, to the same records as the store holds
    for made in (native, portable):
        out = tmp_path / f"r-{Path(made['backup']).suffix[1:]}.json"
        minsky_json("sessiondb", "restore", "--backup", made["backup"], "--to", "json", "--json-path", str(out))
        assert json_records(out) == json_records(tmp_path / "a.json")
        assert sorted(json_records(out)) == ["one", "three", "two"]


def test_sqlite_verify_finds_an_index_out_of_step(minsky, sqlite_store: Path) -> None:  # type: ignore[no-untyped-def]
    """``integrity_check`` runs once per check (in the store's verify, not again in the native hook)."""
    from minsky_backend_sqlite import SPEC
    from minsky_backend_sqlite.native import native_verify

    store = SPEC.open({"path": sqlite_store})
    assert native_verify(store).ok and store.verify().ok
    with sqlite3.connect(sqlite_store) as conn:
        (index,) = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL LIMIT 1"
        ).fetchone()
        conn.execute("PRAGMA writable_schema = ON")  # the index now claims a column it does not hold
        conn.execute("UPDATE sqlite_master SET sql = replace(sql, '(', '(branch, ') WHERE name = ?", (index,))
    conn.close()
    assert native_verify(SPEC.open({"path": sqlite_store})).ok, "integrity_check ran in the native hook too"
    report = SPEC.open({"path": sqlite_store}).verify()
    assert not report.ok and any(index in p for p in report.problems)
    result = minsky("sessiondb", "verify")
    assert result.exit_code == 4 and index in result.stdout
    assert len([line for line in result.stdout.splitlines() if index in line]) == len(report.problems), "no duplicates"


def test_postgres_native_verify_finds_invalid_indexes_and_unvalidated_constraints(  # type: ignore[no-untyped-def]
    minsky, postgres_url: str, use_backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    from minsky_backend_postgres import SPEC
    from minsky_backend_postgres.native import native_verify

    store = SPEC.open({"connection_string": postgres_url})
    with store.bulk_writer() as writer:
        writer.write(generated_records(20))
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
    assert native_verify(store).ok
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UniqueViolation):  # leaves an INVALID index behind
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY idx_bad ON sessions (repo_name)")
        conn.execute("ALTER TABLE sessions ADD CONSTRAINT named CHECK (session <> '') NOT VALID")
    report = native_verify(store)
    assert not report.ok
    assert any("index idx_bad is not valid" in p for p in report.problems)
    assert any("constraint named is NOT VALID" in p for p in report.problems)
    store.close()
    use_backend("postgres")
    monkeypatch.setenv("MINSKY_POSTGRES_URL", postgres_url)
    result = minsky("sessiondb", "verify")
    assert result.exit_code == 4 and "idx_bad" in result.stdout and "20 records checked" in result.stdout
