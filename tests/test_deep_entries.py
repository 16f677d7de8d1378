"""An entry nested past what a decoder reads (~1,000 levels, planted by hand or by a hostile
tool) spoils its own record, not the store it sits in.

Before: the line reader could not decode the piece, fell back to reading the document whole,
and that failed too, so `session list`, `session start`, `check --repair` (the remedy the
warning names) and a migration all refused the whole store (exit 4), and a backup of it could
not be restored. A member ~990 deep holding 19 digits did the same, while the same member
without them was refused by name. Now the member is kept as found (``Unrepresentable``, its
insignificant whitespace dropped): the record is refused by name (exit 11), every write keeps
it, and `check --repair` moves it into the quarantine file. Adversary helper-29's findings on
the first version are here too: a top-level string holding a space or a comma, damage that a
bracket count took for depth, and the original's indented layout (re-indented on every write,
and a backup a restore could not read).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import run_minsky
from minsky import jsonlines as lines
from minsky.codec import Unrepresentable
from minsky.deep import decode_deep_object
from minsky.errors import RejectedRecordsError
from minsky_backend_json.store import JsonStore

OK = '{{"session": "{}", "repoName": "r", "repoUrl": "https://h/r.git", "createdAt": "2024-01-01T00:00:00.000Z"}}'
MEMBERS = {
    "past-every-decoder": "[" * 5000 + '"x"' + "]" * 5000,
    # orjson reads it, but 19 digits send it to the standard library, which recurses
    "deep-and-guarded": "[" * 990 + '"1234567890123456789","caf\u00e9"' + "]" * 990,
    "objects": '{"a":' * 3000 + "-0" + "}" * 3000,
}


def store_with(member: str, *, bare: bool = True) -> bytes:
    # A top-level text value holding a space, a comma and a brace: cut as a string, not at them.
    bad = OK.format("bad")[:-1] + f', "path": "my repo, {{x}}", "x": {member}, "after": 1}}'
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
def test_the_store_stays_usable_and_the_entry_is_kept(kind: str, bare: bool, minsky, json_store: Path) -> None:  # type: ignore[no-untyped-def]
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


def _stdlib(data: bytes) -> Any:
    """What the standard library's decoder reads, recursing as deep as it needs (the oracle)."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)
    try:
        return json.loads(data.decode("utf-8", "surrogateescape"), parse_constant=str)
    finally:
        sys.setrecursionlimit(limit)


def _same(a: Any, b: Any) -> bool:
    return _dumps(a, separators=(",", ":")) == _dumps(b, separators=(",", ":"))


def _nested(depth: int) -> Any:
    value: Any = ["leaf", -1.5e3, None, True, {"k": "v"}]
    for n in range(depth):
        value = [value, n] if n % 3 else {"a": value, "b": "x, y}"}
    return value


def _dumps(value: Any, **options: Any) -> str:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(50_000)
    try:
        return json.dumps(value, **options)
    finally:
        sys.setrecursionlimit(limit)


DEEP_PIECE = _dumps({"session": "s", "n": 1, "x": _nested(1100), "t": "a b"}, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(DEEP_PIECE) - 1), st.sampled_from(b'[]{}",:\\ 0a-.e\x01')), max_size=2)
)
def test_a_kept_member_is_json_the_standard_library_reads(edits: list[tuple[int, int]]) -> None:
    """Damage is not depth (adversary helper-29: a bracket scan kept 340 of 3,000 mutated
    records the decoder refuses as "too deep", and wrote them back): kept only when the
    standard library, recursing freely, reads the entry, and then as the same values."""
    piece = bytearray(DEEP_PIECE)
    for at, byte in edits:
        piece[at] = byte
    found = decode_deep_object(bytes(piece))
    try:
        oracle = _stdlib(bytes(piece))
    except (ValueError, RecursionError):
        assert found is None
        return
    if found is not None:
        assert isinstance(oracle, dict) and list(found) == list(oracle)
        for key, value in found.items():
            if isinstance(value, Unrepresentable):
                assert _same(_stdlib(value.token.encode("utf-8", "surrogateescape")), oracle[key])
            else:
                assert _same(value, oracle[key])


