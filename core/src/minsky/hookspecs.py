"""The hook API: what a plugin implements, with ``@minsky.hookimpl``.

Two layers. ``register_backends`` says what a backend *is* (a ``BackendSpec`` whose
``open`` returns a ``Store``). The operation hooks — ``read``, ``write``, ``backup``,
``restore`` and ``verify`` — are what any plugin can take part in, backend or not:
core's own behaviour is the last implementation in line (``trylast``, see
``minsky.builtin``), so a plugin can answer first with a native implementation,
or wrap a call (``@hookimpl(wrapper=True)``) to observe it, add to it, or veto it
by raising a ``minsky.errors.MinskyError`` (``PolicyError`` is made for that).

Versioning (``HOOK_API_VERSION``): adding a hook or an optional parameter is
compatible, because pluggy passes an implementation only the arguments it names;
removing or renaming a hook or a parameter, or changing what a hook returns or
whether it is ``firstresult``, is breaking and bumps the version.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pluggy

from minsky.backend import BackendSpec, ReadableStore, SessionFilter, Store, VerifyReport
from minsky.model import SessionRecord
from minsky.operations import BackupResult, WriteBatch, Written

hookspec = pluggy.HookspecMarker("minsky")
hookimpl = pluggy.HookimplMarker("minsky")


@hookspec
def register_backends(register: Callable[[BackendSpec], None]) -> None:
    """Called once, when plugins load, before any command uses a store.

    :param register: call it once per backend this plugin provides, with a
        ``minsky.backend.BackendSpec``. Its ``open(options)`` is called only when
        a command needs that store, so import heavy drivers there, not at module
        level: ``minsky --help`` must stay fast.
    """


@hookspec(firstresult=True)
def read(store: ReadableStore, where: SessionFilter | None, name: str | None) -> Iterator[SessionRecord] | None:
    """Called once per stream of records a command reads from a store (not per record).

    Reached by ``session list``, ``get``, ``end --all`` and ``clean``, by a migration and
    a restore (their source), and by the JSON backup (``export``, ``migrate to --backup``).

    :param store: the open store (or a restore's backup source); ``store.location`` says which.
    :param where: the sessions wanted (``session list``), or None for every record.
    :param name: one session wanted (``session get``), or None.
    :return: an iterator of records. ``firstresult``: the first non-None answer is used;
        core's own (``store.read()``, ``store.list(where)`` or ``store.get(name)``) comes last.
        A wrapper may wrap the iterator it gets back, e.g. to drop records.
    """


@hookspec(firstresult=True)
def write(store: Store, batch: WriteBatch) -> Written | None:
    """Called once per change a command makes to a store: one session (``session start``,
    ``end``, ``delete``, ``clean``), or one batch of up to 1,000 records (a migration or a
    restore, with ``batch.writer`` the staging area of the store's ``bulk_writer()``).

    A staged batch becomes visible only when the whole migration commits; if it fails,
    none of its batches does.

    :param store: the open store written to.
    :param batch: what to write: ``kind`` (insert, update, upsert, delete), the records
        or names, and for an update the change to apply. A migration's last step may stage
        deletions too: ``delete`` with ``batch.writer`` set.
    :return: ``Written``: the records as stored and the names deleted. ``firstresult``;
        core's implementation (the ``Store`` method) comes last. Raise to refuse a write:
        nothing of that batch is written.
    """


@hookspec(firstresult=True)
def backup(backend: str, store: ReadableStore, stem: Path, backup_format: str, base_dir: str) -> BackupResult | None:
    """Called once per backup: ``sessiondb export`` and ``sessiondb migrate to --backup DIR``.

    :param backend: the name of the store's backend (recorded in the backup).
    :param store: the store to back up, consistently (one snapshot).
    :param stem: the backup's path without a suffix (``DIR/session-backup-<time>``); the
        directory exists. Add the suffix of your format; never overwrite a file.
    :param backup_format: ``json`` (the portable Minsky JSON store plus metadata, core's
        implementation and the default) or ``native`` (the backend's own format, chosen with
        ``--backup-format native``). Return None for a format or store that is not yours.
    :param base_dir: the sessions' base directory, recorded in a JSON backup.
    :return: ``BackupResult`` (path, record count, store digest, format). ``firstresult``.
    """


@hookspec(firstresult=True)
def restore(path: Path, backend: str) -> ReadableStore | None:
    """Called once per restore (``sessiondb restore``, ``sessiondb import``), before the target
    is written: open the backup file ``path`` as a read-only source, after checking it (or
    arranging for its read to check it: a read that raises, even after its last record,
    leaves the target unchanged; core's JSON backup checks its digest so).

    :param path: the backup file (a directory given by the user is already resolved to its
        newest ``session-backup-*`` file).
    :param backend: the backend restored into.
    :return: a ``ReadableStore`` of the backup's records, if this plugin recognises the
        file's format; None otherwise. ``firstresult``; core's implementation (the JSON
        backup) comes last. Raise ``VerificationError`` for a damaged backup. The records
        then reach the target through ``write``, as in a migration.
    """


@hookspec
def verify(store: Store) -> VerifyReport | None:
    """Called once per integrity check of a store: ``sessiondb verify`` (alias ``check``).

    Not ``firstresult``: every implementation checks and the reports are merged (ok only if
    all are; problems listed one a line). Core's implementation (``store.verify()``: every
    record decodes) comes last; a backend adds its native check, returning None for a store
    that is not its own.

    :param store: the open store to check.
    :return: a ``VerifyReport``, or None.
    """
