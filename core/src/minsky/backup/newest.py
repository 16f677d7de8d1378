"""A directory's newest backup, by minsky's own metadata rather than by file name.

Only regular files of the current user that end with minsky's ``minskyBackup``
block are candidates; the newest is the one whose block says it was made last.
Files minsky did not write (the original Minsky's backups, anything else named
``session-backup-*.json``) are restored only when named explicitly; symlinks,
FIFOs, devices and other users' files are never picked.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from minsky.backup.files import open_directory, open_regular, shown, trusted_owner, warn
from minsky.backup.layout import META_KEY
from minsky.backup.read import Backup
from minsky.backup.write import PREFIX
from minsky.errors import MinskyError, StoreError, UsageError

TAIL_BYTES = 64 * 1024
_MARK = f'"{META_KEY}": '.encode()


def trailer(fd: int, size: int) -> dict[str, Any] | None:
    """The ``minskyBackup`` block minsky writes as the last member of a backup, read from
    the file's tail only (a directory of big backups is ranked without reading them)."""
    start = max(0, size - TAIL_BYTES)
    tail = os.pread(fd, size - start, start)
    at = tail.rfind(b"\n" + _MARK)
    if at < 0:
        return None
    try:
        text = tail[at + 1 + len(_MARK) :].decode("utf-8")
        meta, end = json.JSONDecoder().raw_decode(text)
    except (UnicodeDecodeError, ValueError):
        return None
    if text[end:].strip() != "}" or not isinstance(meta, dict) or meta.get("format") != 1:
        return None
    return meta


def _created(meta: dict[str, Any]) -> datetime | None:
    try:
        moment = datetime.fromisoformat(str(meta.get("createdAt")))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


Candidate = tuple[datetime, int, str, tuple[int, int]]


def _look(dir_fd: int, name: str) -> Candidate | str | None:
    """A candidate (time, mtime, name, identity); the name of a file minsky did not write;
    or None for what is never picked (not a regular file, another user's)."""
    try:
        fd = open_regular(name, dir_fd=dir_fd)
    except MinskyError:
        return None
    try:
        info = os.fstat(fd)
        if not trusted_owner(info.st_uid):
            return None
        meta = trailer(fd, info.st_size)
    except OSError:
        return None
    finally:
        os.close(fd)
    created = _created(meta) if meta is not None else None
    if created is None:
        return name
    return created, info.st_mtime_ns, name, (info.st_dev, info.st_ino)


@attrs.frozen
class Chosen:
    """The backup file a restore opens; ``identity`` when it was picked from a directory."""

    path: Path
    identity: tuple[int, int] | None = None

    def confirm(self, backup: Backup) -> None:
        """The file opened for the restore must be the one picked, still minsky's own."""
        if self.identity is not None and (backup.identity != self.identity or backup.meta is None):
            raise StoreError(f"{shown(self.path)} was replaced while minsky chose it; run the restore again")


def resolve_backup(path: Path) -> Chosen:
    """A file as given; a directory means the newest backup minsky wrote there."""
    try:
        is_dir = path.is_dir()
    except OSError:
        is_dir = False
    return newest_backup(path) if is_dir else Chosen(path)


def newest_backup(directory: Path) -> Chosen:
    dir_fd = open_directory(directory, create=False)
    try:
        candidates: list[Candidate] = []
        foreign: list[str] = []
        refused: list[str] = []
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            name = entry.name
            if not (name.startswith(PREFIX) and name.endswith(".json")):
                continue
            look = _look(dir_fd, name)
            if look is None:
                refused.append(name)
            elif isinstance(look, str):
                foreign.append(name)
            else:
                candidates.append(look)
    finally:
        os.close(dir_fd)
    if refused:
        warn(
            f"ignored {len(refused)} file(s) in {shown(directory)} that are symlinks, not regular files, "
            f"or another user's: {', '.join(shown(n) for n in refused[:5])}"
        )
    example = f"{shown(directory / foreign[0])}" if foreign else ""
    if not candidates:
        if foreign:
            raise UsageError(
                f"{shown(directory)} holds no backup minsky wrote; {len(foreign)} other backup file(s) "
                f"(the original Minsky's?) are restored only when named",
                hint=f"name one: --backup {example}",
            )
        raise UsageError(f"no {PREFIX}*.json backup in {shown(directory)}")
    if foreign:
        warn(
            f"ignored {len(foreign)} file(s) in {shown(directory)} that minsky did not write "
            f"(restore one by naming it, e.g. --backup {example})"
        )
    *_, name, identity = max(candidates)
    return Chosen(directory / name, identity)
