"""An entry nested past what a decoder reads (~1,000 levels, planted by hand or by a hostile
tool) spoils its own record, not the store it sits in.

Before: the line reader could not decode the piece, fell back to reading the document whole,
and that failed too, so `session list`, `session start`, `check --repair` (the remedy the
warning names) and a migration all refused the whole store (exit 4), and a backup of it could
not be restored. A member ~990 deep holding 19 digits did the same, while the same member
without them was refused by name. Now the member is kept as found (``Unrepresentable``): the
record is refused by name (exit 11), every write keeps its bytes, and `check --repair` moves
it into the quarantine file byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_minsky
from minsky import jsonlines as lines
from minsky.codec import Unrepresentable
from minsky.errors import RejectedRecordsError
from minsky.values import decode_deep_object
from minsky_backend_json.store import JsonStore

OK = '{{"session": "{}", "repoName": "r", "repoUrl": "https://h/r.git", "createdAt": "2024-01-01T00:00:00.000Z"}}'
MEMBERS = {
    "past-every-decoder": "[" * 5000 + '"x"' + "]" * 5000,
    # orjson reads it, but 19 digits send it to the standard library, which recurses
    "deep-and-guarded": "[" * 990 + '"1234567890123456789", "caf\u00e9"' + "]" * 990,
    "objects": '{"a": ' * 3000 + "-0" + "}" * 3000,
}


def store_with(member: str, *, bare: bool = True) -> bytes:
    bad = OK.format("bad")[:-1] + f', "x": {member}, "after": 1}}'
    entries = ",\n  ".join([OK.format("ok1"), bad, OK.format("ok2")])
    return (f"[\n  {entries}\n]\n" if bare else f'{{"sessions": [\n  {entries}\n], "baseDir": "/b"}}\n').encode()


@pytest.fixture
def json_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "store.json"
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(path))
    return path


@pytest.mark.parametrize("bare", [True, False], ids=["bare", "object"])
@pytest.mark.parametrize("kind", sorted(MEMBERS))
def test_the_store_stays_usable_and_the_entry_is_kept_byte_for_byte(
    kind: str, bare: bool, minsky, json_store: Path
) -> None:  # type: ignore[no-untyped-def]
    member = MEMBERS[kind].encode()
    json_store.write_bytes(store_with(MEMBERS[kind], bare=bare))
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["session"] for r in json.loads(listed.stdout)["sessions"]] == ["ok1", "ok2"]
    assert "skipped session 'bad'" in listed.stderr and "nested deeper than 254 levels" in listed.stderr
    assert len(listed.stderr.splitlines()) == 1 and len(listed.stderr) < 300
    assert minsky("session", "get", "bad").exit_code == RejectedRecordsError.exit_code
    store = JsonStore(json_store)
    assert list(store.keys()) == ["ok1", "bad", "ok2"] and store.count() == 3  # the names pass agrees with the read
    # A write keeps the entry (its member byte for byte, its other keys' values as they were).
    started = minsky("session", "start", "new", "--repo", "https://h/n.git")
    assert started.exit_code == 0, started.output
    assert member in json_store.read_bytes()
    assert (json_store.read_bytes().startswith(b"[")) == bare
    assert minsky("sessiondb", "check").exit_code != 0
    repaired = minsky("sessiondb", "check", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    moved = json.loads(repaired.stdout)["quarantined"]
    assert len(moved["entries"]) == 1 and "'bad'" in moved["entries"][0]
    kept = Path(moved["file"]).read_bytes()
    assert member in kept and b'"after": 1' in kept.replace(b'"after":1', b'"after": 1')
    assert member not in json_store.read_bytes()
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0 and listed.stderr == ""
    assert [r["session"] for r in json.loads(listed.stdout)["sessions"]] == ["ok1", "ok2", "new"]
    assert minsky("sessiondb", "check").exit_code == 0


@pytest.mark.parametrize("forked", ["0", "off"])
def test_a_migration_and_a_restore_refuse_the_record_by_name(forked: str, tmp_path: Path) -> None:
    source = tmp_path / "source.json"
    source.write_bytes(store_with(MEMBERS["deep-and-guarded"]))
    env = {"MINSKY_FORKED_READ_MIN": forked, "HOME": str(tmp_path / "home")}
    target, backups = tmp_path / "out.db", tmp_path / "backups"
    moved = run_minsky(
        "sessiondb", "migrate", "to", "sqlite", "--from", "json", "--json-path", str(source),
        "--sqlite-path", str(target), "--backup", str(backups), env=env,
    )  # fmt: skip
    assert moved.returncode == RejectedRecordsError.exit_code, moved.stderr
    assert "rejected 'bad'" in moved.stdout and "nested deeper than 254 levels" in moved.stdout
    (backup,) = backups.iterdir()
    assert MEMBERS["deep-and-guarded"].encode("utf-8") in backup.read_bytes()
    restored = run_minsky(
        "sessiondb", "restore", "--backup", str(backup), "--to", "sqlite",
        "--sqlite-path", str(tmp_path / "restored.db"), env=env,
    )  # fmt: skip
    assert restored.returncode == RejectedRecordsError.exit_code, restored.stderr
    assert "rejected 'bad'" in restored.stdout and "match its metadata" in restored.stdout
    for db in (target, tmp_path / "restored.db"):
        listed = run_minsky(
            "session",
            "list",
            "--json",
            env={**env, "MINSKY_SESSIONDB_BACKEND": "sqlite", "MINSKY_SESSIONDB_DB_PATH": str(db)},
        )
        assert [r["session"] for r in json.loads(listed.stdout)["sessions"]] == ["ok1", "ok2"]


def test_only_nesting_past_the_limit_is_kept_as_found() -> None:
    piece = b'{"session": "a", "n": 1, "x": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    found = decode_deep_object(piece)
    assert found is not None and found["session"] == "a" and found["n"] == 1
    assert found["x"] == Unrepresentable("[" * 2000 + "]" * 2000)
    assert lines.decode_entry(piece) == found
    # Damage is not depth: the line reader's error stands (the caller reads the document whole).
    for damaged in (
        b'{"session": "a", "x": [1 2]}',  # shallow and not JSON
        b'{"session": "a", "x": ' + b"[" * 2000 + b"]" * 1999 + b"}",  # unbalanced
        b'{"session": "a", "x": ' + b"[" * 2000 + b"}" + b"]" * 1999 + b"}",  # brackets of the wrong kind
        b"[" * 2000 + b"]" * 2000,  # not an object: no name to refuse it by
        b'{"session": "a", "x": ' + b"[" * 2000 + b"]" * 2000 + b"} trailing",
        b'{"session": "a" "x": ' + b"[" * 2000 + b"]" * 2000 + b"}",
    ):
        assert decode_deep_object(damaged) is None
        with pytest.raises(lines.NotLines):
            lines.decode_entry(damaged)
