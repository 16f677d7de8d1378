"""Permissions of everything minsky creates, and hostile names that try to escape."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from minsky.errors import UsageError

REPO = "https://github.com/acme/widgets.git"


def test_everything_created_is_private_under_umask_022(
    minsky,
    isolated_home: Path,
    state_dir: Path,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch,
) -> None:
    os.umask(0o022)
    assert minsky("session", "start", "a", "--repo", REPO).exit_code == 0  # JSON store, lock, dirs
    assert minsky("config", "set", "sessiondb.sqliteOptions.cacheSize", "5000").exit_code == 0
    db = tmp_path / "new" / "sessions.db"
    backups = tmp_path / "backups" / "deep"
    result = minsky(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(db), "--backup", str(backups), "--set-default"
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("MINSKY_SESSIONDB_BACKEND", "sqlite")
    monkeypatch.setenv("MINSKY_SESSIONDB_DB_PATH", str(db))
    import subprocess
    import sys

    holder = subprocess.Popen(  # another process keeps -wal/-shm alive, to inspect them
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1])\n"
            "c.execute('SELECT count(*) FROM sessions').fetchall()\nprint('ready', flush=True)\ntime.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    assert minsky("session", "start", "b", "--repo", REPO).exit_code == 0
    created = [
        state_dir / "session-db.json",
        state_dir / "session-db.json.lock",
        state_dir / "last-backup.json",
        isolated_home / ".config" / "minsky" / "config.toml",
        db,
        Path(f"{db}-wal"),
        Path(f"{db}-shm"),
        *backups.iterdir(),
    ]
    dirs = [
        state_dir,
        state_dir / "sessions",
        state_dir / "sessions" / "a",
        state_dir / "sessions" / "b",
        isolated_home / ".config" / "minsky",
        db.parent,
        backups,
    ]
    holder.kill()
    holder.wait()
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in dirs:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path


def hostile_names() -> list[str]:
    targets = ["x", "etc/passwd", "..", "../..", ".ssh/authorized_keys"]
    prefixes = ["../", "../../", "/", "/tmp/", "..\\\\", "a/../../", "./../", "sub/", "~/", "..././"]
    names = [p + t for p in prefixes for t in targets]
    names += [
        "..",
        ".",
        "...",
        "x.",
        "x..",
        "x. ",
        "nul\x00",
        "\x00",
        "a\x00/../b",
        "tab\tname",
        "new\nline",
        "esc\x1b[31m",
        "bell\x07",
        "x" * 256,
        "é" * 200,
        "",
        " ",
        "a/",
        "/a",
        "\\",
        "a\\b",
        "..\\..\\windows",
        "C:\\\\Windows",
        "//server/share",
        "././.",
        "a/./b",
        "\u2028".join("ab"),
    ]
    names += [f"ctl{chr(c)}x" for c in range(1, 32)]  # every control character
    names += [f"{t}/" for t in targets] + [f"..%2f{t}" for t in targets] + [f"\u2215..\u2215{t}" for t in targets]
    return names


def test_there_are_at_least_100_hostile_names() -> None:
    assert len(hostile_names()) >= 100


@pytest.mark.parametrize("name", hostile_names())
def test_hostile_name_creates_nothing_outside_base(minsky, tmp_path: Path, state_dir: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    before = {p for p in tmp_path.rglob("*")}
    result = minsky("session", "start", name, "--repo", REPO)
    after = {p for p in tmp_path.rglob("*")}
    sessions_root = (state_dir / "sessions").resolve()
    for path in after - before:
        inside = path.resolve() == sessions_root or sessions_root in path.resolve().parents
        store_file = path.parent == state_dir
        assert inside or store_file or path in (state_dir, state_dir.parent, state_dir.parent.parent), path
    if result.exit_code == 0:  # accepted: exactly one plain directory inside <baseDir>/sessions
        [workdir] = [p for p in after - before if p.parent == sessions_root]
        assert workdir.name == name
    else:
        assert result.exit_code == UsageError.exit_code, result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "backup", ["../escape", "/tmp/../tmp/minsky-abs", "a/../../b", "..", "./x/.", "sp ace", "üñï", "trailing.", "-dash"]
)
def test_backup_paths_hold_only_the_backup(
    minsky_json, tmp_path: Path, state_dir: Path, monkeypatch, backup: str
) -> None:  # type: ignore[no-untyped-def]
    state_dir.mkdir(parents=True)
    (state_dir / "session-db.json").write_text(json.dumps({"sessions": [{"session": "../evil"}]}))
    where = tmp_path / "cwd" / "deeper"
    where.mkdir(parents=True)
    monkeypatch.chdir(where)
    target = (where / backup).resolve() if not backup.startswith("/") else Path(backup).resolve()
    before = set(target.iterdir()) if target.exists() else set()
    report = minsky_json(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(tmp_path / "t.db"), "--backup", backup
    )
    new = set(target.iterdir()) - before
    assert len(new) == 1 and Path(report["backup"]).resolve() in {p.resolve() for p in new}
    assert next(iter(new)).name.startswith("session-backup-")
    # A record named "../evil" is data: it is carried, and no path is made from it.
    assert not (tmp_path / "cwd" / "evil").exists() and not (state_dir.parent / "evil").exists()
    for path in new:
        path.unlink()


def test_symlinked_sessions_root_is_refused(minsky, state_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outside = tmp_path / "outside"
    outside.mkdir()
    state_dir.mkdir(parents=True)
    (state_dir / "sessions").mkdir()
    (state_dir / "sessions" / "link").symlink_to(outside, target_is_directory=True)
    result = minsky("session", "start", "link", "--repo", REPO)
    assert result.exit_code == UsageError.exit_code
    assert list(outside.iterdir()) == []
