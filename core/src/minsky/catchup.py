"""The last step of a migration while sessions keep being written.

The bulk copy reads one snapshot of the source and remembers a short digest of
every record it read (``Snapshot``). Sessions started, ended or deleted in the
source after that snapshot are found by comparing digests. With ``--set-default``
they are copied under the source's write lock — writers wait, none is lost — the
source is marked as moved and the default switched before the lock is released
(``finish_move``). Without it they are only counted (``count_changes``).

Finding them means reading the whole source again, unless the source has a change token
(``ChangeTokenStore``): one taken just before the read a snapshot reflects, and equal now,
says nothing changed since, and nothing is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import AbstractContextManager

import attrs

from minsky import hooks
from minsky.backend import (
    BulkWriter,
    CatchUpWriter,
    LockableStore,
    MovedMark,
    OnConflict,
    ReadableStore,
    Store,
    WriteLock,
    accepts_on_conflict,
    change_token,
)
from minsky.codec import canonical_stream, digest_form, loads, record_from_dict
from minsky.errors import ConflictError, MinskyError
from minsky.model import SessionRecord
from minsky.snapshot import ShortDigests

BATCH_SIZE = 1000


def short_digest(canonical_form: bytes) -> bytes:
    """Eight bytes of the record's SHA-256: enough to tell a changed record, and small enough
    to hold one per session of a million-session store."""
    return hashlib.sha256(canonical_form).digest()[:8]


@attrs.define
class Snapshot:
    """What the bulk copy read (name → short digest) and which of those it did not write;
    ``token`` is the source's change token, taken just before the read the digests reflect."""

    digests: ShortDigests = attrs.field(factory=ShortDigests)  # ~40 bytes a record, not a dict's ~150
    not_written: set[str] = attrs.field(factory=set)
    token: Hashable | None = None


@attrs.define
class Changes:
    changed: list[SessionRecord] = attrs.field(factory=list)
    deleted: list[str] = attrs.field(factory=list)

    def __len__(self) -> int:
        return len(self.changed) + len(self.deleted)


@attrs.define
class CatchUp:
    """What the last step did; ``locked_seconds`` is how long the source's writers waited."""

    written: int = 0
    deleted: int = 0
    locked: bool = False
    locked_seconds: float = 0.0
    marked_moved: bool = False


@attrs.frozen
class Switch:
    """``--set-default``: the mark to leave in the source, and the config change to make."""

    mark: MovedMark
    apply: Callable[[], None]


def changes_since(snapshot: Snapshot, store: ReadableStore) -> Changes:
    """Sessions new or different since the snapshot, and those no longer there.

    Compares digests of the canonical forms the store holds (its ``read_canonical`` fast path
    when it has one): only records whose digest is new are decoded. This runs while the
    source's writers wait, so it must be as short as a full read can be. Should the fast path
    hand back something that is not a record, the store is read the ordinary way instead.
    """
    try:
        return _changes(snapshot, canonical_stream(store), store.location)
    except (ValueError, MinskyError):
        return _changes(snapshot, (digest_form(record) for record in hooks.read(store)), store.location)


def _changes(snapshot: Snapshot, blobs: Iterable[bytes], where: str) -> Changes:
    seen = snapshot.digests.seen()
    found = Changes()
    for blob in blobs:
        if not seen.meet(short_digest(blob)):  # new or changed, or bytes not in canonical form: decode to tell
            record = record_from_dict(loads(blob), where=f"{where}: ")  # values kept as found
            if not seen.meet(short_digest(digest_form(record))):
                found.changed.append(record)
    renamed = {record.session for record in found.changed}
    found.deleted = [name for name in seen.unmet() if name not in renamed]
    return found


def late_changes(snapshot: Snapshot, store: ReadableStore) -> Changes:
    """``changes_since``, unless the store's change token still equals the snapshot's: then
    nothing changed since the read the snapshot reflects, and nothing is read. A read takes a
    token first; the snapshot keeps it (``_apply`` moves the digests forward to that read)."""
    token = change_token(store)
    if token is not None and token == snapshot.token:
        return Changes()
    late = changes_since(snapshot, store)
    snapshot.token = token
    return late


def count_changes(snapshot: Snapshot, store: ReadableStore) -> int:
    return len(late_changes(snapshot, store))


def open_writer(store: Store, on_conflict: OnConflict) -> AbstractContextManager[BulkWriter]:
    """The target's bulk writer with the conflict rule applied at commit time when it can."""
    if accepts_on_conflict(store):
        return store.bulk_writer(on_conflict=on_conflict)  # type: ignore[call-arg]
    return store.bulk_writer()


def write_all(
    store: Store,
    records: Iterable[SessionRecord],
    on_conflict: OnConflict,
    opened: Callable[[BulkWriter], None] | None = None,
) -> tuple[int, list[str]]:
    """Write records in batches; returns how many were handed over and the commit-time conflicts.
    ``opened`` is told the writer before the first record is asked for."""
    stream: Iterator[SessionRecord] = iter(records)
    handed = 0
    with open_writer(store, on_conflict) as writer:
        if opened is not None:
            opened(writer)
        while batch := list(itertools.islice(stream, BATCH_SIZE)):
            hooks.stage(store, writer, batch)  # the write hook, once per batch
            handed += len(batch)
    return handed, list(getattr(writer, "conflicts", []))


