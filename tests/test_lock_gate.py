"""The JSON store's lock file is not fair: a migration's last step claims it first
(``<store>.lock.wanted``) and writers arriving then give way (issue 12). With real processes:
writers loop ``session start`` on a JSON store while ``migrate to sqlite --set-default`` runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from live import MOVED, _cli, place, seed_record, set_config, write_json_store
from reliability import fork, wait_ok

pytestmark = pytest.mark.slow
SEEDED = 3000  # each writer call rewrites the whole document: long enough to queue behind
WRITERS = 6


def looping_writer(log: Path, stop: Path, prefix: str) -> int:
    """Starts ``prefix``-N until ``stop`` exists; logs ``began ended name exit-code`` per call."""

    def work() -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with log.open("a", buffering=1) as out:
            n = 0
            while not stop.exists():
                n += 1
                name, began = f"{prefix}-{n:04d}", time.time()
                code = _cli("session", "start", name, "--repo", "https://h/w/repo")
                out.write(f"{began:.6f} {time.time():.6f} {name} {code}\n")

    return fork(work)


def test_writers_give_way_to_a_migrations_last_step(isolated_home: Path, tmp_path: Path) -> None:
    old, new = place("json", tmp_path, None, "old"), place("sqlite", tmp_path, None, "new")
    assert old.path is not None
    write_json_store(old.path, [seed_record(i) for i in range(SEEDED)])
    set_config(isolated_home, old)
    wanted = Path(f"{old.path}.lock.wanted")
    stop = tmp_path / "stop"
    logs = [tmp_path / f"w{k}.log" for k in range(WRITERS)]
    pids = [looping_writer(logs[k], stop, f"w{k}") for k in range(WRITERS)]
    try:
        while not all(log.exists() and log.read_text() for log in logs):
            time.sleep(0.05)
        command = ["sessiondb", "migrate", "to", "sqlite", *new.flags(), "--set-default", "--json"]
        moving = subprocess.Popen(
            [sys.executable, "-m", "minsky", *command],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        claimed_at = None
        while moving.poll() is None:
            if claimed_at is None and wanted.exists():
                claimed_at = time.time()  # no later than the claim's real start
            time.sleep(0.005)
        out, err = moving.communicate()
        assert moving.returncode == 0, err
        old_after_switch = old.read()
        seen = sum(len(log.read_text().splitlines()) for log in logs)
        while sum(len(log.read_text().splitlines()) for log in logs) < seen + WRITERS:
            time.sleep(0.05)  # every writer calls again after the switch
    finally:
        stop.touch()
        for pid in pids:
            wait_ok(pid)
    report = json.loads(out)
    assert report["catchUp"]["sourceLocked"] and report["catchUp"]["markedMoved"]
    assert claimed_at is not None, "the migration's claim was never seen"
    calls = [line.split() for log in logs for line in log.read_text().splitlines()]
    codes = {int(code) for *_, code in calls}
    assert codes <= {0, MOVED}, f"writers got exit codes {codes} (only 0 and {MOVED} are allowed)"
    # The gate: a call that began once the migration had claimed the lock waited for its step
    # and then found the store moved (13), or (begun as the config switched) wrote into the new
    # store; none took the old store's lock before the migration did.
    late = {name: int(code) for began, _, name, code in calls if float(began) > claimed_at}
    assert late, "no writer called after the migration's claim"
    jumped = sorted(name for name, code in late.items() if code == 0 and name in old_after_switch)
    assert not jumped, f"calls begun after the migration's claim that wrote into the old store: {jumped}"
    # Every session a writer saw started is in the new store; nothing reached the old one after.
    now = new.read()
    missing = [name for *_, name, code in calls if int(code) == 0 and name not in now]
    assert not missing, f"started (exit 0) but not in the new store: {missing}"
    assert old.read() == old_after_switch, "the old store was written after the switch"
    assert not [name for name in old_after_switch if name not in now], "a session is only in the old store"


def test_writers_arriving_after_the_claim_never_take_the_lock_first(isolated_home: Path, tmp_path: Path) -> None:
    """Deterministic form of the gate: while another process holds the lock file, the migration
    claims it and waits; writers arrive; the lock is let go. Without the claim they would race
    the migration for it (each with an equal chance) and write into the store being left."""
    import filelock

    old, new = place("json", tmp_path, None, "old"), place("sqlite", tmp_path, None, "new")
    assert old.path is not None
    write_json_store(old.path, [seed_record(i) for i in range(500)])
    set_config(isolated_home, old)
    holder = filelock.FileLock(f"{old.path}.lock")
    holder.acquire()
    try:
        moving = subprocess.Popen(
            [sys.executable, "-m", "minsky", "sessiondb", "migrate", "to", "sqlite", *new.flags(), "--set-default"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while not Path(f"{old.path}.lock.wanted").exists():
            assert moving.poll() is None, moving.communicate()[1]
            time.sleep(0.01)
        # Configured for the old store whatever the switch does: exit 0 means a write into it.
        env = {**os.environ, "MINSKY_SESSIONDB_BACKEND": "json", "MINSKY_SESSIONDB_DB_PATH": str(old.path)}
        writers = [
            subprocess.Popen(
                [sys.executable, "-m", "minsky", "session", "start", f"late-{k}", "--repo", "https://h/w/repo"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(WRITERS)
        ]
        time.sleep(5)  # let them reach the lock (one arriving later finds the mark: the test only loses power)
    finally:
        holder.release()
    assert moving.wait(timeout=300) == 0, moving.communicate()[1]
    codes = [w.wait(timeout=300) for w in writers]
    assert codes == [MOVED] * WRITERS, f"writers' exit codes {codes}: one took the lock before the migration"
    assert not [name for name in old.read() if name.startswith("late-")], "a writer wrote into the store being left"
