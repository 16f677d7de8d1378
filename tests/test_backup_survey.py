"""A restore surveys a backup (the names at the head of each line, nothing decoded) and its read
does the inspection's work on each record as it decodes it: one decoding pass instead of two.

What a user relies on: the surveyed restore takes exactly what the fully inspected one takes, or
refuses with the same words; a record whose name is not the one its line begins with, or a line
that does not decode alone, makes it start again on the inspected backup (nothing committed); a
digest that is not the metadata's fails the read before the target commits — in this process and
in a forked reader alike.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minsky.backup import NotAsSurveyed, open_backup, write_backup
from minsky.backup import read as backup_read
from minsky.codec import record_from_dict, record_to_dict
from minsky.errors import MinskyError, StoreError
from test_backup_lines import SETTINGS, edits, minsky_layout, plain, rests
from test_json_streaming import records, typed
from test_value_properties import values


def as_restored(path: Path, *, survey: bool) -> Any:
    """What ``sessiondb restore`` takes from the backup, as it takes it (checked, then the names
    and the records; surveyed: inspected and read again when the read finds otherwise), or the
    refusal."""
    try:
        with open_backup(path, survey=survey) as backup:
            backup.check()
            try:
                keys, read = list(backup.keys()), typed([record_to_dict(r) for r in backup.read()])
            except NotAsSurveyed:
                assert survey and not backup.proven
                backup.prove()
                backup.check()
                keys, read = list(backup.keys()), typed([record_to_dict(r) for r in backup.read()])
            return read, keys, backup.repeated, backup.to_json(), typed(backup.layout.fields), backup.lines
    except MinskyError as exc:
        return ("error", type(exc).__name__, str(exc))


def same_either_way(path: Path) -> Any:
    inspected = as_restored(path, survey=False)
    assert as_restored(path, survey=True) == inspected
    return inspected


@SETTINGS
@given(entries=st.lists(st.one_of(plain, plain, records, values), max_size=5), rest=rests)
def test_a_surveyed_restore_takes_what_the_inspected_one_takes(
    entries: list[Any], rest: list[tuple[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "backup.json"
    path.write_bytes(minsky_layout(entries, rest))
    same_either_way(path)


@SETTINGS
@given(entries=st.lists(plain, max_size=4), rest=rests, edits=edits)
def test_a_damaged_backup_is_refused_or_read_as_the_inspection_would(
    entries: list[Any], rest: list[tuple[str, Any]], edits: list[tuple[float, int, bytes]], tmp_path: Path
) -> None:
    data = minsky_layout(entries, rest)
    for where, cut, insert in edits:
        at = int(where * len(data))
        data = data[:at] + insert + data[at + cut :]
    path = tmp_path / "backup.json"
    path.write_bytes(data)
    same_either_way(path)


@SETTINGS
@given(names=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=6), data=st.data())
def test_minskys_own_backups_with_one_record_edited_are_refused_as_before(
    names: list[str], data: st.DataObject, tmp_path: Path
) -> None:
    """The survey sees only names and the count: an edit inside a record (its name kept) is found
    by the read's digest, which must refuse it as the inspection did."""
    path, _ = write_backup(
        tmp_path,
        [record_from_dict({"session": n, "v": i}) for i, n in enumerate(dict.fromkeys(names))],
        source_backend="json",
        source_location="/s",
        base_dir="/b",
        path=tmp_path / "b.json",
    )
    text = path.read_bytes()
    line = data.draw(st.sampled_from([m for m in range(len(text.splitlines())) if b'"v": ' in text.splitlines()[m]]))
    lines = text.splitlines(keepends=True)
    lines[line] = lines[line].replace(b'"v": ', b'"v": 1', 1)
    path.write_bytes(b"".join(lines))
    refused = same_either_way(path)
    assert refused[:2] == ("error", "VerificationError")


