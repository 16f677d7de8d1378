"""Which database files this process has SQLite connections on.

POSIX record locks belong to a process and a file, not to a descriptor: closing *any*
descriptor of a file drops every lock the process holds on it, SQLite's own included
(sqlite.org, "How To Corrupt An SQLite Database File", 2.2). So a file one of our connections
has open is never opened and closed beside it. Reading its header under a migration's write
lock did exactly that: the lock was gone, a writer closing its connection took itself for the
last one, checkpointed and deleted the WAL under the lock, and the next writer committed into a
fresh one, unlocked and unmarked, a change the migration never copied (adversary helper-42).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_HELD: dict[tuple[int, int], int] = {}  # (device, inode) -> connections of this process open on it


def _key(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino


class Connection(sqlite3.Connection):
    """A connection counted as holding its file from ``hold`` until it is closed or collected."""

    _held: tuple[int, int] | None = None

    def hold(self, path: Path) -> None:
        self._release()
        self._held = _key(path)
        if self._held is not None:
            _HELD[self._held] = _HELD.get(self._held, 0) + 1

    def close(self) -> None:
        super().close()  # released only once closed: a close refused (another thread's) keeps it held
        self._release()

    def __del__(self) -> None:  # collected unclosed (an error while it was being set up)
        self._release()

    def _release(self) -> None:
        key, self._held = self._held, None
        if key is not None:
            left = _HELD.pop(key, 1) - 1
            if left > 0:
                _HELD[key] = left


def held(path: Path) -> bool:
    """Whether this process has a connection open on the database at ``path``: then it is an
    SQLite database (it was checked when that connection opened), and must not be opened aside."""
    key = _key(path)
    return key is not None and key in _HELD


__all__ = ["Connection", "held"]
