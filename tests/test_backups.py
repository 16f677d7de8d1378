"""Backups through the CLI: the original Minsky's formats, names that cannot collide,
restores that restore what they checked, and directories others can write to."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import SHARED, run_minsky
from minsky.errors import ConflictError, StoreError, UsageError, VerificationError

ORIGINAL = SHARED / "fixtures" / "original"
WRAPPER = ORIGINAL / "json" / "session-backup-2025-06-23T16-46-12-144Z.json"
EPOCH = ORIGINAL / "json" / "session-backup-1754668845123.json"
OBJECT_FORM = ORIGINAL / "json" / "sessions.json"
BARE_STORE = ORIGINAL / "json" / "session-db.json"
NOBODY = 65534


def backup_migration(store: Path | str, db: Path | str, backups: Path | str) -> list[str]:
    """A JSON store migrated to SQLite with ``--backup``: the command that writes backups."""
    return ["sessiondb", "migrate", "to", "sqlite", "--from", "json", "--json-path", str(store),
            "--sqlite-path", str(db), "--backup", str(backups)]  # fmt: skip


def restore_to_json(backup: Path, store: Path) -> list[str]:
    return ["sessiondb", "restore", "--backup", str(backup), "--to", "json", "--json-path", str(store)]


def store_of(path: Path, count: int) -> Path:
    path.write_text(json.dumps({"sessions": [{"session": f"s{i}"} for i in range(count)]}))
    return path


def expected(name: str) -> list[str]:
    return sorted((ORIGINAL / "expected" / f"{name}.jsonl").read_text("utf-8").splitlines())


def canonical_lines(records: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return sorted(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False) for r in records)


class Target:
    """A restore target: its flags, and how to read what it holds (as a user would)."""

    def __init__(self, backend: str, flags: list[str], env: dict[str, str]) -> None:
        self.backend, self.flags, self.env = backend, flags, env

    def records(self, minsky_json, monkeypatch: pytest.MonkeyPatch) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
        with monkeypatch.context() as m:
            for key, value in self.env.items():
                m.setenv(key, value)
            return list(minsky_json("session", "list")["sessions"])


@pytest.fixture(params=["json", "sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    backend = request.param
    if backend == "postgres":
        url = request.getfixturevalue("postgres_url")
        return Target(
            backend, ["--connection-string", url], {"MINSKY_SESSIONDB_BACKEND": backend, "MINSKY_POSTGRES_URL": url}
        )
    path = str(tmp_path / ("restored.json" if backend == "json" else "restored.db"))
    flag = "--json-path" if backend == "json" else "--sqlite-path"
    return Target(backend, [flag, path], {"MINSKY_SESSIONDB_BACKEND": backend, "MINSKY_SESSIONDB_DB_PATH": path})


# -- the original Minsky's backups ---------------------------------------------------


@pytest.mark.parametrize("backup", [WRAPPER, EPOCH, OBJECT_FORM], ids=["v1.0-wrapper", "epoch-ms-array", "object"])
def test_the_originals_backups_restore_to_exactly_the_expected_records(
    backup: Path, target: Target, minsky_json, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    before = backup.read_bytes()
    report = minsky_json(
        "sessiondb", "restore", "--backup", str(backup), "--to", target.backend, *target.flags, "--verify"
    )
    assert report["counts"] == {"read": 8, "written": 8, "skipped": 0, "rejected": 0}
    assert report["verificationResult"]["ok"] is True
    assert report["backupFile"]["checkedAgainstMetadata"] is False
    assert canonical_lines(target.records(minsky_json, monkeypatch)) == expected("json-unique")
    assert backup.read_bytes() == before


def test_import_takes_the_originals_backup_into_the_configured_store(minsky_json) -> None:  # type: ignore[no-untyped-def]
    report = minsky_json("sessiondb", "import", str(EPOCH))
    assert report["counts"]["written"] == 8 and report["verificationResult"]["ok"] is True
    assert canonical_lines(minsky_json("session", "list")["sessions"]) == expected("json-unique")


def test_a_backup_holding_a_name_twice_is_refused_by_name(minsky, target: Target, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = minsky("sessiondb", "restore", "--backup", str(BARE_STORE), "--to", target.backend, *target.flags)
    assert result.exit_code == ConflictError.exit_code, result.output
    assert "'task#064' (2 copies)" in result.stderr and "nothing was restored" in result.stderr
    assert not (tmp_path / "restored.json").exists() and not (tmp_path / "restored.db").exists()


def test_the_originals_store_with_a_repeated_name_restores_with_a_chosen_rule(
    minsky_json, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """``--on-duplicate first`` keeps what the original's ``session get`` showed: the unique records."""
    args = ["sessiondb", "restore", "--backup", str(BARE_STORE), "--to", target.backend, *target.flags]
    report = minsky_json(*args, "--on-duplicate", "first", "--verify")
    assert report["counts"] == {"read": 9, "written": 8, "skipped": 1, "rejected": 0}
    assert canonical_lines(target.records(minsky_json, monkeypatch)) == expected("json-unique")


