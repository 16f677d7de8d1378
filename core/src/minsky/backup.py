"""Backups: the Minsky JSON store format plus a ``minskyBackup`` block (source,
count, store digest, minsky version, time), streamed and written atomically.

A backup is itself a JSON store, so restoring one is a migration from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from minsky import __version__
from minsky.atomic import atomic_writer, ensure_private_dir
from minsky.codec import StoreDigest, record_from_dict, record_to_dict
from minsky.errors import StoreError, UsageError, VerificationError
from minsky.model import SessionRecord

PREFIX = "session-backup-"
META_KEY = "minskyBackup"


def backup_name(moment: datetime) -> str:
    """``session-backup-2025-01-20T10-30-00-000Z.json``"""
    moment = moment.astimezone(UTC)
    return f"{PREFIX}{moment:%Y-%m-%dT%H-%M-%S}-{moment.microsecond // 1000:03d}Z.json"


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


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
    ``path``); return its path and digest."""
    moment = now or datetime.now(UTC)
    ensure_private_dir(directory)
    path = path or directory / backup_name(moment)
    if path.exists():  # two backups in one millisecond: never overwrite
        raise StoreError(f"backup {path} already exists; try again")
    digest = StoreDigest()
    with atomic_writer(path) as handle:
        handle.write(b'{"sessions": [')
        for index, record in enumerate(records):
            digest.add_record(record)
            handle.write(b"\n  " if index == 0 else b",\n  ")
            handle.write(_encode(record_to_dict(record)))
        meta = {
            "format": 1,
            "sourceBackend": source_backend,
            "sourceLocation": source_location,
            "count": digest.count,
            "storeDigest": digest.hexdigest,
            "minskyVersion": __version__,
            "createdAt": moment.isoformat().replace("+00:00", "Z"),
        }
        handle.write(b"\n],\n" + b'"baseDir": ' + _encode(base_dir) + b",\n")
        handle.write(f'"{META_KEY}": '.encode() + _encode(meta) + b"}\n")
    return path, digest


def resolve_backup(path: Path) -> Path:
    """A file as given; a directory means its newest backup."""
    if path.is_dir():
        # .db: a native SQLite backup (--backup-format native); the names sort by time
        candidates = sorted(p for p in path.glob(f"{PREFIX}*") if p.suffix in (".json", ".db"))
        if not candidates:
            raise UsageError(f"no {PREFIX}*.json (or .db) backup in {path}")
        return candidates[-1]
    if not path.exists():
        raise UsageError(f"backup {path} does not exist")
    return path


@attrs.frozen
class BackupCheck:
    path: Path
    count: int
    digest: str
    metadata: dict[str, Any] | None


def check_backup(path: Path, records: Iterator[SessionRecord]) -> BackupCheck:
    """Recompute count and digest and compare them with the backup's own metadata."""
    digest = StoreDigest.of(records)
    meta = _metadata(path)
    if meta is not None and (meta.get("count"), meta.get("storeDigest")) != (digest.count, digest.hexdigest):
        raise VerificationError(
            f"backup {path} is damaged: it holds {digest.count} records with digest "
            f"{digest.hexdigest[:12]}…, its metadata says {meta.get('count')} and "
            f"{str(meta.get('storeDigest'))[:12]}…; nothing was restored"
        )
    return BackupCheck(path, digest.count, digest.hexdigest, meta)


def _metadata(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read backup {path}: {exc}") from None
    meta = doc.get(META_KEY) if isinstance(doc, dict) else None
    return meta if isinstance(meta, dict) else None


class BackupFile:
    """A backup (or any Minsky JSON store file) as the read-only source of a restore."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def _sessions(self) -> list[Any]:
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read backup {self.path}: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("sessions"), list):
            raise StoreError(f"{self.path} is not a minsky backup: no 'sessions' list")
        sessions: list[Any] = doc["sessions"]
        return sessions

    def read(self) -> Iterator[SessionRecord]:
        for index, item in enumerate(self._sessions()):
            yield record_from_dict(item, where=f"{self.path}: sessions[{index}]: ")

    def count(self) -> int:
        return len(self._sessions())

    def keys(self) -> Iterator[str]:
        return (record.session for record in self.read())


__all__ = ["BackupFile", "backup_name", "check_backup", "resolve_backup", "write_backup"]


def _ledger() -> Path:
    from minsky.paths import state_dir

    return state_dir() / "last-backup.json"


def remember_backup(path: Path, count: int, digest: str) -> None:
    """Note the newest backup, so that ``migrate status`` can show it."""
    from minsky.atomic import write_bytes_atomic

    entry = {
        "path": str(path.resolve()),
        "count": count,
        "storeDigest": digest,
        "createdAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    write_bytes_atomic(_ledger(), _encode(entry))


def last_backup() -> dict[str, Any] | None:
    try:
        entry = json.loads(_ledger().read_bytes())
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None
