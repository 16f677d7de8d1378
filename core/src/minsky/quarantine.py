"""``sessiondb verify --repair``: what cannot be read is moved aside, never deleted.

A backend that can repair offers ``quarantine_unreadable(directory)``: it writes
the unreadable entries, as found, with ``write_quarantine`` (before it removes
them from the store) and returns what it moved. Each repair gets a file of its
own: the name is taken exclusively, as a backup's is, so two repairs in the same
microsecond never write over each other.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from minsky.backup.files import create_exclusive, open_directory
from minsky.codec import as_found_bytes


def _names(stem: str) -> Iterator[str]:
    yield f"{stem}.json"
    number = 2
    while True:
        yield f"{stem}-{number}.json"
        number += 1


def write_quarantine(directory: Path, *, backend: str, location: str, entries: list[Any]) -> Path:
    moment = datetime.now(UTC)
    stem = f"quarantine-{backend}-{moment:%Y-%m-%dT%H-%M-%S}-{moment.microsecond:06d}Z"
    doc = {"backend": backend, "location": location, "quarantinedAt": moment.isoformat(), "entries": entries}
    # As found, whatever the entries hold (tokens such as 1e400 and lone surrogates included).
    data = as_found_bytes(doc, indent=2)

    def fill(handle: IO[bytes]) -> None:
        handle.write(data)

    dir_fd = open_directory(directory, create=True)
    try:
        path, _ = create_exclusive(directory, dir_fd, "quarantine", _names(stem), fill)
    finally:
        os.close(dir_fd)
    return path
