"""A migration's turn at the lock file.

filelock polls, so it is not fair: writers that keep taking the lock one after another can
starve a migration that asks for it (its ``--set-default`` step) past its timeout. The
migration first leaves ``<store>.lock.wanted`` holding its pid; writers arriving then give way
until it is gone (or its process has ended, or their own timeout has passed) before they
queue, so the migration waits for the writers already queued, not for every later one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

POLL = 0.02


def _wanted(lock: Path) -> Path:
    return Path(f"{lock}.wanted")


@contextlib.contextmanager
def claim(lock: Path) -> Iterator[None]:
    wanted = _wanted(lock)
    with contextlib.suppress(OSError):
        wanted.write_text(str(os.getpid()), "ascii")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            wanted.unlink()


def give_way(lock: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    wanted = _wanted(lock)
    while time.monotonic() < deadline:
        try:
            pid = int(wanted.read_text("ascii") or 0)
        except (OSError, ValueError):
            return
        if pid == os.getpid() or not _alive(pid):
            return
        time.sleep(POLL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
