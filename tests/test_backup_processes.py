"""Backups under real processes: many at once into one directory, and runs killed or
interrupted while a backup is being written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import run_minsky
from minsky.backup import open_backup, write_backup
from minsky.testing.records import generated_records
from reliability import fork, scaled, wait_ok

pytestmark = pytest.mark.slow
PROCESSES = 12
PEAK_RSS = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-m", "minsky", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status), file=sys.stderr)
"""


def backups_in(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("session-backup-"))


def temps_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".minsky-tmp"))


def assert_valid(path: Path, count: int) -> None:
    with open_backup(path) as backup:
        backup.check()
        assert backup.count() == count and backup.meta is not None


def json_store(path: Path, count: int, prefix: str = "gen") -> Path:
    path.write_text(json.dumps({"sessions": [{"session": f"{prefix}-{i:06d}", "n": i} for i in range(count)]}))
    return path


def migration(store: Path, db: Path, backups: Path) -> list[str]:
    return [sys.executable, "-m", "minsky", "sessiondb", "migrate", "to", "sqlite", "--from", "json",
            "--json-path", str(store), "--sqlite-path", str(db), "--backup", str(backups), "--json"]  # fmt: skip


def test_concurrent_backup_migrations_make_as_many_backups_as_successful_runs(tmp_path: Path) -> None:
    store = json_store(tmp_path / "s.json", 50)
    directory = tmp_path / "backups"
    runs = [
        subprocess.Popen(migration(store, tmp_path / f"t{n}.db", directory), stdout=subprocess.PIPE, text=True)
        for n in range(scaled(PROCESSES))
    ]
    reported = []
    for run in runs:
        out, _ = run.communicate(timeout=300)
        if run.returncode == 0:
            reported.append(Path(json.loads(out)["backup"]))
    assert reported, "no migration succeeded"
    assert len(set(reported)) == len(reported) and sorted(reported) == backups_in(directory)
    for path in reported:
        assert_valid(path, 50)
    assert temps_in(directory) == []


def test_backups_in_the_same_millisecond_take_distinct_names(tmp_path: Path) -> None:
    """Every worker uses the same moment: each backup still gets a name of its own."""
    directory = tmp_path / "backups"
    moment = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    ready, go = os.pipe()

    def worker(n: int) -> None:
        os.read(ready, 1)  # all start together
        records = generated_records(20, f"w{n}")
        path, _ = write_backup(directory, records, source_backend="json", source_location="x", base_dir="", now=moment)
        (tmp_path / f"result-{n}").write_text(str(path))

    pids = [fork(lambda n=n: worker(n)) for n in range(scaled(PROCESSES))]
    os.write(go, b"x" * len(pids))
    for pid in pids:
        wait_ok(pid)
    made = sorted(Path((tmp_path / f"result-{n}").read_text()) for n in range(len(pids)))
    assert made == backups_in(directory) and len(set(made)) == len(pids)
    assert {p.name for p in made} == {"session-backup-2026-01-02T03-04-05-678Z.json"} | {
        f"session-backup-2026-01-02T03-04-05-678Z-{n}.json" for n in range(2, len(pids) + 1)
    }
    for path in made:
        assert_valid(path, 20)


def start_backup_and_wait_for_its_temp(tmp_path: Path, directory: Path) -> subprocess.Popen[str]:
    """A migration of a big store with --backup, caught while its backup is being written."""
    store = tmp_path / "big.json"
    if not store.exists():
        json_store(store, 300_000)
    run = subprocess.Popen(
        migration(store, tmp_path / f"t-{time.monotonic_ns()}.db", directory),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (directory.exists() and temps_in(directory)):
        assert run.poll() is None, f"the run ended before its backup was caught: {run.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    return run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["INT", "TERM", "KILL"])
def test_a_run_stopped_while_writing_its_backup_leaves_no_temp_behind(sig: signal.Signals, tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    run = start_backup_and_wait_for_its_temp(tmp_path, directory)
    run.send_signal(sig)
    _, err = run.communicate(timeout=120)
    if sig == signal.SIGINT:  # handled: the temp is gone at once, and the exit code says why
        assert run.returncode == 130 and "Traceback" not in err
        assert temps_in(directory) == []
    assert backups_in(directory) == []
    # The next backup into the directory removes what a killed run left, and only that.
    done = run_minsky(*migration(json_store(tmp_path / "small.json", 3), tmp_path / "after.db", directory)[3:])
    assert done.returncode == 0, done.stderr
    assert temps_in(directory) == []
    [made] = backups_in(directory)
    assert_valid(made, 3)


def test_a_temp_still_being_written_is_not_removed_by_another_run(tmp_path: Path) -> None:
    directory = tmp_path / "backups"
    slow = start_backup_and_wait_for_its_temp(tmp_path, directory)
    try:
        held = temps_in(directory)
        done = run_minsky(*migration(json_store(tmp_path / "small.json", 3), tmp_path / "after.db", directory)[3:])
        assert done.returncode == 0, done.stderr
        now = temps_in(directory)
        assert slow.poll() is not None or set(held) <= set(now)  # listed while it still ran: still there
    finally:
        out, err = slow.communicate(timeout=300)
    assert slow.returncode == 0, err
    assert len(backups_in(directory)) == 2 and temps_in(directory) == []
    assert_valid(Path(json.loads(out)["backup"]), 300_000)


def test_restoring_a_big_backup_takes_flat_memory(tmp_path: Path) -> None:
    """A 200 MB backup is checked and restored in a fraction of its size (about 80 MB: it is streamed)."""
    backup = tmp_path / "big-backup.json"
    pad = "x" * 1_000
    with backup.open("w") as handle:
        handle.write('{"sessions": [\n')
        for i in range(200_000):
            handle.write(("," if i else "") + json.dumps({"session": f"s{i:06d}", "pad": pad}) + "\n")
        handle.write("]}\n")
    size = backup.stat().st_size
    args = ["sessiondb", "restore", "--backup", str(backup), "--to", "sqlite", "--sqlite-path", str(tmp_path / "r.db")]
    # A small launcher forks the restore: a child's peak RSS counts the image it was forked
    # from (Linux keeps it across exec), and this test process is big by now.
    run = subprocess.run([sys.executable, "-c", PEAK_RSS, *args, "--json"], capture_output=True, text=True, timeout=600)
    *_, last = run.stderr.splitlines()
    peak_kib, code = map(int, last.split())
    assert code == 0, run.stderr
    assert json.loads(run.stdout)["counts"]["written"] == 200_000
    # Reading it whole would take twice its size at least; streamed, records are only batched.
    assert peak_kib * 1024 < size * 3 // 4, (peak_kib, size)
