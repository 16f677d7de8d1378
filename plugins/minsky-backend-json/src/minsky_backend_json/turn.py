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
    # Made aside, locked, then renamed into place: a writer never finds the file unlocked while
    # the claim is live (it would take it for one a killed migration left).
    aside = wanted.with_name(f"{wanted.name}.{os.getpid()}")
    try:
        fd: int | None = os.open(aside, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:  # a read-only directory: no claim; writers fall back to their own timeout
        fd = None
    owned = False
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, str(os.getpid()).encode("ascii"))
            if not active_at(wanted):  # another live migration's claim stays: it goes first
                os.replace(aside, wanted)
                owned = True
        except OSError:
            owned = False
        if not owned:
            with contextlib.suppress(OSError):
                aside.unlink()
    try:
        yield
    finally:
        if owned and fd is not None and _same_file(fd, wanted):
            with contextlib.suppress(OSError):
                wanted.unlink()  # before the flock goes: a writer never finds a live-looking stale claim
        if fd is not None:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), path.stat()
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def active(lock: Path) -> bool:
    """Whether another process's migration has claimed the lock (and is still running)."""
    return active_at(_wanted(lock))


def active_at(claim: Path) -> bool:
    try:
        fd = os.open(claim, os.O_RDONLY)
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
