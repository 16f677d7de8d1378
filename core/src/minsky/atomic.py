"""Files that are complete or absent: temp file in the same directory, fsync,
``os.replace``, fsync of the directory. Everything created is 0600 in 0700 dirs."""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from minsky.errors import StoreError

TEMP_PREFIX = ".minsky-tmp-"


def ensure_private_dir(path: Path) -> None:
    """Create a directory (and parents) as 0700; existing ones are left as they are."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise os_error_to_store_error(exc, path) from None


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def os_error_to_store_error(exc: OSError, path: Path) -> StoreError:
    reasons = {
        errno.ENOSPC: "no space left on device",
        errno.EFBIG: "file too large (no space left)",
        errno.EDQUOT: "disk quota exceeded",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only file system",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return StoreError(f"cannot write {path}: {reason}")


@contextlib.contextmanager
def atomic_writer(path: Path, *, binary: bool = True) -> Iterator[IO[bytes]]:
    """Yield a file to fill; on clean exit it replaces ``path`` in one step."""
    directory = path.parent
    ensure_private_dir(directory)
    # Signals wait while the temp file comes into being, and are let through inside the
    # ``try``: an interrupt landing between its creation and the ``try`` would leave it behind.
    held = hold_signals()
    tmp: Path | None = None
    try:
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=directory)
        except OSError as exc:
            raise os_error_to_store_error(exc, path) from None
        tmp = Path(tmp_name)
        release_signals(held)
        held = None
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except OSError as exc:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise os_error_to_store_error(exc, path) from None
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    finally:
        release_signals(held)


_HELD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


def hold_signals() -> set[int | signal.Signals] | None:
    """Block the termination signals (main thread only); returns the mask to restore."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)


def release_signals(previous: set[int | signal.Signals] | None) -> None:
    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    with atomic_writer(path) as handle:
        handle.write(data)


def remove_stale_temps(path: Path) -> None:
    """Remove temp files a killed writer left beside ``path``. Call only under its lock."""
    with contextlib.suppress(OSError):
        for stale in path.parent.glob(f"{TEMP_PREFIX}{path.name}.*"):
            stale.unlink(missing_ok=True)