def test_damage_deep_inside_an_entry_is_still_the_store_error(minsky, json_store: Path) -> None:  # type: ignore[no-untyped-def]
    data = store_with("[" * 300 + "1 2 garbage tru {}" + "]" * 300)
    json_store.write_bytes(data)
    listed = minsky("session", "list")
    assert listed.exit_code == 4 and "is not valid JSON" in listed.stderr
    assert minsky("session", "start", "n", "--repo", "https://h/n.git").exit_code == 4
    assert json_store.read_bytes() == data


def test_the_originals_indented_layout_keeps_the_member_and_stays_restorable(
    minsky, json_store: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """JSON.stringify(value, null, 2): the kept member loses its indentation (one line) and
    nothing else, and later writes leave that line as it is (it was re-indented, and grew, on
    every write); a backup of the store stays one record a line, so a restore reads it."""
    member = _nested(1200)
    text = _dumps([json.loads(OK.format("ok")), {"session": "bad", "x": member}], indent=2)
    json_store.write_text(text)
    kept = []
    for n in range(3):
        assert minsky("session", "start", f"n{n}", "--repo", "https://h/n.git").exit_code == 0
        (line,) = [line for line in json_store.read_bytes().splitlines() if b'"x": ' in line]
        kept.append(line)
        assert _same(_stdlib(json_store.read_bytes())[1]["x"], member)
    assert kept[0] == kept[1] == kept[2] and len(kept[0]) < len(text)
    exported = minsky("sessiondb", "export", "--output", str(tmp_path / "ex"))
    assert exported.exit_code == 0, exported.output
    (backup,) = (tmp_path / "ex").iterdir()
    restored = minsky(
        "sessiondb", "restore", "--backup", str(backup), "--to", "sqlite", "--sqlite-path", str(tmp_path / "r.db")
    )
    assert restored.exit_code == RejectedRecordsError.exit_code, restored.output
    assert "rejected 'bad'" in restored.output


@pytest.mark.parametrize(
    ("member", "extra"),
    [
        ("[" * 1000 + "1" + "]" * 1000, ""),  # the whole record decodes (orjson): refused by its depth
        ("[" * 1024 + "]" * 1024, ""),  # orjson reads the member alone, not the record around it
        ("[" * 1000 + "]" * 1000, '"repoPath": "app-0", '),  # "-0" sends the record to the careful decoder
    ],
    ids=["decodes-whole", "member-alone-decodes", "guarded-elsewhere"],
)
def test_a_record_at_the_decoders_edge_is_refused_by_name_and_every_write_works(
    member: str, extra: str, minsky, json_store: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Adversary helper-30: such a record still made the whole store fail (exit 4), or every
    write, export and repair fail with an internal RecursionError (exit 1)."""
    bad = '{"session": "bad", ' + extra + '"x": ' + member + "}"
    json_store.write_text(f"[\n  {OK.format('ok1')},\n  {bad}\n]\n")
    listed = minsky("session", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [r["session"] for r in json.loads(listed.stdout)["sessions"]] == ["ok1"]
    assert "skipped session 'bad'" in listed.stderr
    assert minsky("session", "start", "new", "--repo", "https://h/n.git").exit_code == 0
    exported = minsky("sessiondb", "export", "--output", str(tmp_path / "ex"))
    assert exported.exit_code == 0, exported.output
    repaired = minsky("sessiondb", "check", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    assert len(json.loads(repaired.stdout)["quarantined"]["entries"]) == 1
    assert [r["session"] for r in json.loads(minsky("session", "list", "--json").stdout)["sessions"]] == ["ok1", "new"]
