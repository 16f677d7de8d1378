"""The migration engine: any store to any store, streaming, all or nothing.

Written once against the ``Store`` protocol, so every pair of installed
backends — third-party ones included — migrates with no pairwise code.

Order of work: refuse a move onto itself; find conflicts from keys alone; back
the source up; stream batches into the target's staging area (which becomes
visible only when the last batch is in, the conflict rule applied as it commits);
then, if asked, verify by digest against what was read. Last, what changed in the
source meanwhile is copied under its write lock and the default switched
(``minsky.catchup``), or only counted. Every record of the bulk copy is accounted
for: read = written + skipped + rejected.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import attrs

from minsky import forked, hooks
from minsky.backend import (
    BulkWriter,
    CheckedReadStore,
    ForkableStore,
    OnConflict,
    ReadableStore,
    RowMakingWriter,
    Store,
    change_token,
)
from minsky.catchup import CatchUp, Snapshot, Switch, count_changes, finish_move, short_digest, write_all
from minsky.codec import StoreDigest, UnrepresentableError, canonical, canonical_sha256, canonical_stream, digest_form
from minsky.coverage import source_gaps
from minsky.duplicates import DuplicatePlan, KeyScan, NamesRepeated, OnDuplicate, key_function, stop
from minsky.errors import ConflictError, MinskyError, StoreError, UsageError
from minsky.model import SessionRecord
from minsky.prefetch import prefetched

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
BATCH_SIZE = 1000  # records between progress reports
# Read-ahead: up to READ_AHEAD_DEPTH batches of READ_AHEAD_BATCH decoded records wait for the
# writer. Small batches keep the records in flight (~6 KB each, with their canonical bytes)
# few: 4 x 1,000 of them were ~15 MB of a PostgreSQL -> SQLite migration's 76 MB peak heap.
READ_AHEAD_BATCH = 250
READ_AHEAD_DEPTH = 4
CONFLICT_EXAMPLES = 5
SHORT = len(short_digest(b""))  # bytes of a record digest the catch-up keeps


@attrs.frozen
class Endpoint:
    backend: str
    store: ReadableStore

    @property
    def location(self) -> str:
        return self.store.location


@attrs.define
class Verification:
    ok: bool
    source_count: int
    target_count: int
    missing: list[str] = attrs.field(factory=list)
    extra: list[str] = attrs.field(factory=list)
    mismatched: list[str] = attrs.field(factory=list)
    uncovered: list[str] = attrs.field(factory=list)  # source cells no record read accounts for

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sourceCount": self.source_count,
            "targetCount": self.target_count,
            "missing": self.missing,
            "extra": self.extra,
            "mismatched": self.mismatched,
            "uncovered": self.uncovered,
        }


@attrs.define
class Report:
    source: Endpoint
    target: Endpoint
    dry_run: bool
    read: int = 0
    written: int = 0
    skipped: int = 0
    rejected: list[dict[str, str]] = attrs.field(factory=list)
    conflicts: int = 0
    conflict_examples: list[str] = attrs.field(factory=list)
    backup: Path | None = None
    source_digest: str = ""
    seconds: float = 0.0
    verification: Verification | None = None
    same_store: bool = False
    changed_in_source: int | None = None
    catch_up: CatchUp | None = None
    duplicates: DuplicatePlan | None = None

    @property
    def ok(self) -> bool:
        return not self.rejected and (self.verification is None or self.verification.ok)

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "dryRun": self.dry_run,
            "sameStore": self.same_store,
            "source": {"backend": self.source.backend, "location": self.source.location},
            "target": {"backend": self.target.backend, "location": self.target.location},
            "counts": {
                "read": self.read,
                "written": self.written,
                "skipped": self.skipped,
                "rejected": len(self.rejected),
            },
            "rejected": self.rejected,
            "conflicts": {"count": self.conflicts, "examples": self.conflict_examples},
            "backup": str(self.backup) if self.backup else None,
            "sourceDigest": self.source_digest,
            "seconds": round(self.seconds, 3),
            "recordsPerSecond": round(self.read / self.seconds) if self.seconds > 0 else None,
            "verificationResult": self.verification.to_json() if self.verification else None,
            "changedInSource": self.changed_in_source,
            "catchUp": None
            if self.catch_up is None
            else {
                "written": self.catch_up.written,
                "deleted": self.catch_up.deleted,
                "sourceLocked": self.catch_up.locked,
                "lockedSeconds": round(self.catch_up.locked_seconds, 3),
                "markedMoved": self.catch_up.marked_moved,
            },
            "duplicates": self.duplicates.to_json() if self.duplicates else None,
        }


Progress = Callable[[int], None]


def _without_cycle_collection(func: Callable[P, R]) -> Callable[P, R]:
    """Records, dicts and batches hold no reference cycles, so reference counting frees
    them all; the cycle collector would only re-scan the (possibly million-object) source
    document again and again: measured at half the time of a JSON-sourced migration."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return func(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return wrapper


