"""SIGTERM and SIGHUP are handled as Ctrl-C is, in real processes: one line, the documented
exit code, and nothing half-written left behind (backup temps and staged databases
included); a wait for a locked SQLite database gives way to the signal at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

WORDS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up"}
SIGNALS = [signal.SIGTERM, signal.SIGHUP, signal.SIGINT]


def spawn(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "minsky", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes], what: str) -> None:
    """Poll until ``condition`` holds while the process runs (a hang guard, not a timing check)."""
    deadline = time.monotonic() + 120
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"minsky ended before {what}: {proc.stderr.read() if proc.stderr else b''!r}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never saw {what}")
        time.sleep(0.005)


def temps(*directories: Path) -> list[Path]:
    return [p for d in directories if d.exists() for p in d.iterdir() if p.name.startswith(".minsky-tmp-")]


@pytest.fixture
def big_store(tmp_path: Path, isolated_home: Path) -> dict[str, str]:
    """A JSON store large enough that its backup takes a while to write."""
    store = tmp_path / "big.json"
    pad = "p" * 2000
    records = [{"session": f"s{i:06d}", "repoName": "a/b", "pad": pad} for i in range(15000)]
    store.write_text(json.dumps({"sessions": records}))
    return {
        "HOME": str(isolated_home),
        "XDG_STATE_HOME": str(isolated_home / ".local" / "state"),
        "XDG_CONFIG_HOME": str(isolated_home / ".config"),
        "MINSKY_SESSIONDB_BACKEND": "json",
        "MINSKY_SESSIONDB_DB_PATH": str(store),
    }


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_during_a_backup_leaves_no_temp_file_and_no_target(
    tmp_path: Path, big_store: dict[str, str], signum: int
) -> None:  # type: ignore[no-untyped-def]
    backups, target_dir = tmp_path / "backups", tmp_path / "target"
    before = Path(big_store["MINSKY_SESSIONDB_DB_PATH"]).read_bytes()
    proc = spawn(
        "sessiondb", "migrate", "to", "sqlite", "--sqlite-path", str(target_dir / "t.db"), "--backup", str(backups),
        env=big_store,
    )  # fmt: skip
    wait_for(lambda: bool(temps(backups)), proc, "the backup temp file")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    assert f"minsky: {WORDS[signal.Signals(signum)]}".encode() in err and b"Traceback" not in err
    assert temps(backups, target_dir) == []
    assert not (backups.exists() and list(backups.iterdir()))
    assert not (target_dir / "t.db").exists()
    assert Path(big_store["MINSKY_SESSIONDB_DB_PATH"]).read_bytes() == before


@pytest.mark.parametrize("signum", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_while_waiting_for_a_locked_sqlite_database_takes_effect(
    tmp_path: Path, isolated_home: Path, signum: int
) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "locked.db"
    env = {
        "HOME": str(isolated_home),
        "XDG_STATE_HOME": str(isolated_home / ".local" / "state"),
        "MINSKY_SESSIONDB_BACKEND": "sqlite",
        "MINSKY_SESSIONDB_DB_PATH": str(db),
        # Far longer than the hang guard below: only polling lets the signal through.
        "MINSKY_SESSIONDB_SQLITE_OPTIONS_BUSY_TIMEOUT": "600000",
    }
    created = subprocess.run(
        [sys.executable, "-m", "minsky", "sessiondb", "init", "--backend", "sqlite", "--sqlite-path", str(db)],
        env={**os.environ, **env}, capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = spawn("session", "start", "waiting", "--repo", "https://h/a/b", env=env)

        def opened_the_database() -> bool:
            fds = Path(f"/proc/{proc.pid}/fd")
            try:
                return any(os.readlink(fd) == str(db) for fd in fds.iterdir())
            except OSError:
                return False

        wait_for(opened_the_database, proc, "minsky waiting for the lock")
        time.sleep(0.3)  # let it settle into the wait; either way the signal must end it
        proc.send_signal(signum)
        try:
            _, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("the signal did not end a wait for a locked database")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 128 + signum, err
    assert WORDS[signal.Signals(signum)].encode() in err
    assert not (isolated_home / ".local" / "state" / "minsky" / "sessions" / "waiting").exists()
    rows = sqlite3.connect(db).execute("SELECT count(*) FROM sessions").fetchone()
    assert rows == (0,)