@pytest.mark.parametrize(
    ("line", "surveyed"),
    [
        (b'{"session": "a", "session": "b"}', True),  # the last copy of a key counts: not the name at the head
        (b'{"session": "a", "x": {"session": "no"}, "session": "z"}', True),
        (b'{"session": "a", "x": [1,\n  {"session": "b"}]}', True),  # two heads, one record: not lines
        (b'{"session": "first"}', False),  # a repeated name: the survey inspects at once
    ],
)
def test_a_record_not_named_as_its_line_begins_is_read_as_the_inspection_reads_it(
    line: bytes, surveyed: bool, tmp_path: Path
) -> None:
    path = tmp_path / "backup.json"
    path.write_bytes(b'{"sessions": [\n  {"session": "first"},\n  ' + line + b'\n],\n"baseDir": "/b"}\n')
    with open_backup(path, survey=True) as backup:
        assert backup.proven != surveyed
        if surveyed:
            with pytest.raises(NotAsSurveyed):
                list(backup.read())
    restored = same_either_way(path)
    assert restored[0] != "error"


def test_a_backup_changed_after_its_survey_is_not_restored(tmp_path: Path) -> None:
    path, _ = write_backup(
        tmp_path,
        [record_from_dict({"session": f"s{i}", "v": "x" * 10}) for i in range(5)],
        source_backend="json",
        source_location="/s",
        base_dir="/b",
        path=tmp_path / "b.json",
    )
    with open_backup(path, survey=True) as backup:
        assert not backup.proven
        text = path.read_bytes()
        with path.open("r+b") as handle:  # the same size, a value changed in place
            handle.write(text.replace(b'"v": "x', b'"v": "y', 1))
        with pytest.raises(StoreError, match="changed while it was being read"):
            list(backup.read())


# -- through the CLI, in this process and in a forked reader ------------------------


def _backup_of(tmp_path: Path, sessions: list[dict[str, Any]]) -> Path:
    path, _ = write_backup(
        tmp_path / "backups",
        [record_from_dict(s) for s in sessions],
        source_backend="json",
        source_location="/s",
        base_dir="/b",
        path=tmp_path / "backups" / "session-backup-x.json",
    )
    return path


