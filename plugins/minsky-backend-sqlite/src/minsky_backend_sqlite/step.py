"""A migration's last step, advertised to the store's writers.

While ``migrate to --set-default`` holds the database's write lock (copying late changes,
marking the store moved), it holds an ``flock`` on ``<db>.migrating`` (its pid inside).
A writer whose busy timeout runs out while that claim is live waits on instead of failing:
the step is bounded, and the writer then finds the moved mark and says where to go. The
kernel drops the ``flock`` when the process ends, so a file left by a killed migration
holds nobody up. (The JSON plugin's ``turn`` does the same for its lock file; plugins are
installed apart, so each carries its own copy.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def _claim_path(db: Path) -> Path:
    return Path(f"{db}.migrating")


@contextlib.contextmanager
def claim(db: Path) -> Iterator[None]:
    path = _claim_path(db)
    # Made aside, locked, then renamed into place: a writer never finds the file unlocked while
    # the claim is live (it would take it for one a killed migration left).
    aside = path.with_name(f"{path.name}.{os.getpid()}")
    try:
        fd: int | None = os.open(aside, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError:  # a read-only directory: no claim; writers fall back to their own timeout
        fd = None
    owned = False
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, str(os.getpid()).encode("ascii"))
            if not active_at(path):  # another live migration's claim stays: it goes first
                os.replace(aside, path)
                owned = True
        except OSError:
            owned = False
        if not owned:
            with contextlib.suppress(OSError):
                aside.unlink()
    try:
        yield
    finally:
        if owned and fd is not None and _same_file(fd, path):
            with contextlib.suppress(OSError):
                path.unlink()  # before the flock goes: a writer never finds a live-looking stale claim
        if fd is not None:
            os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), path.stat()
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def active(db: Path) -> bool:
    """Whether another process's migration is in its last step on this database."""
    return active_at(_claim_path(db))


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
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
