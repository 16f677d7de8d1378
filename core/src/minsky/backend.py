"""What a backend is: the typed contract between core and every store plugin.

A plugin registers a ``BackendSpec`` (see ``hookspecs.register_backends``).
Core asks the spec to ``open`` a ``Store`` with resolved options; everything
else — sessions, migration, backup, restore, verification — is written once in
core against the ``Store`` protocol below, so no code is pairwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol, runtime_checkable

import attrs

from minsky.model import SessionRecord

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
    target. ``secret`` values are masked everywhere.
    """

    name: str
    help: str
    config_key: str | None = None
    cli_flag: str | None = None
    env: str | None = None
    location: bool = False
    secret: bool = False
    default: Callable[[], Any] | None = None


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
    """Yielded by ``Store.bulk_writer()``: receives batches of records in the staging area."""

    def write(self, batch: Sequence[SessionRecord]) -> None:
        """Upsert a batch into the staging area; nothing is visible yet."""


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