@pytest.fixture(params=["this process", "a forked reader", "a split read"])
def read_in(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where the backup is read: here, in one forked reader, or split between a reader cutting the
    lines and decoders (``Backup.read_split``), whatever the machine's cores."""
    monkeypatch.setenv("MINSKY_FORKED_READ_MIN", "off" if request.param == "this process" else "0")
    monkeypatch.setenv("MINSKY_READ_DECODERS", "2" if request.param == "a split read" else "0")
    return str(request.param)


def test_a_restore_reports_the_digest_its_read_checked(minsky: Any, tmp_path: Path, read_in: str) -> None:
    sessions = [{"session": f"s{i}", "repoName": "r", "n": i} for i in range(30)]
    backup = _backup_of(tmp_path, sessions)
    meta = json.loads(backup.read_text())["minskyBackup"]
    target = tmp_path / "out.db"
    result = minsky(
        "sessiondb", "restore", "--backup", str(backup), "--to", "sqlite", "--sqlite-path", str(target), "--json"
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["backupFile"]["storeDigest"] == meta["storeDigest"] == report["sourceDigest"]
    assert report["backupFile"]["count"] == 30
    with sqlite3.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM sessions").fetchone()[0] == 30


def test_a_backup_whose_digest_is_not_its_metadatas_restores_nothing(minsky: Any, tmp_path: Path, read_in: str) -> None:
    backup = _backup_of(tmp_path, [{"session": f"s{i}", "n": i} for i in range(30)])
    backup.write_bytes(backup.read_bytes().replace(b'"n": 7', b'"n": 8', 1))  # the count and names kept
    target = tmp_path / "out.json"
    for dry in ((), ("--dry-run",)):
        result = minsky(
            "sessiondb", "restore", "--backup", str(backup), "--to", "json", "--json-path", str(target), *dry
        )
        assert result.exit_code == 6, result.output
        assert "is damaged" in result.output and "nothing was restored" in result.output
        assert "Traceback" not in result.output
        assert not target.exists()


def test_a_name_the_survey_misread_is_restored_as_inspected(minsky: Any, tmp_path: Path, read_in: str) -> None:
    """The head of a line says "taken", the record is "free": the target holds "taken". The
    survey's names make a conflict; the read finds otherwise and the restore starts again."""
    backup = _backup_of(tmp_path, [{"session": f"s{i}"} for i in range(10)])
    text = backup.read_bytes().replace(b'{"session": "s3"}', b'{"session": "taken", "session": "free"}', 1)
    backup.write_bytes(text)
    target = tmp_path / "out.json"
    target.write_text(json.dumps({"sessions": [{"session": "taken", "repoName": "mine"}]}))
    # the metadata's digest no longer matches (a record changed): exit 6 on the inspected backup, as before
    result = minsky("sessiondb", "restore", "--backup", str(backup), "--to", "json", "--json-path", str(target))
    assert result.exit_code == 6, result.output
    assert "is damaged" in result.output
    assert json.loads(target.read_text())["sessions"] == [{"session": "taken", "repoName": "mine"}]
    # without metadata to check, the record "free" is restored beside "taken", which is left alone
    plain_store = tmp_path / "plain.json"
    plain_store.write_bytes(text.split(b"\n],")[0] + b'\n],\n"baseDir": "/b"}\n')
    result = minsky("sessiondb", "restore", "--backup", str(plain_store), "--to", "json", "--json-path", str(target))
    assert result.exit_code == 0, result.output
    names = [s["session"] for s in json.loads(target.read_text())["sessions"]]
    assert sorted(names) == sorted(["taken", "free", *(f"s{i}" for i in range(10) if i != 3)])


def test_a_restore_the_read_finds_misnamed_starts_again_on_the_inspected_backup(
    minsky: Any, tmp_path: Path, read_in: str
) -> None:
    backup = tmp_path / "store.json"  # a Minsky JSON store (no metadata) laid out as minsky writes
    lines = [b'  {"session": "s%d"}' % i for i in range(20)]
    lines[5] = b'  {"session": "head", "note": 1, "session": "real"}'
    backup.write_bytes(b'{"sessions": [\n' + b",\n".join(lines) + b'\n],\n"baseDir": "/b"}\n')
    target = tmp_path / "out.json"
    result = minsky(
        "sessiondb", "restore", "--backup", str(backup), "--to", "json", "--json-path", str(target), "--json"
    )
    assert result.exit_code == 0, result.output
    names = [s["session"] for s in json.loads(target.read_text())["sessions"]]
    assert "head" not in names and "real" in names and len(names) == 20


# -- found by an adversary (helper-25) ------------------------------------------------------


def test_a_backup_rewritten_in_place_after_its_survey_is_not_restored(
    minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_in: str
) -> None:
    """Rewritten (same size) into a consistent backup whose one record spans two lines: the read
    starts the restore again, and the inspection must refuse the new bytes, not restore them."""
    path = _backup_of(tmp_path, [{"session": f"s{i}", "n": i} for i in range(6)])
    original = path.read_bytes()
    other_path = _backup_of(tmp_path / "other", [{"session": "XX" if i == 3 else f"s{i}", "n": i} for i in range(6)])
    other = other_path.read_bytes()
    created = json.loads(original)["minskyBackup"]["createdAt"].encode()
    other = other.replace(json.loads(other)["minskyBackup"]["createdAt"].encode(), created)
    other = other.replace(b'{"session": "XX", "n": 3}', b'{"session": "XX",\n"n": 3}')
    assert len(other) == len(original)

    def rewritten(real: Any) -> Any:
        def read(self: backup_read.Backup) -> Any:
            with open(self.path, "r+b") as handle:  # a writer, after the survey, before the read
                handle.write(other)
            return real(self)

        return read

    for method in ("read", "read_split"):  # read_split: a forked read's, decoded on several cores
        monkeypatch.setattr(backup_read.Backup, method, rewritten(getattr(backup_read.Backup, method)))
    target = tmp_path / "out.json"
    result = minsky("sessiondb", "restore", "--backup", str(path), "--to", "json", "--json-path", str(target))
    assert result.exit_code == 4, result.output
    assert "changed while it was being read" in result.output
    assert not target.exists()


@pytest.mark.parametrize("depth", [2000, 5000])
def test_a_deeply_nested_record_is_refused_in_a_forked_read_as_in_process(
    minsky: Any, tmp_path: Path, read_in: str, depth: int
) -> None:
    lines = [b'  {"session": "s%d", "n": %d}' % (i, i) for i in range(6)]
    lines[2] = b'  {"session": "s2", "v": ' + b"[" * depth + b"]" * depth + b"}"
    path = tmp_path / "store.json"
    path.write_bytes(b'{"sessions": [\n' + b",\n".join(lines) + b'\n],\n"baseDir": "/b"}\n')
    target = tmp_path / "out.db"
    result = minsky("sessiondb", "restore", "--backup", str(path), "--to", "sqlite", "--sqlite-path", str(target))
    # The record is refused by name, its member kept as found (tests/test_deep_entries.py); the rest restored.
    assert result.exit_code == 11, result.output
    assert "rejected 's2'" in result.output and "nested deeper than 254 levels" in result.output
    assert "Traceback" not in result.output
    with contextlib.closing(sqlite3.connect(target)) as conn:
        restored = [n for (n,) in conn.execute("SELECT session FROM sessions ORDER BY session")]
    assert restored == ["s0", "s1", "s3", "s4", "s5"]


@pytest.mark.parametrize(
    ("backend", "flag", "where"),
    [
        ("postgres", "--connection-string", "postgresql://postgres@127.0.0.1:5999/x?connect_timeout=2"),
        ("sqlite", "--sqlite-path", "/proc/nonexistent/out.db"),
    ],
)
def test_a_damaged_backup_is_said_first_when_the_target_cannot_be_opened(
    minsky: Any, tmp_path: Path, backend: str, flag: str, where: str
) -> None:
    path = _backup_of(tmp_path, [{"session": f"s{i}", "n": i} for i in range(6)])
    path.write_bytes(path.read_bytes().replace(b'"n": 3', b'"n": 4', 1))  # the count kept, not the digest
    result = minsky("sessiondb", "restore", "--backup", str(path), "--to", backend, flag, where)
    assert result.exit_code == 6, result.output
    assert "is damaged" in result.output and "Traceback" not in result.output


def test_a_backup_of_a_sql_store_is_surveyed_too(minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A SQL store keeps records in sorted key order, so "session" is not the first key of their
    lines in its backup: the survey finds it after the keys that sort before it."""
    source = tmp_path / "in.json"
    nested = {"session": "not the name", "x": 1}  # a nested "session" key after the record's own
    sessions = [
        {"session": f"s{i}", "repoName": "r", "createdAt": "2025-01-01T00:00:00.000Z", "z": nested} for i in range(8)
    ]
    source.write_text(json.dumps({"sessions": sessions}))
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "json")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(source))
    result = minsky("sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "s.db"))
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(tmp_path / "s.db"))
    result = minsky("sessiondb", "export", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    (backup,) = (tmp_path / "out").glob("session-backup-*.json")
    assert b'{"createdAt": ' in backup.read_bytes()  # sorted: "session" is not first
    with open_backup(backup, survey=True) as opened:
        assert not opened.proven
    restored = same_either_way(backup)
    assert restored[1] == [f"s{i}" for i in range(8)]
