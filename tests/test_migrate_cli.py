"""`minsky sessiondb migrate …` and `restore`, end to end through the CLI, on real files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from minsky.codec import canonical, record_from_dict


def canonical_set(records: list[dict]) -> dict[str, bytes]:  # type: ignore[type-arg]
    return {r["session"]: canonical(record_from_dict(r)) for r in records}


@pytest.fixture
def json_store(state_dir: Path, shared_sample: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    store = state_dir / "session-db.json"
    store.write_bytes(shared_sample.read_bytes())
    return store


def sessions_in(minsky_json, backend: str, *extra: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    import os

    os.environ["MINSKY_SESSIONDB_BACKEND"] = backend
    try:
        return list(minsky_json("session", "list", *extra)["sessions"])
    finally:
        del os.environ["MINSKY_SESSIONDB_BACKEND"]


def test_json_to_sqlite_and_back_is_lossless(minsky, minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    original = json.loads(json_store.read_text("utf-8"))["sessions"]
    before = json_store.read_bytes()
    db = tmp_path / "out" / "sessions.db"
    report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--verify")
    assert report["counts"] == {"read": 5, "written": 5, "skipped": 0, "rejected": 0}
    assert report["verificationResult"] == {
        "ok": True,
        "sourceCount": 5,
        "targetCount": 5,
        "missing": [],
        "extra": [],
        "mismatched": [],
        "uncovered": [],
    }
    assert json_store.read_bytes() == before, "the source must never change"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    back = tmp_path / "back.json"
    report = minsky_json(
        "sessiondb",
        "migrate",
        "to",
        "json",
        "--from",
        "sqlite",
        "--sqlite-path",
        str(db),
        "--json-path",
        str(back),
        "--verify",
    )
    assert report["verificationResult"]["ok"] is True
    assert canonical_set(json.loads(back.read_text("utf-8"))["sessions"]) == canonical_set(original)


def test_dry_run_creates_nothing(minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = sorted(p for p in tmp_path.rglob("*"))
    target = tmp_path / "new-dir" / "sessions.db"
    report = minsky_json(
        "sessiondb",
        "migrate",
        "to",
        "sqlite",
        "--sqlite-path",
        str(target),
        "--dry-run",
        "--backup",
        str(tmp_path / "backups"),
        "--verify",
    )
    assert report["dryRun"] is True and report["counts"]["written"] == 5
    assert report["backup"] is None and report["verificationResult"] is None
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_dry_run_onto_an_existing_wal_database_leaves_no_trace(minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "t.db"
    minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("t.db")) == ["t.db"]
    before = db.read_bytes()
    report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--dry-run")
    assert report["conflicts"]["count"] == 5 and report["counts"]["skipped"] == 5
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("t.db")) == ["t.db"]
    assert db.read_bytes() == before


def test_backup_is_a_private_minsky_store_with_metadata(minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backups = tmp_path / "b" / "nested"
    report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--backup", str(backups))
    path = Path(report["backup"])
    assert path.parent == backups and path.name.startswith("session-backup-") and path.name.endswith("Z.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(backups.stat().st_mode) == 0o700
    doc = json.loads(path.read_text("utf-8"))
    original = json.loads(json_store.read_text("utf-8"))
    assert canonical_set(doc["sessions"]) == canonical_set(original["sessions"])
    meta = doc["minskyBackup"]
    assert meta["count"] == 5 and meta["sourceBackend"] == "json" and meta["storeDigest"] == report["sourceDigest"]
    assert meta["minskyVersion"]


def test_restore_checks_the_digest_and_restores(minsky, minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backups = tmp_path / "backups"
    minsky_json("sessiondb", "migrate", "to", "sqlite", "--backup", str(backups))
    target = tmp_path / "restored.db"
    report = minsky_json(
        "sessiondb",
        "restore",
        "--backup",
        str(backups),
        "--to",
        "sqlite",
        "--sqlite-path",
        str(target),
        "--verify",
    )
    assert report["counts"]["written"] == 5 and report["verificationResult"]["ok"] is True
    backup = next(backups.iterdir())
    doc = json.loads(backup.read_text("utf-8"))
    doc["sessions"][0]["branch"] = "tampered"
    backup.write_text(json.dumps(doc))
    damaged = minsky(
        "sessiondb",
        "restore",
        "--backup",
        str(backup),
        "--to",
        "sqlite",
        "--sqlite-path",
        str(tmp_path / "other.db"),
    )
    assert damaged.exit_code == 6 and "damaged" in damaged.stderr
    assert not (tmp_path / "other.db").exists()


def test_conflicts_fail_by_default_then_skip_or_overwrite(
    minsky, minsky_json, json_store: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    db = str(tmp_path / "t.db")
    minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", db)
    again = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", db)
    assert again.exit_code == 7 and "5 session(s) already exist" in again.stderr and "task-md#101" in again.stderr
    skipped = minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", db, "--on-conflict", "skip", "--verify"
    )
    assert skipped["counts"] == {"read": 5, "written": 0, "skipped": 5, "rejected": 0}
    over = minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", db, "--on-conflict", "overwrite", "--verify"
    )
    assert over["counts"]["written"] == 5 and over["verificationResult"]["ok"] is True


def test_nul_records_are_rejected_by_name_and_the_rest_move(minsky, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    records = [
        {"session": "good"},
        {"session": "bad", "notes": "a\u0000b"},
        {"session": "text", "n": "\\u0000"},
    ]
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": records}))
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "x.db"), "--json")
    assert result.exit_code == 11
    report = json.loads(result.stdout)
    assert report["counts"] == {"read": 3, "written": 2, "skipped": 0, "rejected": 1}
    assert report["rejected"][0]["session"] == "bad" and "U+0000" in report["rejected"][0]["reason"]


def test_moving_a_store_onto_itself_is_refused(minsky, json_store: Path) -> None:  # type: ignore[no-untyped-def]
    result = minsky("sessiondb", "migrate", "to", "json")
    assert result.exit_code == 2 and "same store" in result.stderr


@pytest.mark.parametrize("how", ["hard link", "symbolic link"])
def test_moving_a_store_onto_another_name_of_its_file_is_refused(  # type: ignore[no-untyped-def]
    minsky, json_store: Path, tmp_path: Path, how: str
) -> None:
    """Adversary helper-43: a hard link passed as the target was copied into itself and marked
    as moved away from itself, and every later write was refused (exit 13)."""
    other = tmp_path / "other.json"
    if how == "hard link":
        os.link(json_store, other)
    else:
        other.symlink_to(json_store)
    before = json_store.read_bytes()
    result = minsky("sessiondb", "migrate", "to", "json", "--json-path", str(other), "--set-default")
    assert result.exit_code == 2 and "same store" in result.stderr, result.output
    assert json_store.read_bytes() == before
    assert minsky("session", "start", "after", "--task", "1", "--repo", "https://h/r").exit_code == 0


def test_the_guides_daily_backup_on_a_json_setup(minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`minsky sessiondb migrate to json --backup "$BACKUP_DIR" --from current` (Best Practices)."""
    before = json_store.read_bytes()
    report = minsky_json("sessiondb", "migrate", "to", "json", "--backup", str(tmp_path / "daily"), "--from", "current")
    assert report["sameStore"] is True and report["counts"] == {"read": 5, "written": 0, "skipped": 5, "rejected": 0}
    backup = json.loads(Path(report["backup"]).read_text("utf-8"))
    assert backup["minskyBackup"]["count"] == 5
    assert json_store.read_bytes() == before


