"""Core's generic behaviour as a plugin: the last implementation of every operation hook.

Registered on every plugin manager before any entry point (as pytest registers its
own ``_pytest`` modules), with ``trylast``: a backend's native implementation answers
first, and a wrapper sees core's work like anyone else's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pluggy

from minsky.backend import CatchUpWriter, ReadableStore, SessionFilter, Store, VerifyReport
from minsky.errors import UsageError
from minsky.hookspecs import hookimpl
from minsky.model import SessionRecord
from minsky.operations import BackupResult, WriteBatch, Written

NAME = "minsky.builtin"


class CorePlugin:
    """Reads, writes and verifies through the ``Store`` protocol; backs up to and restores
    from the portable JSON backup."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self._hook = manager.hook

    @hookimpl(trylast=True)
    def read(self, store: ReadableStore, where: SessionFilter | None, name: str | None) -> Iterator[SessionRecord]:
        if name is None and where is None:
            return store.read()
        assert isinstance(store, Store), "a filtered read needs a full Store"
        if name is not None:
            record = store.get(name)
            return iter(() if record is None else (record,))
        assert where is not None
        return store.list(where)

    @hookimpl(trylast=True)
    def write(self, store: Store, batch: WriteBatch) -> Written:
        if batch.kind == "upsert":
            assert batch.writer is not None, "an upsert is staged in a bulk writer"
            batch.writer.write(batch.records)
            return Written(records=batch.records)
        if batch.kind == "insert":
            for record in batch.records:
                store.insert(record)
            return Written(records=batch.records)
        if batch.kind == "update":
            assert batch.change is not None, "an update needs a change"
            change = batch.change
            return Written(records=[store.update(name, change) for name in batch.names])
        if isinstance(batch.writer, CatchUpWriter):  # deletions staged with a migration's last step
            return Written(deleted=batch.writer.delete(batch.names))
        return Written(deleted=[name for name in batch.names if store.delete(name)])

    @hookimpl(trylast=True)
    def backup(self, backend: str, store: ReadableStore, stem: Path, backup_format: str, base_dir: str) -> BackupResult:
        from minsky.backup import write_backup

        if backup_format != "json":
            raise UsageError(
                f"the {backend} backend has no {backup_format} backup format",
                hint="use --backup-format json (portable: any backend restores it)",
            )
        path, digest = write_backup(
            stem.parent,
            self._hook.read(store=store, where=None, name=None),
            source_backend=backend,
            source_location=store.location,
            base_dir=base_dir,
            path=Path(f"{stem}.json"),
        )
        return BackupResult(path=path, count=digest.count, digest=digest.hexdigest, format="json")

    @hookimpl(trylast=True)
    def restore(self, path: Path, backend: str) -> ReadableStore:
        from minsky.backup import open_backup

        # Surveyed when it can be: the restore's own read then checks the digest, in one decoding pass.
        source = open_backup(path, survey=True)
        try:
            source.check()
        except BaseException:
            source.close()
            raise
        return source

    @hookimpl(trylast=True)
    def verify(self, store: Store) -> VerifyReport:
        return store.verify()


__all__ = ["NAME", "CorePlugin"]
