"""Verification against the source's own content, not only against what was written.

Comparing the target with what was written passes a reader that drops a column: both
sides lack it. A store that can hand over its raw rows (``source_rows()``, which the SQL
backends implement with ``minsky.original``) is checked cell by cell instead: every
non-NULL cell of every row must be accounted for in the record its reader yielded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from typing import Any

import attrs

from minsky.errors import StoreError
from minsky.model import SessionRecord
from minsky.original import KEY, Table, store_coverage

log = logging.getLogger(__name__)

LIMIT = 20


def source_gaps(
    store: Any,
    limit: int = LIMIT,
    read_digest: Callable[[str], bytes | None] | None = None,
    rejected: Collection[str] = (),
) -> list[str]:
    """What the source holds and its records do not, one line each naming record and column.

    ``read_digest`` (a migration's snapshot: name → short digest of the record it read) makes
    it one pass over the source's rows instead of two (``minsky.original.store_coverage``).
    The ``rejected`` sessions were not written at all, which the report says by name: their
    rows are not checked (a damaged row may well disagree with its own record)."""
    if not callable(getattr(store, "source_rows", None)):
        return []
    if rejected:
        store = _Without(store, frozenset(rejected))
    try:
        return store_coverage(store, limit, read_digest)
    except StoreError as exc:  # the copy read it a moment ago: a transient failure, not a gap
        log.warning("the source's cells were not checked: %s", exc)
        return []


@attrs.frozen
class _Without:
    """A store's rows and records but those of some sessions."""

    store: Any
    names: frozenset[str]

    def source_rows(self) -> Iterator[tuple[Table, Any]]:
        return (pair for pair in self.store.source_rows() if pair[1][KEY] not in self.names)

    def read(self) -> Iterator[SessionRecord]:
        return (record for record in self.store.read() if record.session not in self.names)

    def keys(self) -> Iterator[str]:
        return (name for name in self.store.keys() if name not in self.names)

    def get(self, name: str) -> SessionRecord | None:
        return None if name in self.names else self.store.get(name)