def test_restore_checks_minskys_own_backup_against_its_metadata(
    minsky, minsky_json, target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    made = minsky_json(*restore_to_json(WRAPPER, tmp_path / "s.json"))
    assert made["counts"]["written"] == 8
    backup = Path(
        minsky_json(*backup_migration(tmp_path / "s.json", tmp_path / "s.db", tmp_path / "backups"))["backup"]
    )
    report = minsky_json(
        "sessiondb", "restore", "--backup", str(tmp_path / "backups"), "--to", target.backend, *target.flags
    )
    assert report["backupFile"]["path"] == str(backup) and report["backupFile"]["checkedAgainstMetadata"] is True
    assert canonical_lines(target.records(minsky_json, monkeypatch)) == expected("json-unique")


# -- choosing a directory's newest backup ------------------------------------------------


def make_backups(minsky_json, tmp_path: Path, directory: Path, counts: list[int]) -> list[Path]:  # type: ignore[no-untyped-def]
    """One backup per count, oldest first, each of a store holding that many sessions."""
    made = []
    for n in counts:
        store = store_of(tmp_path / f"store-{n}.json", n)
        report = minsky_json(*backup_migration(store, tmp_path / f"t-{n}.db", directory))
        made.append(Path(report["backup"]))
    return made


def test_newest_comes_from_the_backups_metadata_not_its_name(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "backups"
    older, newer = make_backups(minsky_json, tmp_path, directory, [2, 3])
    older.rename(directory / "session-backup-2099-12-31T23-59-59-999Z.json")  # sorts last by name
    planted = directory / "session-backup-2100-01-01T00-00-00-000Z.json"
    planted.write_bytes(EPOCH.read_bytes())  # no minsky marker: never picked from a directory
    result = minsky(
        *restore_to_json(directory, tmp_path / "r.json"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["backupFile"]["path"] == str(newer) and report["counts"]["written"] == 3
    assert "did not write" in result.stderr and planted.name in result.stderr


def test_a_directory_of_the_originals_backups_says_how_to_restore_one(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "old"
    directory.mkdir()
    (directory / EPOCH.name).write_bytes(EPOCH.read_bytes())
    result = minsky(*restore_to_json(directory, tmp_path / "r.json"))
    assert result.exit_code == UsageError.exit_code
    assert f"--backup {directory / EPOCH.name}" in result.stderr
    assert not (tmp_path / "r.json").exists()
    named = minsky(*restore_to_json(directory / EPOCH.name, tmp_path / "r.json"))
    assert named.exit_code == 0, named.output


def test_planted_files_in_the_directory_are_never_picked(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "backups"
    [mine] = make_backups(minsky_json, tmp_path, directory, [2])
    elsewhere = make_backups(minsky_json, tmp_path, tmp_path / "elsewhere", [5])[0]  # newer, valid, not here
    (directory / "session-backup-2100-01-01T00-00-00-000Z\x1b[2J.json").symlink_to(elsewhere)
    os.mkfifo(directory / "session-backup-2100-01-02T00-00-00-000Z.json")
    theirs = directory / "session-backup-2100-01-03T00-00-00-000Z.json"
    theirs.write_bytes(elsewhere.read_bytes())
    os.chown(theirs, NOBODY, NOBODY)
    result = run_minsky(  # a real process: a FIFO must not make it hang
        *restore_to_json(directory, tmp_path / "r.json"),
        "--json",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backupFile"]["path"] == str(mine)
    assert "ignored 3 file(s)" in result.stderr and "\x1b" not in result.stderr  # names are escaped


def test_the_next_backup_removes_only_its_own_abandoned_temps(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Files named like a backup temp but not one a killed run of yours left — a FIFO, a
    symlink, another user's file — are left alone, and do not make the run hang."""
    directory = tmp_path / "backups"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    abandoned = directory / ".minsky-tmp-session-backup-1-deadbeef"
    abandoned.write_text('{"sessions": [')
    os.mkfifo(directory / ".minsky-tmp-session-backup-2-fifo")
    (directory / ".minsky-tmp-session-backup-3-link").symlink_to(victim)
    theirs = directory / ".minsky-tmp-session-backup-4-theirs"
    theirs.write_text("{")
    os.chown(theirs, NOBODY, NOBODY)
    result = run_minsky(*backup_migration(store_of(tmp_path / "s.json", 1), tmp_path / "t.db", directory), timeout=60)
    assert result.returncode == 0, result.stderr
    left = sorted(p.name for p in directory.iterdir() if p.name.startswith(".minsky-tmp"))
    assert left == [".minsky-tmp-session-backup-2-fifo", ".minsky-tmp-session-backup-3-link", theirs.name]
    assert victim.read_text() == "keep"


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "foreign-symlink", "directory-symlink"])
def test_explicit_non_regular_or_planted_paths_are_refused_at_once(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "session-backup-x.json"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "foreign-symlink":
        path.symlink_to(EPOCH)
        os.lchown(path, NOBODY, NOBODY)
    else:
        path = tmp_path / "shared-link"
        path.symlink_to(EPOCH.parent, target_is_directory=True)
        os.lchown(path, NOBODY, NOBODY)
    result = run_minsky(
        *restore_to_json(path, tmp_path / "r.json"),
        timeout=60,
    )
    assert result.returncode in (UsageError.exit_code, StoreError.exit_code), result.stderr
    assert result.stderr.startswith("minsky: error: ") and "Traceback" not in result.stderr
    assert not (tmp_path / "r.json").exists()


def test_a_symlink_of_your_own_is_followed(minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "latest.json"
    link.symlink_to(WRAPPER)
    report = minsky_json(*restore_to_json(link, tmp_path / "r.json"))
    assert report["counts"]["written"] == 8


# -- writing: directories others can write to, planted symlinks --------------------------


def test_a_group_or_world_writable_backup_directory_is_warned_about(minsky, minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    written = minsky(*backup_migration(store_of(tmp_path / "s.json", 1), tmp_path / "t.db", shared))
    assert written.exit_code == 0 and "writable by group and others" in written.stderr
    restored = minsky(*restore_to_json(shared, tmp_path / "r.json"))
    assert restored.exit_code == 0 and "writable by group and others" in restored.stderr


def test_a_planted_directory_symlink_cannot_redirect_a_backup(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    victim = tmp_path / "victim"
    victim.mkdir()
    planted = tmp_path / "backups"
    planted.symlink_to(victim, target_is_directory=True)
    os.lchown(planted, NOBODY, NOBODY)
    result = minsky(*backup_migration(store_of(tmp_path / "s.json", 1), tmp_path / "t.db", planted))
    assert result.exit_code == StoreError.exit_code and "symbolic link owned by another user" in result.stderr
    assert list(victim.iterdir()) == [] and not (tmp_path / "t.db").exists()


def test_symlinks_planted_under_the_next_names_are_never_written_through(minsky_json, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime, timedelta

    from minsky.backup import backup_name

    directory = tmp_path / "backups"
    directory.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours")
    now = datetime.now(UTC)
    for ms in range(-1000, 20_000):  # every name the next seconds could take
        (directory / backup_name(now + timedelta(milliseconds=ms))).symlink_to(victim)
    report = minsky_json(*backup_migration(store_of(tmp_path / "s.json", 1), tmp_path / "t.db", directory))
    made = Path(report["backup"])
    assert made.name.endswith("Z-2.json") and stat.S_ISREG(made.lstat().st_mode)
    assert victim.read_text() == "not yours"
    assert json.loads(made.read_text())["minskyBackup"]["count"] == 1


# -- a restore restores what it checked --------------------------------------------------------


@pytest.fixture
def two_backups(minsky_json, tmp_path: Path) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    return tuple(make_backups(minsky_json, tmp_path, tmp_path / "backups", [2, 4]))  # type: ignore[return-value]


def swap_after_check(monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
    """Change the backup file the moment its check has passed: what an attacker (or a
    second process) could do between the check and the restore."""
    from minsky.backup.read import Backup

    check = Backup.check

    def check_then_swap(self: Backup) -> None:
        check(self)
        swap()

    monkeypatch.setattr(Backup, "check", check_then_swap)


def test_a_backup_rewritten_after_its_check_is_not_restored(
    minsky, minsky_json, two_backups: tuple[Path, Path], target: Target, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    checked, other = two_backups
    swap_after_check(monkeypatch, lambda: checked.write_bytes(other.read_bytes()))  # same file, new content
    result = minsky("sessiondb", "restore", "--backup", str(checked), "--to", target.backend, *target.flags, "--verify")
    assert result.exit_code == StoreError.exit_code, result.output
    assert "changed while it was being read" in result.stderr
    monkeypatch.undo()
    assert target.records(minsky_json, monkeypatch) == []


def test_a_backup_replaced_after_its_check_restores_what_was_checked(
    minsky_json, two_backups: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    checked, other = two_backups
    swap_after_check(monkeypatch, lambda: os.replace(other, checked))  # another file under the same name
    report = minsky_json(
        *restore_to_json(checked, tmp_path / "r.json"),
        "--verify",
    )
    assert report["counts"]["written"] == 2 and report["verificationResult"]["ok"] is True
    restored = json.loads((tmp_path / "r.json").read_text())["sessions"]
    assert sorted(r["session"] for r in restored) == ["s0", "s1"]


def test_a_damaged_backup_exits_6_and_restores_nothing(minsky, two_backups: tuple[Path, Path], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    backup = two_backups[0]
    backup.write_bytes(backup.read_bytes().replace(b'"s1"', b'"s9"'))
    result = minsky(*restore_to_json(backup, tmp_path / "r.json"))
    assert result.exit_code == VerificationError.exit_code and "damaged" in result.stderr
    assert not (tmp_path / "r.json").exists()


# -- secrets -------------------------------------------------------------------------------------


def test_a_token_is_kept_by_backup_and_restore_and_never_printed(minsky, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    canary = "ghp_canaryBACKUPtoken0123456789"
    store = tmp_path / "s.json"
    store.write_text(
        json.dumps({"sessions": [{"session": "t", "github": {"owner": "o", "repo": "r", "token": canary}}]})
    )
    outputs = []
    for extra in ([], ["--json"]):
        result = minsky(*backup_migration(store, tmp_path / f"t{len(extra)}.db", tmp_path / "b"), *extra)
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    backups = sorted((tmp_path / "b").iterdir())
    assert len(backups) == 2
    for backup in backups:  # lossless: a restore must give the token back; the file is private
        assert canary in backup.read_text() and stat.S_IMODE(backup.stat().st_mode) == 0o600
        for extra in ([], ["--json"]):
            restored_to = tmp_path / f"r-{backup.name}{len(extra)}.json"
            result = minsky(*restore_to_json(backup, restored_to), "--verify", *extra)
            assert result.exit_code == 0, result.output
            outputs.append(result.output)
            restored = json.loads(restored_to.read_text())["sessions"]
            assert restored[0]["github"]["token"] == canary
    assert all(canary not in output for output in outputs)


def test_two_repairs_in_the_same_microsecond_keep_both_quarantine_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime

    from minsky import quarantine

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def,override]
            return datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

    monkeypatch.setattr(quarantine, "datetime", Frozen)
    first = quarantine.write_quarantine(tmp_path / "q", backend="json", location="x", entries=[{"n": 1}])
    second = quarantine.write_quarantine(tmp_path / "q", backend="json", location="x", entries=[{"n": 2}])
    assert first != second and second.name.endswith("Z-2.json")
    assert [json.loads(p.read_text())["entries"] for p in (first, second)] == [[{"n": 1}], [{"n": 2}]]
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == sorted([first.name, second.name])
