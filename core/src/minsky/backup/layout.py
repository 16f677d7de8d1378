"""The shapes a backup file comes in, and how to tell them apart while streaming.

- minsky's own: ``{"sessions": [...], "baseDir": ..., "minskyBackup": {...}}``
  (any Minsky JSON store ``{"sessions": [...], ...}`` reads the same way);
- the original Minsky's first backups: ``{"timestamp", "version": "1.0",
  "data": {"sessions": [...], "baseDir"}}``;
- the original's later ``session-backup-<epoch ms>.json``: the store as read,
  here a bare array ``[...]`` (also how the original kept ``session-db.json``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs

from minsky.backup.scan import Scanner
from minsky.errors import StoreError

META_KEY = "minskyBackup"
_EPOCH_NAME = re.compile(r"session-backup-(\d{12,14})\.json")


@attrs.define
class Layout:
    """What a streaming pass learned about the document around the records."""

    form: str = ""  # "array" | "store" | "wrapper"
    fields: dict[str, Any] = attrs.field(factory=dict)  # top-level keys other than the records
    data: dict[str, Any] = attrs.field(factory=dict)  # the wrapper's "data" keys other than sessions

    def found(self, form: str, scanner: Scanner) -> None:
        if self.form:
            raise StoreError(f"{scanner.where} holds two lists of sessions; refusing to guess which one counts")
        self.form = form

    @property
    def meta(self) -> dict[str, Any] | None:
        meta = self.fields.get(META_KEY)
        return meta if self.form == "store" and isinstance(meta, dict) else None

    def describe(self, name: str) -> str:
        """How the report names what was restored."""
        if self.meta is not None:
            return f"minsky backup of {self.meta.get('createdAt')}"
        if self.form == "wrapper":
            return (
                f"the original Minsky's backup (version {self.fields.get('version')}, {self.fields.get('timestamp')})"
            )
        if self.form == "array":
            match = _EPOCH_NAME.fullmatch(name)
            if match:
                moment = datetime.fromtimestamp(int(match.group(1)) / 1000, UTC)
                stamp = moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                return f"the original Minsky's backup of {stamp}"
            return "a bare JSON array of sessions (the original Minsky's layout)"
        return "a Minsky JSON store without backup metadata"


def sessions(scanner: Scanner, layout: Layout) -> Iterator[Any]:
    """Stream the session entries of any backup shape, filling in ``layout``."""
    first = scanner.peek()
    if first == "[":
        layout.found("array", scanner)
        yield from scanner.array()
    elif first == "{":
        for key in scanner.members():
            if key == "sessions" and scanner.peek() == "[":
                layout.found("store", scanner)
                yield from scanner.array()
            elif key == "data" and scanner.peek() == "{":
                for inner in scanner.members():
                    if inner == "sessions" and scanner.peek() == "[":
                        layout.found("wrapper", scanner)
                        yield from scanner.array()
                    else:
                        layout.data[inner] = scanner.value()
            else:
                layout.fields[key] = scanner.value()
    elif first == "":
        raise StoreError(f"{scanner.where} is empty: not a backup")
    else:
        raise scanner.error("expected a JSON array or object")
    scanner.end()
    if not layout.form:
        raise StoreError(
            f"{scanner.where} is not a backup: no list of sessions (expected an array, "
            '{"sessions": [...]} or {"data": {"sessions": [...]}})'
        )