@_without_cycle_collection
def migrate(
    source: Endpoint,
    target: Endpoint,
    *,
    on_conflict: OnConflict = "fail",
    on_duplicate: OnDuplicate = "fail",
    dry_run: bool = False,
    verify: bool = False,
    backup_dir: Path | None = None,
    backup_format: str = "json",
    base_dir: str = "",
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    switch: Switch | None = None,
    names_first: bool = False,
) -> Report:
    """Copy ``source`` into ``target``. With ``switch`` (``--set-default``), after a verified
    copy, late changes are copied under the source's lock and ``switch`` is applied there.
    ``names_first``: read every name before copying, even where no rule needs them first
    (``_names_later``)."""
    same_store = source.backend == target.backend and _same_place(source.location, target.location)
    if same_store and backup_dir is None:
        raise UsageError(
            f"source and target are the same store ({target.backend} at {target.location}); "
            "give the target another location"
        )
    if not source.store.exists():
        raise StoreError(
            f"the source store {source.location} ({source.backend}) does not exist: nothing to migrate",
            hint="name the source with --from BACKEND and its location flag",
        )
    report = Report(source=source, target=target, dry_run=dry_run)
    started = time.perf_counter()
    if same_store:
        # The guide's daily backup (`migrate to json --backup DIR --from current` on a JSON
        # setup): back the store up; every record is already in the target.
        if not dry_run:
            assert backup_dir is not None
            made = hooks.backup(
                source.backend, source.store, backup_dir, backup_format=backup_format, base_dir=base_dir
            )
            report.backup, report.source_digest = made.path, made.digest
            report.read = report.skipped = made.count
        else:
            report.read = report.skipped = source.store.count()
        report.same_store = True
        return report
    existing = set(target.store.keys()) if target.store.exists() else set()
    later = not names_first and _names_later(on_duplicate, existing, dry_run, backup_dir)
    # One pass over the source's names, before anything is written: names it repeats, names the
    # target holds. Or (``later``) the copy reads them, and a repeat undoes it and comes here.
    scan = KeyScan.deferred_scan() if later else KeyScan.of(source.store.keys, existing, key_function(target.store))
    plan = DuplicatePlan(on_duplicate, scan, key_function(target.store))
    report.duplicates = plan if scan.copies else None
    if scan.copies and on_duplicate == "fail":
        raise stop(scan, report, dry_run=dry_run)
    if existing:
        conflicts = scan.conflicts
        report.conflicts = len(conflicts)
        report.conflict_examples = conflicts[:CONFLICT_EXAMPLES]
        if conflicts and on_conflict == "fail" and not dry_run:
            raise ConflictError(
                f"{len(conflicts)} session(s) already exist in the target {target.location}, e.g. "
                + ", ".join(repr(n) for n in report.conflict_examples),
                hint="choose --on-conflict skip or --on-conflict overwrite",
            )
    if backup_dir is not None and not dry_run:
        report.backup = hooks.backup(
            source.backend, source.store, backup_dir, backup_format=backup_format, base_dir=base_dir
        ).path
    written_digest = StoreDigest()
    source_digest = StoreDigest()
    snapshot = Snapshot(token=None if dry_run else change_token(source.store))  # just before the read

    # The snapshot's digests serve the catch-up (a source that may change while it is read) and
    # --verify's slow path; a backup being restored needs neither: ~40 bytes a record kept for
    # nothing (restore into JSON peaked at 151 MB at 1M records with them).
    keep_digests = verify or isinstance(source.store, Store)

    def admitted(records: Iterable[SessionRecord]) -> Iterator[SessionRecord]:
        # The digests are added a batch at a time (one call each, not one a record).
        names: list[str] = []
        shorts: list[bytes] = []
        read: list[bytes] = []
        written: list[bytes] = []

        def add_batch() -> None:
            if keep_digests:
                snapshot.digests.extend(names, shorts)
            source_digest.add_many(read)
            written_digest.add_many(written)
            for batch in (names, shorts, read, written):
                batch.clear()

        try:
            for record in records:
                report.read += 1
                try:  # as bytes throughout: no hex round trips per record
                    raw, reason = canonical_sha256(record), None
                except UnrepresentableError as exc:  # never written, never changed: named
                    raw, reason = hashlib.sha256(digest_form(record)).digest(), exc.reason
                read.append(raw)
                kept: SessionRecord | None
                if reason is not None:
                    kept, name = record, plan.rejected(record)
                else:
                    kept = plan.decide(record)  # a repeated name's rule
                    name = plan.snapshot_name(record, kept)
                if keep_digests:
                    names.append(name)
                    shorts.append(raw[:SHORT])
                if reason is not None:
                    report.rejected.append({"session": record.session, "reason": reason})
                    snapshot.not_written.add(name)
                elif kept is None or (kept.session in existing and on_conflict != "overwrite"):
                    report.skipped += 1
                    snapshot.not_written.add(name)
                else:
                    digest = raw if kept is record else hashlib.sha256(digest_form(kept)).digest()
                    written.append(digest)
                    plan.remember(kept.session, digest[:SHORT])
                    yield kept
                if len(read) >= batch_size:
                    add_batch()
                if progress is not None and report.read % batch_size == 0:
                    progress(report.read)
            plan.check_deferred()  # before the writer commits
            if isinstance(source.store, CheckedReadStore):  # what was received, before the commit
                add_batch()
                source.store.check_read(report.read, source_digest.hexdigest)
        finally:
            add_batch()

    count = _estimated_count(source.store) if later else scan.seen.hashed()
    feed = _Source(source.store, count, repeats=bool(scan.copies))
    stream = admitted(feed)
    again = False
    try:
        if dry_run:
            report.written = sum(1 for _ in stream)
        else:
            target_store = target.store
            assert isinstance(target_store, Store), "a migration target must be a full Store"
            report.written, late_conflicts = write_all(target_store, stream, on_conflict, opened=feed.writer_opened)
            _count_commit_conflicts(report, late_conflicts, existing, on_conflict, snapshot)
    except NamesRepeated:  # nothing was written
        again = True
    except MinskyError:
        # A writer may meet the repeat first and refuse it its own way (a unique key, "twice in
        # one write"): nothing was written either, and the pass says what the user must choose.
        if not (later and plan.repeated_so_far()):
            raise
        again = True
    finally:
        feed.close()  # now, not when a traceback lets go of it: a reader child is told to stop
    if again:
        log.debug("a name came twice in a copy without a names pass: starting again with one")
        return migrate(
            source,
            target,
            on_conflict=on_conflict,
            on_duplicate=on_duplicate,
            verify=verify,
            base_dir=base_dir,
            progress=progress,
            batch_size=batch_size,
            switch=switch,
            names_first=True,
        )
    report.source_digest = source_digest.hexdigest
    plan.read_all()
    log.debug(
        "%s -> %s: read %d, written %d, skipped %d, rejected %d in %.2fs",
        source.backend,
        target.backend,
        report.read,
        report.written,
        report.skipped,
        len(report.rejected),
        time.perf_counter() - started,
    )
    if verify and not dry_run:
        report.verification = verify_target(target, written_digest, snapshot, existing, on_conflict, plan)
        # Each row checked against the record the copy read from it, found by its digest (one pass
        # over the rows); with repeated names a digest does not say which copy: two passes, by order.
        read_digest = None if plan.scan.copies else snapshot.digests.get
        rejected = {entry["session"] for entry in report.rejected}
        report.verification.uncovered = source_gaps(source.store, read_digest=read_digest, rejected=rejected)
        snapshot.digests.forget_name_index()  # ~12 bytes a record, rebuilt should the catch-up need it
        report.verification.ok = report.verification.ok and not report.verification.uncovered
    if not dry_run:
        _after_copy(report, source, target, snapshot, on_conflict, switch)
    report.seconds = time.perf_counter() - started
    return report


