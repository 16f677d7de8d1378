"""A migration's last step holds the SQLite source's write lock while it reads the late changes,
marks the store moved and switches the default: no writer may commit in between.

POSIX locks belong to a process and a file: closing any descriptor of the file drops them all,
SQLite's own included. The locked read opened and closed the database file to check its header,
which dropped the lock; a writer closing its connection then took itself for the last one,
checkpointed and deleted the WAL under the lock, and the next writer committed into a fresh
one, unlocked and unmarked: exit 0, and a change the migration never copied (found by adversary
helper-42 after a live migration lost a delete under load).
"""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from minsky.backend import MovedMark
from minsky.catchup import Snapshot, Switch, finish_move, short_digest
from minsky.codec import digest_form, record_from_dict
from minsky.errors import StoreError
from minsky.model import SessionRecord
from minsky_backend_json.store import JsonStore
from minsky_backend_sqlite.held import Connection, held
from minsky_backend_sqlite.store import SqliteStore


def record(name: str) -> SessionRecord:
    return record_from_dict({"session": name, "repoName": "r/x", "createdAt": "2025-01-01T00:00:00.000Z"})


def source_of(path: Path, count: int = 3) -> SqliteStore:
    store = SqliteStore(path)
    for i in range(count):
        store.insert(record(f"s-{i}"))
    return store


TRY_TO_WRITE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    conn.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
    sys.exit(3)
"""


class WriterA:
    """Another process's connection, opened before the lock and closed when told: were this
    process's locks gone, it would take itself for the last one and remove the WAL."""

    def __init__(self, path: Path) -> None:
        self.go_r, self.go_w = os.pipe()
        self.said_r, self.said_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover - the child
            conn = sqlite3.connect(path)
            conn.execute("SELECT count(*) FROM sessions").fetchall()
            os.write(self.said_w, b"o")
            os.read(self.go_r, 1)
            conn.close()
            os.write(self.said_w, b"c")
            os._exit(0)
        os.read(self.said_r, 1)

    def close(self) -> None:
        os.write(self.go_w, b"g")
        os.read(self.said_r, 1)
        os.waitpid(self.pid, 0)
        for fd in (self.go_r, self.go_w, self.said_r, self.said_w):
            os.close(fd)


READS: dict[str, Callable[[SqliteStore], object]] = {
    "read": lambda s: list(s.read()),
    "read_canonical": lambda s: list(s.read_canonical()),
    "keys": lambda s: list(s.keys()),
    "count": lambda s: s.count(),
    "get": lambda s: s.get("s-1"),
    "change_token": lambda s: s.change_token(),
    "moved": lambda s: s.moved(),
    "verify": lambda s: s.verify(),
}


@pytest.mark.parametrize("read", READS)
def test_reading_the_store_under_its_write_lock_keeps_the_lock(tmp_path: Path, read: str) -> None:
    path = tmp_path / "old.db"
    store = source_of(path)
    other = WriterA(path)
    with store.write_lock():
        READS[read](store)
        other.close()
        assert Path(f"{path}-wal").exists(), "another process removed the WAL under the lock"
        refused = subprocess.run([sys.executable, "-c", TRY_TO_WRITE, str(path)], capture_output=True, text=True)
        assert refused.returncode == 3 and "locked" in refused.stdout, "a writer began under the lock"


DELETE = """
import sys
from pathlib import Path
from minsky.errors import MinskyError
from minsky_backend_sqlite.store import SqliteStore
try:
    SqliteStore(Path(sys.argv[1])).delete("s-1")
except MinskyError as exc:
    print(type(exc).__name__)
    sys.exit(13)
"""


def test_a_writer_that_closes_during_the_locked_step_lets_no_other_writer_in(tmp_path: Path) -> None:
    """Writer A committed just before the lock and closes its connection during the locked
    step (a loaded machine); writer B's delete must wait, find the moved mark and write nothing."""
    path, new = tmp_path / "old.db", tmp_path / "new.json"
    source = source_of(path)
    target = JsonStore(new)
    snapshot = Snapshot()
    records = list(source.read())
    with target.bulk_writer() as writer:
        writer.write(records)
    for each in records:
        snapshot.digests[each.session] = short_digest(digest_form(each))

    writer_a = WriterA(path)
    deleting: list[subprocess.Popen[str]] = []

    def switch() -> None:  # under the lock, after the locked read: A closes, then B tries
        writer_a.close()
        deleting.append(subprocess.Popen([sys.executable, "-c", DELETE, str(path)], stdout=subprocess.PIPE, text=True))
        time.sleep(2)  # B, were the lock gone, would have committed by now

    mark = MovedMark(backend="json", location=str(new), moved_at="2025-01-01T00:00:00Z", command="x")
    finish_move(source, target, snapshot, "fail", admit=lambda r: True, switch=Switch(mark=mark, apply=switch))
    assert deleting[0].wait(timeout=60) == 13, "a writer committed in the old store while the move held its lock"
    assert "s-1" in {r.session for r in SqliteStore(path).read()} and "s-1" in {r.session for r in target.read()}
    assert SqliteStore(path).moved() is not None


def test_a_connection_refused_while_opening_holds_its_file_no_longer(tmp_path: Path) -> None:
    """Adversary helper-43: one that failed inside ``_connect`` stayed open (and counted) until the
    cycle collector ran; meanwhile the header check was skipped for its file."""
    path = tmp_path / "damaged.db"
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    gc.disable()
    try:
        with pytest.raises(StoreError):
            SqliteStore(path).insert(record("s-0"))
        assert not held(path)
    finally:
        gc.enable()


def test_a_close_refused_in_another_thread_keeps_the_file_held(tmp_path: Path) -> None:
    """Adversary helper-43: a close that raised (from another thread) released the count while
    the connection stayed open, and a header check could then drop its locks."""
    path = tmp_path / "s.db"
    source_of(path, 1)
    conn = sqlite3.connect(path, factory=Connection)
    conn.hold(path)
    refused: list[BaseException] = []

    def close() -> None:
        try:
            conn.close()
        except sqlite3.ProgrammingError as exc:
            refused.append(exc)

    thread = threading.Thread(target=close)
    thread.start()
    thread.join()
    assert refused and held(path)
    conn.close()
    assert not held(path)
