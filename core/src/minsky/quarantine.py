"""``sessiondb verify --repair``: what cannot be read is moved aside, never deleted.

A backend that can repair offers ``quarantine_unreadable(directory)``: it writes
the unreadable entries, as found, with ``write_quarantine`` (before it removes
them from the store) and returns what it moved.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minsky.atomic import write_bytes_atomic


def write_quarantine(directory: Path, *, backend: str, location: str, entries: list[Any]) -> Path:
    moment = datetime.now(UTC)
    path = directory / f"quarantine-{backend}-{moment:%Y-%m-%dT%H-%M-%S}-{moment.microsecond:06d}Z.json"
    doc = {"backend": backend, "location": location, "quarantinedAt": moment.isoformat(), "entries": entries}
    write_bytes_atomic(
        path, json.dumps(doc, ensure_ascii=False, indent=2, default=str).encode("utf-8", "surrogatepass")
    )
    return path
