"""Where core calls the operation hooks: one function per operation, used by the
session commands, the migration engine, backup, restore and verify alike.

Each goes through the process-wide plugin manager (``minsky.plugins.registry``),
so a plugin registered there — installed, or ``pm.register``-ed by a test — takes
part in every command. Called per stream or per batch, never per record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from minsky.backend import BulkWriter, ReadableStore, SessionFilter, Store, VerifyReport
from minsky.model import SessionRecord
from minsky.operations import BackupResult, WriteBatch, Written

_registry: Callable[[], Any] | None = None


def relay() -> Any:
    """``pm.hook`` of the process-wide plugin manager (loads plugins on first use)."""
    global _registry
    if _registry is None:  # imported on first use (not by `--help`), then kept: called once a batch
        from minsky.plugins import registry

        _registry = registry
    return _registry().manager.hook


def only_builtin(hook: str) -> bool:
    """Whether core's own implementation alone answers ``hook`` (no plugin wraps or replaces it)."""
    return all(impl.plugin_name == "minsky.builtin" for impl in getattr(relay(), hook).get_hookimpls())


def read(store: ReadableStore, where: SessionFilter | None = None) -> Iterator[SessionRecord]:
    records: Iterator[SessionRecord] = relay().read(store=store, where=where, name=None)
    return records


def get(store: Store, name: str) -> SessionRecord | None:
    return next(iter(relay().read(store=store, where=None, name=name)), None)


def _write(store: Store, batch: WriteBatch) -> Written:
    written: Written = relay().write(store=store, batch=batch)
    return written


def insert(store: Store, record: SessionRecord) -> None:
    _write(store, WriteBatch("insert", records=(record,)))


def update(store: Store, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
    return _write(store, WriteBatch("update", names=(name,), change=change)).records[0]


def delete(store: Store, name: str) -> bool:
    return bool(_write(store, WriteBatch("delete", names=(name,))).deleted)


def stage(store: Store, writer: BulkWriter, records: list[SessionRecord]) -> None:
    """One batch of a migration or restore into the store's staging area."""
    _write(store, WriteBatch("upsert", records=records, writer=writer))


def unstage(store: Store, writer: BulkWriter, names: Sequence[str]) -> Sequence[str]:
    """Deletions staged in a migration's writer (a ``CatchUpWriter``): gone when it commits."""
    return _write(store, WriteBatch("delete", names=names, writer=writer)).deleted


def backup(
    backend: str,
    store: ReadableStore,
    directory: Path,
    *,
    backup_format: str = "json",
    base_dir: str = "",
    now: datetime | None = None,
) -> BackupResult:
    from minsky.backup import backup_name, prepare_directory

    prepare_directory(directory)  # refuses a planted symlink before anything is created
    stem = directory / backup_name(now or datetime.now(UTC)).removesuffix(".json")
    result: BackupResult = relay().backup(
        backend=backend, store=store, stem=stem, backup_format=backup_format, base_dir=base_dir
    )
    return result


def restore(path: Path, backend: str) -> ReadableStore:
    source: ReadableStore = relay().restore(path=path, backend=backend)
    return source


def verify(store: Store) -> VerifyReport:
    """Every implementation's report, merged: ok only if all are."""
    reports: list[VerifyReport] = relay().verify(store=store)
    return VerifyReport(
        ok=all(r.ok for r in reports),
        checked=max((r.checked for r in reports), default=0),
        problems=tuple(dict.fromkeys(p for r in reports for p in r.problems)),  # two checks, one finding
    )
