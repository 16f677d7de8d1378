"""Writing a backup: the Minsky JSON store format plus a ``minskyBackup`` block
(source, count, store digest, minsky version, time), streamed into a file that
takes a name no other backup has.

Two runs in the same millisecond get two files (``…-123Z.json``, ``…-123Z-2.json``):
the name is taken with ``link(2)``, which never replaces an existing file or
follows a symlink planted under that name.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from minsky import __version__
from minsky.backup.files import create_exclusive, open_directory
from minsky.backup.layout import META_KEY
from minsky.codec import StoreDigest, as_found_bytes, record_to_dict
from minsky.model import SessionRecord

PREFIX = "session-backup-"
SAME_MOMENT_LIMIT = 10_000


def backup_name(moment: datetime) -> str:
    """``session-backup-2025-01-20T10-30-00-000Z.json``"""
    moment = moment.astimezone(UTC)
    return f"{PREFIX}{moment:%Y-%m-%dT%H-%M-%S}-{moment.microsecond // 1000:03d}Z.json"


def backup_names(first: str) -> Iterator[str]:
    """``first``, then ``…Z-2.json``, ``…Z-3.json``… for backups made in the same millisecond."""
    yield first
    stem, dot, suffix = first.rpartition(".")
    for number in range(2, SAME_MOMENT_LIMIT):
        yield f"{stem}-{number}{dot}{suffix}"


def encode(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError):  # a record no store can hold exactly: kept as found
        return as_found_bytes(value)


def write_backup(
    directory: Path,
    records: Iterable[SessionRecord],
    *,
    source_backend: str,
    source_location: str,
    base_dir: str,
    now: datetime | None = None,
    path: Path | None = None,
) -> tuple[Path, StoreDigest]:
    """Stream ``records`` into a new backup file in ``directory`` (named for ``now``, or
    ``path``'s name; a number is added when that name is taken); return its path and digest."""
    moment = now or datetime.now(UTC)
    first = path.name if path is not None else backup_name(moment)

    def fill(handle: IO[bytes]) -> StoreDigest:
        digest = StoreDigest()
        handle.write(b'{"sessions": [')
        for index, record in enumerate(records):
            digest.add_record(record)
            handle.write(b"\n  " if index == 0 else b",\n  ")
            handle.write(encode(record_to_dict(record)))
        meta = {
            "format": 1,
            "sourceBackend": source_backend,
            "sourceLocation": source_location,
            "count": digest.count,
            "storeDigest": digest.hexdigest,
            "minskyVersion": __version__,
            "createdAt": moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        handle.write(b"\n],\n" + b'"baseDir": ' + encode(base_dir) + b",\n")
        # The block is the last line: ``newest.trailer`` ranks backups by reading only their tails.
        handle.write(f'"{META_KEY}": '.encode() + encode(meta) + b"}\n")
        return digest

    dir_fd = open_directory(directory, create=True)
    try:
        return create_exclusive(directory, dir_fd, PREFIX.rstrip("-"), backup_names(first), fill)
    finally:
        os.close(dir_fd)
