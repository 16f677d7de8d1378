"""A migration's turn at the lock file.

filelock polls, so it is not fair: writers that keep taking the lock one after another can
starve a migration that asks for it (its ``--set-default`` step) past its timeout. The
migration first claims ``<store>.lock.wanted`` (its pid inside, an ``flock`` held on it for as
long as it wants or holds the store's lock); writers arriving then give way until the claim
is gone before they queue, so the migration waits for the writers already queued, not for
every later one. A writer whose own wait runs out while the claim is live waits on: the
step it waits for is bounded, and it must not fail because a migration is finishing.

The claim is live only while its ``flock`` is held, which the kernel releases when the
process ends: a claim left by a killed migration (or a reused pid) holds nobody up.
"""

from __future__ import annotations

import contextlib
import fcntl
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
    try:
        fd: int | None = os.open(wanted, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        fd = None
    owned = False
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            owned = True
        except OSError:  # another migration of this store has claimed it: it goes first
            pass
    try:
        yield
    finally:
        if owned:
            with contextlib.suppress(OSError):
                wanted.unlink()  # before the flock goes: a writer never finds a live-looking stale claim
        if fd is not None:
            os.close(fd)


def active(lock: Path) -> bool:
    """Whether another process's migration has claimed the lock (and is still running)."""
    try:
        fd = os.open(_wanted(lock), os.O_RDONLY)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 32).strip() != str(os.getpid()).encode("ascii")
        except OSError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)  # nobody holds it: left behind by a migration that ended
        return False
    finally:
        os.close(fd)


def give_way(lock: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and active(lock):
        time.sleep(POLL)