def test_same_backend_other_location(minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(first))
    import os

    os.environ["MINSKY_SESSIONDB_BACKEND"] = "sqlite"
    os.environ["MINSKY_SESSIONDB_DB_PATH"] = str(first)
    try:
        report = minsky_json("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(second), "--verify")
    finally:
        del os.environ["MINSKY_SESSIONDB_BACKEND"], os.environ["MINSKY_SESSIONDB_DB_PATH"]
    assert report["verificationResult"]["ok"] is True and report["counts"]["written"] == 5


def test_set_default_switches_the_configured_backend(minsky, minsky_json, json_store: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "s.db"
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--set-default")
    assert result.exit_code == 0, result.output
    assert "To revert: minsky config set sessiondb.backend json" in result.stdout
    assert minsky_json("config", "get", "sessiondb.backend")["value"] == "sqlite"
    assert len(minsky_json("session", "list")["sessions"]) == 5


def test_status_reports_backend_source_and_advice(minsky_json, json_store: Path) -> None:  # type: ignore[no-untyped-def]
    status = minsky_json("sessiondb", "migrate", "status")
    assert status["backend"] == "json" and status["source"] == "default" and status["sessions"] == 5
    assert status["sizeBytes"] == json_store.stat().st_size
    assert {"json", "sqlite"} <= set(status["installedBackends"])
    assert any("no backup" in line for line in status["recommendations"])


def test_check_finds_problems(minsky, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": [{"session": "a"}, {"session": "a"}]}))
    result = minsky("sessiondb", "check")
    assert result.exit_code == 4 and "duplicate session name 'a'" in result.stdout


def test_a_missing_source_is_an_error_not_an_empty_target(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"))
    assert result.exit_code == 4 and "does not exist: nothing to migrate" in result.stderr
    assert not (tmp_path / "t.db").exists()


def test_prefetch_keeps_order_raises_source_errors_and_stops_early() -> None:
    from minsky.errors import StoreError
    from minsky.prefetch import prefetched

    assert list(prefetched(range(10_000), 7)) == list(range(10_000))

    def failing():  # type: ignore[no-untyped-def]
        yield from range(5)
        raise StoreError("disk on fire at record 5")

    got = []
    with pytest.raises(StoreError, match="record 5"):
        for item in prefetched(failing(), 2):
            got.append(item)
    assert got == [0, 1, 2, 3, 4]
    closed = []

    def endless():  # type: ignore[no-untyped-def]
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    stream = prefetched(endless(), 10)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()
    assert closed == [True]


@pytest.mark.parametrize("how", ["a signal inside the queue's lock", "a source stuck in a read"])
def test_a_consumer_that_stops_never_waits_for_ever_on_the_read_ahead_thread(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Adversary helper-39: SIGTERM during a migration read in this process left minsky hung, both
    threads waiting on a lock (the signal's exception was raised inside the queue's lock)."""
    import queue
    import time

    from minsky import prefetch

    monkeypatch.setattr(prefetch, "JOIN_SECONDS", 0.5)
    calls = []

    class Interrupted(queue.Queue):  # type: ignore[type-arg]
        def get(self, block: bool = True, timeout: float | None = None) -> object:
            calls.append(1)
            if len(calls) == 2:
                self.mutex.acquire()  # the signal landed just after the lock was taken
                raise KeyboardInterrupt
            return super().get(block, timeout)

    def records():  # type: ignore[no-untyped-def]
        yield from range(10)
        if how == "a source stuck in a read":
            time.sleep(30)
        yield from range(10, 10_000)

    if how == "a signal inside the queue's lock":
        monkeypatch.setattr(prefetch.queue, "Queue", Interrupted)
    stream = prefetch.prefetched(records(), 10, depth=1)
    started = time.monotonic()
    assert [next(stream) for _ in range(10)] == list(range(10))
    if how == "a signal inside the queue's lock":
        with pytest.raises(KeyboardInterrupt):
            next(stream)
    else:
        stream.close()
    assert time.monotonic() - started < 5


def test_verify_repair_quarantines_and_never_deletes(minsky, minsky_json, state_dir: Path) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    bad = [{"repoName": "nameless"}, "not an object", {"session": "a", "second": True}]
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": [{"session": "a"}, *bad, {"session": "b"}]}))
    assert minsky("session", "list").exit_code == 4  # unreadable until repaired
    report = minsky_json("sessiondb", "verify", "--repair")
    assert report["ok"] is True and report["checked"] == 2 and len(report["quarantined"]["entries"]) == 3
    moved = json.loads(Path(report["quarantined"]["file"]).read_text("utf-8"))
    assert moved["entries"] == bad
    assert stat.S_IMODE(Path(report["quarantined"]["file"]).stat().st_mode) == 0o600
    assert [s["session"] for s in minsky_json("session", "list")["sessions"]] == ["a", "b"]


def test_verify_repair_on_sqlite(minsky, minsky_json, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import sqlite3

    db = tmp_path / "s.db"
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    for name in ("x", "y"):
        assert minsky("session", "start", name, "--repo", "https://h/a/b").exit_code == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE sessions SET record = '{broken' WHERE session = 'x'")
    conn.close()
    assert minsky("sessiondb", "check").exit_code == 4
    report = minsky_json("sessiondb", "verify", "--repair")
    assert report["ok"] is True and report["quarantined"]["entries"][0].startswith("session 'x'")
    moved = json.loads(Path(report["quarantined"]["file"]).read_text("utf-8"))
    assert moved["entries"][0]["record"] == "{broken" and moved["entries"][0]["session"] == "x"
    assert [s["session"] for s in minsky_json("session", "list")["sessions"]] == ["y"]


def test_init_export_import(minsky, minsky_json, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "fresh.db"
    assert minsky_json("sessiondb", "init", "--backend", "sqlite", "--sqlite-path", str(db))["created"] is True
    assert (
        db.exists()
        and minsky_json("sessiondb", "init", "--backend", "sqlite", "--sqlite-path", str(db))["created"] is False
    )
    assert minsky("session", "start", "one", "--repo", "https://h/a/b").exit_code == 0  # on the default JSON store
    exported = minsky_json("sessiondb", "export", "--output", str(tmp_path / "exp"))
    assert exported["count"] == 1 and Path(exported["backup"]).parent == tmp_path / "exp"
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    imported = minsky_json("sessiondb", "import", str(tmp_path / "exp"))
    assert imported["counts"]["written"] == 1 and imported["verificationResult"]["ok"] is True
    assert [s["session"] for s in minsky_json("session", "list")["sessions"]] == ["one"]


def test_progress_shows_on_a_terminal_only(state_dir: Path, tmp_path: Path) -> None:
    """Through a pseudo-terminal, as a user sees it: records/s and an ETA on stderr."""
    import os
    import pty
    import subprocess
    import sys

    from minsky.codec import record_to_dict
    from minsky.testing.records import generated_records

    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(
        json.dumps({"sessions": [record_to_dict(r) for r in generated_records(5000)]})
    )
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "minsky",
            "sessiondb",
            "migrate",
            "to",
            "sqlite",
            "--sqlite-path",
            str(tmp_path / "tty.db"),
        ],
        stdout=subprocess.PIPE,
        stderr=secondary,
    )
    os.close(secondary)
    out, _ = proc.communicate(timeout=120)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.returncode == 0
    assert b"/5,000 records" in seen and b"/s" in seen
    assert b"records/s" not in out.split(b"\n")[0]  # stdout carries the report, not the progress line
    piped = subprocess.run(
        [
            sys.executable,
            "-m",
            "minsky",
            "sessiondb",
            "migrate",
            "to",
            "sqlite",
            "--sqlite-path",
            str(tmp_path / "pipe.db"),
        ],
        capture_output=True,
        check=True,
    )
    assert b"ETA" not in piped.stderr and b"/5,000" not in piped.stderr


LOSSY_PLUGIN = """
import attrs
from minsky import hookimpl
from minsky.backend import BackendSpec, OptionSpec
from minsky_backend_json import SPEC as JSON_SPEC


class LossyWriter:
    def __init__(self, inner):
        self.inner = inner

    def write(self, batch):  # drops fields it does not know, as the original Minsky did
        self.inner.write([attrs.evolve(r, extra={}) for r in batch])


class LossyStore:
    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def bulk_writer(self):
        import contextlib

        @contextlib.contextmanager
        def wrap():
            with self.inner.bulk_writer() as writer:
                yield LossyWriter(writer)
        return wrap()


@hookimpl
def register_backends(register):
    register(BackendSpec(name="lossy", description="drops unknown fields", options=JSON_SPEC.options,
                         open=lambda options: LossyStore(JSON_SPEC.open(options))))
"""


def test_verification_names_what_a_lossy_backend_lost(state_dir: Path, shared_sample: Path, tmp_path: Path) -> None:
    from conftest import run_minsky

    plugin_dir = tmp_path / "plugin"
    plugin_dir.mkdir()
    (plugin_dir / "minsky_backend_lossy.py").write_text(LOSSY_PLUGIN)
    dist = plugin_dir / "minsky_backend_lossy-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: minsky-backend-lossy\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[minsky]\nlossy = minsky_backend_lossy\n")
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_bytes(shared_sample.read_bytes())
    done = run_minsky(
        "sessiondb",
        "migrate",
        "to",
        "lossy",
        "-o",
        f"path={tmp_path / 'lossy.json'}",
        "--verify",
        "--json",
        env={"PYTHONPATH": str(plugin_dir)},
    )
    assert done.returncode == 6, done.stderr
    result = json.loads(done.stdout)["verificationResult"]
    assert result["ok"] is False and result["missing"] == [] and result["extra"] == []
    assert result["mismatched"] == ["task-md#150-ünicøde-日本"]  # the record with fields from a newer writer
    assert "verification failed" in done.stderr and "1 mismatched" in done.stderr
