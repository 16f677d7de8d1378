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
    try:
        fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # a read-only directory: writers fail after their own timeout, as before
        fd = None
    owned = False
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode("ascii"))
            owned = True
        except OSError:  # another migration of this store holds it
            pass
    try:
        yield
    finally:
        if owned:
            with contextlib.suppress(OSError):
                path.unlink()
        if fd is not None:
            os.close(fd)


def active(db: Path) -> bool:
    """Whether another process's migration is in its last step on this database."""
    try:
        fd = os.open(_claim_path(db), os.O_RDONLY)
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