def _source_lock(store: ReadableStore) -> AbstractContextManager[WriteLock | None]:
    if isinstance(store, LockableStore):
        return store.write_lock()
    return contextlib.nullcontext()


def finish_move(
    source: ReadableStore,
    target: Store,
    snapshot: Snapshot,
    on_conflict: OnConflict,
    *,
    admit: Callable[[SessionRecord], bool],
    switch: Switch | None,
) -> CatchUp:
    """Copy what changed since the snapshot under the source's write lock; then, still
    holding it, mark the source as moved and switch the default.

    The target is brought up to date without the lock first (``UNLOCKED_PASSES``), so the
    locked step copies only what changed while that ran: one read of the source and one
    write into the target (a single transaction, or a single rewrite of a JSON file)."""
    result = CatchUp(locked=isinstance(source, LockableStore))
    if switch is not None:
        _clear_mark(target)  # before any deletion below, which a marked store refuses
    for _ in range(UNLOCKED_PASSES):
        late = late_changes(snapshot, source)
        if not late:
            break
        _apply(target, late, snapshot, on_conflict, admit, result)
    with _source_lock(source) as lock:
        started = time.perf_counter()
        # Unchanged since the last pass's read (its token equals the one taken under the lock):
        # nothing to read, and the writers wait only for the mark and the switch.
        _apply(target, late_changes(snapshot, source), snapshot, on_conflict, admit, result)
        if switch is not None:
            if lock is not None:
                lock.mark_moved(switch.mark)
                result.marked_moved = True
            switch.apply()
        result.locked_seconds = time.perf_counter() - started
    return result


UNLOCKED_PASSES = 2


def _apply(
    target: Store,
    late: Changes,
    snapshot: Snapshot,
    on_conflict: OnConflict,
    admit: Callable[[SessionRecord], bool],
    result: CatchUp,
) -> None:
    """Write ``late`` into the target and move the snapshot forward to what was read.

    Records this migration wrote before are replaced whatever ``on_conflict`` says; sessions
    new to it follow the rule. With a writer that can also replace and delete (``CatchUpWriter``)
    everything goes into the target in one write."""
    mine = [r for r in late.changed if r.session in snapshot.digests and r.session not in snapshot.not_written]
    new = [r for r in late.changed if r.session not in snapshot.digests or r.session in snapshot.not_written]
    if on_conflict == "skip":
        new = [r for r in new if r.session not in snapshot.not_written]
    refused = {r.session for r in [*mine, *new] if not admit(r)}
    mine = [r for r in mine if r.session not in refused]
    new = [r for r in new if r.session not in refused]
    gone = [name for name in late.deleted if name not in snapshot.not_written]
    conflicts: list[str] = []
    try:
        if mine or new or gone:
            conflicts = _write_changes(target, mine, new, gone, on_conflict, result)
    except ConflictError as exc:
        raise ConflictError(
            f"{exc.message}; they were started in the source during the migration. "
            "The other sessions were copied; the default was not switched",
            hint=exc.hint,
        ) from None
    written = {r.session for r in [*mine, *new]} - (set(conflicts) if on_conflict == "skip" else set())
    for record in late.changed:  # the snapshot moves forward to what was read
        snapshot.digests[record.session] = short_digest(digest_form(record))
        if record.session in written:
            snapshot.not_written.discard(record.session)
        else:  # refused, or left to a session the target holds (skip)
            snapshot.not_written.add(record.session)
    for name in late.deleted:
        snapshot.digests.pop(name, None)
        snapshot.not_written.discard(name)


def _write_changes(
    target: Store,
    mine: list[SessionRecord],
    new: list[SessionRecord],
    gone: list[str],
    on_conflict: OnConflict,
    result: CatchUp,
) -> list[str]:
    """One write when the target's writer can replace and delete too; else one per kind."""
    with open_writer(target, on_conflict) as writer:
        batched = isinstance(writer, CatchUpWriter)
        if new:
            hooks.stage(target, writer, new)
        if isinstance(writer, CatchUpWriter):
            if mine:
                hooks.stage(target, writer.overwriting(), mine)
            if gone:
                result.deleted += len(hooks.unstage(target, writer, gone))
    conflicts: list[str] = list(getattr(writer, "conflicts", []))
    result.written += len(new) + (len(mine) if batched else 0) - (len(conflicts) if on_conflict == "skip" else 0)
    if batched:
        return conflicts
    if mine:
        result.written += write_all(target, mine, "overwrite")[0]
    for name in gone:
        if hooks.delete(target, name):
            result.deleted += 1
    return conflicts


def _clear_mark(target: Store) -> None:
    """Moving back into a store that was marked as moved makes it a live store again."""
    if isinstance(target, LockableStore) and target.moved() is not None:
        with target.write_lock() as lock:
            lock.mark_moved(None)
