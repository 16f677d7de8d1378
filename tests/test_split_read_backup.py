"""A forked restore splits its read of the backup (``Backup.read_split``): the reader child cuts
the lines and hashes every byte, decoders decode them (a surveyed backup's: each checking its
record is named as its line begins), and the count and digest of every record are checked where
they all meet, by the migration, before the target commits (``CheckedReadStore``).

What a user relies on: the target, its order, every refusal and its words are what one process
reading alone gives; a backup whose records do not add up to its metadata, or whose bytes change
after they were checked, restores nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from minsky import forked
from minsky.backend import CheckedReadStore, SplitReadStore
from minsky.backup import Backup, open_backup
from minsky.codec import StoreDigest, record_from_dict, record_to_dict
from minsky.errors import MinskyError, StoreError, VerificationError
from minsky.migrate import Endpoint, migrate
from minsky.model import SessionRecord
from minsky.values import as_found_bytes
from minsky_backend_json.store import JsonStore
from test_backup_survey import _backup_of as backup_of
from test_split_read import ROWS, SETTINGS, none_left, read_by
from test_split_read_json import entries


def restore(minsky: Any, backup: Path, target: Path, *flags: str) -> Any:
    return minsky("sessiondb", "restore", "--backup", str(backup), "--to", "json", "--json-path", str(target), *flags)


def sorted_keys_backup(tmp_path: Path, items: list[Any]) -> Path:
    """A backup whose lines do not begin with their names (a SQL store's key order): inspected,
    not surveyed, and split all the same."""
    path = backup_of(tmp_path, items)
    lines, _, tail = path.read_bytes().partition(b"\n")[2].partition(b"\n]")
    texts = [as_found_bytes(json.loads(line.strip().rstrip(b",")), sort_keys=True) for line in lines.split(b"\n")]
    meta = json.dumps(json.loads(b"{" + tail.split(b"\n", 2)[2])["minskyBackup"]).encode()
    body = b"[\n  " + b",\n  ".join(texts) + b"\n]"
    path.write_bytes(b'{"sessions": ' + body + b',\n"baseDir": "/b",\n"minskyBackup": ' + meta + b"}\n")
    return path


def plainly_named(items: list[Any]) -> list[Any]:
    """The entries whose names a survey reads from the head of their lines (written unescaped)."""
    return [e for e in items if json.dumps(e["session"], ensure_ascii=False)[1:-1] == e["session"] and is_utf8(e)]


def is_utf8(item: Any) -> bool:
    try:
        item["session"].encode()
    except UnicodeEncodeError:  # a lone surrogate: the line is written as found, escaped
        return False
    return True


BACKUPS = {
    "minsky's own (surveyed)": lambda tmp_path, items: backup_of(tmp_path, plainly_named(items)),
    "names escaped or not at the head of the lines (inspected)": sorted_keys_backup,
}


@pytest.mark.parametrize("kind", BACKUPS)
def test_every_way_of_reading_a_backup_restores_the_same_target(
    minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    # A record refused by name is written as found (not as ``write_backup`` lays out the others):
    # its backup is inspected.
    items = plainly_named(entries()) if "surveyed" in kind else entries()
    backup = BACKUPS[kind](tmp_path, items)
    with open_backup(backup, survey=True) as opened:
        assert isinstance(opened, SplitReadStore) and opened.read_split() is not None  # the read splits
        assert opened.proven == ("inspected" in kind)
    targets = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        target = tmp_path / f"{how.replace(' ', '-')}.json"
        result = restore(minsky, backup, target, "--json")
        assert result.exit_code == (11 if "inspected" in kind else 0), result.output  # 11: some refused by name
        report = json.loads(result.stdout)
        targets[how] = (target.read_bytes(), report["counts"], report["backupFile"])
        assert none_left(), how
    first = targets["a single process"]
    assert all(t == first for t in targets.values()), [h for h, t in targets.items() if t != first]
    # Against the backup's own entries: every one not refused by name, in order, value for value.
    rejected = {r["session"] for r in report["rejected"]}
    assert bool(rejected) == ("inspected" in kind)  # refused by name the same way in every process
    written = json.loads(first[0])["sessions"]
    kept = [e for e in items if e["session"] not in rejected]
    assert [e["session"] for e in written] == [e["session"] for e in kept]
    assert [record_to_dict(record_from_dict(e)) for e in kept] == written
    meta = json.loads(backup.read_bytes())["minskyBackup"]
    assert first[2]["storeDigest"] == meta["storeDigest"] and first[2]["count"] == len(items)


@pytest.mark.parametrize("bad", [3, forked.BATCH + 3, forked.BATCH * 3 + 7, ROWS - 1])
def test_a_line_that_does_not_decode_is_the_same_refusal_whichever_process_meets_it(
    minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: int
) -> None:
    items = plainly_named(entries())[:ROWS]
    backup = backup_of(tmp_path, items)
    text = backup.read_bytes()
    line = json.dumps(items[bad], ensure_ascii=False).encode()
    assert text.count(line) == 1
    backup.write_bytes(text.replace(line, b'{"session": "broken", "x": tru}'))
    errors = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        target = tmp_path / f"{how.replace(' ', '-')}.json"
        result = restore(minsky, backup, target)
        errors[how] = (result.exit_code, result.output)
        assert not target.exists(), how
        assert none_left(), how
    assert len(set(errors.values())) == 1, errors
    code, output = errors["3 decoders"]
    assert code != 0 and "Traceback" not in output and str(backup) in output


def test_a_split_read_of_a_backup_rewritten_after_its_inspection_restores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rewritten in place, the same size, once the read began: the reader's hash of every byte
    fails after the last batch, before the target commits."""
    items = [dict(e) for e in entries()[:ROWS]]
    backup = backup_of(tmp_path, items)
    read_by("3 decoders", monkeypatch)
    real = Backup.read_split

    def rewritten(self: Any) -> Any:
        text = self.path.read_bytes()
        at = text.index(b'"session": "gen-000300"')  # a value in a decoder's turn: decodes, and differs
        self.path.write_bytes(text[:at] + text[at:].replace(b"acme/widgets", b"acme/widgetz", 1))
        return real(self)

    monkeypatch.setattr(Backup, "read_split", rewritten)
    target = tmp_path / "out.json"
    # Inspected in full (no survey): no name is checked as it is read, only the bytes.
    with open_backup(backup) as opened, pytest.raises(StoreError, match="changed while it was being read"):
        migrate(Endpoint("backup", opened), Endpoint("json", JsonStore(target)))
    assert not target.exists()
    assert none_left()


class Promised:
    """A source that knows what its read must give (``CheckedReadStore``), and what it was told."""

    def __init__(self, records: list[SessionRecord], *, refuse: bool) -> None:
        self.records, self.refuse = records, refuse
        self.told: list[tuple[int, str]] = []

    location = "promised"

    def exists(self) -> bool:
        return True

    def read(self) -> Iterator[SessionRecord]:
        return iter(self.records)

    def keys(self) -> Iterator[str]:
        return (r.session for r in self.records)

    def count(self) -> int:
        return len(self.records)

    def check_read(self, count: int, hexdigest: str) -> None:
        self.told.append((count, hexdigest))
        if self.refuse:
            raise VerificationError("promised: not what it holds")


@pytest.mark.parametrize("refuse", [False, True])
def test_a_migration_checks_what_it_received_before_the_target_commits(tmp_path: Path, refuse: bool) -> None:
    records = [record_from_dict(e) for e in entries()[:50] if e["session"].isascii() and e["session"].isalnum()]
    source = Promised(records, refuse=refuse)
    assert isinstance(source, CheckedReadStore)
    target = tmp_path / "out.json"
    if refuse:
        with pytest.raises(MinskyError, match="promised: not what it holds"):
            migrate(Endpoint("promised", source), Endpoint("json", JsonStore(target)))
        assert not target.exists()
    else:
        migrate(Endpoint("promised", source), Endpoint("json", JsonStore(target)))
        assert len(json.loads(target.read_bytes())["sessions"]) == len(records)
    digest = StoreDigest.of(records)
    assert source.told == [(digest.count, digest.hexdigest)]


@pytest.mark.parametrize("at", [3, forked.BATCH * 2 + 3])
def test_a_record_not_named_as_its_line_begins_is_restored_as_inspected_whichever_process_meets_it(
    minsky: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: int
) -> None:
    """The line begins "taken", a name the target holds; its record is "free". Decided on the
    survey's names, the restore would count a conflict that is not one: the read finds the
    record misnamed and the restore starts again on the inspected backup."""
    items = [{"session": f"s{i}"} for i in range(ROWS)]
    backup = backup_of(tmp_path, items)
    plain = tmp_path / "plain.json"  # no metadata: the changed record is not "damaged"
    text = backup.read_bytes().replace(b'{"session": "s%d"}' % at, b'{"session": "taken", "session": "free"}', 1)
    plain.write_bytes(text.split(b"\n],")[0] + b'\n],\n"baseDir": "/b"}\n')
    reports = {}
    for how in SETTINGS:
        read_by(how, monkeypatch)
        target = tmp_path / f"{how.replace(' ', '-')}.json"
        target.write_text(json.dumps({"sessions": [{"session": "taken", "repoName": "mine"}]}))
        result = restore(minsky, plain, target, "--on-conflict", "skip", "--json")
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        reports[how] = (report["counts"], report["conflicts"], target.read_bytes())
        assert none_left(), how
    assert len(set(map(repr, reports.values()))) == 1, reports
    counts, conflicts, text = reports["3 decoders"]
    assert conflicts["count"] == 0 and counts["written"] == ROWS and counts["skipped"] == 0
    names = [s["session"] for s in json.loads(text)["sessions"]]
    assert names[0] == "taken" and "free" in names and len(names) == ROWS + 1
