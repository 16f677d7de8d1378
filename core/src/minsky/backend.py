"""What a backend is: the typed contract between core and every store plugin.

A plugin registers a ``BackendSpec`` (see ``hookspecs.register_backends``).
Core asks the spec to ``open`` a ``Store`` with resolved options; everything
else — sessions, migration, backup, restore, verification — is written once in
core against the ``Store`` protocol below, so no code is pairwise.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

from minsky.atomic import write_bytes_atomic
from minsky.errors import ConflictError, MinskyError, MovedError, StoreError
from minsky.model import SessionRecord

OnConflict = Literal["fail", "skip", "overwrite"]

HOOK_API_VERSION = 1
"""The version of this contract. A backend declares the one it was built for."""

SUPPORTED_API_VERSIONS = frozenset({1})


@attrs.frozen
class OptionSpec:
    """One option a backend takes, and where its value may come from.

    ``config_key`` is read from the merged configuration; ``cli_flag`` is a flag
    of ``sessiondb migrate to``/``restore``; ``env`` names an environment
    variable. ``location`` options identify where the store lives: they are read
    from config only while this backend is the configured one, so that
    ``sessiondb.dbPath`` of an SQLite setup never becomes the path of a JSON
    target. ``secret`` values are masked everywhere. Location and secret options
    are ignored in a repository config file the user has not trusted.
    ``value_type`` is the type a config file must give (``minsky.schema`` checks it).
    """

    name: str
    help: str
    config_key: str | None = None
    cli_flag: str | None = None
    env: str | None = None
    location: bool = False
    secret: bool = False
    default: Callable[[], Any] | None = None
    value_type: type = str


@attrs.frozen
class SessionFilter:
    """Which sessions ``Store.list`` yields: all given conditions hold (see ``minsky.filters.matches``).

    ``task_id`` matches however the task is written (``md#1``, ``#1``, ``1``); ``repo`` matches
    repoName, repoUrl or repoPath; ``active`` is True for sessions not ended; ``limit`` and
    ``offset`` page the result, applied after the conditions.
    """

    task_id: str | None = None
    repo: str | None = None
    active: bool | None = None
    limit: int | None = None
    offset: int = 0


@attrs.frozen
class VerifyReport:
    """What a backend's own integrity check found: ``problems`` are one line each."""

    ok: bool
    checked: int
    problems: tuple[str, ...] = ()


class BulkWriter(Protocol):
    """Yielded by ``Store.bulk_writer()``: receives batches of records in the staging area.

    A writer opened with ``on_conflict`` (see ``ConflictAwareStore``) decides at commit time,
    under the store's own write lock or transaction: ``overwrite`` replaces, ``skip`` never
    replaces a record that exists then, ``fail`` raises ``ConflictError`` from the ``with``
    block (nothing written) if any does. It lists those names in ``conflicts``.
    """

    def write(self, batch: Sequence[SessionRecord]) -> None:
        """Upsert a batch into the staging area; nothing is visible yet."""


@runtime_checkable
class CatchUpWriter(BulkWriter, Protocol):
    """Optional, on a ``BulkWriter``: what lets the last step of a migration (``minsky.catchup``)
    go into the target in one write (one transaction, one rewrite of a file) while the
    source's writers wait. Without it that step writes once per kind of change."""

    def overwriting(self) -> BulkWriter:
        """A writer into the same staging area that replaces records whatever ``on_conflict``
        says (records this migration wrote itself); its names are not ``conflicts``."""

    def delete(self, names: Sequence[str]) -> Sequence[str]:
        """Remove ``names`` when the write commits; the names that were there."""


@runtime_checkable
class RowMakingWriter(BulkWriter, Protocol):
    """Optional, on a ``BulkWriter``: lets a migration that reads its source in a forked child
    (``ForkableStore``) make the target's rows there too, on the other core."""

    def row_maker(self) -> Callable[[SessionRecord], object] | None:
        """A pure function of one record giving what ``write`` makes of it (a row): same record,
        same result, no side effect, whatever process runs it; or None (it makes none). Called
        once, before the first ``write``, only when the engine will use it: it may run it elsewhere
        and hand the result in with the record; ``write`` then takes it with
        ``codec.premade(record, maker)`` instead of making it again (None: make it)."""


class ReadableStore(Protocol):
    """What a migration needs of its source (a store, or a backup file)."""

    @property
    def location(self) -> str:
        """Where the store lives, safe to print (secrets masked)."""

    def exists(self) -> bool:
        """Whether the store has been created (a missing store reads as empty)."""

    def read(self) -> Iterator[SessionRecord]:
        """Stream every record, in a stable order, from one consistent snapshot."""

    def count(self) -> int:
        """How many records the store holds (0 when it does not exist)."""

    def keys(self) -> Iterator[str]:
        """Stream the session names."""


@runtime_checkable
class Store(ReadableStore, Protocol):
    """An open store. Methods raise ``minsky.errors`` types, never driver errors."""

    def bulk_writer(self) -> AbstractContextManager[BulkWriter]:
        """Stage upserts; on clean exit they become visible all at once, on error none do."""

    def get(self, name: str) -> SessionRecord | None:
        """The record named ``name``, or None."""

    def insert(self, record: SessionRecord) -> None:
        """Add a new record; ``ConflictError`` if the name is taken."""

    def update(self, name: str, change: Callable[[SessionRecord], SessionRecord]) -> SessionRecord:
        """Read-modify-write one record atomically; ``NotFoundError`` if absent."""

    def delete(self, name: str) -> bool:
        """Remove one record; False if there was none."""

    def list(self, where: SessionFilter) -> Iterator[SessionRecord]:
        """Stream the records ``where`` selects, in store order (push filters down where an index helps)."""

    def verify(self) -> VerifyReport:
        """The backend's own integrity check."""

    def size_bytes(self) -> int | None:
        """Size on disk (or on the server), when the backend can tell."""

    def close(self) -> None:
        """Release connections and handles; the store may not be used afterwards."""


@runtime_checkable
class ForkableStore(Protocol):
    """Optional: lets a migration read this store in a child process forked for the read, while
    the parent writes the target on another core (``minsky.forked``; Linux only)."""

    @property
    def location(self) -> str: ...

    def fork_reader(self) -> ReadableStore:
        """A store whose ``read()`` gives what this one's would, sharing nothing open with it:
        no connection, no file offset, no lock (``self`` when reads open their own). Called in
        the parent just before the fork; the result is used only in the child."""


SplitRead = tuple[Callable[[Any], SessionRecord], Iterator[Sequence[Any]]]


@runtime_checkable
class SplitReadStore(Protocol):
    """Optional, with ``ForkableStore``: a read that splits into fetching rows and decoding them,
    so that a forked read decodes on more cores than one (``minsky.forked``)."""

    def read_split(self) -> SplitRead | None:
        """``(decode, batches)``: ``[decode(row) for batch in batches for row in batch]`` is what
        ``read()`` gives, record for record and in order, in one snapshot, each error raised
        where ``read()`` raises it (a row's by ``decode``, the store's by ``batches``). A row is
        what the driver fetched (picklable); ``decode`` may run in a process forked once the
        first batch has been fetched, and uses nothing open (no connection, no file). None when
        this store's ``read()`` is not that (a subclass changed it): the engine then reads it."""


@runtime_checkable
class CheckedReadStore(Protocol):
    """Optional: a source that knows what its whole read must give (a backup's metadata), so a
    migration checks what it received, wherever it was decoded (``SplitReadStore``: a check over
    every record can run only where they all meet)."""

    def check_read(self, count: int, hexdigest: str) -> None:
        """Raise a ``MinskyError`` unless ``count`` records whose ``codec.StoreDigest`` is
        ``hexdigest`` are what this source holds. A migration calls it once its read has ended,
        before the target commits, with what it received."""


@runtime_checkable
class ChangeTokenStore(Protocol):
    """Optional: what spares a migration its second read of the source (``minsky.catchup``).

    After the copy, the engine must tell whether the source changed while it was read; without
    this method it reads the whole source again to compare. With it, it compares two tokens."""

    def change_token(self) -> Hashable | None:
        """A cheap value, compared with ``==`` to one an earlier call on this store returned,
        that **must** differ if what ``read()`` returns may have changed since (it may differ
        when nothing did: that costs only the read). None when the store cannot tell (a file
        written too recently for its timestamps to tell two writes apart, no store yet): the
        engine then reads the source again. It must not change the store, and a read must
        leave it as it was. A token equal in error loses the writes made during a migration
        without a word: when in doubt, return None. ``minsky.atomic.file_token`` is the token
        of a file store."""


def change_token(store: object) -> Hashable | None:
    """``store.change_token()`` (a ``ChangeTokenStore``), or None: without it, or if it fails."""
    method = getattr(store, "change_token", None)
    if method is None:
        return None
    try:
        token: Hashable | None = method()
    except MinskyError:  # the read that follows reports what is wrong
        return None
    return token


class ConflictAwareStore(Protocol):
    """Optional: a store whose ``bulk_writer`` takes ``on_conflict`` (``"overwrite"`` when omitted)
    and enforces it when the write commits; its writer has a ``conflicts`` list of the names that
    existed then. Without it a migration checks conflicts only before writing."""

    def bulk_writer(self, on_conflict: OnConflict = "overwrite") -> AbstractContextManager[BulkWriter]:
        """Stage records; on exit they commit with the conflict rule applied at that moment."""


def accepts_on_conflict(store: object) -> bool:
    """Whether ``store.bulk_writer`` takes ``on_conflict`` (a ``ConflictAwareStore``)."""
    try:
        return "on_conflict" in inspect.signature(store.bulk_writer).parameters  # type: ignore[attr-defined]
    except (AttributeError, TypeError, ValueError):
        return False


def conflict_at_commit(location: str, names: Sequence[str]) -> ConflictError:
    """What a ``fail`` writer raises when records exist in the target as it commits."""
    distinct = list(dict.fromkeys(names))  # a name given twice in one write is one conflict
    examples = ", ".join(repr(name) for name in distinct[:5])
    return ConflictError(
        f"{len(distinct)} session(s) already exist in the target {location} as the write commits, e.g. "
        f"{examples}; nothing was written",
        hint="choose --on-conflict skip or --on-conflict overwrite",
    )


@attrs.frozen
class MovedMark:
    """Where a store's sessions went: written into the old store by ``migrate to --set-default``.

    Stored as ``to_json()`` text (a marker file beside a file store, a row of a minsky
    metadata table in a database, never in the sessions themselves).
    """

    backend: str
    location: str
    moved_at: str
    command: str

    def to_json(self) -> str:
        return json.dumps(
            {"movedTo": {"backend": self.backend, "location": self.location}, "at": self.moved_at, "use": self.command}
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> MovedMark:
        try:
            data = json.loads(text)
            return cls(data["movedTo"]["backend"], data["movedTo"]["location"], data["at"], data["use"])
        except (ValueError, KeyError, TypeError):
            raise StoreError(f"{where}: the moved marker is unreadable; nothing was written") from None

    def refusal(self, old_location: str) -> MovedError:
        """The one-line error a writer of the old store raises."""
        return MovedError(
            f"{old_location} was migrated to {self.backend} ({self.location}) at {self.moved_at}; "
            f"nothing was written here; use the new store: {self.command}"
        )


class MarkerFile:
    """The moved mark of a file store: ``<store>.moved`` beside it, written whole or not at all.
    A ``WriteLock`` for stores whose lock is a lock file (the JSON store, the JSONL example)."""

    def __init__(self, store_path: Path) -> None:
        self.path = Path(f"{store_path}.moved")

    def read(self) -> MovedMark | None:
        try:
            text = self.path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.path}: {exc.strerror}") from None
        return MovedMark.from_json(text, str(self.path))

    def mark_moved(self, mark: MovedMark | None) -> None:
        if mark is None:
            self.path.unlink(missing_ok=True)
        else:
            write_bytes_atomic(self.path, mark.to_json().encode("utf-8") + b"\n")


class WriteLock(Protocol):
    """Yielded by ``write_lock()``: the store's writers wait while it is held."""

    def mark_moved(self, mark: MovedMark | None) -> None:
        """Record (or, with None, clear) the moved marker; visible when the lock is released."""


@runtime_checkable
class LockableStore(Protocol):
    """Optional: what lets a migration lose no write and mark the store it left.

    ``write_lock()`` blocks the store's writers (they wait, up to their usual busy timeout)
    while readers go on. Every writer — ``insert``, ``update``, ``delete``, but not the
    ``bulk_writer`` of a migration — checks the moved marker after it has its lock and raises
    ``MovedError`` (``MovedMark.refusal``) instead of writing. Without these methods a
    migration copies late changes without a lock and cannot mark the store it left.
    """

    def write_lock(self) -> AbstractContextManager[WriteLock]:
        """Hold the store's write lock (JSON lock file, SQLite ``BEGIN IMMEDIATE``, a table lock)."""

    def moved(self) -> MovedMark | None:
        """The moved marker, or None."""


@attrs.frozen
class BackendSpec:
    """A backend as a plugin registers it."""

    name: str
    description: str
    open: Callable[[Mapping[str, Any]], Store]
    options: tuple[OptionSpec, ...] = ()
    api_version: int = HOOK_API_VERSION

    def option(self, name: str) -> OptionSpec | None:
        return next((opt for opt in self.options if opt.name == name), None)
