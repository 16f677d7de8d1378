"""Files that are complete or absent: temp file in the same directory, fsync,
``os.replace``, fsync of the directory. Everything created is 0600 in 0700 dirs.
A symlink is followed: its target is replaced, and the link stays a link.

minsky writes only minsky stores: ``refuse_foreign_json`` and ``refuse_foreign_sqlite``
are what a backend calls before it writes into a file that already exists. ``file_token``
is a file store's ``change_token`` (see ``minsky.backend.ChangeTokenStore``)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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
    """Yield a file to fill; on clean exit it replaces ``path`` (or a symlink's target) in one step."""
    path = Path(os.path.realpath(path))
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


def _foreign(path: Path, expected: str) -> StoreError:
    return StoreError(
        f"{path} exists but is not a minsky session store ({expected}); it was left untouched",
        hint="check the path given, or sessiondb.dbPath and where it comes from: minsky config show",
    )


_WS = re.compile(r"[ \t\n\r]*")


def _skip(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def json_looks_like_store(text: str) -> bool:
    """An array, or an object with a top-level ``sessions`` key. Only the keys before
    ``sessions`` are parsed (it comes first in every store minsky or the original wrote).
    Text that is not JSON at all passes: the store's own reader names the problem."""
    pos = _skip(text, 0)
    if pos == len(text) or text[pos] == "[":
        return True
    decoder = json.JSONDecoder()
    if text[pos] != "{":
        try:
            decoder.raw_decode(text, pos)
        except ValueError:
            return True
        return False  # a string, number, true, false or null: no store
    try:
        pos = _skip(text, pos + 1)
        while text[pos] == '"':
            key, pos = decoder.raw_decode(text, pos)
            if key == "sessions":
                return True
            pos = _skip(text, pos)
            if text[pos] != ":":
                return True
            _, pos = decoder.raw_decode(text, _skip(text, pos + 1))
            pos = _skip(text, pos)
            if text[pos] != ",":
                return False
            pos = _skip(text, pos + 1)
    except (ValueError, IndexError):
        return True
    return False


FOREIGN_CHECK_BYTES = 1 << 20


def refuse_foreign_json(path: Path) -> None:
    """Refuse (``StoreError``, exit 4) to write an existing JSON file that is not a session store.
    Only its head is read (``FOREIGN_CHECK_BYTES``), so a write to a large store stays in flat
    memory; a file whose keys before ``sessions`` run past it passes here, and the store's own
    read (which must find the ``sessions`` list before it writes) refuses it."""
    try:
        with path.open("rb") as handle:
            data = handle.read(FOREIGN_CHECK_BYTES)
    except OSError:
        return  # absent, or unreadable: the store's own read says which
    if not json_looks_like_store(data.decode("utf-8", "replace")):
        raise _foreign(path, "expected a JSON array or an object with 'sessions'")


def refuse_foreign_sqlite(conn: Any, path: Path, tables: frozenset[str]) -> None:
    """Refuse to write an SQLite database whose tables include none of ``tables``
    (minsky's or the original's); an empty database is fine. ``conn`` is open on ``path``."""
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if names and not names & tables:
        raise _foreign(path, f"its tables are {', '.join(sorted(names))}")


# -- claims: a migration's last step, advertised to a store's writers (the JSON and SQLite plugins) --


@contextlib.contextmanager
def claim_file(wanted: Path) -> Iterator[None]:
    """Hold ``wanted`` as a live claim (this pid inside, an ``flock`` on it) for the ``with``
    block. The kernel drops the flock when the process ends, so a claim left by a killed
    process holds nobody up (``claimed`` says False)."""
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
            if not claimed(wanted):  # another live migration's claim stays: it goes first
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


def claimed(claim: Path) -> bool:
    """Whether another live process holds the claim ``claim`` (see ``claim_file``)."""
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


# -- change tokens: whether a file may have been written since an earlier look --------------------

RACY_NS = 2_000_000_000
"""How recent a timestamp may be before ``file_token`` cannot tell (git's "racy clean" rule)."""
clock = time.time_ns  # what "now" is to ``file_token`` (tests move it forward)


def file_token(path: Path, *, ctime: bool = True, absent: tuple[()] | None = None) -> tuple[int, ...] | None:
    """A cheap token of ``path``: its device, inode, size, mtime and ctime (``ctime=False`` leaves
    the ctime out, for a file something touches without writing). Two tokens are equal only if
    the file was not written in between: every write moves mtime and ctime, a replacing rename
    changes the inode, and the ctime cannot be set back. A symbolic link is followed, and the
    link's own inode and ctime are in the token too (pointed elsewhere and back, it is new).

    None when it cannot tell: the file cannot be stat'ed, or a timestamp is within ``RACY_NS`` of
    now. File timestamps tick coarsely (every few milliseconds; a file server's clock may lag), so
    a file written in the tick the token is taken could be written again, same size, with the same
    timestamps; one written seconds before cannot. An absent file is None too, unless ``absent``
    is given: for a file whose content may not come and go unseen (a store's own file may: it can
    be created, read and removed between two looks). ``absent`` also stands for an empty file
    (which has no timestamps worth a look: nothing is in it either way)."""
    try:
        here = path.lstat()
        found = path.stat() if stat.S_ISLNK(here.st_mode) else here
    except FileNotFoundError:
        return absent
    except OSError:
        return None
    if absent is not None and found.st_size == 0:
        return absent
    stamps = (found.st_mtime_ns, found.st_ctime_ns) if ctime else (found.st_mtime_ns,)
    link = () if here is found else (here.st_ino, here.st_ctime_ns)  # a link pointed elsewhere and back is new
    if max((*stamps, *link[1:])) >= clock() - RACY_NS:  # recent, or in the future: cannot tell
        return None
    return (found.st_dev, found.st_ino, found.st_size, *stamps, *link)
