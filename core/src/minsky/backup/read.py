"""Restoring: a backup is opened once, inspected in one streaming pass, then read
again from the same descriptor for the restore.

Every pass hashes the bytes it reads and must see exactly the bytes the
inspection saw: a file rewritten after its check makes the restore fail before
the target commits (a migration's target changes only when its read stream ends
cleanly), so what is restored is what was checked.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minsky.backup.files import check_symlinks, open_regular, shown
from minsky.backup.layout import Layout, sessions
from minsky.backup.scan import HashingBytes, Scanner
from minsky.codec import StoreDigest, canonical_of_dict, record_from_dict
from minsky.errors import ConflictError, StoreError, VerificationError
from minsky.model import SessionRecord

DUPLICATE_EXAMPLES = 10


class Backup:
    """An open backup file: a read-only migration source whose every pass reads the same bytes."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path
        info = os.fstat(fd)
        self.size = info.st_size
        self.identity = (info.st_dev, info.st_ino)
        self.owner = info.st_uid
        self.sha256 = ""
        self.layout = Layout()
        self.digest = StoreDigest()
        self.repeated: dict[str, int] = {}  # name -> copies, for names held more than once
        self._inspect()

    # -- ReadableStore ---------------------------------------------------------

    @property
    def location(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return True

    def read(self) -> Iterator[SessionRecord]:
        where = f"backup {shown(self.path)}: session "
        return (record_from_dict(item, where=f"{where}{index}: ") for index, item in enumerate(self._pass(Layout())))

    def count(self) -> int:
        return self.digest.count

    def keys(self) -> Iterator[str]:
        return (record.session for record in self.read())

    # -- what the inspection found -----------------------------------------------

    @property
    def meta(self) -> dict[str, Any] | None:
        return self.layout.meta

    @property
    def description(self) -> str:
        return self.layout.describe(self.path.name)

    def check(self) -> None:
        """Raise unless the backup agrees with its own metadata."""
        meta = self.meta
        if meta is not None and (meta.get("count"), meta.get("storeDigest")) != (
            self.digest.count,
            self.digest.hexdigest,
        ):
            raise VerificationError(
                f"backup {shown(self.path)} is damaged: it holds {self.digest.count} records with digest "
                f"{self.digest.hexdigest[:12]}…, its metadata says {meta.get('count')} and "
                f"{str(meta.get('storeDigest'))[:12]}…; nothing was restored"
            )

    def refuse_repeated(self) -> None:
        """Raise, naming them, if the backup holds a session name more than once."""
        if self.repeated:
            names = sorted(self.repeated)
            listed = ", ".join(f"{shown(repr(n))} ({self.repeated[n]} copies)" for n in names[:DUPLICATE_EXAMPLES])
            more = f" and {len(names) - DUPLICATE_EXAMPLES} more" if len(names) > DUPLICATE_EXAMPLES else ""
            raise ConflictError(
                f"backup {shown(self.path)} holds {len(names)} session name(s) more than once: {listed}{more}; "
                "a store keeps one record per name, so nothing was restored",
                hint="choose --on-duplicate first|last|rename, or restore a copy in which each name appears once",
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "format": self.layout.form,
            "description": self.description,
            "bytes": self.size,
            "sha256": self.sha256,
            "count": self.digest.count,
            "storeDigest": self.digest.hexdigest,
            "checkedAgainstMetadata": self.meta is not None,
        }

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Backup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- passes --------------------------------------------------------------------

    def _inspect(self) -> None:
        seen: set[str] = set()
        where = f"backup {shown(self.path)}: session "
        for index, item in enumerate(self._pass(self.layout)):
            # The canonical form straight from the decoded dict: what the record's would be, at half the cost.
            self.digest.add_bytes(hashlib.sha256(canonical_of_dict(item, where=f"{where}{index}: ")).digest())
            name = item["session"]
            if name in seen:
                self.repeated[name] = self.repeated.get(name, 1) + 1
            seen.add(name)

    def _pass(self, layout: Layout) -> Iterator[Any]:
        """The session entries as decoded; raises at the end if the bytes were not the inspected ones."""
        raw = HashingBytes(self.fd, self.size)
        text = io.TextIOWrapper(io.BufferedReader(raw, 1 << 20), encoding="utf-8", errors="surrogateescape", newline="")
        where = f"backup {shown(self.path)}"
        changed = StoreError(f"{where} changed while it was being read; nothing was restored from it")
        try:
            scanner = Scanner(text.read, where)
            yield from sessions(scanner, layout)
            while text.read(1 << 20):
                pass
        except OSError as exc:
            raise StoreError(f"cannot read {where}: {exc.strerror}") from None
        except StoreError:
            if self.sha256:  # it read well before: what fails now is not what was checked
                raise changed from None
            raise
        digest = raw.sha256.hexdigest()
        if raw.offset != self.size or raw.grew() or (self.sha256 and digest != self.sha256):
            raise changed
        self.sha256 = digest


def open_backup(path: Path) -> Backup:
    """Open and inspect a backup file of any shape (not yet checked: see ``Backup.check``)."""
    check_symlinks(path)
    fd = open_regular(path, follow=True)
    try:
        return Backup(fd, path)
    except BaseException:
        os.close(fd)
        raise