def _same_place(one: str, other: str) -> bool:
    """Two locations of one store: the same text, or two names of one file (a hard link, a bind
    mount), which would otherwise be copied into itself and marked as moved away from itself."""
    if one == other:
        return True
    try:
        return Path(one).samefile(other)
    except (OSError, ValueError):  # not files (a server's address), or not there yet
        return False


def _names_later(on_duplicate: OnDuplicate, existing: set[str], dry_run: bool, backup_dir: Path | None) -> bool:
    """Whether the copy may read the source's names as it goes, not in a pass before it (a
    serial pass: 15% of a JSON -> PostgreSQL migration's time). Only where no name changes a
    decision before the copy: ``fail`` into an empty target, nothing backed up or dry run
    first, and no plugin's write hook that would see batches of a copy a repeat undoes."""
    return (
        on_duplicate == "fail" and not existing and not dry_run and backup_dir is None and hooks.only_builtin("write")
    )


def _estimated_count(store: ReadableStore) -> int:
    """The records of a store no names pass counted, as far as a forked read's choice needs:
    its size over a typical record's, or its count."""
    size = store.size_bytes() if isinstance(store, Store) else None
    return size // forked.BYTES_A_RECORD if size is not None else store.count()


class _Source:
    """The source's records, read once the target's writer is open: read by a forked child when
    that pays (``minsky.forked``), which then makes the writer's rows as well (``row_maker``)."""

    def __init__(self, store: ReadableStore, count: int, *, repeats: bool = False) -> None:
        self.store, self.count, self.repeats = store, count, repeats  # repeats: the source repeats a name
        self.writer: BulkWriter | None = None
        self.records: Iterator[SessionRecord] | None = None

    def writer_opened(self, writer: BulkWriter) -> None:
        self.writer = writer

    def __iter__(self) -> Iterator[SessionRecord]:
        if forked.wanted(self.store, self.count):
            assert isinstance(self.store, ForkableStore)
            maker = self.writer.row_maker() if isinstance(self.writer, RowMakingWriter) else None
            key_order = maker is None or forked.key_order_needed(self.repeats)
            self.records = forked.read_in_child(self.store, maker, key_order=key_order)  # the pipe is the read-ahead
            if self.records is not None:
                return self.records
        self.records = prefetched(hooks.read(self.store), READ_AHEAD_BATCH, depth=READ_AHEAD_DEPTH)
        return self.records

    def close(self) -> None:
        close = getattr(self.records, "close", None)
        if callable(close):
            close()


def _count_commit_conflicts(
    report: Report, names: list[str], existing: set[str], on_conflict: OnConflict, snapshot: Snapshot
) -> None:
    """Sessions that appeared in the target between planning and commit (``skip`` left them)."""
    late = [name for name in names if name not in existing]
    report.conflicts += len(late)
    report.conflict_examples += late[: max(0, CONFLICT_EXAMPLES - len(report.conflict_examples))]
    if on_conflict == "skip":
        report.written -= len(late)
        report.skipped += len(late)
        existing.update(late)
        snapshot.not_written.update(late)


def _after_copy(
    report: Report,
    source: Endpoint,
    target: Endpoint,
    snapshot: Snapshot,
    on_conflict: OnConflict,
    switch: Switch | None,
) -> None:
    """Copy late changes and switch (``--set-default``, verified copy), or count them."""
    if switch is None or not report.ok:
        if isinstance(source.store, Store):  # a backup file does not change
            report.changed_in_source = count_changes(snapshot, source.store)
        return
    assert isinstance(target.store, Store)

    def admit(record: SessionRecord) -> bool:
        try:
            canonical(record)
        except UnrepresentableError as exc:
            reason: str | None = exc.reason
        else:
            reason = None
        if reason is not None:
            report.rejected.append({"session": record.session, "reason": reason})
        return reason is None

    report.catch_up = finish_move(source.store, target.store, snapshot, on_conflict, admit=admit, switch=switch)
    report.changed_in_source = report.catch_up.written + report.catch_up.deleted


def verify_target(
    target: Endpoint,
    written: StoreDigest,
    snapshot: Snapshot,
    existing: set[str],
    on_conflict: OnConflict,
    plan: DuplicatePlan | None = None,
) -> Verification:
    """Re-read the target and compare it with what was written.

    A fresh target must equal the written set: one streaming pass comparing
    store digests, in constant memory, over the canonical forms the target
    stores (``read_canonical``, when it has it). Only when that fails (or the
    target held records before) are decoded records compared one by one with the
    snapshot the copy read (never a re-read of the source: it may have changed
    meanwhile), to name the differences.
    """
    if not existing:
        target_digest = StoreDigest()
        for blob in canonical_stream(target.store):
            target_digest.add_bytes(hashlib.sha256(blob).digest())
        if target_digest.count == written.count and target_digest.hexdigest == written.hexdigest:
            return Verification(ok=True, source_count=written.count, target_count=target_digest.count)
    # The slow path compares decoded records, not stored bytes: it names real differences. With
    # repeated names it compares every copy the source held, as the rule kept it: a lost one fails.
    wanted = plan.written if plan is not None and plan.written else {n: [d] for n, d in snapshot.digests.items()}
    expected = {
        name: digests
        for name, digests in wanted.items()
        if name not in snapshot.not_written and (name not in existing or on_conflict == "overwrite")
    }
    found = {record.session: short_digest(digest_form(record)) for record in target.store.read()}
    missing = sorted(name for name in expected if name not in found)
    # A keyed target holds one record per name: copies past the first cannot all be there.
    missing += [f"{name} (copy {n + 1} of {len(d)})" for name, d in sorted(expected.items()) for n in range(1, len(d))]
    mismatched = sorted(name for name, d in expected.items() if name in found and found[name] not in d)
    extra = sorted(name for name in found if name not in expected and name not in existing)
    ok = not (missing or mismatched or extra)
    return Verification(
        ok=ok,
        source_count=len(expected),
        target_count=len(found),
        missing=missing,
        extra=extra,
        mismatched=mismatched,
    )
